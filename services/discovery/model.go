package discovery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/discovery/collections"
)

// model is one instance's in-memory view of everything collections are
// evaluated from: the client records, their inventories and the collection
// definitions, each fed by a watch on its bucket, and the engine holding
// the memberships. Every instance keeps its own; they agree because they
// follow the same buckets.
//
// A change that changes memberships becomes MembershipChanged events,
// queued for the publisher. Every instance publishes them, with a
// Nats-Msg-Id made of the change that caused them (bucket and revision)
// and the delta, so the stream keeps one copy.
type model struct {
	site string

	mu     sync.RWMutex
	eng    *collections.Engine
	recs   map[string]recordPart
	invs   map[string]*envPart
	defs   map[string]defEntry
	loaded bool // the engine is built; changes go to it

	defsRev  uint64        // highest revision of CollectionsBucket applied
	defsTick chan struct{} // closed and replaced when defsRev moves

	events chan<- *pendingEvent
	// The events of changes are queued in the order the changes were
	// applied (three watches apply them): each change that makes events
	// takes a ticket under mu, and queues them at its turn, without mu.
	nextTicket uint64 // under mu
	turnMu     sync.Mutex
	turnCond   *sync.Cond
	turn       uint64 // the ticket whose events are queued next
}

// recordPart is what collections need of a client record.
type recordPart struct {
	name     string
	approved bool
	os, arch string // from heartbeats: stand in until the inventory says
}

// defEntry is a stored collection definition and its revision.
type defEntry struct {
	rec collectionRecord
	rev uint64
}

// pendingEvent is a MembershipChanged event to publish with its ID.
type pendingEvent struct {
	msgID string
	ev    contracts.MembershipChanged
}

func newModel(site string, events chan<- *pendingEvent) *model {
	m := &model{
		site:     site,
		eng:      collections.New(),
		recs:     map[string]recordPart{},
		invs:     map[string]*envPart{},
		defs:     map[string]defEntry{},
		defsTick: make(chan struct{}),
		events:   events,
	}
	m.turnCond = sync.NewCond(&m.turnMu)
	return m
}

// cause names the change of a bucket entry, for event IDs.
type cause struct {
	bucket string
	rev    uint64
	kind   string // contracts.Cause*
}

// env assembles a client's query environment; ok is false when the model
// knows nothing of the client.
func (m *model) env(id string) (collections.Env, bool) {
	r, hasRec := m.recs[id]
	p, hasInv := m.invs[id]
	if !hasRec && !hasInv {
		return collections.Env{}, false
	}
	env := collections.Env{ID: id, Name: r.name, Site: m.site, Approved: r.approved}
	if hasInv {
		env.OS, env.Arch, env.CPU, env.Memory = p.OS, p.Arch, p.CPU, p.Memory
		env.Disks, env.IPs, env.MACs, env.Software = p.Disks, p.IPs, p.MACs, p.Software
		env.Users, env.Admins, env.Labels = p.Users, p.Admins, p.Labels
	}
	if env.OS.Family == "" {
		env.OS.Family = r.os
	}
	if env.Arch == "" {
		env.Arch = r.arch
	}
	return env, true
}

// clientChanged hands client id's new environment to the engine. Called
// with mu held.
func (m *model) clientChanged(id string, c cause) []*pendingEvent {
	if !m.loaded {
		return nil
	}
	env, ok := m.env(id)
	if !ok {
		return m.eventsOf(m.eng.RemoveClient(id), c)
	}
	return m.eventsOf(m.eng.SetClient(env), c)
}

// setRecord applies a change of the records bucket (r nil: deleted).
func (m *model) setRecord(ctx context.Context, id string, r *record, c cause) {
	m.mu.Lock()
	if r == nil {
		delete(m.recs, id)
	} else {
		m.recs[id] = recordPart{name: r.Name, approved: r.Status == contracts.ClientApproved, os: r.OS, arch: r.Arch}
	}
	q := m.take(m.clientChanged(id, c))
	m.mu.Unlock()
	m.send(ctx, q)
}

// setInventory applies a change of the inventory bucket (inv nil: deleted).
func (m *model) setInventory(ctx context.Context, id string, inv *storedInventory, c cause) {
	var p *envPart
	if inv != nil {
		p = inventoryEnv(&inv.Inventory) // outside the lock: it allocates
	}
	m.mu.Lock()
	if p == nil {
		delete(m.invs, id)
	} else {
		m.invs[id] = p
	}
	q := m.take(m.clientChanged(id, c))
	m.mu.Unlock()
	m.send(ctx, q)
}

