package collections

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/expr-lang/expr/vm"
	"github.com/stewardhq/steward/contracts"
)

const all = contracts.AllSystemsID

func web(id, name string) Env {
	return Env{
		ID: id, Name: name, Site: "LAB", Approved: true,
		OS:       OS{Name: "Debian GNU/Linux", Version: "12", Family: "linux", Kernel: "6.1.0"},
		Arch:     "amd64",
		CPU:      CPU{Model: "EPYC", Cores: 4},
		Memory:   Memory{Total: 8 << 30},
		Disks:    []*Disk{{Device: "/dev/sda1", Mount: "/", FSType: "ext4", Total: 100 << 30, Free: 50 << 30}},
		IPs:      []string{"10.1.2.3", "fe80::1"},
		MACs:     []string{"52:54:00:12:34:56"},
		Software: []*Software{{Name: "openssl", Version: "3.0.11", Source: "dpkg"}, {Name: "nginx", Version: "1.22.1", Source: "dpkg"}},
		Users:    []string{"alice"},
		Admins:   []string{"root"},
		Labels:   map[string]string{"role": "web"},
	}
}

func TestCompile(t *testing.T) {
	good := []string{
		`os.family == "linux" && name startsWith "web-"`,
		`any(software, .name == "openssl" && versionCompare(.version, "3.0.13") < 0)`,
		`any(ips, inSubnet(#, "10.1.0.0/16"))`,
		`"root" in admins && labels.role == "web"`,
		`cpu.cores >= 4 and memory.total > 4 * 1024 * 1024 * 1024`,
		`any(disks, .mount == "/" && .free < .total / 10)`,
		`site == "LAB" || id == "c1" || arch == "arm64" || "52:54:00:12:34:56" in macs || "bob" in users`,
		`os.kernel matches "^6\\."`,
	}
	for _, q := range good {
		if _, err := Compile(q); err != nil {
			t.Errorf("Compile(%q): got %v, want nil", q, err)
		}
	}
	bad := []struct {
		q            string
		line, column int
		msg          string
	}{
		{`os.family == "linux" && nme startsWith "web-"`, 1, 25, "unknown name nme"},
		{`os.famly == "linux"`, 1, 4, "has no field famly"},
		{"name == \"a\" &&\n  cpu.speed > 3", 2, 7, "has no field speed"},
		{`name ==`, 1, 7, "unexpected token"},
		{`cpu.cores + 1`, 1, 1, "expected bool"},
		{`now() > date("2026-01-01")`, 1, 1, "unknown name now"},
		{`Approved`, 1, 1, "unknown name Approved"},
		{`inSubnet(ips, "10.0.0.0/8")`, 1, 10, "cannot use"},
	}
	for _, b := range bad {
		_, err := Compile(b.q)
		var qe *QueryError
		if !errors.As(err, &qe) {
			t.Errorf("Compile(%q): got %v, want a *QueryError", b.q, err)
			continue
		}
		if qe.Line != b.line || qe.Column != b.column || !strings.Contains(qe.Message, b.msg) {
			t.Errorf("Compile(%q): got %d:%d %q, want %d:%d containing %q", b.q, qe.Line, qe.Column, qe.Message, b.line, b.column, b.msg)
		}
		if !strings.HasPrefix(err.Error(), "line ") {
			t.Errorf("Compile(%q) error text %q: want it to start with the position", b.q, err)
		}
	}
}

func TestQueryFields(t *testing.T) {
	tests := []struct {
		q    string
		want fieldSet
	}{
		{`name startsWith "web-"`, 1 << fName},
		{`os.family == "linux" && any(software, .name == "x")`, 1<<fOS | 1<<fSoftware},
		{`let n = name; n == "x" && labels.a == "b"`, 1<<fName | 1<<fLabels},
		{`$env.name == "x"`, allFields},
		{`any(ips, inSubnet(#, "10.0.0.0/8")) || "x" in macs`, 1<<fIPs | 1<<fMACs},
	}
	for _, tt := range tests {
		q, err := Compile(tt.q)
		if err != nil {
			t.Fatalf("Compile(%q): %v", tt.q, err)
		}
		if q.fields != tt.want {
			t.Errorf("fields of %q: got %b, want %b", tt.q, q.fields, tt.want)
		}
	}
}

