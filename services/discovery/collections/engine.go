// Package collections evaluates collection membership: which clients are
// in which collection, kept current one change at a time.
//
// A collection's members are
//
//	limit ∩ (query matches ∪ include ∪ direct) − exclude
//
// where the limit, include and exclude rules name other collections. All
// Systems, built in, holds every approved client and limits every other
// collection (directly or through its limit), so only approved clients are
// ever members. The rules make a dependency graph that must stay acyclic.
//
// The Engine keeps every membership in memory as a bitset over dense client
// indices and updates it incrementally:
//
//   - A client change (SetClient, RemoveClient) re-evaluates that one
//     client, and only against the collections that can change: those whose
//     queries read a field that changed (each query's fields are found in
//     its syntax tree when it is compiled), then, in topological order, the
//     dependants of every collection whose membership of the client changed.
//   - A definition change (Put, Delete) re-evaluates that collection (its
//     queries only when they changed, and only over the members of its
//     limit) and then its dependants, with whole-bitset operations.
//
// A collection's query bits (q) are kept for the members of its limit
// only: a client entering the limit is evaluated then. A collection in
// error (see Info) is not kept up to date; its queries are evaluated
// again over its limit when the error goes.
//
// Both return the membership changes (Deltas) for the caller to publish.
// The package knows nothing of NATS; an Engine is not safe for concurrent
// use (the discovery service guards it with a lock).
package collections

import (
	"fmt"
	"maps"
	"math/bits"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/expr-lang/expr/vm"
	"github.com/stewardhq/steward/contracts"
)

// Definition is a collection's rules, with references as IDs.
type Definition struct {
	ID      string
	Name    string
	Limit   string // a collection ID; "" is All Systems
	Queries []string
	Include []string // collection IDs
	Exclude []string // collection IDs
	Direct  []string // client IDs
}

// limitID is the ID of the limiting collection of d.
func (d *Definition) limitID() string {
	if d.Limit == "" {
		return contracts.AllSystemsID
	}
	return d.Limit
}

// Delta is a change of one collection's members: client IDs, sorted.
type Delta struct {
	Collection string
	Added      []string
	Removed    []string
}

// coll is one collection and its evaluation.
type coll struct {
	def        Definition
	builtIn    bool
	queries    []*Query
	fields     fieldSet // read by the queries
	compileErr error    // a stored query that does not compile (any more)
	direct     map[string]bool

	// Set by link.
	limit      *coll
	include    []*coll
	exclude    []*coll
	dependents []*coll // collections whose rules name this one, once each
	pos        int     // in Engine.order
	err        error   // why it has no members: compileErr, a missing reference, a cycle

	directBits bitset // direct members that are known clients
	q          bitset // members of the limit the queries match (when err is nil)
	members    bitset
}

// Engine holds clients, collections and memberships.
type Engine struct {
	idx      map[string]int32 // client ID -> index
	ids      []string         // index -> client ID ("" when free)
	envs     []*Env           // index -> env (nil when free)
	free     []int32
	colls    map[string]*coll
	all      *coll
	order    []*coll // topological: every collection after those it names; broken ones last
	byField  [numFields][]*coll
	directOf map[string][]*coll // client ID -> collections naming it a direct member
	mark     []bool             // by position in order: to re-evaluate
	moved    []bool             // by position in order: its membership of the client changed (propagate)
	vm       vm.VM
	onEval   func(id string) // tests: called for each evaluation of a collection's queries for a client
}

// New returns an engine with All Systems and no clients.
func New() *Engine {
	e := &Engine{}
	e.reset()
	return e
}

func (e *Engine) reset() {
	e.idx = map[string]int32{}
	e.ids, e.envs, e.free = nil, nil, nil
	e.all = &coll{def: Definition{ID: contracts.AllSystemsID, Name: contracts.AllSystemsName}, builtIn: true}
	e.colls = map[string]*coll{contracts.AllSystemsID: e.all}
	e.directOf = map[string][]*coll{}
	e.link()
}

