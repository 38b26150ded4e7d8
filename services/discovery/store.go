package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// maxAttempts bounds the read-modify-write retries of one change under
// contention from other instances.
const maxAttempts = 20

// store keeps the records in the KV bucket. Every write is a compare-and-set
// on the key's revision, so any number of instances may write at once
// without losing an update.
type store struct {
	kv jetstream.KeyValue
}

// change computes the next record from the current one (nil when there is
// none). It returns write false to leave the key as it is, or a nil next with
// write true to delete it. It may run several times, so it must not have
// side effects.
type change func(cur *record) (next *record, write bool, err error)

// modify applies fn to the record of id, retrying on a concurrent write.
func (s *store) modify(ctx context.Context, id string, fn change) error {
	for range maxAttempts {
		var (
			cur *record
			rev uint64
		)
		e, err := s.kv.Get(ctx, id)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case errors.Is(err, jetstream.ErrInvalidKey):
			return contracts.Errorf(contracts.CodeBadRequest, "client id %q cannot be a bucket key", id)
		case err != nil:
			return fmt.Errorf("read client %s: %w", id, err)
		default:
			cur = new(record)
			if err := json.Unmarshal(e.Value(), cur); err != nil {
				return fmt.Errorf("client %s: stored record unreadable: %w", id, err)
			}
			rev = e.Revision()
		}
		next, write, err := fn(cur)
		if err != nil || !write {
			return err
		}
		switch {
		case next == nil && cur == nil:
			return nil
		case next == nil:
			err = s.kv.Purge(ctx, id, jetstream.LastRevision(rev))
		default:
			data, merr := json.Marshal(next)
			if merr != nil {
				return merr
			}
			if cur == nil {
				_, err = s.kv.Create(ctx, id, data)
			} else {
				_, err = s.kv.Update(ctx, id, data, rev)
			}
		}
		if !conflict(err) {
			if err != nil {
				return fmt.Errorf("write client %s: %w", id, err)
			}
			return nil
		}
	}
	return contracts.Errorf(contracts.CodeConflict, "client %s: still changing after %d attempts", id, maxAttempts)
}

// read returns the stored record of id; ok is false when there is none
// (or it cannot be read now).
func (s *store) read(ctx context.Context, id string) (record, bool) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	e, err := s.kv.Get(ctx, id)
	if err != nil {
		return record{}, false
	}
	var r record
	if json.Unmarshal(e.Value(), &r) != nil {
		return record{}, false
	}
	return r, true
}

// updateAt writes r over revision rev only if rev is still current. It
// reports false when another write came first.
func (s *store) updateAt(ctx context.Context, r record, rev uint64) (bool, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	_, err = s.kv.Update(ctx, r.ID, data, rev)
	if conflict(err) {
		return false, nil
	}
	return err == nil, err
}

func conflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

// view is every record in memory, kept current by a watch on the bucket. It
// serves list, show, the sweeper and the key index of disconnects; every
// instance of the service has its own.
type view struct {
	mu    sync.RWMutex
	recs  map[string]entry  // by client ID
	byKey map[string]string // agent NKey -> client ID
}

type entry struct {
	rec record
	rev uint64
}

func newView() *view {
	return &view{recs: map[string]entry{}, byKey: map[string]string{}}
}

// apply takes one update of the watch.
func (v *view) apply(e jetstream.KeyValueEntry) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if old, ok := v.recs[e.Key()]; ok && old.rec.Key != "" {
		delete(v.byKey, old.rec.Key)
	}
	if e.Operation() != jetstream.KeyValuePut {
		delete(v.recs, e.Key())
		return nil
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		delete(v.recs, e.Key())
		return fmt.Errorf("client %s: stored record unreadable: %w", e.Key(), err)
	}
	v.recs[e.Key()] = entry{rec: r, rev: e.Revision()}
	if r.Key != "" {
		v.byKey[r.Key] = e.Key()
	}
	return nil
}

// get returns a copy of the record of id.
func (v *view) get(id string) (record, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	e, ok := v.recs[id]
	return e.rec, ok
}

// all returns a copy of every record.
func (v *view) all() []record {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]record, 0, len(v.recs))
	for _, e := range v.recs {
		out = append(out, e.rec)
	}
	return out
}

// entries returns a copy of every record with its revision.
func (v *view) entries() []entry {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]entry, 0, len(v.recs))
	for _, e := range v.recs {
		out = append(out, e)
	}
	return out
}

// idOfKey returns the client ID whose agent key is key.
func (v *view) idOfKey(key string) (string, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	id, ok := v.byKey[key]
	return id, ok
}
