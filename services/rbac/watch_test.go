package rbac

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// TestWatcher: a watcher started before the bucket exists fails closed,
// then follows every change, and clears the model when it is unreadable.
func TestWatcher(t *testing.T) {
	s := natstest.Start(t)
	nc := natstest.Connect(t, s)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	w, err := Watch(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if w.Model() != nil {
		t.Fatal("model before the bucket exists: got one, want nil")
	}
	if err := w.Model().Allowed("ann", SiteRead, Anywhere()); contracts.CodeOf(err) != contracts.CodeUnavailable {
		t.Fatalf("authorising without a model: got %v, want unavailable", err)
	}
	natstest.Wait(t, 5*time.Second, "the watcher to report the missing bucket", func() bool { return w.Err() != nil })

	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: Bucket})
	if err != nil {
		t.Fatal(err)
	}
	doc := Document{Admins: []Admin{user("ann", []string{contracts.RoleFullAdministrator}, AllSystems)}}
	rev, err := kv.Create(ctx, ModelKey, Encode(doc))
	if err != nil {
		t.Fatal(err)
	}
	m, err := w.Wait(ctx, rev)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Allowed("ann", SiteModify, Anywhere()); err != nil {
		t.Fatalf("ann: got %v, want allowed", err)
	}
	if w.Err() != nil {
		t.Fatalf("Err after loading: got %v, want nil", w.Err())
	}

	doc.Admins = append(doc.Admins, user("bo", []string{contracts.RoleReadOnlyAnalyst}, AllSystems))
	rev2, err := kv.Update(ctx, ModelKey, Encode(doc), rev)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := w.Wait(ctx, rev2)
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Allowed("bo", SiteRead, Anywhere()); err != nil {
		t.Fatalf("bo after the update: got %v, want allowed", err)
	}
	if err := m.Allowed("bo", SiteRead, Anywhere()); err == nil {
		t.Fatal("the old snapshot changed: got bo allowed, want the snapshot immutable")
	}

	if _, err := kv.Put(ctx, ModelKey, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, 5*time.Second, "an unreadable model to clear the snapshot", func() bool { return w.Model() == nil && w.Err() != nil })

	cancel()
	select {
	case <-w.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("watcher did not stop with its context")
	}
}
