package collections

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stewardhq/steward/contracts"
)

// queryPool is what the property test's collections query: every field,
// closures, helpers, $env and a query that reads no field.
var queryPool = []string{
	`os.family == "linux"`,
	`name startsWith "web-"`,
	`name endsWith "1"`,
	`cpu.cores >= 4`,
	`memory.total > 8 * 1024 * 1024 * 1024`,
	`any(software, .name == "openssl" && versionCompare(.version, "3.0.2") < 0)`,
	`any(software, .name == "nginx")`,
	`labels.role == "db"`,
	`"env" in labels`,
	`any(ips, inSubnet(#, "10.1.0.0/16"))`,
	`"00:00:00:00:00:01" in macs`,
	`"root" in admins || "alice" in users`,
	`any(disks, .free < .total / 4)`,
	`arch == "arm64" || site == "OTHER"`,
	`id == "c3"`,
	`$env.os.version == "12"`,
	`true`,
}

// randomEnv makes a client from small domains, so that queries match some.
func randomEnv(r *rand.Rand, id string) Env {
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	env := Env{
		ID:       id,
		Name:     pick("web-", "db-", "lap-") + fmt.Sprint(r.IntN(4)),
		Site:     pick("LAB", "LAB", "OTHER"),
		OS:       OS{Family: pick("linux", "windows", "darwin"), Version: pick("11", "12")},
		Arch:     pick("amd64", "arm64"),
		CPU:      CPU{Cores: 1 << r.IntN(4)},
		Memory:   Memory{Total: uint64(r.IntN(4)+1) * 4 << 30},
		IPs:      []string{pick("10.1.0.5", "10.2.0.5", "192.168.1.1")},
		MACs:     []string{pick("00:00:00:00:00:01", "00:00:00:00:00:02")},
		Users:    []string{pick("alice", "bob")},
		Admins:   []string{pick("root", "admin")},
		Approved: r.IntN(5) > 0,
	}
	for _, p := range []string{"openssl", "nginx", "curl"} {
		if r.IntN(2) == 0 {
			env.Software = append(env.Software, &Software{Name: p, Version: pick("3.0.1", "3.0.5", "1.2")})
		}
	}
	if r.IntN(2) == 0 {
		env.Disks = []*Disk{{Mount: "/", Total: 100, Free: uint64(r.IntN(100))}}
	}
	if r.IntN(3) > 0 {
		env.Labels = map[string]string{"role": pick("db", "web")}
		if r.IntN(2) == 0 {
			env.Labels["env"] = "prod"
		}
	}
	return env
}

// mutate changes one field of env (or its approval).
func mutate(r *rand.Rand, env Env) Env {
	n := randomEnv(r, env.ID)
	switch r.IntN(8) {
	case 0:
		env.Name = n.Name
	case 1:
		env.OS = n.OS
	case 2:
		env.Software = n.Software
	case 3:
		env.Labels = n.Labels
	case 4:
		env.IPs, env.MACs = n.IPs, n.MACs
	case 5:
		env.CPU, env.Memory, env.Disks = n.CPU, n.Memory, n.Disks
	case 6:
		env.Approved = !env.Approved
	default:
		return n
	}
	return env
}

// brokenQuery is a stored query that does not compile (any more).
const brokenQuery = `bogus ==`

// randomDef makes a collection over the existing ones: its references are
// drawn from ids (so it may make a cycle: Check decides), and from others
// (ghosts: a collection deleted meanwhile, or created later), and its
// queries are from the pool or, rarely, broken.
func randomDef(r *rand.Rand, id string, ids, ghosts, clients []string) Definition {
	d := Definition{ID: id, Name: "coll " + id}
	some := func(from []string, n int) []string {
		var out []string
		for range r.IntN(n + 1) {
			if len(from) > 0 {
				if x := from[r.IntN(len(from))]; !slices.Contains(out, x) {
					out = append(out, x)
				}
			}
		}
		return out
	}
	refs := ids
	if r.IntN(4) == 0 {
		refs = append(slices.Clone(ids), ghosts...)
	}
	if r.IntN(2) == 0 && len(refs) > 0 {
		d.Limit = refs[r.IntN(len(refs))]
	}
	for range r.IntN(3) {
		d.Queries = append(d.Queries, queryPool[r.IntN(len(queryPool))])
	}
	if r.IntN(40) == 0 {
		d.Queries = append(d.Queries, brokenQuery)
	}
	d.Include = some(refs, 2)
	d.Exclude = slices.DeleteFunc(some(refs, 1), func(x string) bool { return slices.Contains(d.Include, x) })
	d.Direct = some(append(slices.Clone(clients), "ghost"), 3)
	return d
}