func TestMatchAndHelpers(t *testing.T) {
	env := web("c1", "web-01")
	tests := []struct {
		q    string
		want bool
	}{
		{`os.family == "linux" && name startsWith "web-"`, true},
		{`any(software, .name == "openssl" && versionCompare(.version, "3.0.13") < 0)`, true},
		{`any(software, .name == "openssl" && versionCompare(.version, "3.0.9") < 0)`, false},
		{`any(ips, inSubnet(#, "10.1.0.0/16"))`, true},
		{`any(ips, inSubnet(#, "10.2.0.0/16"))`, false},
		{`labels.role == "web" && labels.missing == ""`, true},
		{`ips[5] == "x"`, false}, // a run-time error does not match
		{`any(ips, inSubnet(#, "bogus"))`, false},
	}
	for _, tt := range tests {
		q, err := Compile(tt.q)
		if err != nil {
			t.Fatalf("Compile(%q): %v", tt.q, err)
		}
		if got := q.Match(&env); got != tt.want {
			t.Errorf("%q: got %v, want %v", tt.q, got, tt.want)
		}
	}
	for _, v := range []struct {
		a, b string
		want int
	}{
		{"3.0.11", "3.0.13", -1}, {"3.0.13", "3.0.13", 0}, {"10.0", "9.9", 1}, {"1.2", "1.2.1", -1},
		{"1:2.3-1ubuntu1", "1:2.3-1ubuntu2", -1}, {"1.0", "1.rc1", 1}, {"abc", "abd", -1},
	} {
		if got := compareVersions(v.a, v.b); got != v.want {
			t.Errorf("compareVersions(%q, %q): got %d, want %d", v.a, v.b, got, v.want)
		}
	}
}

// members is a test shorthand.
func members(t *testing.T, e *Engine, id string) []string {
	t.Helper()
	m, ok := e.Members(id)
	if !ok {
		t.Fatalf("collection %s does not exist", id)
	}
	return m
}

func wantMembers(t *testing.T, e *Engine, id string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got := members(t, e, id); !slices.Equal(got, want) {
		t.Errorf("members of %s: got %v, want %v", id, got, want)
	}
}

