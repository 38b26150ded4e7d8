package agent

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"

	"github.com/stewardhq/steward/contracts"
)

// fakeCollector returns whatever inventory the test sets.
type fakeCollector struct {
	mu  sync.Mutex
	inv contracts.Inventory
}

func (f *fakeCollector) Collect(context.Context) (contracts.Inventory, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inv, nil
}

func (f *fakeCollector) set(fn func(*contracts.Inventory)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.inv)
}

func TestInventoryReports(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	svc := &ackService{seen: map[string]int{}}
	svc.serve(t, b.services(), contracts.KindInventory, func(contracts.OutboxItem) string { return "store" })
	col := &fakeCollector{inv: contracts.Inventory{
		OS: contracts.OSInfo{Family: "linux", Name: "Debian"}, Arch: "amd64",
		Software: []contracts.Software{{Name: "openssl", Version: "3.0.9"}},
	}}
	a := b.startAgent(func(c *Config) { c.Inventory = col; c.InventoryInterval = 0 }) // default: 6h, so only the first report
	report := func(i int) contracts.InventoryReport {
		svc.mu.Lock()
		defer svc.mu.Unlock()
		var r contracts.InventoryReport
		if err := json.Unmarshal(svc.stored[i].Data, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	waitFor(t, "the first, full report", func() bool { return svc.count() == 1 })
	if r := report(0); !r.Full || r.Seq != 1 || r.Inventory.OS.Name != "Debian" || len(r.Inventory.Software) != 1 {
		t.Fatalf("got %+v, want a full report seq 1", r)
	}

	// Nothing changed: nothing is sent.
	if sent, err := a.ReportInventory(context.Background(), false); err != nil || sent {
		t.Fatalf("got sent=%v err=%v with no change, want nothing sent", sent, err)
	}
	// A software upgrade: a delta of that section only.
	col.set(func(inv *contracts.Inventory) { inv.Software[0].Version = "3.0.11" })
	if sent, err := a.ReportInventory(context.Background(), false); err != nil || !sent {
		t.Fatalf("got sent=%v err=%v after a change, want a delta", sent, err)
	}
	waitFor(t, "the delta", func() bool { return svc.count() == 2 })
	r := report(1)
	if r.Full || r.Seq != 2 || r.Base != 1 || !slices.Equal(r.Changed, []string{"software"}) ||
		r.Inventory.Software[0].Version != "3.0.11" || r.Inventory.OS.Name != "" {
		t.Fatalf("got %+v, want a software-only delta seq 2 on base 1", r)
	}

	// The site asks for a full report.
	subj, _ := contracts.AgentDown(testSite, b.clientID, contracts.KindInventoryRefresh)
	publishJSON(t, b.services(), subj, contracts.InventoryRefresh{Header: contracts.NewHeader(contracts.TypeInventoryRefresh), Full: true})
	waitFor(t, "the refreshed full report", func() bool { return svc.count() == 3 })
	if r := report(2); !r.Full || r.Seq != 3 || r.Inventory.Software[0].Version != "3.0.11" {
		t.Fatalf("got %+v, want a full report seq 3", r)
	}
}
