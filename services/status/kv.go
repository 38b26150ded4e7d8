package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/cas"
)

// validKey reports whether k may be a key of a KV bucket.
func validKey(k string) error {
	if k == "" || len(k) > 255 {
		return fmt.Errorf("key %q: must be 1 to 255 characters", k)
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '=') {
			return fmt.Errorf("key %q: only letters, digits, '-', '_' and '='", k)
		}
	}
	return nil
}

// getJSON reads key into v and returns its revision.
func getJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) (uint64, error) {
	e, err := kv.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("%s is unreadable: %w", key, err)
	}
	return e.Revision(), nil
}

// readAll calls fn with every current key and value of the bucket, read
// in one pass of a watcher rather than one request per key.
func readAll(ctx context.Context, kv jetstream.KeyValue, fn func(key string, value []byte) error) error {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch closed while reading")
			}
			if e == nil { // every current value has been delivered
				return nil
			}
			if err := fn(e.Key(), e.Value()); err != nil {
				return err
			}
		}
	}
}

// casUpdate applies fn to the value of key (the zero value when there is
// none) and writes it back only if nobody wrote meanwhile, trying again
// when somebody did.
func casUpdate[T any](ctx context.Context, kv jetstream.KeyValue, key string, fn func(*T)) error {
	for attempt := 0; attempt < 10; attempt++ {
		var cur T
		rev, err := getJSON(ctx, kv, key, &cur)
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return err
		}
		fn(&cur)
		data, err := json.Marshal(cur)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = kv.Create(ctx, key, data)
		} else {
			_, err = kv.Update(ctx, key, data, rev)
		}
		if err == nil {
			return nil
		}
		if !cas.Lost(err) && !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
	}
	return contracts.Errorf(contracts.CodeConflict, "%s is contended", key)
}

// summaryFlushEvery is how often the rules processor writes what it noted
// to the summary buckets: a busy client or component costs one write per
// period, not one per message.
const summaryFlushEvery = time.Second

// flushSummaries flushes both summarizers every summaryFlushEvery until
// ctx ends, then once more.
func (s *Service) flushSummaries(ctx context.Context) {
	t := time.NewTicker(summaryFlushEvery)
	defer t.Stop()
	flush := func(ctx context.Context) error {
		return errors.Join(s.clients.flush(ctx), s.comps.flush(ctx, s.cfg.Now()))
	}
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := flush(fctx); err != nil {
				s.log.Warn("status summaries not saved", "err", err)
			}
			cancel()
			return
		case <-t.C:
			if err := flush(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("status summaries not saved; will retry", "err", err)
			}
		}
	}
}