// refsOf returns the collections d names.
func refsOf(d Definition) []string {
	return append(append([]string{d.limitID()}, d.Include...), d.Exclude...)
}

// broken returns the collections in error: a query that does not compile,
// a reference to a collection that does not exist, a cycle, or a
// reference to a collection in a cycle (but not to one in error
// otherwise: that one has no members).
func broken(defs map[string]Definition) map[string]bool {
	out := map[string]bool{}
	// reach returns the collections reachable from id through
	// references, id excluded unless on a cycle.
	reach := func(id string) map[string]bool {
		seen := map[string]bool{}
		var walk func(string)
		walk = func(x string) {
			for _, ref := range refsOf(defs[x]) {
				if _, ok := defs[ref]; ok && !seen[ref] {
					seen[ref] = true
					walk(ref)
				}
			}
		}
		walk(id)
		return seen
	}
	onCycle := map[string]bool{}
	for id := range defs {
		if reach(id)[id] {
			onCycle[id] = true
		}
	}
	for id, d := range defs {
		for _, src := range d.Queries {
			if _, err := Compile(src); err != nil {
				out[id] = true
			}
		}
		for _, ref := range refsOf(d) {
			if _, ok := defs[ref]; !ok && ref != contracts.AllSystemsID {
				out[id] = true
			}
		}
		if onCycle[id] {
			out[id] = true
		}
		for ref := range reach(id) {
			if onCycle[ref] {
				out[id] = true
			}
		}
	}
	return out
}

// reference computes every membership from the definitions alone, by
// recursion, evaluating every query for every client: the specification.
func reference(defs map[string]Definition, envs map[string]Env) map[string][]string {
	memo := map[string]map[string]bool{}
	bad := broken(defs)
	var members func(id string) map[string]bool
	members = func(id string) map[string]bool {
		if m, ok := memo[id]; ok {
			return m
		}
		m := map[string]bool{}
		if _, ok := defs[id]; bad[id] || !ok && id != contracts.AllSystemsID {
			memo[id] = m
			return m
		}
		if id == contracts.AllSystemsID {
			for cid, env := range envs {
				if env.Approved {
					m[cid] = true
				}
			}
			memo[id] = m
			return m
		}
		d := defs[id]
		var qs []*Query
		for _, src := range d.Queries {
			q, err := Compile(src)
			if err != nil {
				panic(err)
			}
			qs = append(qs, q)
		}
		limit := members(d.limitID())
		for cid, env := range envs {
			if !limit[cid] {
				continue
			}
			in := slices.Contains(d.Direct, cid)
			for _, q := range qs {
				in = in || q.Match(&env)
			}
			for _, inc := range d.Include {
				in = in || members(inc)[cid]
			}
			for _, ex := range d.Exclude {
				in = in && !members(ex)[cid]
			}
			if in {
				m[cid] = true
			}
		}
		memo[id] = m
		return m
	}
	out := map[string][]string{contracts.AllSystemsID: nil}
	for id := range defs {
		out[id] = nil
	}
	for id := range out {
		out[id] = slices.Sorted(maps.Keys(members(id)))
	}
	return out
}

