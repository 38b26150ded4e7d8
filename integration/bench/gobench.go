package bench

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// goBench runs one Go benchmark of the repository (go test -bench) and
// returns the metrics it reported with b.ReportMetric, by unit. The suite
// uses it where a benchmark measures a package on its own (an engine, an
// ingest path) rather than a whole site.
func (e *Env) goBench(ctx context.Context, pkg, name, benchtime string) (map[string]float64, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^"+name+"$", "-benchtime", benchtime, "-count", "1", pkg)
	cmd.Dir = e.Root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go test -bench %s %s: %v\n%s", name, pkg, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[0], name) {
			continue
		}
		metrics := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				metrics[f[i+1]] = v
			}
		}
		return metrics, nil
	}
	return nil, fmt.Errorf("go test -bench %s %s printed no result:\n%s", name, pkg, out)
}

// collectionEval: one inventory change re-evaluated over 1,000 collections
// and 50,000 clients, against re-evaluating every collection (brute force).
func (e *Env) collectionEval(ctx context.Context) (Result, error) {
	e.Log("collection-eval: 1,000 collections x 50,000 clients (go test -bench)")
	m, err := e.goBench(ctx, "./services/discovery/collections", "BenchmarkInventoryChange", "300x")
	if err != nil {
		return Result{}, err
	}
	per, brute := m["ms/change"], m["bruteforce-ms"]
	r := measured("collection-eval", "ms", per, brute, "< 100 ms and >= 10x faster than brute force", per < 100 && brute >= 10*per,
		"one inventory change, incremental; baseline: brute-force re-evaluation of every collection (ratio < 0.1 is the goal)")
	r.Agents = 50000
	return r, nil
}

// statusDurable: status messages per second end to end (an agent outbox
// batch ingested, stored with sync always and acknowledged) against
// JetStream publish with sync always of the same payloads, in paired
// rounds (see services/status/bench_test.go).
func (e *Env) statusDurable(ctx context.Context) (Result, error) {
	e.Log("status-durable: batch ingest vs JetStream sync-always publish (go test -bench)")
	m, err := e.goBench(ctx, "./services/status", "BenchmarkDurableIngest", "1x")
	if err != nil {
		return Result{}, err
	}
	rate, base := m["msgs/s"], m["jetstream-msgs/s"]
	ratio := m["ratio-vs-jetstream"]
	r := measured("status-durable", "msgs/s", rate, base, ">= 0.8x JetStream sync-always publish", ratio >= 0.8,
		"median of paired rounds; each message synced on both sides, so the disk sets both rates")
	r.Ratio = num(ratio)
	return r, nil
}