func TestMembershipRules(t *testing.T) {
	e := New()
	w1, w2, d1 := web("c1", "web-01"), web("c2", "web-02"), web("c3", "db-01")
	d1.Labels = map[string]string{"role": "db"}
	pending := web("c4", "web-04")
	pending.Approved = false
	for _, env := range []Env{w1, w2, d1, pending} {
		e.SetClient(env)
	}
	wantMembers(t, e, all, "c1", "c2", "c3")

	e.Put(Definition{ID: "linux-web", Name: "Linux web", Queries: []string{`os.family == "linux" && name startsWith "web-"`}})
	wantMembers(t, e, "linux-web", "c1", "c2")
	e.Put(Definition{ID: "servers", Name: "Servers", Queries: []string{`labels.role == "db"`, `name == "web-02"`}})
	wantMembers(t, e, "servers", "c2", "c3")
	// Pilot: direct members and includes, minus excludes.
	e.Put(Definition{ID: "pilot", Name: "Pilot", Direct: []string{"c3", "c4", "c9"}, Include: []string{"linux-web"}, Exclude: []string{"servers"}})
	wantMembers(t, e, "pilot", "c1") // c3 excluded, c4 pending, c9 unknown
	// Limited: only members of the limit.
	e.Put(Definition{ID: "limited", Name: "Limited", Limit: "servers", Queries: []string{`true`}})
	wantMembers(t, e, "limited", "c2", "c3")

	// c9 enrolls: a direct member of Pilot, but not approved yet.
	c9 := web("c9", "kiosk-09")
	c9.Approved = false
	if d := e.SetClient(c9); d != nil {
		t.Errorf("a pending client changed memberships: %v", d)
	}
	c9.Approved = true
	deltas := e.SetClient(c9)
	wantMembers(t, e, "pilot", "c1", "c9")
	wantMembers(t, e, "limited", "c2", "c3")
	if !hasDelta(deltas, "pilot", "c9", true) || !hasDelta(deltas, all, "c9", true) || len(deltas) != 2 {
		t.Errorf("deltas of c9's approval: got %v, want All Systems and Pilot added", deltas)
	}

	// Removing a client removes it everywhere.
	deltas = e.RemoveClient("c2")
	wantMembers(t, e, "linux-web", "c1")
	wantMembers(t, e, "servers", "c3")
	if len(deltas) != 4 { // all, linux-web, servers, limited
		t.Errorf("deltas of removing c2: got %v, want 4", deltas)
	}
	if e.RemoveClient("nope") != nil {
		t.Error("removing an unknown client changed something")
	}

	// Info and Dependants.
	if in, _ := e.Info("pilot"); in.Count != 2 || in.Err != nil {
		t.Errorf("Info(pilot): got %+v", in)
	}
	if got := e.Dependants("servers"); !slices.Equal(got, []string{"limited", "pilot"}) {
		t.Errorf("Dependants(servers): got %v", got)
	}
	if got := e.Dependants(all); !slices.Equal(got, []string{"linux-web", "pilot", "servers"}) { // limited names servers
		t.Errorf("Dependants(all): got %v", got)
	}

	// Changing a definition re-evaluates it and its dependants.
	deltas = e.Put(Definition{ID: "servers", Name: "Servers", Queries: []string{`labels.role == "web"`}})
	wantMembers(t, e, "servers", "c1", "c9")
	wantMembers(t, e, "pilot", "c3") // c1 and c9 are excluded now, c3 no longer
	wantMembers(t, e, "limited", "c1", "c9")
	if !hasDelta(deltas, "pilot", "c1", false) || !hasDelta(deltas, "pilot", "c3", true) || !hasDelta(deltas, "limited", "c3", false) {
		t.Errorf("deltas of the update: got %v", deltas)
	}

	// Deleting a collection that others name leaves them with an error
	// and no members (the service refuses it; the engine copes).
	e.Delete("servers")
	if in, _ := e.Info("limited"); in.Count != 0 || in.Err == nil || !strings.Contains(in.Err.Error(), "does not exist") {
		t.Errorf("Info(limited) after its limit was deleted: got %+v", in)
	}
	wantMembers(t, e, "pilot") // its exclude rule names a missing collection
	// Re-creating it heals them.
	e.Put(Definition{ID: "servers", Name: "Servers", Queries: []string{`labels.role == "db"`}})
	wantMembers(t, e, "limited", "c3")
	wantMembers(t, e, "pilot", "c1", "c9")

	if d := e.RecomputeAll(); d != nil {
		t.Errorf("brute force disagrees with the incremental state: %v", d)
	}
}

func hasDelta(deltas []Delta, coll, client string, added bool) bool {
	for _, d := range deltas {
		l := d.Removed
		if added {
			l = d.Added
		}
		if d.Collection == coll && slices.Contains(l, client) {
			return true
		}
	}
	return false
}

