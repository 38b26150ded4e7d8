package discovery

import (
	"context"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

func TestBeatsKeepNewest(t *testing.T) {
	bs := newBeats()
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	bs.note("c1", beat{hb: contracts.Heartbeat{Name: "new"}, seen: t0.Add(time.Second)}, false)
	bs.note("c1", beat{hb: contracts.Heartbeat{Name: "old"}, seen: t0}, false) // a late retry of an older one
	if seen, ok := bs.lastSeen("c1"); !ok || !seen.Equal(t0.Add(time.Second)) {
		t.Fatalf("got %v %v, want the newest heartbeat kept", seen, ok)
	}
	select {
	case <-bs.urgent:
		t.Fatal("a routine heartbeat asked for an urgent flush")
	default:
	}
	bs.note("c2", beat{seen: t0}, true)
	select {
	case <-bs.urgent:
	default:
		t.Fatal("an urgent heartbeat did not ask for a flush")
	}
	got := bs.take()
	if len(got) != 2 || got["c1"].hb.Name != "new" {
		t.Fatalf("got %+v, want c1 (new) and c2", got)
	}
	if len(bs.take()) != 0 {
		t.Fatal("take left notes behind")
	}
}

func TestSignificant(t *testing.T) {
	cur := record{Client: contracts.Client{ID: "c1", Name: "web-01", OS: "linux", AgentVersion: "1", Capability: 1, Status: contracts.ClientApproved, Online: true,
		LastSeen: time.Now()}, Interval: contracts.Duration(time.Minute)}
	same := contracts.Heartbeat{Name: "web-01", OS: "linux", AgentVersion: "1", Capability: 1, Interval: contracts.Duration(time.Minute)}
	if significant(cur, &same) {
		t.Fatal("a heartbeat that only moves last-seen is significant")
	}
	upgraded := same
	upgraded.AgentVersion = "2"
	if !significant(cur, &upgraded) {
		t.Fatal("a new agent version is not significant")
	}
	offline := cur
	offline.Online = false
	if !significant(offline, &same) {
		t.Fatal("coming online is not significant")
	}
}

// TestHeartbeatFloodCoalesces: a flood of heartbeats from one client costs
// a handful of writes, and the last one's time is what is stored.
func TestHeartbeatFloodCoalesces(t *testing.T) {
	e, _ := newEnv(t)
	e.publishEvent(contracts.ClientEnrolled, contracts.Client{ID: "c1", Name: "web-01", Status: contracts.ClientApproved})
	e.waitRecord("c1", "record", func(_ record, ok bool) bool { return ok })
	kv, _ := e.js.KeyValue(context.Background(), Bucket)
	before, _ := kv.Get(context.Background(), "c1")
	for range 500 {
		e.heartbeat("c1", contracts.Heartbeat{Name: "web-01"})
	}
	last := e.clock.Now()
	r := e.waitRecord("c1", "online with the last heartbeat", func(r record, ok bool) bool { return ok && r.Online && !r.LastSeen.Before(last) })
	if !r.LastSeen.Equal(last) {
		t.Fatalf("got last seen %s, want %s", r.LastSeen, last)
	}
	after, _ := kv.Get(context.Background(), "c1")
	if writes := after.Revision() - before.Revision(); writes > 50 {
		t.Fatalf("500 heartbeats cost %d writes, want them coalesced", writes)
	}
	natstest.Wait(t, 15*time.Second, "listed online", func() bool {
		l := e.list("")
		return len(l) == 1 && l[0].Online
	})
}
