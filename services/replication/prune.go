package replication

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// Pruning removes the chunks that no installed version and no offer in
// the inbox names, once they are PruneGrace old (an operator's upload or a
// transfer may be under way). It holds the library lock, so no version is
// created or installed while it runs on this instance.

// PruneChunks removes unused chunks now and returns how many and their
// bytes.
func (s *Service) PruneChunks(ctx context.Context) (int, int64, error) {
	s.libMu.Lock()
	defer s.libMu.Unlock()
	objects, err := s.chunks.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, contracts.Errorf(contracts.CodeUnavailable, "list chunks: %v", err)
	}
	used, err := s.usedChunks(ctx)
	if err != nil {
		return 0, 0, err
	}
	cutoff := s.cfg.Now().Add(-s.cfg.PruneGrace)
	var n int
	var bytes int64
	for _, o := range objects {
		if o.Deleted || used[o.Name] || o.ModTime.After(cutoff) {
			continue
		}
		if err := s.chunks.Delete(ctx, o.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return n, bytes, contracts.Errorf(contracts.CodeUnavailable, "delete chunk %s: %v", o.Name, err)
		}
		n++
		bytes += int64(o.Size)
	}
	if n > 0 {
		s.log.Info("unused chunks pruned", "chunks", n, "bytes", bytes)
	}
	return n, bytes, nil
}

// usedChunks is every chunk an installed version or a recorded offer names.
func (s *Service) usedChunks(ctx context.Context) (map[string]bool, error) {
	used := map[string]bool{}
	for _, kv := range []jetstream.KeyValue{s.packagesKV, s.inboxKV} {
		lister, err := kv.ListKeys(ctx)
		if err != nil {
			return nil, contracts.Errorf(contracts.CodeUnavailable, "list %s: %v", kv.Bucket(), err)
		}
		for k := range lister.Keys() {
			e, err := kv.Get(ctx, k)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return nil, contracts.Errorf(contracts.CodeUnavailable, "read %s: %v", kv.Bucket(), err)
			}
			var rec struct {
				Signed contracts.SignedManifest `json:"signed"`
			}
			var m contracts.Manifest
			if json.Unmarshal(e.Value(), &rec) != nil || json.Unmarshal(rec.Signed.Manifest, &m) != nil {
				// An unreadable record keeps everything: prune nothing.
				return nil, contracts.Errorf(contracts.CodeInternal, "%s %s cannot be read; nothing pruned", kv.Bucket(), k)
			}
			for _, c := range m.Chunks() {
				used[c] = true
			}
		}
	}
	return used, nil
}

// pruneLoop prunes every PruneEvery and after each delete.
func (s *Service) pruneLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.PruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.pruneNow:
		}
		if _, _, err := s.PruneChunks(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("prune", "err", err)
		}
	}
}
