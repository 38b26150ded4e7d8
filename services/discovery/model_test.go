package discovery

import (
	"context"
	"sync"
	"testing"

	"github.com/stewardhq/steward/contracts"
)

// TestEventsInChangeOrder: the three watches (records, inventory,
// collections) apply their changes concurrently, and the events of each
// change are queued in the order the changes were applied. Each queued
// them after releasing the model's lock, so another watch's later change
// could be queued first: the stream said "+c1" after "-c1" while c1 was
// a member, and consumers (policy, replication) that read events as
// statements kept the wrong membership until their next resync.
func TestEventsInChangeOrder(t *testing.T) {
	events := make(chan *pendingEvent, 1<<20)
	m := newModel(site, events)
	m.build()
	ctx := context.Background()
	m.setDefinition(ctx, "C", &collectionRecord{ID: "C", Name: "Web", Queries: []string{`labels.role == "web" && name startsWith "w"`}}, 1, cause{CollectionsBucket, 1, contracts.CauseCollection})
	m.setRecord(ctx, "c1", &record{Client: contracts.Client{ID: "c1", Name: "w1", Status: contracts.ClientApproved}}, cause{Bucket, 1, contracts.CauseClient})
	m.setInventory(ctx, "c1", &storedInventory{Seq: 1}, cause{InventoryBucket, 1, contracts.CauseInventory})
	const n = 20000
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			name := "w1"
			if i%2 == 0 {
				name = "x1"
			}
			m.setRecord(ctx, "c1", &record{Client: contracts.Client{ID: "c1", Name: name, Status: contracts.ClientApproved}}, cause{Bucket, uint64(i + 2), contracts.CauseClient})
		}
	})
	wg.Go(func() {
		for i := range n {
			role := "web"
			if i%2 == 0 {
				role = "db"
			}
			inv := &storedInventory{Seq: uint64(i + 2)}
			inv.Inventory.Labels = map[string]string{"role": role}
			m.setInventory(ctx, "c1", inv, cause{InventoryBucket, uint64(i + 2), contracts.CauseInventory})
		}
	})
	wg.Wait()
	close(events)
	member := false // as a consumer applying the events in order sees it
	bad := 0
	for e := range events {
		if e.ev.Collection.ID != "C" {
			continue
		}
		for range e.ev.Added {
			if member {
				bad++
			}
			member = true
		}
		for range e.ev.Removed {
			if !member {
				bad++
			}
			member = false
		}
	}
	m.mu.RLock()
	truth := m.eng.IsMember("C", "c1")
	m.mu.RUnlock()
	if bad > 0 || member != truth {
		t.Errorf("events out of order: %d events contradict the one before; a consumer ends with member=%v, the engine says %v", bad, member, truth)
	}
}
