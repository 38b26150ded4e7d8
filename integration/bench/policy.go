package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/agent"
	"github.com/stewardhq/steward/contracts"
)

// echoKind is the down subject on which the fleet of the policy benchmark
// answers raw messages (the baseline).
const echoKind = "bench.echo"

// policyFanout: a settings change deployed to a collection of every agent
// of a connected fleet; the time from the change until 99% of the agents
// have applied it and the site has stored their acknowledgement (each
// agent's outbox drained), against raw NATS fan-out of the same bytes to
// the same connections, each answered with a reply, in the same run.
func (e *Env) policyFanout(ctx context.Context) (Result, error) {
	e.Log("policy-fanout: %d agents", e.Agents)
	fs, err := e.startFleetWith(ctx, "policy", func(a *agent.Agent) {
		a.HandleDown(echoKind, func(_ context.Context, m *nats.Msg) {
			if m.Reply != "" {
				_ = m.Respond([]byte("ok"))
			}
		})
	})
	if err != nil {
		return Result{}, err
	}
	defer fs.stop()
	op, err := fs.site.Operator(ctx)
	if err != nil {
		return Result{}, err
	}
	defer op.Close()
	agents := fs.fleet.Agents()

	// A collection of the whole fleet, and settings deployed to it.
	if _, err := op.CollectionsCreate(ctx, contracts.CollectionCreateRequest{Name: "Bench fleet", Queries: []string{`name startsWith "policy-"`}}); err != nil {
		return Result{}, err
	}
	if err := waitFor(ctx, 5*time.Minute, func() bool {
		_, m, err := op.CollectionsMembers(ctx, "Bench fleet")
		return err == nil && len(m) == e.Agents
	}); err != nil {
		return Result{}, fmt.Errorf("policy-fanout: the collection did not fill: %w", err)
	}
	settings := func(viewers ...string) contracts.Settings {
		t, level := true, contracts.AccessFull
		return contracts.Settings{Name: "Bench remote tools", Priority: 10, SettingsSections: contracts.SettingsSections{
			RemoteTools: &contracts.RemoteToolsSettings{Enabled: &t, AccessLevel: &level, PermittedViewers: &viewers}}}
	}
	if _, err := op.SettingsApply(ctx, settings("alice")); err != nil {
		return Result{}, err
	}
	if _, err := op.SettingsDeploy(ctx, "Bench remote tools", "Bench fleet"); err != nil {
		return Result{}, err
	}
	// Settled: every agent has applied the deployment and the site has
	// stored every acknowledgement, so the measured change is all the
	// site is doing.
	if err := waitFor(ctx, 5*time.Minute, func() bool {
		for _, a := range agents {
			if !hasViewer(a.PolicyStatus(), "alice") || a.OutboxLen() != 0 {
				return false
			}
		}
		return true
	}); err != nil {
		return Result{}, fmt.Errorf("policy-fanout: the deployment did not reach every agent: %w", err)
	}

	// Capture one pushed policy: the baseline sends the same bytes.
	nc, err := fs.site.serviceConn()
	if err != nil {
		return Result{}, err
	}
	defer nc.Close()
	first := agents[0].Identity
	id0, _ := first()
	sub, err := nc.SubscribeSync(mustSubject(contracts.AgentDown(id0.Site, id0.ClientID, contracts.KindPolicy)))
	if err != nil {
		return Result{}, err
	}
	nc.Flush()

	// The measured change: every agent applies it (a revision past the
	// one it holds now) and the site stores every acknowledgement.
	settled := make([]uint64, len(agents))
	for i, a := range agents {
		settled[i] = a.PolicyRevision()
	}
	done := make([]time.Duration, len(agents))
	applied := make([]time.Duration, len(agents))
	answered := make(chan error, 1)
	stopProfile := e.profile(ctx, fs.site, "policy-fanout", 5*time.Second)
	start := time.Now()
	go func() {
		_, err := op.SettingsApply(ctx, settings("alice", "group:helpdesk", "bob"))
		answered <- err
	}()
	var took time.Duration
	// The fleet shares the machine with the site: poll only the agents
	// not done yet, by its revision and outbox length, and less often the larger
	// the fleet (a pass over 10,000 agents every 2 ms took a sixth of the
	// fleet's CPU; copying each agent's policy status, a tenth at 10 ms).
	poll := time.Duration(max(2, len(agents)/1000)) * time.Millisecond
	waiting := make([]int, len(agents))
	for i := range waiting {
		waiting[i] = i
	}
	for {
		now := time.Since(start)
		waiting = slices.DeleteFunc(waiting, func(i int) bool {
			a := agents[i]
			if applied[i] == 0 && a.PolicyRevision() > settled[i] {
				applied[i] = now
			}
			if applied[i] != 0 && a.OutboxLen() == 0 {
				done[i] = now
				return true
			}
			return false
		})
		select {
		case err := <-answered:
			if err != nil {
				return Result{}, err
			}
			took = time.Since(start)
		default:
		}
		if len(waiting) <= len(agents)/100 && took > 0 {
			break
		}
		if time.Since(start) > 2*time.Minute || ctx.Err() != nil {
			return Result{}, fmt.Errorf("policy-fanout: 99%% of the agents did not apply and acknowledge within 2 minutes")
		}
		time.Sleep(poll)
	}
	stopProfile()
	for i, a := range agents {
		if applied[i] != 0 && !hasViewer(a.PolicyStatus(), "bob") {
			return Result{}, fmt.Errorf("policy-fanout: agent %d applied a new revision without the change", i)
		}
	}
	p99 := percentile(done, 0.99)
	e.Log("policy-fanout: the site answered the change after %s; applied: p50 %s, p99 %s; applied and acknowledged: p50 %s, p99 %s",
		took.Round(time.Millisecond), percentile(applied, 0.5).Round(time.Millisecond), percentile(applied, 0.99).Round(time.Millisecond),
		percentile(done, 0.5).Round(time.Millisecond), p99.Round(time.Millisecond))
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		return Result{}, fmt.Errorf("policy-fanout: no policy captured: %w", err)
	}
	payload := msg.Data

	// Baseline: the same bytes to the same connections, each answered.
	raw, err := rawFanout(ctx, nc, agents, payload)
	if err != nil {
		return Result{}, err
	}
	r := measured("policy-fanout", "s p99", p99.Seconds(), raw.Seconds(), "p99 < 1 s and <= 2x raw fan-out", p99 < time.Second && p99 <= 2*raw,
		fmt.Sprintf("a settings change to a collection of every agent: resolve, write the records (atomic batches), sign, push, verify, apply, acknowledge through the outbox, stored at the site (the simulated agents keep state in memory; agent-apply measures bbolt); baseline: the same %d-byte message published to each agent's subject and answered", len(payload)))
	r.Agents = e.Agents
	return r, nil
}

