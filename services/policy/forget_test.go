package policy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

var allSystems = contracts.Named{ID: contracts.AllSystemsID, Name: contracts.AllSystemsName}

// stored reports whether bucket holds key.
func (ts *testSite) stored(t *testing.T, bucket, key string) bool {
	t.Helper()
	kv, err := ts.js.KeyValue(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	_, err = kv.Get(context.Background(), key)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestDeletedClientsLoseTheirRecords: a client deleted from the site
// (discovery's membership event removing it from All Systems) loses its
// policy and compliance records, and a change of the Default Client
// Settings counts, signs and pushes for the clients that remain: after
// clients delete web-04 it said "7 clients got a new policy" for 6. A
// client that returns (unblocked) gets a record again. The resync removes
// the records of clients no longer in All Systems whose event was lost.
func TestDeletedClientsLoseTheirRecords(t *testing.T) {
	clk := natstest.NewClock(time.Now().UTC())
	ts := startTestSite(t, 2, func(c *Config) { c.Now = clk.Now })
	clients := []string{"web-01", "web-02", "web-03", "web-04", "web-05", "web-06", "web-07"}
	ts.dir.set(allSystems, clients)
	ts.membership(t, allSystems, clients, nil)
	natstest.Wait(t, 10*time.Second, "a policy pushed to each client", func() bool {
		for _, id := range clients {
			if _, ok := ts.agents.get(id); !ok {
				return false
			}
		}
		return true
	})
	ts.fetchAs(t, "web-04", 0)
	ts.ackAs(t, "web-04", contracts.PolicyAck{Revision: 1, Applied: true, AppliedRevision: 1, AppliedAt: time.Now()})
	if !ts.stored(t, ClientsBucket, "web-04") || !ts.stored(t, ComplianceBucket, "web-04") {
		t.Fatal("web-04's records not stored")
	}

	// clients delete web-04: discovery removes it from All Systems.
	ts.dir.set(allSystems, []string{"web-01", "web-02", "web-03", "web-05", "web-06", "web-07"})
	ts.membership(t, allSystems, nil, []string{"web-04"})
	natstest.Wait(t, 10*time.Second, "web-04's records removed", func() bool {
		for _, svc := range ts.svcs {
			if _, ok := svc.model.client("web-04"); ok {
				return false
			}
			if _, ok := svc.model.report("web-04"); ok {
				return false
			}
		}
		return true
	})
	if ts.stored(t, ClientsBucket, "web-04") || ts.stored(t, ComplianceBucket, "web-04") {
		t.Fatal("web-04's records still stored")
	}
	heartbeat := func(d time.Duration) contracts.Settings {
		return contracts.Settings{Name: contracts.DefaultSettingsName, SettingsSections: contracts.SettingsSections{Agent: &contracts.AgentSettings{Heartbeat: ptr(contracts.Duration(d))}}}
	}
	if r := ts.apply(t, heartbeat(time.Minute)); r.Clients != 6 {
		t.Fatalf("defaults changed: %d clients got a new policy, want 6", r.Clients)
	}
	if p, _ := ts.agents.get("web-04"); p.Revision != 1 {
		t.Fatalf("web-04 (deleted) was pushed revision %d", p.Revision)
	}

	// A client that returns to All Systems (unblocked) gets a record on the
	// removed one's delete marker.
	ts.membership(t, allSystems, []string{"web-04"}, nil)
	natstest.Wait(t, 10*time.Second, "web-04's record again", func() bool {
		for _, svc := range ts.svcs {
			if _, ok := svc.model.client("web-04"); !ok {
				return false
			}
		}
		return true
	})
	ts.membership(t, allSystems, nil, []string{"web-04"})
	natstest.Wait(t, 10*time.Second, "web-04's record removed again", func() bool {
		_, ok := ts.svcs[0].model.client("web-04")
		return !ok
	})

	// web-06 deleted, its event lost: the resync (some minutes on) asks
	// discovery, as an operator who deployed something, and removes it.
	ts.dir.set(contracts.Named{ID: "coll-lab", Name: "Lab"}, []string{"web-01"})
	ts.apply(t, contracts.Settings{Name: "Lab", Priority: 10})
	ts.deploy(t, contracts.KindSettingsDeploy, "Lab", "Lab")
	ts.dir.set(allSystems, []string{"web-01", "web-02", "web-03", "web-05", "web-07"})
	clk.Add(5 * time.Minute)
	if !ts.svcs[1].resync(context.Background(), true) {
		t.Fatal("resync incomplete")
	}
	if _, ok := ts.svcs[1].model.client("web-06"); ok || ts.stored(t, ClientsBucket, "web-06") {
		t.Fatal("web-06 (not in All Systems) kept its record after the resync")
	}
	if r := ts.apply(t, heartbeat(2*time.Minute)); r.Clients != 5 {
		t.Fatalf("defaults changed after the resync: %d clients got a new policy, want 5", r.Clients)
	}
}
