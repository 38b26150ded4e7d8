package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Names are the benchmarks, in the order of the table.
var Names = []string{
	"policy-fanout", "heartbeat-ingest", "reconnect-storm", "status-durable", "agent-apply",
	"collection-eval", "session-relay", "tunnel", "replication", "memory-per-agent",
}

// Run runs the benchmarks named in only (all when empty).
func (e *Env) Run(ctx context.Context, only []string) ([]Result, error) {
	for _, n := range only {
		if !slices.Contains(Names, n) {
			return nil, fmt.Errorf("unknown benchmark %q (known: %s)", n, strings.Join(Names, ", "))
		}
	}
	want := func(n string) bool { return len(only) == 0 || slices.Contains(only, n) }
	var out []Result
	if want("memory-per-agent") || want("heartbeat-ingest") || want("reconnect-storm") {
		rs, err := e.Fleet(ctx, want)
		if err != nil {
			return out, err
		}
		out = append(out, rs...)
	}
	if want("status-durable") {
		r, err := e.statusDurable(ctx)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	if want("policy-fanout") {
		r, err := e.policyFanout(ctx)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	if want("agent-apply") {
		r, err := e.agentApply(ctx)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	if want("collection-eval") {
		r, err := e.collectionEval(ctx)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	if want("session-relay") {
		r, err := e.sessionRelay(ctx)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	if want("tunnel") {
		r, err := e.tunnel(ctx)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	if want("replication") {
		r, err := e.replication(ctx)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	// Table order.
	slices.SortStableFunc(out, func(a, b Result) int { return slices.Index(Names, a.Name) - slices.Index(Names, b.Name) })
	return out, nil
}