func mustSubject(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

func hasViewer(p contracts.AgentPolicyStatus, v string) bool {
	rt := p.Settings.RemoteTools
	return rt != nil && rt.PermittedViewers != nil && slices.Contains(*rt.PermittedViewers, v)
}

// countAt counts the agents whose policy satisfies cond.
func countAt(agents []*agent.Agent, cond func(contracts.AgentPolicyStatus) bool) int {
	n := 0
	for _, a := range agents {
		if cond(a.PolicyStatus()) {
			n++
		}
	}
	return n
}

// percentile is the q-th percentile of the recorded times (unrecorded ones
// count as never).
func percentile(ds []time.Duration, q float64) time.Duration {
	sorted := slices.Clone(ds)
	for i, d := range sorted {
		if d == 0 {
			sorted[i] = time.Duration(1<<63 - 1)
		}
	}
	slices.Sort(sorted)
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// rawFanout publishes payload to every agent's echo subject with a reply
// inbox and returns the p99 time until the replies are in.
func rawFanout(ctx context.Context, nc *nats.Conn, agents []*agent.Agent, payload []byte) (time.Duration, error) {
	inbox := nats.NewInbox()
	var (
		mu      sync.Mutex
		arrived []time.Duration
		count   atomic.Int64
	)
	var start time.Time
	sub, err := nc.Subscribe(inbox+".*", func(m *nats.Msg) {
		d := time.Since(start)
		mu.Lock()
		arrived = append(arrived, d)
		mu.Unlock()
		count.Add(1)
	})
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	nc.Flush()
	subjects := make([]string, len(agents))
	for i, a := range agents {
		id, _ := a.Identity()
		subjects[i] = mustSubject(contracts.AgentDown(id.Site, id.ClientID, echoKind))
	}
	start = time.Now()
	for i, s := range subjects {
		if err := nc.PublishRequest(s, fmt.Sprintf("%s.%d", inbox, i), payload); err != nil {
			return 0, err
		}
	}
	nc.Flush()
	if err := waitFor(ctx, time.Minute, func() bool { return int(count.Load()) >= len(agents)*99/100 }); err != nil {
		return 0, fmt.Errorf("raw fan-out: %d of %d replies", count.Load(), len(agents))
	}
	mu.Lock()
	defer mu.Unlock()
	all := make([]time.Duration, len(agents))
	copy(all, arrived)
	return percentile(all, 0.99), nil
}

// agentApply: the agent's apply of a signed policy (verify, one bbolt
// transaction with the acknowledgement) against one bbolt transaction of
// the same writes, and the commits per applied policy.
func (e *Env) agentApply(ctx context.Context) (Result, error) {
	e.Log("agent-apply: apply against one bbolt transaction (go test -bench)")
	m, err := e.goBench(ctx, "./agent", "BenchmarkPolicyApply", "500x")
	if err != nil {
		return Result{}, err
	}
	apply, base, commits := m["ms/apply"], m["baseline-ms"], m["commits/policy"]
	return measured("agent-apply", "ms", apply, base, "<= 2 bbolt commits per applied policy", commits <= 2,
		fmt.Sprintf("%.1f commits per applied policy (apply + acknowledgement in one, its removal after the site's answer in the other); value: verify + apply; baseline: one bbolt transaction of the same writes", commits)), nil
}
