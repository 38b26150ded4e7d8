package replication

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/cas"
)

// Pruning removes the chunks that no installed version and no offer in
// the inbox names, once they are PruneGrace old (an operator's upload or a
// transfer may be under way). It holds the library lock, so no version is
// created or installed while it runs on this instance; another instance's
// offers and installs are seen by reading the used chunks again whenever
// either bucket moved, before each removal. What that cannot see, an
// install between the last read and the removal, is closed by the chunk's
// meta: an install renews every held chunk older than half the grace
// before it relies on it (renewChunk), and a removal happens only if the
// meta is still the one the prune found older than the grace.

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
	refs, err := s.refsAt(ctx)
	if err != nil {
		return 0, 0, err
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
		// The meta as it is now: the removal is on condition that it is
		// still this one (an install renews what it relies on).
		info, at, held, err := s.chunkMeta(ctx, o.Name)
		if err != nil {
			return n, bytes, contracts.Errorf(contracts.CodeUnavailable, "read chunk %s: %v", o.Name, err)
		}
		if !held || at.time.After(cutoff) {
			continue
		}
		if s.beforePrune != nil {
			s.beforePrune(o.Name)
		}
		// Another instance may have recorded an offer or installed a
		// version naming it since the used chunks were read (this lock is
		// this instance's only): read them again if either bucket moved.
		now, err := s.refsAt(ctx)
		if err != nil {
			return n, bytes, err
		}
		if now != refs {
			refs = now
			if used, err = s.usedChunks(ctx); err != nil {
				return n, bytes, err
			}
			if used[o.Name] {
				continue
			}
		}
		removed, err := s.removeChunk(ctx, info, at.seq)
		if err != nil {
			return n, bytes, contracts.Errorf(contracts.CodeUnavailable, "delete chunk %s: %v", o.Name, err)
		}
		if removed {
			n++
			bytes += int64(info.Size)
		}
	}
	if n > 0 {
		s.log.Info("unused chunks pruned", "chunks", n, "bytes", bytes)
	}
	return n, bytes, nil
}

// removeChunk removes a chunk as the object store's Delete does (a deleted
// mark as its meta, then its data purged), but only if its meta is still
// at seq: false, and nothing removed, when it was renewed or stored again
// meanwhile.
func (s *Service) removeChunk(ctx context.Context, info jetstream.ObjectInfo, seq uint64) (bool, error) {
	nuid := info.NUID
	info.Deleted = true
	info.Size, info.Chunks, info.Digest = 0, 0, ""
	if err := s.writeMeta(ctx, info, seq); err != nil {
		if cas.Lost(err) {
			return false, nil
		}
		return false, err
	}
	if nuid == "" {
		return true, nil
	}
	return true, s.chunkStream.Purge(ctx, jetstream.WithPurgeSubject(chunkDataSubject(nuid)))
}

// refsAt is the last sequence of the buckets that name chunks (installed
// versions, recorded offers): any write to either moves it.
func (s *Service) refsAt(ctx context.Context) ([2]uint64, error) {
	var out [2]uint64
	for i, kv := range []jetstream.KeyValue{s.packagesKV, s.inboxKV} {
		st, err := kv.Status(ctx)
		if err != nil {
			return out, contracts.Errorf(contracts.CodeUnavailable, "status of %s: %v", kv.Bucket(), err)
		}
		bs, ok := st.(*jetstream.KeyValueBucketStatus)
		if !ok {
			return out, contracts.Errorf(contracts.CodeInternal, "status of %s: no stream info", kv.Bucket())
		}
		out[i] = bs.StreamInfo().State.LastSeq
	}
	return out, nil
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

// pruneLoop prunes chunks and client reports every PruneEvery and after
// each delete.
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
		if n, err := s.PruneReports(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("prune client reports", "err", err)
		} else if n > 0 {
			s.log.Info("client reports of versions no longer installed removed", "versions", n)
		}
	}
}
