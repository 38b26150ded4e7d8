package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/stewardhq/steward/contracts"
	bolt "go.etcd.io/bbolt"
)

// Entry is one message in the outbox: store-and-forward until the site
// acknowledges it. Seq orders the outbox (oldest first); Kind is the up
// subject kind the entry is sent on ("status", "inventory", ...).
type Entry struct {
	Seq  uint64               `json:"-"`
	Kind string               `json:"kind"`
	Item contracts.OutboxItem `json:"item"`
}

// ErrOutboxFull is returned by Enqueue when the outbox holds its maximum.
var ErrOutboxFull = errors.New("outbox is full")

// stateRoom reports whether n more entries fit beside have for a state
// change (UpdatePolicy, UpdateContent). A state change never waits on the
// outbox, which may be full of another kind (status messages while the
// site's status service is away): its own messages, a policy's
// acknowledgement or a download's outcome, may take the outbox past max
// by a tenth (and 16), and past that they are dropped, the change stored
// all the same; the caller is told how many.
func stateRoom(max, have, n int) bool {
	return max <= 0 || have+n <= max+max/10+16
}

// outboxBucket holds the entries, keyed by an 8-byte big-endian sequence
// from the bucket's own NextSequence, so iteration is oldest first.
var outboxBucket = []byte("outbox")

func seqKey(seq uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

// putEntries appends entries to the outbox bucket ob and returns their
// sequence numbers.
func putEntries(ob *bolt.Bucket, entries []Entry) ([]uint64, error) {
	seqs := make([]uint64, 0, len(entries))
	for _, e := range entries {
		seq, err := ob.NextSequence()
		if err != nil {
			return nil, err
		}
		data, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		if err := ob.Put(seqKey(seq), data); err != nil {
			return nil, err
		}
		seqs = append(seqs, seq)
	}
	return seqs, nil
}

// Enqueue implements Store.
func (s *BoltStore) Enqueue(max int, entries ...Entry) ([]uint64, error) {
	var seqs []uint64
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(outboxBucket)
		if b == nil {
			return fmt.Errorf("%w: bucket %q is missing", ErrSchema, outboxBucket)
		}
		if max > 0 && b.Stats().KeyN+len(entries) > max {
			return fmt.Errorf("%w (%d entries)", ErrOutboxFull, b.Stats().KeyN)
		}
		var err error
		seqs, err = putEntries(b, entries)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("outbox enqueue: %w", err)
	}
	return seqs, nil
}

// Pending implements Store.
func (s *BoltStore) Pending(limit int, skip ...string) ([]Entry, error) {
	var out []Entry
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(outboxBucket)
		if b == nil {
			return fmt.Errorf("%w: bucket %q is missing", ErrSchema, outboxBucket)
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("%w: outbox entry %x: %v", ErrCorrupt, k, err)
			}
			if slices.Contains(skip, e.Kind) {
				continue
			}
			e.Seq = binary.BigEndian.Uint64(k)
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox read: %w", err)
	}
	return out, nil
}

// Remove implements Store.
func (s *BoltStore) Remove(seqs ...uint64) error {
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(outboxBucket)
		if b == nil {
			return fmt.Errorf("%w: bucket %q is missing", ErrSchema, outboxBucket)
		}
		for _, seq := range seqs {
			if err := b.Delete(seqKey(seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("outbox remove: %w", err)
	}
	return nil
}

// OutboxLen implements Store.
func (s *BoltStore) OutboxLen() (int, error) {
	var n int
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(outboxBucket)
		if b == nil {
			return fmt.Errorf("%w: bucket %q is missing", ErrSchema, outboxBucket)
		}
		n = b.Stats().KeyN
		return nil
	})
	return n, err
}

// Enqueue implements Store.
func (m *MemStore) Enqueue(max int, entries ...Entry) ([]uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if max > 0 && len(m.outbox)+len(entries) > max {
		return nil, fmt.Errorf("outbox enqueue: %w (%d entries)", ErrOutboxFull, len(m.outbox))
	}
	seqs := make([]uint64, 0, len(entries))
	for _, e := range entries {
		m.seq++
		e.Seq = m.seq
		m.outbox = append(m.outbox, e)
		seqs = append(seqs, e.Seq)
	}
	return seqs, nil
}

// Pending implements Store.
func (m *MemStore) Pending(limit int, skip ...string) ([]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	var out []Entry
	for _, e := range m.outbox {
		if limit > 0 && len(out) == limit {
			break
		}
		if !slices.Contains(skip, e.Kind) {
			out = append(out, e)
		}
	}
	return out, nil
}

// Remove implements Store.
func (m *MemStore) Remove(seqs ...uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	drop := make(map[uint64]bool, len(seqs))
	for _, s := range seqs {
		drop[s] = true
	}
	kept := m.outbox[:0]
	for _, e := range m.outbox {
		if !drop[e.Seq] {
			kept = append(kept, e)
		}
	}
	m.outbox = kept
	return nil
}

// OutboxLen implements Store.
func (m *MemStore) OutboxLen() (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	return len(m.outbox), nil
}