func TestOnlyAffectedCollectionsEvaluated(t *testing.T) {
	e := New()
	e.SetClient(web("c1", "web-01"))
	e.Put(Definition{ID: "names", Name: "Names", Queries: []string{`name startsWith "web-"`}})
	e.Put(Definition{ID: "ssl", Name: "SSL", Queries: []string{`any(software, .name == "openssl")`}})
	e.Put(Definition{ID: "no-ssl", Name: "No SSL", Include: []string{"names"}, Exclude: []string{"ssl"}})
	e.Put(Definition{ID: "lab", Name: "Lab", Queries: []string{`labels.role == "lab"`}})
	wantMembers(t, e, "no-ssl")

	// A software change evaluates "ssl" only, then its dependant "no-ssl".
	env := web("c1", "web-01")
	env.Software = []*Software{{Name: "nginx", Version: "1.22.1"}}
	evals := countEvals(e)
	deltas := e.SetClient(env)
	if got := evals(); !slices.Equal(got, []string{"ssl"}) {
		t.Errorf("queries evaluated after a software change: got %v, want [ssl]", got)
	}
	if len(deltas) != 2 || !hasDelta(deltas, "ssl", "c1", false) || !hasDelta(deltas, "no-ssl", "c1", true) {
		t.Errorf("deltas: got %v, want c1 out of ssl and into no-ssl", deltas)
	}

	// A heartbeat-like update that changes no field evaluates nothing.
	evals = countEvals(e)
	if d := e.SetClient(env); d != nil {
		t.Errorf("an unchanged client changed memberships: %v", d)
	}
	if got := evals(); len(got) != 0 {
		t.Errorf("queries evaluated for an unchanged client: %v", got)
	}
}

// countEvals records which collections' queries e evaluates from now on;
// the returned function stops recording and reports them, sorted.
func countEvals(e *Engine) func() []string {
	var got []string
	e.onEval = func(id string) { got = append(got, id) }
	return func() []string {
		e.onEval = nil
		slices.Sort(got)
		return got
	}
}

