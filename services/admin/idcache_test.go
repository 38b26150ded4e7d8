package admin

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// TestAgentCache: the callout's cache follows the identity bucket for
// approved and blocked agents only; everything else is read from the
// bucket; waiting for a block or a deletion ends when the cache has it.
func TestAgentCache(t *testing.T) {
	ns := natstest.Start(t)
	js, err := jetstream.New(natstest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: IdentityBucket})
	if err != nil {
		t.Fatal(err)
	}
	put := func(id Identity) {
		t.Helper()
		b, _ := json.Marshal(id)
		if _, err := kv.Put(ctx, id.Key, b); err != nil {
			t.Fatal(err)
		}
	}
	agent := func(key, status string) Identity {
		return Identity{Key: key, Kind: KindAgent, ClientID: "c-" + key, Name: "n-" + key, Status: status, Hostname: "h"}
	}
	put(agent("UA", contracts.ClientApproved))
	put(agent("UP", contracts.ClientPending))
	put(Identity{Key: "UO", Kind: KindOperator, Name: "alice"})

	// The agents the cache sees go from approved to blocked or deleted.
	revoked := make(chan string, 10)
	ids := &identities{kv: kv}
	if err := ids.watch(ctx, func(was Identity) { revoked <- was.Key + " " + was.ClientID }); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, 5*time.Second, "the cache loaded", func() bool { _, ok := ids.cache.agent("UA"); return ok })
	if id, _ := ids.cache.agent("UA"); id.Status != contracts.ClientApproved || id.ClientID != "c-UA" || id.Name != "n-UA" || id.Hostname != "" {
		t.Errorf("cached approved agent: %+v", id)
	}
	for _, key := range []string{"UP", "UO", "UNKNOWN"} {
		if id, ok := ids.cache.agent(key); ok {
			t.Errorf("the cache decides for %s: %+v", key, id)
		}
	}
	// Not cached: read from the bucket, unknown keys included.
	if id, err := ids.forAuth(ctx, "UO"); err != nil || id.Kind != KindOperator {
		t.Errorf("operator through the bucket: %+v %v", id, err)
	}
	if _, err := ids.forAuth(ctx, "UNKNOWN"); err != errNoIdentity {
		t.Errorf("unknown key: got %v, want errNoIdentity", err)
	}
	// An approval shows up (pending is never answered from the cache).
	put(agent("UP", contracts.ClientApproved))
	natstest.Wait(t, 5*time.Second, "the approval cached", func() bool { id, ok := ids.cache.agent("UP"); return ok && id.Status == contracts.ClientApproved })

	// Blocking: settle returns once the cache has the block.
	settled := make(chan error, 1)
	go func() { settled <- ids.settle(ctx, "UA") }()
	select {
	case err := <-settled:
		t.Fatalf("settle returned before the block: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	put(agent("UA", contracts.ClientBlocked))
	if err := <-settled; err != nil {
		t.Fatal(err)
	}
	if id, ok := ids.cache.agent("UA"); !ok || id.Status != contracts.ClientBlocked {
		t.Errorf("after the block: %+v %v", id, ok)
	}
	// Deleting: gone from the cache.
	if err := kv.Delete(ctx, "UP"); err != nil {
		t.Fatal(err)
	}
	if err := ids.settle(ctx, "UP"); err != nil {
		t.Fatal(err)
	}
	if _, ok := ids.cache.agent("UP"); ok {
		t.Error("a deleted agent is still cached")
	}
	// The block and the deletion were reported as revocations, in order,
	// with the identity as it was; nothing else was (not the load, not the
	// approval, not a blocked agent deleted).
	put(agent("UA", contracts.ClientBlocked)) // blocked again: no revocation
	if err := kv.Delete(ctx, "UA"); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, 5*time.Second, "the blocked agent's deletion seen", func() bool { _, ok := ids.cache.agent("UA"); return !ok })
	var got []string
	for len(revoked) > 0 {
		got = append(got, <-revoked)
	}
	if len(got) != 2 || got[0] != "UA c-UA" || got[1] != "UP c-UP" {
		t.Errorf("revocations %q, want [\"UA c-UA\" \"UP c-UP\"]", got)
	}
	put(agent("UA", contracts.ClientApproved))
	// A watch that ends leaves a cache that decides for no one, and does
	// not hold up a block or deletion of an agent it had as approved.
	put(agent("UC", contracts.ClientApproved))
	wctx, stopWatch := context.WithCancel(ctx)
	ended := &identities{kv: kv}
	if err := ended.watch(wctx, nil); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, 5*time.Second, "the second cache loaded", func() bool { _, ok := ended.cache.agent("UA"); return ok })
	stopWatch()
	natstest.Wait(t, 5*time.Second, "the ended cache out of use", func() bool { _, ok := ended.cache.agent("UA"); return !ok })
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	if err := ended.settle(short, "UC"); err != nil {
		t.Errorf("settle on an ended cache: %v, want at once (the bucket decides)", err)
	}
	cancelShort()
	if id, err := ended.forAuth(ctx, "UA"); err != nil || id.Hostname != "h" {
		t.Errorf("after the watch ended, a bucket read: %+v %v", id, err)
	}
	// Without a cache every read goes to the bucket and settle is immediate.
	plain := &identities{kv: kv}
	if err := plain.settle(ctx, "UA"); err != nil {
		t.Fatal(err)
	}
	if id, err := plain.forAuth(ctx, "UA"); err != nil || id.Hostname != "h" {
		t.Errorf("bucket read: %+v %v", id, err)
	}
}