// TestIncrementalMatchesBruteForce applies random changes to clients and
// collections and checks after each that the engine's memberships equal the
// reference computed from scratch, and that the deltas it returned turn the
// previous memberships into the new ones exactly.
func TestIncrementalMatchesBruteForce(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 42))
			e := New()
			envs := map[string]Env{}
			defs := map[string]Definition{}
			seen := map[string][]string{contracts.AllSystemsID: {}} // memberships known from deltas
			nextClient, nextColl := 0, 0

			apply := func(what string, deltas []Delta) {
				t.Helper()
				for _, d := range deltas {
					m := seen[d.Collection]
					for _, id := range d.Removed {
						if !slices.Contains(m, id) {
							t.Fatalf("%s: delta removes %s from %s, which did not hold it", what, id, d.Collection)
						}
						m = slices.DeleteFunc(m, func(x string) bool { return x == id })
					}
					for _, id := range d.Added {
						if slices.Contains(m, id) {
							t.Fatalf("%s: delta adds %s to %s, which held it", what, id, d.Collection)
						}
						m = append(m, id)
					}
					slices.Sort(m)
					seen[d.Collection] = m
				}
				verify(t, e)
				want := reference(defs, envs)
				for id, w := range want {
					got, _ := e.Members(id)
					if !slices.Equal(got, w) && !(len(got) == 0 && len(w) == 0) {
						t.Fatalf("%s: members of %s: got %v, want %v", what, id, got, w)
					}
					if s := seen[id]; !slices.Equal(s, w) && !(len(s) == 0 && len(w) == 0) {
						t.Fatalf("%s: members of %s from the deltas: got %v, want %v", what, id, s, w)
					}
				}
			}

			var deleted []string
			for step := range 400 {
				ids := slices.Sorted(maps.Keys(defs))
				clients := slices.Sorted(maps.Keys(envs))
				ghosts := append(slices.Clone(deleted), fmt.Sprintf("k%d", nextColl), fmt.Sprintf("k%d", nextColl+1))
				switch op := r.IntN(10); {
				case op < 2 || len(envs) < 5: // a new client
					id := fmt.Sprintf("c%d", nextClient)
					nextClient++
					envs[id] = randomEnv(r, id)
					apply(fmt.Sprintf("step %d: add %s", step, id), e.SetClient(envs[id]))
				case op < 6: // a client changes
					id := clients[r.IntN(len(clients))]
					envs[id] = mutate(r, envs[id])
					apply(fmt.Sprintf("step %d: change %s", step, id), e.SetClient(envs[id]))
				case op < 7: // a client goes
					id := clients[r.IntN(len(clients))]
					delete(envs, id)
					apply(fmt.Sprintf("step %d: remove %s", step, id), e.RemoveClient(id))
				case op < 9 || len(defs) == 0: // a collection is created or changed
					id := fmt.Sprintf("k%d", nextColl)
					if len(ids) > 0 && r.IntN(2) == 0 {
						id = ids[r.IntN(len(ids))]
					} else {
						nextColl++
					}
					d := randomDef(r, id, append(ids, contracts.AllSystemsID), ghosts, clients)
					if e.Check(d) != nil && r.IntN(3) > 0 {
						continue // refused, as the service would; else stored by another instance meanwhile
					}
					defs[id] = d
					apply(fmt.Sprintf("step %d: put %s", step, id), e.Put(d))
				default: // a collection is deleted, rarely one that others name
					id := ids[r.IntN(len(ids))]
					if len(e.Dependants(id)) > 0 && r.IntN(3) > 0 {
						continue
					}
					delete(defs, id)
					deleted = append(deleted, id)
					apply(fmt.Sprintf("step %d: delete %s", step, id), e.Delete(id))
					delete(seen, id)
				}
			}
			if d := e.RecomputeAll(); d != nil {
				t.Fatalf("RecomputeAll found differences: %v", d)
			}
			// Load from the same state agrees too.
			l := New()
			var all []Env
			for _, env := range envs {
				all = append(all, env)
			}
			l.Load(all, slices.Collect(maps.Values(defs)))
			for _, id := range e.Collections() {
				a, _ := e.Members(id)
				b, _ := l.Members(id)
				if !slices.Equal(a, b) {
					t.Fatalf("Load: members of %s: got %v, want %v", id, b, a)
				}
			}
		})
	}
}
