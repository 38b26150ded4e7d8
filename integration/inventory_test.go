package integration

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/agent"
	"github.com/stewardhq/steward/agent/inventory"
	"github.com/stewardhq/steward/contracts"
)

// labelled is this machine's real inventory with labels the test sets.
type labelled struct {
	real   inventory.Collector
	mu     sync.Mutex
	labels map[string]string
}

func (l *labelled) Collect(ctx context.Context) (contracts.Inventory, error) {
	inv, err := l.real.Collect(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	inv.Labels = map[string]string{}
	for k, v := range l.labels {
		inv.Labels[k] = v
	}
	return inv, err
}

func (l *labelled) set(k, v string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.labels[k] = v
}

// startAgentWith runs an agent with cfg (Server, Token, StateDir and Name
// must be set) until the test ends.
func startAgentWith(t testing.TB, cfg agent.Config) *runningAgent {
	t.Helper()
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = 500 * time.Millisecond
	}
	cfg.Log = testLog(t)
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatalf("agent %s: %v", cfg.Name, err)
	}
	c, cancel := context.WithCancel(context.Background())
	ra := &runningAgent{Agent: a, dir: cfg.StateDir, cancel: cancel, done: make(chan error, 1)}
	go func() { ra.done <- a.Run(c) }()
	t.Cleanup(ra.stop)
	return ra
}

