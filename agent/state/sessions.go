package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/stewardhq/steward/contracts"
	bolt "go.etcd.io/bbolt"
)

// Remote sessions (schema 4): the IDs of the session grants the agent has
// taken (so that a captured grant is never taken twice), and the session
// log, what ran on this machine and what was refused.
//
//	grants/
//	|--> <grant id>  -> RFC 3339 time until which the ID is remembered
//	sessionlog/
//	|--> <seq>       -> JSON SessionRecord; seq is 8-byte big-endian from NextSequence
var (
	grantsBucket     = []byte("grants")
	sessionLogBucket = []byte("sessionlog")
)

// SessionLogMax is how many records the session log keeps; the oldest go
// first.
const SessionLogMax = 1000

// SessionRecord is one entry of the session log: a session the agent ran
// (the session as it ended, or as it runs), or a grant it refused.
type SessionRecord struct {
	Seq uint64 `json:"seq"` // assigned by LogSession
	contracts.SessionInfo
	Join     bool      `json:"join,omitempty"` // an operator joined a running session
	Accepted bool      `json:"accepted"`
	User     string    `json:"user,omitempty"`   // who answered the consent prompt
	Deny     string    `json:"deny,omitempty"`   // a contracts.Deny* value when refused
	Reason   string    `json:"reason,omitempty"` // why it was refused
	At       time.Time `json:"at"`               // when the grant was decided
}

// UseGrant implements Store.
func (s *BoltStore) UseGrant(id string, until, now time.Time) (bool, error) {
	if id == "" {
		return false, fmt.Errorf("use grant: no grant ID")
	}
	fresh := false
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(grantsBucket)
		if b == nil {
			return fmt.Errorf("%w: bucket %q is missing", ErrSchema, grantsBucket)
		}
		// Forget the IDs whose time is over (a grant that old is refused
		// as expired anyway). Keys are collected first: deleting while a
		// cursor walks skips keys.
		var old [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			t, err := time.Parse(time.RFC3339Nano, string(v))
			if err != nil || t.Before(now) {
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		if b.Get([]byte(id)) != nil {
			return nil
		}
		fresh = true
		return b.Put([]byte(id), []byte(until.UTC().Format(time.RFC3339Nano)))
	})
	if err != nil {
		return false, fmt.Errorf("use grant: %w", err)
	}
	return fresh, nil
}

// LogSession implements Store.
func (s *BoltStore) LogSession(rec SessionRecord) (uint64, error) {
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(sessionLogBucket)
		if b == nil {
			return fmt.Errorf("%w: bucket %q is missing", ErrSchema, sessionLogBucket)
		}
		if rec.Seq == 0 {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			rec.Seq = seq
			// Sequence numbers are consecutive: the record SessionLogMax
			// before this one is the one to forget.
			if seq > SessionLogMax {
				if err := b.Delete(seqKey(seq - SessionLogMax)); err != nil {
					return err
				}
			}
		} else if b.Get(seqKey(rec.Seq)) == nil {
			return nil // rolled out (the end of a long session): nothing to rewrite
		}
		data, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put(seqKey(rec.Seq), data)
	})
	if err != nil {
		return 0, fmt.Errorf("session log: %w", err)
	}
	return rec.Seq, nil
}

// SessionLog implements Store.
func (s *BoltStore) SessionLog(limit int) ([]SessionRecord, error) {
	out := []SessionRecord{}
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(sessionLogBucket)
		if b == nil {
			return fmt.Errorf("%w: bucket %q is missing", ErrSchema, sessionLogBucket)
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			var rec SessionRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("%w: session log %d: %v", ErrCorrupt, binary.BigEndian.Uint64(k), err)
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("session log: %w", err)
	}
	return out, nil
}

// UseGrant implements Store.
func (m *MemStore) UseGrant(id string, until, now time.Time) (bool, error) {
	if id == "" {
		return false, fmt.Errorf("use grant: no grant ID")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, ErrClosed
	}
	if m.grants == nil {
		m.grants = map[string]time.Time{}
	}
	for k, t := range m.grants {
		if t.Before(now) {
			delete(m.grants, k)
		}
	}
	if _, ok := m.grants[id]; ok {
		return false, nil
	}
	m.grants[id] = until
	return true, nil
}

// LogSession implements Store.
func (m *MemStore) LogSession(rec SessionRecord) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	// A JSON round trip copies the record as bbolt's would.
	data, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	var cp SessionRecord
	_ = json.Unmarshal(data, &cp)
	if cp.Seq != 0 {
		for i := range m.sessionLog {
			if m.sessionLog[i].Seq == cp.Seq {
				m.sessionLog[i] = cp
				return cp.Seq, nil
			}
		}
		return cp.Seq, nil // rolled out, as in BoltStore
	}
	m.logSeq++
	cp.Seq = m.logSeq
	m.sessionLog = append(m.sessionLog, cp)
	if len(m.sessionLog) > SessionLogMax {
		m.sessionLog = append([]SessionRecord(nil), m.sessionLog[len(m.sessionLog)-SessionLogMax:]...)
	}
	return cp.Seq, nil
}

// SessionLog implements Store.
func (m *MemStore) SessionLog(limit int) ([]SessionRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	out := []SessionRecord{}
	for i := len(m.sessionLog) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		data, _ := json.Marshal(m.sessionLog[i])
		var cp SessionRecord
		_ = json.Unmarshal(data, &cp)
		out = append(out, cp)
	}
	return out, nil
}
