package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// model is one instance's view of the three buckets, kept current by
// watches: the catalog, every client record (with an index from
// collection to clients) and every client's last report. Requests are
// answered from it; writes go to the buckets (compare-and-set) and come
// back through the watches, or are applied at once by the writer.
type model struct {
	mu         sync.RWMutex
	catalog    *Catalog
	catalogRev uint64
	changed    chan struct{} // closed and replaced when the catalog changes
	clients    map[string]clientEntry
	gone       map[string]uint64              // deleted records: the revision of the delete marker
	members    map[string]map[string]struct{} // collection ID -> client IDs
	compliance map[string]complianceEntry
}

type complianceEntry struct {
	rec complianceRecord
	rev uint64
}

type clientEntry struct {
	rec clientRecord
	rev uint64 // the key's revision in ClientsBucket
}

func newModel() *model {
	return &model{
		catalog:    NewCatalog(time.Now().UTC()),
		changed:    make(chan struct{}),
		clients:    map[string]clientEntry{},
		gone:       map[string]uint64{},
		members:    map[string]map[string]struct{}{},
		compliance: map[string]complianceEntry{},
	}
}

// current returns the catalog and its revision. The catalog must not be
// changed.
func (m *model) current() (*Catalog, uint64) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.catalog, m.catalogRev
}

// setCatalog applies a catalog entry of revision rev.
func (m *model) setCatalog(c *Catalog, rev uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rev < m.catalogRev {
		return
	}
	m.catalog, m.catalogRev = c, rev
	close(m.changed)
	m.changed = make(chan struct{})
}

// waitCatalog returns once the model holds the catalog at revision rev or
// later, or ctx ends.
func (m *model) waitCatalog(ctx context.Context, rev uint64) error {
	for {
		m.mu.RLock()
		cur, ch := m.catalogRev, m.changed
		m.mu.RUnlock()
		if cur >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("the settings catalog at revision %d has not reached this instance: %w", rev, ctx.Err())
		}
	}
}

// client returns the record of id and its revision.
func (m *model) client(id string) (clientEntry, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.clients[id]
	e.rec.Collections = slices.Clone(e.rec.Collections)
	return e, ok
}

// setClient applies a record at revision rev (a newer one wins; nil
// deletes, and the delete marker's revision is kept: the next record of
// the client is written by compare-and-set on it).
func (m *model) setClient(id string, rec *clientRecord, rev uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, had := m.clients[id]
	if had && old.rev >= rev {
		return
	}
	if g, deleted := m.gone[id]; !had && deleted && g >= rev {
		return
	}
	if had {
		for _, c := range old.rec.Collections {
			if set := m.members[c]; set != nil {
				delete(set, id)
			}
		}
	}
	if rec == nil {
		delete(m.clients, id)
		m.gone[id] = rev
		return
	}
	delete(m.gone, id)
	m.clients[id] = clientEntry{rec: *rec, rev: rev}
	for _, c := range rec.Collections {
		set := m.members[c]
		if set == nil {
			set = map[string]struct{}{}
			m.members[c] = set
		}
		set[id] = struct{}{}
	}
}

// tombstone is the revision of the delete marker of client id's record
// (0: none): what a new record of the client is written on.
func (m *model) tombstone(id string) uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.gone[id]
}

// membersOf lists the clients whose records say they are in collection.
func (m *model) membersOf(collection string) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.members[collection]))
	for id := range m.members[collection] {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// allClients lists every client with a record.
func (m *model) allClients() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.clients))
	for id := range m.clients {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// report returns the last report of client id.
func (m *model) report(id string) (complianceRecord, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, ok := m.compliance[id]
	return c.rec, ok
}

// setReport applies a report at revision rev (a newer one wins; nil
// deletes).
func (m *model) setReport(id string, c *complianceRecord, rev uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.compliance[id]; ok && old.rev >= rev {
		return
	}
	if c == nil {
		delete(m.compliance, id)
		return
	}
	m.compliance[id] = complianceEntry{rec: *c, rev: rev}
}

// applySettingsEntry applies a change of SettingsBucket.
func (m *model) applySettingsEntry(e jetstream.KeyValueEntry) error {
	if e.Key() != CatalogKey {
		return nil
	}
	if e.Operation() != jetstream.KeyValuePut {
		m.setCatalog(NewCatalog(time.Now().UTC()), e.Revision())
		return nil
	}
	c, err := DecodeCatalog(e.Value())
	if err != nil {
		return err
	}
	m.setCatalog(c, e.Revision())
	return nil
}

// applyClientEntry applies a change of ClientsBucket.
func (m *model) applyClientEntry(e jetstream.KeyValueEntry) error {
	if e.Operation() != jetstream.KeyValuePut {
		m.setClient(e.Key(), nil, e.Revision())
		return nil
	}
	var rec clientRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return fmt.Errorf("client record unreadable: %w", err)
	}
	m.setClient(e.Key(), &rec, e.Revision())
	return nil
}

// applyComplianceEntry applies a change of ComplianceBucket.
func (m *model) applyComplianceEntry(e jetstream.KeyValueEntry) error {
	if e.Operation() != jetstream.KeyValuePut {
		m.setReport(e.Key(), nil, e.Revision())
		return nil
	}
	var c complianceRecord
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return fmt.Errorf("compliance record unreadable: %w", err)
	}
	m.setReport(e.Key(), &c, e.Revision())
	return nil
}