// setDefinition applies a change of the collections bucket (d nil: deleted).
func (m *model) setDefinition(ctx context.Context, id string, d *collectionRecord, rev uint64, c cause) {
	m.mu.Lock()
	var deltas []collections.Delta
	old, had := m.defs[id]
	if d == nil {
		delete(m.defs, id)
		if m.loaded {
			deltas = m.eng.Delete(id)
		}
	} else {
		m.defs[id] = defEntry{rec: *d, rev: rev}
		if m.loaded {
			deltas = m.eng.Put(d.definition())
		}
	}
	// A deleted collection's last members are named with its old name.
	evs := m.eventsOf(deltas, c)
	if had && d == nil {
		for _, e := range evs {
			if e.ev.Collection.ID == id {
				e.ev.Collection.Name = old.rec.Name
			}
		}
	}
	if rev > m.defsRev {
		m.defsRev = rev
		close(m.defsTick)
		m.defsTick = make(chan struct{})
	}
	q := m.take(evs)
	m.mu.Unlock()
	m.send(ctx, q)
}

// build loads everything gathered so far into the engine; from then on
// every change goes to it.
func (m *model) build() {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make(map[string]bool, len(m.recs)+len(m.invs))
	for id := range m.recs {
		ids[id] = true
	}
	for id := range m.invs {
		ids[id] = true
	}
	envs := make([]collections.Env, 0, len(ids))
	for id := range ids {
		env, _ := m.env(id)
		envs = append(envs, env)
	}
	defs := make([]collections.Definition, 0, len(m.defs))
	for _, d := range m.defs {
		defs = append(defs, d.rec.definition())
	}
	m.eng.Load(envs, defs)
	m.loaded = true
}

// waitDefs waits until the model has applied revision rev of the
// collections bucket, so that an operator reads their own writes.
func (m *model) waitDefs(ctx context.Context, rev uint64) error {
	for {
		m.mu.RLock()
		done, tick := m.defsRev >= rev, m.defsTick
		m.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
		}
	}
}

// maxEventIDs bounds the client IDs of one event (a definition change can
// move thousands of clients; a message must stay well under 1 MiB).
const maxEventIDs = 1000

// eventsOf turns deltas into events. Called with mu held (for names).
func (m *model) eventsOf(deltas []collections.Delta, c cause) []*pendingEvent {
	var out []*pendingEvent
	for _, d := range deltas {
		name := contracts.AllSystemsName
		if d.Collection != contracts.AllSystemsID {
			name = m.defs[d.Collection].rec.Name
		}
		added, removed := d.Added, d.Removed
		for part := 0; len(added)+len(removed) > 0; part++ {
			a := added[:min(len(added), maxEventIDs)]
			r := removed[:min(len(removed), maxEventIDs-len(a))]
			added, removed = added[len(a):], removed[len(r):]
			ev := contracts.MembershipChanged{
				Header:     contracts.NewHeader(contracts.TypeMembershipChanged),
				Collection: contracts.Named{ID: d.Collection, Name: name},
				Added:      a,
				Removed:    r,
				Cause:      c.kind,
			}
			out = append(out, &pendingEvent{msgID: eventID(c, d.Collection, part, a, r), ev: ev})
		}
	}
	return out
}

// eventID is the Nats-Msg-Id of an event: the same on every instance that
// evaluates the same change to the same result.
func eventID(c cause, coll string, part int, added, removed []string) string {
	h := sha256.New()
	for _, s := range []string{c.bucket, strconv.FormatUint(c.rev, 10), coll, strconv.Itoa(part), strings.Join(added, ","), strings.Join(removed, ",")} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "membership-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// ticketed is a change's events with their place in the queue.
type ticketed struct {
	evs    []*pendingEvent
	ticket uint64
}

// take gives evs their place in the queue: after every change applied
// before. Called with mu held.
func (m *model) take(evs []*pendingEvent) ticketed {
	if len(evs) == 0 {
		return ticketed{}
	}
	t := ticketed{evs: evs, ticket: m.nextTicket}
	m.nextTicket++
	return t
}

// send queues q's events for the publisher at their turn, in order,
// waiting while the queue is full. Without mu: the model goes on applying
// changes (and answering) while the publisher is behind.
func (m *model) send(ctx context.Context, q ticketed) {
	if len(q.evs) == 0 {
		return
	}
	m.turnMu.Lock()
	for m.turn != q.ticket {
		m.turnCond.Wait()
	}
	m.turnMu.Unlock()
	defer func() {
		m.turnMu.Lock()
		m.turn++
		m.turnCond.Broadcast()
		m.turnMu.Unlock()
	}()
	for _, e := range q.evs {
		select {
		case m.events <- e:
		case <-ctx.Done():
			return
		}
	}
}