// TestRealInventoryAndCollections: real agents report this machine's real
// inventory; a collection over it fills; an inventory change moves a
// client in and out of a collection within a second of the report; and a
// report made while the site is down arrives after it comes back.
func TestRealInventoryAndCollections(t *testing.T) {
	dir, listen := t.TempDir(), freePort(t)
	rs := startSite(t, dir, listen, "LAB")
	op := rs.operator(t)
	tok := rs.token(t, 2, time.Hour)
	col := &labelled{real: inventory.New(), labels: map[string]string{"stage": "test"}}
	web := startAgentWith(t, agent.Config{Server: rs.URL(), Token: tok, StateDir: t.TempDir(), Name: "web-01", Inventory: col})
	db := startAgent(t, rs.URL(), tok, t.TempDir(), "db-01") // the real collector, unwrapped
	wait(t, 15*time.Second, "agents enrolled", func() bool { return web.ClientID() != "" && db.ClientID() != "" })

	var inv contracts.InventoryResponse
	wait(t, 30*time.Second, "web-01's inventory at the site", func() bool {
		var err error
		inv, err = op.InventoryShow(ctx(t), "web-01")
		return err == nil && inv.Seq >= 1
	})
	real, err := inventory.New().Collect(context.Background())
	if err != nil {
		t.Logf("collector: %v", err) // partial is fine; compare what is there
	}
	got := inv.Inventory
	if got.OS.Family != "linux" || got.OS.Name != real.OS.Name || got.CPU.Cores != real.CPU.Cores || got.Memory.Total != real.Memory.Total ||
		len(got.Networks) == 0 || len(got.Software) != len(real.Software) || got.Labels["stage"] != "test" {
		t.Fatalf("got inventory os %+v cpu %+v memory %d networks %d software %d labels %v; want this machine's (os %+v, cpu %+v, memory %d, %d packages)",
			got.OS, got.CPU, got.Memory.Total, len(got.Networks), len(got.Software), got.Labels, real.OS, real.CPU, real.Memory.Total, len(real.Software))
	}

	if _, err := op.CollectionsCreate(ctx(t), contracts.CollectionCreateRequest{Name: "Linux", Queries: []string{`os.family == "linux"`}}); err != nil {
		t.Fatal(err)
	}
	if _, err := op.CollectionsCreate(ctx(t), contracts.CollectionCreateRequest{Name: "Production", Queries: []string{`labels.stage == "prod"`}}); err != nil {
		t.Fatal(err)
	}
	membersOf := func(coll string) []string {
		_, ms, err := op.CollectionsMembers(ctx(t), coll)
		if err != nil {
			return nil
		}
		var names []string
		for _, m := range ms {
			names = append(names, m.Name)
		}
		slices.Sort(names)
		return names
	}
	wait(t, 30*time.Second, "both real agents in Linux", func() bool {
		return slices.Equal(membersOf("Linux"), []string{"db-01", "web-01"})
	})
	if got := membersOf("Production"); len(got) != 0 {
		t.Fatalf("Production before the change: got %v, want none", got)
	}

	// web-01 becomes production: a delta report moves it in within a second.
	col.set("stage", "prod")
	if sent, err := web.ReportInventory(context.Background(), false); err != nil || !sent {
		t.Fatalf("report: sent=%v err=%v, want a delta", sent, err)
	}
	wait(t, 15*time.Second, "the delta stored", func() bool {
		inv, err := op.InventoryShow(ctx(t), "web-01")
		return err == nil && inv.Inventory.Labels["stage"] == "prod"
	})
	stored := time.Now()
	wait(t, time.Second, "web-01 in Production within 1 s of its report being stored", func() bool {
		return slices.Equal(membersOf("Production"), []string{"web-01"})
	})
	if !slices.Equal(membersOf("Linux"), []string{"db-01", "web-01"}) {
		t.Fatal("a label change moved clients in Linux")
	}
	t.Logf("membership followed %s after the stored report", time.Since(stored).Round(time.Millisecond))

	// The site goes away; web-01 leaves production meanwhile; its report
	// waits in the outbox and arrives after the restart.
	rs.stop()
	wait(t, 15*time.Second, "web-01 notices the site is gone", func() bool { return !web.Status().Connected })
	outage := time.Now()
	col.set("stage", "retired")
	if sent, err := web.ReportInventory(context.Background(), false); err != nil || !sent {
		t.Fatalf("report during the outage: sent=%v err=%v", sent, err)
	}
	if web.OutboxLen() == 0 {
		t.Fatal("the report made during the outage is not in the outbox")
	}
	rs2 := startSite(t, dir, listen, "LAB")
	op2 := rs2.operator(t)
	wait(t, 30*time.Second, "the outage report delivered", func() bool {
		inv, err := op2.InventoryShow(ctx(t), "web-01")
		return err == nil && inv.Inventory.Labels["stage"] == "retired"
	})
	op = op2
	wait(t, 15*time.Second, "web-01 out of Production", func() bool { return len(membersOf("Production")) == 0 })
	hist, err := op2.InventoryHistory(ctx(t), "web-01", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var labelChanges []string
	for _, c := range hist.Changes {
		if c.Section == contracts.InventorySectionLabels {
			labelChanges = append(labelChanges, c.From+">"+c.To)
		}
	}
	if !slices.Equal(labelChanges, []string{"test>prod", "prod>retired"}) {
		t.Fatalf("got label history %v, want test>prod then prod>retired", labelChanges)
	}

	// The agent's lost and regained connection are status messages that
	// arrived after the outage, with the times they happened.
	var lost, back *contracts.StatusMessage
	wait(t, 30*time.Second, "connection lost and regained in the status messages", func() bool {
		resp, err := op2.StatusList(ctx(t), contracts.StatusListRequest{Header: contracts.NewHeader(contracts.TypeStatusListRequest),
			Filter: contracts.StatusFilter{Clients: []string{web.ClientID()}, MsgIDs: []int{contracts.StatusAgentConnectionLost, contracts.StatusAgentConnectionRegained}}})
		if err != nil {
			return false
		}
		lost, back = nil, nil
		for i := range resp.Messages {
			switch m := &resp.Messages[i]; m.MsgID {
			case contracts.StatusAgentConnectionLost:
				lost = m
			case contracts.StatusAgentConnectionRegained:
				back = m
			}
		}
		return lost != nil && back != nil
	})
	if lost.Time.After(outage) || !back.Time.After(lost.Time) || lost.Client != web.ClientID() {
		t.Fatalf("lost at %s (outage noticed %s), regained at %s, client %q: want the times they happened, from web-01", lost.Time, outage, back.Time, lost.Client)
	}
}
