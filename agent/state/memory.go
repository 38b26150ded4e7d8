package state

import (
	"sync"
	"time"
)

// MemStore is a Store that keeps everything in memory, for tests.
type MemStore struct {
	mu       sync.Mutex
	identity *Identity
	outbox   []Entry
	report   *Report
	policy   PolicyState
	seq      uint64
	closed   bool

	grants     map[string]time.Time
	sessionLog []SessionRecord
	logSeq     uint64

	content map[string]ContentEntry
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{} }

// GetIdentity implements Store.
func (m *MemStore) GetIdentity() (Identity, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Identity{}, false, ErrClosed
	}
	if m.identity == nil {
		return Identity{}, false, nil
	}
	return *m.identity, true, nil
}

// PutIdentity implements Store.
func (m *MemStore) PutIdentity(id Identity) error {
	if err := id.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	id.EnrolledAt = id.EnrolledAt.UTC()
	m.identity = &id
	return nil
}

// Close implements Store.
func (m *MemStore) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