// Load replaces everything with envs and defs and evaluates every
// collection, spreading the queries over the CPUs. It returns no deltas:
// there is no previous state to compare with. Definitions that cannot be
// evaluated are kept with an error, as Put does.
func (e *Engine) Load(envs []Env, defs []Definition) {
	e.reset()
	for _, env := range envs {
		env.long, env.many, env.large = sizeFields(&env, allFields)
		e.addClient(&env)
	}
	for _, d := range defs {
		if d.ID == contracts.AllSystemsID {
			continue
		}
		c := e.newColl(d)
		e.colls[d.ID] = c
		e.indexDirect(c)
	}
	e.link()
	e.build(runtime.GOMAXPROCS(0))
}

// build evaluates every collection with up to workers goroutines, each
// once the collections it names are built (a collection's queries are
// evaluated over its limit's members).
func (e *Engine) build(workers int) {
	waiting := make([]int, len(e.order)) // by position: collections named not built yet
	for _, r := range e.order {
		for _, d := range r.dependents {
			waiting[d.pos]++
		}
	}
	ready := make(chan *coll, len(e.order))
	for p, c := range e.order {
		if c.err != nil || waiting[p] == 0 { // in error: builds to nothing
			ready <- c
		}
	}
	var mu sync.Mutex
	left := len(e.order)
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Go(func() {
			var m vm.VM
			for c := range ready {
				e.evalQueriesOf(c, &m)
				c.members = e.combine(c)
				mu.Lock()
				for _, d := range c.dependents {
					if waiting[d.pos]--; waiting[d.pos] == 0 && d.err == nil {
						ready <- d
					}
				}
				if left--; left == 0 {
					close(ready)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// RecomputeAll re-evaluates every query (over the members of its
// collection's limit) and every collection from scratch, in one
// goroutine: the brute force the incremental updates are checked and
// measured against. It returns the
// differences from the memberships kept incrementally (none, unless there
// is a bug).
func (e *Engine) RecomputeAll() []Delta {
	var deltas []Delta
	for _, c := range e.order {
		e.evalQueries([]*coll{c}, 1)
		if d, changed := e.replaceMembers(c, e.combine(c)); changed {
			deltas = append(deltas, d)
		}
	}
	return deltas
}

// addClient gives env an index; it must not have one.
func (e *Engine) addClient(env *Env) int32 {
	var x int32
	if n := len(e.free); n > 0 {
		x, e.free = e.free[n-1], e.free[:n-1]
	} else {
		x = int32(len(e.ids))
		e.ids = append(e.ids, "")
		e.envs = append(e.envs, nil)
	}
	e.idx[env.ID] = x
	e.ids[x] = env.ID
	e.envs[x] = env
	for _, c := range e.directOf[env.ID] {
		c.directBits.set(x, true)
	}
	return x
}

// SetClient adds or replaces the client env.ID and returns the membership
// changes. The engine keeps env's slices and maps: do not change them.
func (e *Engine) SetClient(env Env) []Delta {
	x, ok := e.idx[env.ID]
	if !ok {
		env.long, env.many, env.large = sizeFields(&env, allFields)
		x = e.addClient(&env)
		if !env.Approved {
			return nil // in no collection, as before
		}
		return e.propagate(x, allFields, true)
	}
	old := e.envs[x]
	changed := changedFields(old, &env)
	long, many, large := sizeFields(&env, changed)
	env.long, env.many, env.large = old.long&^changed|long, old.many&^changed|many, old.large&^changed|large
	e.envs[x] = &env
	switch {
	case old.Approved != env.Approved:
		return e.propagate(x, allFields, true)
	case !env.Approved:
		return nil // in no collection, before and after; queries are not evaluated
	case changed == 0:
		return nil
	}
	return e.propagate(x, changed, false)
}

// RemoveClient forgets a client and returns the membership changes.
func (e *Engine) RemoveClient(id string) []Delta {
	x, ok := e.idx[id]
	if !ok {
		return nil
	}
	old := e.envs[x]
	e.envs[x] = nil
	var deltas []Delta
	if old.Approved {
		deltas = e.propagate(x, allFields, true)
	}
	for _, c := range e.directOf[id] {
		c.directBits.set(x, false)
	}
	delete(e.idx, id)
	e.ids[x] = ""
	e.free = append(e.free, x)
	return deltas
}

// Env returns the client's env.
func (e *Engine) Env(id string) (Env, bool) {
	x, ok := e.idx[id]
	if !ok {
		return Env{}, false
	}
	return *e.envs[x], true
}

// propagate re-evaluates client x after the fields in changed changed (and
// its approval, when approval is set): first the collections whose queries
// read a changed field, then, in topological order, the dependants of every
// collection whose membership of x changed (evaluating their queries when x
// entered their limit). Nothing else is looked at.
func (e *Engine) propagate(x int32, changed fieldSet, approval bool) []Delta {
	env := e.envs[x] // nil when the client is being removed
	lo := len(e.order)
	mark := func(c *coll) {
		if !e.mark[c.pos] {
			e.mark[c.pos] = true
			lo = min(lo, c.pos)
		}
	}
	if approval {
		mark(e.all)
	}
	for f := range numFields {
		if changed.has(f) {
			for _, c := range e.byField[f] {
				mark(c)
			}
		}
	}
	var deltas []Delta
	var moved []int
	defer func() {
		for _, p := range moved {
			e.moved[p] = false
		}
	}()
	for p := lo; p < len(e.order); p++ {
		if !e.mark[p] {
			continue
		}
		e.mark[p] = false
		c := e.order[p]
		if c.err != nil {
			continue // evaluated again when the error goes
		}
		if len(c.queries) > 0 {
			switch {
			case !c.limit.members.has(x):
				c.q.set(x, false)
			case c.fields&changed != 0 || e.moved[c.limit.pos]:
				if e.onEval != nil {
					e.onEval(c.def.ID)
				}
				c.q.set(x, c.match(&e.vm, env))
			}
		}
		in := e.memberOf(c, x, env)
		if in == c.members.has(x) {
			continue
		}
		c.members.set(x, in)
		e.moved[p] = true
		moved = append(moved, p)
		d := Delta{Collection: c.def.ID}
		if in {
			d.Added = []string{e.ids[x]}
		} else {
			d.Removed = []string{e.ids[x]}
		}
		deltas = append(deltas, d)
		for _, dep := range c.dependents {
			mark(dep) // always after p: order is topological
		}
	}
	return deltas
}

// match reports whether any query of c matches env.
func (c *coll) match(m *vm.VM, env *Env) bool {
	for _, q := range c.queries {
		if q.match(m, env) {
			return true
		}
	}
	return false
}

// memberOf evaluates the membership of client x in c from c's query bit
// and the memberships of the collections c names.
func (e *Engine) memberOf(c *coll, x int32, env *Env) bool {
	switch {
	case c.err != nil:
		return false
	case c.builtIn:
		return env != nil && env.Approved
	case !c.limit.members.has(x):
		return false
	}
	in := c.q.has(x) || c.directBits.has(x)
	for _, inc := range c.include {
		if in {
			break
		}
		in = inc.members.has(x)
	}
	if !in {
		return false
	}
	for _, ex := range c.exclude {
		if ex.members.has(x) {
			return false
		}
	}
	return true
}

// evalQueries evaluates the queries of cs over the members of their
// limits into their q bitsets, with up to workers goroutines (one
// collection each). The limits' members must be up to date.
func (e *Engine) evalQueries(cs []*coll, workers int) {
	one := e.evalQueriesOf
	if workers <= 1 || len(cs) < 2 {
		for _, c := range cs {
			one(c, &e.vm)
		}
		return
	}
	work := make(chan *coll)
	var wg sync.WaitGroup
	for range min(workers, len(cs)) {
		wg.Go(func() {
			var m vm.VM
			for c := range work {
				one(c, &m)
			}
		})
	}
	for _, c := range cs {
		work <- c
	}
	close(work)
	wg.Wait()
}

// evalQueriesOf evaluates the queries of c over the members of its limit
// into its q bitset, with the machine m.
func (e *Engine) evalQueriesOf(c *coll, m *vm.VM) {
	c.q = nil
	if c.err != nil || len(c.queries) == 0 {
		return
	}
	q := make(bitset, len(c.limit.members))
	c.limit.members.each(func(x int32) {
		if e.onEval != nil {
			e.onEval(c.def.ID) // tests: not with several workers
		}
		if env := e.envs[x]; env != nil && env.Approved && c.match(m, env) {
			q.set(x, true)
		}
	})
	c.q = q
}

// syncQueries keeps c's q bits for the members of its limit after they
// changed from old: evaluates the queries for the clients that entered it,
// clears the bits of those that left.
func (e *Engine) syncQueries(c *coll, old bitset) {
	now := c.limit.members
	for w := range max(len(old), len(now)) {
		o, n := old.word(w), now.word(w)
		for diff := o ^ n; diff != 0; diff &= diff - 1 {
			bit := diff & -diff
			x := int32(w<<6) + int32(bits.TrailingZeros64(bit))
			if n&bit != 0 && e.onEval != nil {
				e.onEval(c.def.ID)
			}
			c.q.set(x, n&bit != 0 && c.match(&e.vm, e.envs[x]))
		}
	}
}

// combine computes c's members from its q bits, its direct members and the
// members of the collections it names.
func (e *Engine) combine(c *coll) bitset {
	switch {
	case c.err != nil:
		return nil
	case c.builtIn:
		var b bitset
		for x, env := range e.envs {
			if env != nil && env.Approved {
				b.set(int32(x), true)
			}
		}
		return b
	}
	out := make(bitset, len(c.limit.members))
	for w := range out {
		in := c.q.word(w) | c.directBits.word(w)
		for _, inc := range c.include {
			in |= inc.members.word(w)
		}
		v := c.limit.members[w] & in
		for _, ex := range c.exclude {
			v &^= ex.members.word(w)
		}
		out[w] = v
	}
	return out
}

// replaceMembers sets c's members to next and returns the change.
func (e *Engine) replaceMembers(c *coll, next bitset) (Delta, bool) {
	d := Delta{Collection: c.def.ID}
	for w := range max(len(c.members), len(next)) {
		o, n := c.members.word(w), next.word(w)
		for diff := o ^ n; diff != 0; diff &= diff - 1 {
			bit := diff & -diff
			x := int32(w<<6) + int32(bits.TrailingZeros64(bit))
			if n&bit != 0 {
				d.Added = append(d.Added, e.ids[x])
			} else {
				d.Removed = append(d.Removed, e.ids[x])
			}
		}
	}
	c.members = next
	slices.Sort(d.Added)
	slices.Sort(d.Removed)
	return d, len(d.Added)+len(d.Removed) > 0
}

// Put adds or replaces a collection and returns the membership changes of
// it and its dependants. It accepts any definition, as stored: one that
// cannot be evaluated (a query that does not compile, a missing reference,
// a cycle) is kept with an error (Info) and has no members. Use Check first
// to refuse such a definition.
func (e *Engine) Put(def Definition) []Delta {
	if def.ID == contracts.AllSystemsID || def.ID == "" {
		return nil
	}
	old := e.colls[def.ID]
	c := e.newColl(def)
	evalQ := true
	if old != nil {
		c.members = old.members
		// The query bits are kept up to date only while the collection
		// has no error, over its limit.
		if old.err == nil && c.compileErr == nil && slices.Equal(old.def.Queries, def.Queries) && old.def.limitID() == def.limitID() {
			c.q, evalQ = old.q, false
		}
		e.unindexDirect(old)
	}
	e.colls[def.ID] = c
	e.indexDirect(c)
	return e.relink(c, evalQ)
}

// Delete removes a collection and returns the membership changes: its
// members removed, and the changes of collections that named it (they now
// have an error: Check refuses a deletion that leaves them so, see
// Dependants).
func (e *Engine) Delete(id string) []Delta {
	c := e.colls[id]
	if c == nil || c.builtIn {
		return nil
	}
	e.unindexDirect(c)
	delete(e.colls, id)
	var deltas []Delta
	if d, changed := e.replaceMembers(c, nil); changed {
		deltas = append(deltas, d)
	}
	return append(deltas, e.relink(nil, false)...)
}

// relink rebuilds the graph after a definition change and re-evaluates
// the changed collection (its queries when evalQ), every collection whose
// error changed (its queries when the error went), and their dependants
// (their queries for the clients that entered their limit), in
// topological order.
func (e *Engine) relink(changed *coll, evalQ bool) []Delta {
	before := make(map[*coll]string, len(e.colls))
	for _, c := range e.colls {
		before[c] = errText(c.err)
	}
	e.link()
	lo := len(e.order)
	mark := func(c *coll) {
		if !e.mark[c.pos] {
			e.mark[c.pos] = true
			lo = min(lo, c.pos)
		}
	}
	if changed != nil {
		mark(changed)
	}
	for _, c := range e.order {
		if b, ok := before[c]; ok && b != errText(c.err) {
			mark(c)
		}
	}
	var deltas []Delta
	prev := map[*coll]bitset{} // members before, of the collections whose members changed
	for p := lo; p < len(e.order); p++ {
		if !e.mark[p] {
			continue
		}
		e.mark[p] = false
		c := e.order[p]
		if c.err == nil && len(c.queries) > 0 {
			if b, ok := before[c]; c == changed && evalQ || ok && b != "" {
				e.evalQueries([]*coll{c}, runtime.GOMAXPROCS(0))
			} else if old, ok := prev[c.limit]; ok {
				e.syncQueries(c, old)
			}
		}
		old := c.members
		d, ok := e.replaceMembers(c, e.combine(c))
		if !ok {
			continue
		}
		prev[c] = old
		deltas = append(deltas, d)
		for _, dep := range c.dependents {
			mark(dep)
		}
	}
	return deltas
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// newColl compiles def into a collection without links.
func (e *Engine) newColl(def Definition) *coll {
	def = Definition{
		ID: def.ID, Name: def.Name, Limit: def.Limit,
		Queries: slices.Clone(def.Queries),
		Include: slices.Clone(def.Include), Exclude: slices.Clone(def.Exclude),
		Direct: slices.Clone(def.Direct),
	}
	c := &coll{def: def, direct: make(map[string]bool, len(def.Direct))}
	for i, src := range def.Queries {
		q, err := Compile(src)
		if err != nil {
			c.compileErr = fmt.Errorf("query %d: %w", i+1, err)
			c.queries, c.fields = nil, 0
			break
		}
		c.queries = append(c.queries, q)
		c.fields |= q.fields
	}
	if len(c.queries) > 0 && c.fields == 0 {
		// A query that reads no field (true, 1 > 0) still needs evaluating
		// for every new client: let every change count.
		c.fields = allFields
	}
	for _, id := range def.Direct {
		c.direct[id] = true
	}
	return c
}

// indexDirect records c's direct members in directOf and its directBits.
func (e *Engine) indexDirect(c *coll) {
	c.directBits = nil
	for id := range c.direct {
		e.directOf[id] = append(e.directOf[id], c)
		if x, ok := e.idx[id]; ok {
			c.directBits.set(x, true)
		}
	}
}

func (e *Engine) unindexDirect(c *coll) {
	for id := range c.direct {
		l := slices.DeleteFunc(e.directOf[id], func(o *coll) bool { return o == c })
		if len(l) == 0 {
			delete(e.directOf, id)
		} else {
			e.directOf[id] = l
		}
	}
}

// link resolves every collection's references, finds each one's errors,
// and orders the collections topologically (Kahn's algorithm, by ID among
// equals, so every instance orders alike). Collections left over are in a
// cycle or depend on one: they get an error.
func (e *Engine) link() {
	ids := slices.Sorted(maps.Keys(e.colls))
	for _, c := range e.colls {
		c.limit, c.include, c.exclude, c.dependents = nil, nil, nil, nil
		c.err = c.compileErr
	}
	indeg := make(map[*coll]int, len(e.colls))
	for _, id := range ids {
		c := e.colls[id]
		if c.builtIn {
			continue
		}
		resolve := func(what, ref string) *coll {
			r := e.colls[ref]
			if r == nil && c.err == nil {
				c.err = fmt.Errorf("%s collection %s does not exist", what, ref)
			}
			return r
		}
		c.limit = resolve("limiting", c.def.limitID())
		for _, ref := range c.def.Include {
			if r := resolve("included", ref); r != nil {
				c.include = append(c.include, r)
			}
		}
		for _, ref := range c.def.Exclude {
			if r := resolve("excluded", ref); r != nil {
				c.exclude = append(c.exclude, r)
			}
		}
		seen := map[*coll]bool{}
		for _, r := range append(append([]*coll{c.limit}, c.include...), c.exclude...) {
			if r != nil && !seen[r] {
				seen[r] = true
				r.dependents = append(r.dependents, c)
				indeg[c]++
			}
		}
		if c.limit == nil {
			c.limit = &coll{} // no members; c has an error anyway
		}
	}
	e.order = e.order[:0]
	for _, id := range ids {
		if c := e.colls[id]; indeg[c] == 0 {
			e.order = append(e.order, c)
		}
	}
	for i := 0; i < len(e.order); i++ {
		for _, d := range e.order[i].dependents {
			if indeg[d]--; indeg[d] == 0 {
				e.order = append(e.order, d)
			}
		}
	}
	if len(e.order) < len(e.colls) {
		for _, id := range ids {
			c := e.colls[id]
			if indeg[c] > 0 {
				if c.err == nil {
					c.err = fmt.Errorf("its rules form a cycle with other collections, or name one that is in a cycle")
				}
				e.order = append(e.order, c)
			}
		}
	}
	for f := range e.byField {
		e.byField[f] = e.byField[f][:0]
	}
	for i, c := range e.order {
		c.pos = i
		if c.err != nil {
			continue
		}
		for f := range numFields {
			if c.fields.has(f) {
				e.byField[f] = append(e.byField[f], c)
			}
		}
	}
	e.mark = make([]bool, len(e.order))
	e.moved = make([]bool, len(e.order))
}

// Check reports why def must not be stored: All Systems is built in; a
// query does not compile or would cost a typical client more than Budget
// (a *QueryError, wrapped); a reference is to a collection that does not
// exist or to def itself; a collection is both included and excluded; or
// the rules would make a cycle (the error names it). def.ID may be new.
func (e *Engine) Check(def Definition) error {
	if def.ID == contracts.AllSystemsID {
		return fmt.Errorf("%s is built in: it cannot be changed", contracts.AllSystemsName)
	}
	for i, src := range def.Queries {
		q, err := Compile(src)
		if err == nil {
			if _, costly := q.Typical(); costly != nil {
				err = costly
			}
		}
		if err != nil {
			return fmt.Errorf("query %d: %w", i+1, err)
		}
	}
	if def.ID != "" && def.limitID() == def.ID {
		return fmt.Errorf("a collection cannot be limited by itself")
	}
	check := func(what, verb string, refs []string) error {
		for _, ref := range refs {
			if ref == def.ID && def.ID != "" {
				return fmt.Errorf("a collection cannot %s itself", verb)
			}
			if e.colls[ref] == nil {
				return fmt.Errorf("%s collection %s does not exist", what, ref)
			}
		}
		return nil
	}
	if err := check("limiting", "be limited by", []string{def.limitID()}); err != nil {
		return err
	}
	if err := check("included", "include", def.Include); err != nil {
		return err
	}
	if err := check("excluded", "exclude", def.Exclude); err != nil {
		return err
	}
	for _, id := range def.Include {
		if slices.Contains(def.Exclude, id) {
			return fmt.Errorf("collection %s is both included and excluded", e.name(id))
		}
	}
	if def.ID == "" {
		return nil
	}
	if path := e.pathTo(def, def.ID); path != nil {
		return fmt.Errorf("the rules would make a cycle: %s %s", quote(def.Name), strings.Join(path, ", which "))
	}
	return nil
}

// pathTo looks for a chain of references from def's rules to target and
// returns it as names with the rule kinds, or nil.
func (e *Engine) pathTo(def Definition, target string) []string {
	type edge struct{ kind, to string }
	edges := func(d *Definition) []edge {
		out := []edge{{"is limited by", d.limitID()}}
		for _, id := range d.Include {
			out = append(out, edge{"includes", id})
		}
		for _, id := range d.Exclude {
			out = append(out, edge{"excludes", id})
		}
		return out
	}
	seen := map[string]bool{}
	var walk func(d *Definition, path []string) []string
	walk = func(d *Definition, path []string) []string {
		for _, ed := range edges(d) {
			p := append(slices.Clone(path), ed.kind+" "+e.nameOr(ed.to, def))
			if ed.to == target {
				return p
			}
			if seen[ed.to] {
				continue
			}
			seen[ed.to] = true
			if c := e.colls[ed.to]; c != nil && !c.builtIn {
				if found := walk(&c.def, p); found != nil {
					return found
				}
			}
		}
		return nil
	}
	return walk(&def, nil)
}

func (e *Engine) nameOr(id string, def Definition) string {
	if id == def.ID {
		return quote(def.Name)
	}
	return quote(e.name(id))
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func (e *Engine) name(id string) string {
	if c := e.colls[id]; c != nil && c.def.Name != "" {
		return c.def.Name
	}
	return id
}

// Dependants returns the IDs of the collections whose rules name id
// (limit, include or exclude), sorted.
func (e *Engine) Dependants(id string) []string {
	c := e.colls[id]
	if c == nil {
		return nil
	}
	out := make([]string, 0, len(c.dependents))
	for _, d := range c.dependents {
		out = append(out, d.def.ID)
	}
	slices.Sort(out)
	return out
}

// Members returns the client IDs of collection id, sorted, and whether it
// exists.
func (e *Engine) Members(id string) ([]string, bool) {
	c := e.colls[id]
	if c == nil {
		return nil, false
	}
	return e.idsOf(c.members), true
}

func (e *Engine) idsOf(b bitset) []string {
	out := make([]string, 0, b.count())
	b.each(func(x int32) { out = append(out, e.ids[x]) })
	slices.Sort(out)
	return out
}

// IsMember reports whether client is a member of collection id.
func (e *Engine) IsMember(id, client string) bool {
	c, x, ok := e.colls[id], int32(0), false
	if c != nil {
		x, ok = e.idx[client]
	}
	return ok && c.members.has(x)
}

// Info is a collection's evaluation.
type Info struct {
	Count int   // members
	Err   error // why it has no members (see Put)
}

// Info returns collection id's evaluation and whether it exists.
func (e *Engine) Info(id string) (Info, bool) {
	c := e.colls[id]
	if c == nil {
		return Info{}, false
	}
	return Info{Count: c.members.count(), Err: c.err}, true
}

// Preview evaluates def (Check first) without storing it and returns the
// client IDs it would hold, sorted. It changes nothing, so a caller may
// run it under a read lock.
func (e *Engine) Preview(def Definition) ([]string, error) {
	def.ID = ""
	if err := e.Check(def); err != nil {
		return nil, err
	}
	c := e.newColl(def)
	c.limit = e.colls[def.limitID()]
	for _, id := range def.Include {
		c.include = append(c.include, e.colls[id])
	}
	for _, id := range def.Exclude {
		c.exclude = append(c.exclude, e.colls[id])
	}
	for id := range c.direct {
		if x, ok := e.idx[id]; ok {
			c.directBits.set(x, true)
		}
	}
	var m vm.VM
	if len(c.queries) > 0 {
		c.limit.members.each(func(x int32) {
			if env := e.envs[x]; env != nil && env.Approved && c.match(&m, env) {
				c.q.set(x, true)
			}
		})
	}
	return e.idsOf(e.combine(c)), nil
}

// Collections returns the IDs of every collection, All Systems included,
// sorted.
func (e *Engine) Collections() []string {
	return slices.Sorted(maps.Keys(e.colls))
}
