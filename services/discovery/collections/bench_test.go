package collections

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

const (
	benchClients     = 50_000
	benchCollections = 1_000
	benchPackages    = 300 // distinct packages on the site
	benchInstalled   = 15  // packages per client
)

// benchSite makes the benchmark's site: 50,000 clients and 1,000
// collections shaped like a real site's: 60% query rules (attributes,
// installed software, labels, subnets), many limited by another
// collection; 20% built from include and exclude rules; 10% direct
// members; 10% queries limited by composite collections.
func benchSite() ([]Env, []Definition) {
	r := rand.New(rand.NewPCG(1, 2))
	prefixes := []string{"web", "db", "app", "lap", "kiosk"}
	families := []string{"linux", "windows", "darwin"}
	roles := []string{"web", "db", "cache", "desktop"}
	envs := make([]Env, benchClients)
	for i := range envs {
		env := Env{
			ID:       fmt.Sprintf("client-%05d", i),
			Name:     fmt.Sprintf("%s-%05d", prefixes[i%len(prefixes)], i),
			Site:     "LAB",
			OS:       OS{Name: "os", Version: fmt.Sprint(10 + i%4), Family: families[i%len(families)], Kernel: "6.1"},
			Arch:     []string{"amd64", "arm64"}[i%2],
			CPU:      CPU{Model: "cpu", Cores: 1 << (i % 5)},
			Memory:   Memory{Total: uint64(i%8+1) * 4 << 30},
			Disks:    []*Disk{{Device: "/dev/sda1", Mount: "/", FSType: "ext4", Total: 100 << 30, Free: uint64(i%100) << 30}},
			IPs:      []string{fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)},
			MACs:     []string{fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16, (i>>8)&255, i&255)},
			Users:    []string{fmt.Sprint("user", i%100)},
			Admins:   []string{"root"},
			Labels:   map[string]string{"role": roles[i%len(roles)], "env": []string{"prod", "test", "dev"}[i%3]},
			Approved: true,
		}
		for _, p := range r.Perm(benchPackages)[:benchInstalled] {
			env.Software = append(env.Software, &Software{Name: fmt.Sprint("pkg", p), Version: fmt.Sprintf("1.%d", r.IntN(10))})
		}
		envs[i] = env
	}

	defs := make([]Definition, 0, benchCollections)
	var queried []string // IDs of collections with query rules, to limit on
	for i := range benchCollections {
		d := Definition{ID: fmt.Sprintf("coll-%04d", i), Name: fmt.Sprint("Collection ", i)}
		earlier := func() string { return defs[r.IntN(len(defs))].ID }
		switch k := i % 10; {
		case k < 6 || i < 20:
			switch r.IntN(6) {
			case 0:
				d.Queries = []string{fmt.Sprintf(`os.family == %q && name startsWith %q`, families[r.IntN(3)], prefixes[r.IntN(5)]+"-")}
			case 1:
				d.Queries = []string{fmt.Sprintf(`any(software, .name == "pkg%d")`, r.IntN(benchPackages))}
			case 2:
				d.Queries = []string{fmt.Sprintf(`cpu.cores >= %d && memory.total > %d`, 1<<r.IntN(5), uint64(r.IntN(8))*4<<30)}
			case 3:
				d.Queries = []string{fmt.Sprintf(`labels.role == %q && labels.env == "prod"`, roles[r.IntN(4)])}
			case 4:
				d.Queries = []string{fmt.Sprintf(`any(ips, inSubnet(#, "10.0.%d.0/24"))`, r.IntN(196))}
			default:
				d.Queries = []string{fmt.Sprintf(`arch == "arm64" && os.version == "%d"`, 10+r.IntN(4)), fmt.Sprintf(`"user%d" in users`, r.IntN(100))}
			}
			if len(queried) > 0 && r.IntN(3) == 0 {
				d.Limit = queried[r.IntN(len(queried))]
			}
			queried = append(queried, d.ID)
		case k < 8:
			d.Include = []string{earlier(), earlier()}
			d.Exclude = []string{earlier()}
			if d.Exclude[0] == d.Include[0] || d.Exclude[0] == d.Include[1] {
				d.Exclude = nil
			}
		case k < 9:
			for range 20 {
				d.Direct = append(d.Direct, envs[r.IntN(len(envs))].ID)
			}
		default:
			d.Limit = earlier()
			d.Queries = []string{fmt.Sprintf(`labels.env == %q`, []string{"prod", "test", "dev"}[r.IntN(3)])}
		}
		defs = append(defs, d)
	}
	return envs, defs
}

// BenchmarkInventoryChange measures what one client's inventory change
// costs: re-evaluating the site's 1,000 collections for that client,
// incrementally, against re-evaluating every collection over all 50,000
// clients (brute force) in the same run. It reports ms/change,
// bruteforce-ms and x-vs-bruteforce. Goal: under 100 ms a change and at
// least 10 times faster than brute force.
func BenchmarkInventoryChange(b *testing.B) {
	envs, defs := benchSite()
	e := New()
	start := time.Now()
	e.Load(envs, defs)
	b.Logf("loaded %d clients and %d collections in %s (parallel)", len(envs), len(defs)+1, time.Since(start).Round(time.Millisecond))

	// Each change is an inventory report of one client: software
	// installed or removed, or an OS upgrade, or a new address and label.
	r := rand.New(rand.NewPCG(3, 4))
	changed := 0
	b.ResetTimer()
	for b.Loop() {
		x := r.IntN(len(envs))
		env := envs[x]
		switch changed % 3 {
		case 0:
			sw := append([]*Software(nil), env.Software[1:]...)
			env.Software = append(sw, &Software{Name: fmt.Sprint("pkg", r.IntN(benchPackages)), Version: "2.0"})
		case 1:
			env.OS.Version = fmt.Sprint(10 + r.IntN(4))
			env.OS.Family = []string{"linux", "windows", "darwin"}[r.IntN(3)]
		default:
			env.IPs = []string{fmt.Sprintf("10.0.%d.%d", r.IntN(196), r.IntN(256))}
			env.Labels = map[string]string{"role": "db", "env": "prod"}
		}
		envs[x] = env
		e.SetClient(env)
		changed++
	}
	b.StopTimer()
	perChange := b.Elapsed() / time.Duration(b.N)

	start = time.Now()
	if d := e.RecomputeAll(); d != nil {
		b.Fatalf("brute force disagrees with the incremental memberships in %d collections", len(d))
	}
	brute := time.Since(start)

	b.ReportMetric(float64(perChange.Nanoseconds())/1e6, "ms/change")
	b.ReportMetric(float64(brute.Nanoseconds())/1e6, "bruteforce-ms")
	b.ReportMetric(float64(brute)/float64(perChange), "x-vs-bruteforce")
	if perChange > 100*time.Millisecond || brute < 10*perChange {
		b.Errorf("goal missed: %s a change (want < 100ms), brute force %s (want >= 10x)", perChange, brute)
	}
}