func TestCheck(t *testing.T) {
	e := New()
	e.Put(Definition{ID: "a", Name: "A", Queries: []string{`true`}})
	e.Put(Definition{ID: "b", Name: "B", Limit: "a", Queries: []string{`true`}})
	e.Put(Definition{ID: "c", Name: "C", Include: []string{"b"}})
	tests := []struct {
		name string
		def  Definition
		want string
	}{
		{"all systems", Definition{ID: all, Name: "All Systems"}, "built in"},
		{"bad query", Definition{ID: "d", Name: "D", Queries: []string{`true`, `nme == "x"`}}, "query 2: line 1, column 1: unknown name nme"},
		{"limited by itself", Definition{ID: "a", Name: "A", Limit: "a"}, "cannot be limited by itself"},
		{"includes itself", Definition{ID: "a", Name: "A", Include: []string{"a"}}, "cannot include itself"},
		{"excludes itself", Definition{ID: "a", Name: "A", Exclude: []string{"a"}}, "cannot exclude itself"},
		{"missing limit", Definition{ID: "d", Name: "D", Limit: "zz"}, "limiting collection zz does not exist"},
		{"missing include", Definition{ID: "d", Name: "D", Include: []string{"zz"}}, "included collection zz does not exist"},
		{"both", Definition{ID: "d", Name: "D", Include: []string{"b"}, Exclude: []string{"b"}}, `collection B is both included and excluded`},
		{"cycle through limit", Definition{ID: "a", Name: "A", Limit: "c"}, `the rules would make a cycle: "A" is limited by "C", which includes "B", which is limited by "A"`},
		{"cycle through exclude", Definition{ID: "a", Name: "A", Exclude: []string{"b"}}, `"A" excludes "B", which is limited by "A"`},
	}
	for _, tt := range tests {
		err := e.Check(tt.def)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
	for _, ok := range []Definition{
		{ID: "d", Name: "D", Limit: "c", Include: []string{"a"}, Exclude: []string{"b"}},
		{ID: "c", Name: "C", Include: []string{"b", "a"}},
		{Name: "preview", Queries: []string{`true`}},
	} {
		if err := e.Check(ok); err != nil {
			t.Errorf("Check(%+v): got %v, want nil", ok, err)
		}
	}
}

func TestCyclesFromStorage(t *testing.T) {
	// Two instances each accepted one half of a cycle: the engine keeps
	// both, with errors and no members, and heals when one is fixed.
	e := New()
	e.SetClient(web("c1", "web-01"))
	e.Put(Definition{ID: "a", Name: "A", Queries: []string{`true`}})
	e.Put(Definition{ID: "b", Name: "B", Include: []string{"a"}})
	e.Put(Definition{ID: "d", Name: "D", Include: []string{"b"}})
	wantMembers(t, e, "d", "c1")
	deltas := e.Put(Definition{ID: "a", Name: "A", Queries: []string{`true`}, Exclude: []string{"b"}})
	for _, id := range []string{"a", "b", "d"} {
		if in, _ := e.Info(id); in.Err == nil || in.Count != 0 {
			t.Errorf("%s in a cycle: got %+v, want an error and no members", id, in)
		}
	}
	if len(deltas) != 3 {
		t.Errorf("deltas: got %v, want c1 removed from a, b, d", deltas)
	}
	e.Put(Definition{ID: "a", Name: "A", Queries: []string{`true`}})
	wantMembers(t, e, "d", "c1")
	if in, _ := e.Info("d"); in.Err != nil {
		t.Errorf("d after the fix: %v", in.Err)
	}

	// A stored query that no longer compiles.
	e.Put(Definition{ID: "x", Name: "X", Queries: []string{`bogus ==`}})
	if in, _ := e.Info("x"); in.Err == nil || !strings.Contains(in.Err.Error(), "query 1") {
		t.Errorf("Info(x): got %+v, want the query's error", in)
	}
}

func TestPreview(t *testing.T) {
	e := New()
	e.SetClient(web("c1", "web-01"))
	e.SetClient(web("c2", "db-01"))
	e.Put(Definition{ID: "db", Name: "DB", Queries: []string{`name startsWith "db-"`}})
	got, err := e.Preview(Definition{Queries: []string{`os.family == "linux"`}, Exclude: []string{"db"}})
	if err != nil || !slices.Equal(got, []string{"c1"}) {
		t.Errorf("Preview: got %v, %v; want [c1]", got, err)
	}
	if _, err := e.Preview(Definition{Queries: []string{`os.famly == "linux"`}}); err == nil {
		t.Error("Preview of a bad query: got nil error")
	}
	if ids := e.Collections(); !slices.Equal(ids, []string{all, "db"}) {
		t.Errorf("Preview stored something: %v", ids)
	}
}

func TestLoadMatchesIncremental(t *testing.T) {
	envs := []Env{web("c1", "web-01"), web("c2", "db-01"), web("c3", "web-03")}
	envs[2].Approved = false
	defs := []Definition{
		{ID: "b", Name: "B", Limit: "a", Queries: []string{`true`}}, // names a, defined after
		{ID: "a", Name: "A", Queries: []string{`name startsWith "web-"`}},
		{ID: "c", Name: "C", Direct: []string{"c2"}, Include: []string{"b"}},
	}
	e := New()
	e.Load(envs, defs)
	wantMembers(t, e, "b", "c1")
	wantMembers(t, e, "c", "c1", "c2")
	if d := e.RecomputeAll(); d != nil {
		t.Errorf("RecomputeAll after Load: %v", d)
	}
	if env, ok := e.Env("c3"); !ok || env.Name != "web-03" {
		t.Errorf("Env(c3): got %+v, %v", env, ok)
	}
	if !e.IsMember("c", "c2") || e.IsMember("c", "c3") || e.IsMember("zz", "c1") {
		t.Error("IsMember disagrees with Members")
	}
}

// verify checks the whole incremental state of e against a recomputation
// that changes nothing: the direct member bits, the query bits of every
// collection without an error (the members of its limit its queries
// match, nothing else), and every membership.
func verify(t *testing.T, e *Engine) {
	t.Helper()
	var m vm.VM
	fresh := map[*coll]bitset{}
	equal := func(a, b bitset) bool {
		for w := range max(len(a), len(b)) {
			if a.word(w) != b.word(w) {
				return false
			}
		}
		return true
	}
	for _, c := range e.order {
		var direct bitset
		for id := range c.direct {
			if x, ok := e.idx[id]; ok {
				direct.set(x, true)
			}
		}
		if !equal(direct, c.directBits) {
			t.Fatalf("direct members of %s: got %v, want %v", c.def.ID, e.idsOf(c.directBits), e.idsOf(direct))
		}
		var members bitset
		switch {
		case c.err != nil:
		case c.builtIn:
			for x, env := range e.envs {
				if env != nil && env.Approved {
					members.set(int32(x), true)
				}
			}
		default:
			var q bitset
			if len(c.queries) > 0 {
				fresh[c.limit].each(func(x int32) {
					if c.match(&m, e.envs[x]) {
						q.set(x, true)
					}
				})
				if !equal(q, c.q) {
					t.Fatalf("query bits of %s: got %v, want %v", c.def.ID, e.idsOf(c.q), e.idsOf(q))
				}
			}
			fresh[c.limit].each(func(x int32) {
				in := q.has(x) || direct.has(x)
				for _, inc := range c.include {
					in = in || fresh[inc].has(x)
				}
				for _, ex := range c.exclude {
					in = in && !fresh[ex].has(x)
				}
				members.set(x, in)
			})
		}
		if !equal(members, c.members) {
			t.Fatalf("members of %s: got %v, want %v", c.def.ID, e.idsOf(c.members), e.idsOf(members))
		}
		fresh[c] = members
	}
}

// A collection in error (a dangling include: another instance deleted the
// collection it names at the same moment) keeps no query bits; when its
// error goes, its queries are evaluated again.
func TestStaleQueriesAfterError(t *testing.T) {
	e := New()
	e.Load(nil, nil)
	c := Definition{ID: "C", Name: "Web", Queries: []string{`labels.role == "web"`}, Include: []string{"X"}}
	e.Put(c)
	if info, _ := e.Info("C"); info.Err == nil {
		t.Fatal("expected C to have an error")
	}
	// A client matching C's query arrives while C is in error.
	e.SetClient(Env{ID: "c1", Name: "web-01", Approved: true, Labels: map[string]string{"role": "web"}})
	// The operator repairs C: drops the dangling include (queries unchanged).
	c.Include = nil
	deltas := e.Put(c)
	wantMembers(t, e, "C", "c1")
	if !hasDelta(deltas, "C", "c1", true) {
		t.Errorf("deltas of the repair: got %v, want c1 added to C", deltas)
	}
	verify(t, e)
	if d := e.RecomputeAll(); len(d) > 0 {
		t.Errorf("incremental state differs from a recomputation: %+v", d)
	}
}

// The other ways query bits went stale while a collection was in error: a
// client that leaves while the collection is in error and whose index
// goes to a client the queries do not match, and an error that goes
// without the collection being changed (the collection it names is
// created again).
func TestQueryBitsWhileInError(t *testing.T) {
	e := New()
	w1 := web("c1", "web-01")
	e.SetClient(w1)
	e.Put(Definition{ID: "X", Name: "X"})
	c := Definition{ID: "C", Name: "Web", Queries: []string{`labels.role == "web"`}, Include: []string{"X"}}
	e.Put(c)
	wantMembers(t, e, "C", "c1")
	e.Delete("X") // C is in error
	e.RemoveClient("c1")
	db := web("c2", "db-01")
	db.Labels = map[string]string{"role": "db"}
	e.SetClient(db) // takes c1's index
	e.SetClient(w1)
	e.Put(Definition{ID: "X", Name: "X"}) // C's error goes
	wantMembers(t, e, "C", "c1")
	verify(t, e)

	e.Delete("X")
	e.SetClient(db)
	e.RemoveClient("c1")
	db2 := db
	db2.ID, db2.Name = "c3", "db-03"
	e.SetClient(db2) // takes c1's index again
	c.Include = nil
	e.Put(c) // queries unchanged
	wantMembers(t, e, "C")
	verify(t, e)
}

// A collection's queries are evaluated over the members of its limit
// only, and for a client when it enters the limit.
func TestQueriesOnlyOverTheLimit(t *testing.T) {
	e := New()
	for i := range 50 {
		e.SetClient(web(fmt.Sprintf("c%02d", i), fmt.Sprintf("web-%02d", i)))
	}
	e.Put(Definition{ID: "pilot", Name: "Pilot", Direct: []string{"c01", "c02"}})
	evals := countEvals(e)
	e.Put(Definition{ID: "web", Name: "Pilot web", Limit: "pilot", Queries: []string{`name startsWith "web-"`}})
	if got := evals(); len(got) != 2 {
		t.Errorf("query evaluations of a new collection limited to 2 clients: %d, want 2", len(got))
	}
	wantMembers(t, e, "web", "c01", "c02")

	evals = countEvals(e)
	e.Put(Definition{ID: "pilot", Name: "Pilot", Direct: []string{"c01", "c02", "c03"}})
	if got := evals(); len(got) != 1 {
		t.Errorf("query evaluations after one client entered the limit: %d, want 1", len(got))
	}
	wantMembers(t, e, "web", "c01", "c02", "c03")

	// A client outside the limit changes a field the queries read.
	env := web("c10", "web-ten")
	evals = countEvals(e)
	e.SetClient(env)
	if got := evals(); len(got) != 0 {
		t.Errorf("query evaluations for a client outside the limit: %v", got)
	}
	// A client entering the limit by a change of its own.
	e.Put(Definition{ID: "pilot", Name: "Pilot", Queries: []string{`name endsWith "ten"`}})
	wantMembers(t, e, "web", "c10")
	env.Name = "db-ten"
	e.SetClient(env)
	wantMembers(t, e, "web")
	env.Name = "web-ten"
	e.SetClient(env)
	wantMembers(t, e, "web", "c10")
	verify(t, e)
	if d := e.RecomputeAll(); d != nil {
		t.Errorf("RecomputeAll: %v", d)
	}
}

// software makes n packages with names and versions of about size bytes.
func software(n, size int) []*Software {
	pad := strings.Repeat("x", max(0, size-8))
	out := make([]*Software, n)
	for i := range out {
		out[i] = &Software{Name: fmt.Sprintf("p%06d%s", i, pad), Version: fmt.Sprintf("1.%d.%d%s", i%10, i%7, pad), Source: "dpkg"}
	}
	return out
}

// A query has a cost budget for one client: what cannot fit does not
// compile or is refused by Check; what goes over it for a client fails
// (does not match) without running on.
func TestQueryBudget(t *testing.T) {
	// Refused when compiled, with the place.
	for _, b := range []struct{ q, msg string }{
		{`len(sortBy(map(1..900000, {string(-#)}), #)) > 0`, "a range in a query holds at most 100000 numbers"},
		{`len(join(map(software, .name), ",") + join(map(software, .name), ",") + join(map(software, .version), ",")) > 0`, "more than a query's budget"},
		{`reduce(software, #acc + 1, 0) > 5`, "the function reduce is not available"},
		{`toJSON($env) contains "x"`, "the function toJSON is not available"},
		{`name matches labels.pattern`, "pattern must be a string literal"},
		{`date("2026-01-01").Year() > 2000`, "methods are not available"},
	} {
		_, err := Compile(b.q)
		var qe *QueryError
		if !errors.As(err, &qe) || !strings.Contains(qe.Message, b.msg) {
			t.Errorf("Compile(%q): got %v, want a *QueryError containing %q", b.q, err, b.msg)
		}
	}

	// Compiles, but Check refuses it: too costly for a typical client.
	e := New()
	heavy := `len(sortBy(map(1..90000, {string(-#)}), #)) > 0`
	err := e.Check(Definition{ID: "h", Name: "Heavy", Queries: []string{`true`, heavy}})
	var qe *QueryError
	if !errors.As(err, &qe) || !strings.HasPrefix(err.Error(), "query 2: line 1, column ") || !strings.Contains(qe.Message, "more than a query's budget") {
		t.Errorf("Check of a heavy query: got %v, want query 2's budget error", err)
	}
	if err := e.Check(Definition{ID: "n", Name: "Nested", Queries: []string{`any(software, any(software, .name == "x"))`}}); err == nil {
		t.Error("Check of loops over software in loops over software: got nil, want a budget error")
	}

	// Stored anyway (by an older version), or fine for a typical client
	// but not for this one: the run stops at the budget,
	// deterministically, and the query does not match.
	nested := `any(users, any(users, any(users, # == "x")))`
	env := web("c1", "web-01")
	for i := range 300 {
		env.Users = append(env.Users, fmt.Sprint("user", i))
	}
	for _, src := range []string{heavy, nested} {
		q, err := Compile(src)
		if err != nil {
			t.Fatalf("Compile(%q): %v", src, err)
		}
		if ok, err := q.Eval(&env); ok || !errors.Is(err, ErrBudget) {
			t.Errorf("Eval(%q): got %v, %v; want ErrBudget", src, ok, err)
		}
	}
	e.SetClient(env)
	e.Put(Definition{ID: "h", Name: "Heavy", Queries: []string{heavy, nested, `name == "web-01"`}})
	wantMembers(t, e, "h", "c1") // the other rules still count
	if in, _ := e.Info("h"); in.Err != nil {
		t.Errorf("Info(h): %v", in.Err)
	}

	// Real queries over large inventories run: 20,000 packages (the
	// inventory's limit) of short strings, 2,000 of long ones.
	readme := `any(software, .name == "openssl" && versionCompare(.version, "3.0.13") < 0)`
	for _, c := range []struct {
		q         string
		n, length int
	}{
		{readme, 20_000, 12},
		{`any(software, versionCompare(.version, "3.0.13") < 0 && .name != "")`, 20_000, 12},
		{`any(software, .name == "p001999") || "openssl" in map(software, .name)`, 20_000, 12},
		{`any(users, # in admins) || any(ips, inSubnet(#, "10.1.0.0/16")) || any(disks, .mount == "/")`, 20_000, 12},
		{readme, 2_000, 1000},
		{`any(software, .name contains "zz") && any(software, .source == "rpm")`, 2_000, 1000},
	} {
		q, err := Compile(c.q)
		if err != nil {
			t.Fatalf("Compile(%q): %v", c.q, err)
		}
		if err := e.Check(Definition{ID: "r", Name: "Real", Queries: []string{c.q}}); err != nil {
			t.Errorf("Check(%q): %v", c.q, err)
		}
		env := web("c2", "web-02")
		env.Software = software(c.n, c.length)
		if _, err := q.Eval(&env); err != nil {
			t.Errorf("Eval(%q) over %d packages of %d bytes: %v", c.q, c.n, c.length, err)
		}
	}

	// A field larger than queries may read fails the queries reading it.
	env.OS.Name = strings.Repeat("x", MaxEnvString+1)
	for src, want := range map[string]error{`os.name != ""`: ErrTooLarge, `name == "web-01"`: nil} {
		q, _ := Compile(src)
		if _, err := q.Eval(&env); !errors.Is(err, want) {
			t.Errorf("Eval(%q) with a long os.name: got %v, want %v", src, err, want)
		}
	}
	e.SetClient(env)
	e.Put(Definition{ID: "os", Name: "OS", Queries: []string{`os.name != ""`}})
	wantMembers(t, e, "os")
	env.OS.Name = "Debian"
	e.SetClient(env)
	wantMembers(t, e, "os", "c1")
	verify(t, e)
}
