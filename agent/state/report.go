package state

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/stewardhq/steward/contracts"
	bolt "go.etcd.io/bbolt"
)

// Report is the inventory the agent last reported, the base of its next
// delta.
type Report struct {
	Seq       uint64              `json:"seq"`
	Collected time.Time           `json:"collected"`
	Inventory contracts.Inventory `json:"inventory"`
}

// reportBucket holds the last inventory report (schema 2).
var (
	reportBucket = []byte("report")
	lastKey      = []byte("last")
)

// LastReport implements Store.
func (s *BoltStore) LastReport() (Report, bool, error) {
	var r Report
	var ok bool
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(reportBucket)
		if b == nil {
			return fmt.Errorf("%w: bucket %q is missing", ErrSchema, reportBucket)
		}
		v := b.Get(lastKey)
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("%w: last report: %v", ErrCorrupt, err)
		}
		ok = true
		return nil
	})
	return r, ok, err
}

// EnqueueReport implements Store.
func (s *BoltStore) EnqueueReport(max int, e Entry, r Report) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	entry, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		ob, rb := tx.Bucket(outboxBucket), tx.Bucket(reportBucket)
		if ob == nil || rb == nil {
			return fmt.Errorf("%w: outbox or report bucket is missing", ErrSchema)
		}
		if max > 0 && ob.Stats().KeyN >= max {
			return fmt.Errorf("outbox enqueue: %w (%d entries)", ErrOutboxFull, ob.Stats().KeyN)
		}
		seq, err := ob.NextSequence()
		if err != nil {
			return err
		}
		if err := ob.Put(seqKey(seq), entry); err != nil {
			return err
		}
		return rb.Put(lastKey, data)
	})
}

// LastReport implements Store.
func (m *MemStore) LastReport() (Report, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Report{}, false, ErrClosed
	}
	if m.report == nil {
		return Report{}, false, nil
	}
	return *m.report, true, nil
}

// EnqueueReport implements Store.
func (m *MemStore) EnqueueReport(max int, e Entry, r Report) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if max > 0 && len(m.outbox) >= max {
		return fmt.Errorf("outbox enqueue: %w (%d entries)", ErrOutboxFull, len(m.outbox))
	}
	m.seq++
	e.Seq = m.seq
	m.outbox = append(m.outbox, e)
	m.report = &r
	return nil
}
