package replication

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// TestOperatorActionsAudited: every operator action on the library is an
// audit status message naming who did it: create, deploy, undeploy,
// distribute, route set and delete, delete, quarantine delete.
func TestOperatorActionsAudited(t *testing.T) {
	par := newSite(t, "PAR", nil)
	chd := newSite(t, "CHD", par)
	p, c := par.start(), chd.start()
	ctx := context.Background()
	createVersion(t, p, "tools", "1.0", []testFile{{path: "a", data: randomBytes(100)}})
	web := contracts.Named{ID: "c-web", Name: "Web"}
	if _, _, err := p.Deploy(ctx, "tools", "1.0", web, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Undeploy(ctx, "tools", "1.0", web, "carol"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Undeploy(ctx, "tools", "1.0", web, "carol"); contracts.CodeOf(err) != contracts.CodeNotFound || !strings.Contains(err.Error(), `collection "Web"`) {
		t.Fatalf("undeploy again: %v, want not_found naming the collection Web", err)
	}
	chd.waitInterest("steward.CHD.site.PAR.repl.offer")
	par.waitInterest("steward.CHD.site.PAR.repl.offer")
	if _, err := p.Distribute(ctx, "tools", "1.0", []string{"CHD"}, "dave"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SetRoute(ctx, "CHD", 2<<20, "", "erin"); err != nil {
		t.Fatal(err)
	}
	waitJob(t, p, "tools", "1.0", "CHD", contracts.ContentInstalled)
	if err := p.DeleteRoute(ctx, "CHD", "hank"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Delete(ctx, "tools", "1.0", "frank"); err != nil {
		t.Fatal(err)
	}
	// A quarantined offer at the child, deleted by its operator.
	if err := c.quarantine(ctx, QuarantineEntry{QuarantineInfo: contracts.QuarantineInfo{What: QuarantineOffer, From: "PAR"}}, reject(contracts.CodeBadRequest, "test"), []byte("x"), true); err == nil {
		t.Fatal("quarantine: want the sender's error")
	}
	q, err := c.Quarantined(ctx)
	if err != nil || len(q) != 1 {
		t.Fatalf("quarantine: %v %v", q, err)
	}
	if err := c.DeleteQuarantined(ctx, q[0].ID, "gina"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.quarantineKV.Get(ctx, quarantineDataKey(q[0].ID)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("the entry's data outlives it: %v", err)
	}
	if _, err := c.QuarantinedEntry(ctx, q[0].ID); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("show a deleted entry: got %v, want not_found", err)
	}
	// An entry written before data and entry were split still lists and
	// shows.
	old, _ := json.Marshal(QuarantineEntry{QuarantineInfo: contracts.QuarantineInfo{ID: "0195a3c4-0000-7000-8000-0000000000a1", What: QuarantineOffer, From: "PAR"}, Data: []byte("inline")})
	if _, err := c.quarantineKV.Put(ctx, quarantineKey("0195a3c4-0000-7000-8000-0000000000a1"), old); err != nil {
		t.Fatal(err)
	}
	if q, err := c.Quarantined(ctx); err != nil || len(q) != 1 || q[0].Data != nil {
		t.Fatalf("list with an old entry: %+v, %v", q, err)
	}
	if e, err := c.QuarantinedEntry(ctx, "0195a3c4-0000-7000-8000-0000000000a1"); err != nil || string(e.Data) != "inline" {
		t.Fatalf("show an old entry: %+v, %v", e, err)
	}

	for _, want := range []struct {
		em  *recEmitter
		id  int
		by  string
		arg string
	}{
		{par.emit, contracts.StatusPackageCreated, "alice", "tools"},
		{par.emit, contracts.StatusPackageDeployed, "bob", "Web"},
		{par.emit, contracts.StatusPackageUndeployed, "carol", "Web"},
		{par.emit, contracts.StatusPackageDistributed, "dave", "CHD"},
		{par.emit, contracts.StatusRouteSet, "erin", "2097152 bytes/s"},
		{par.emit, contracts.StatusPackageDeleted, "frank", "1.0"},
		{chd.emit, contracts.StatusQuarantineDeleted, "gina", "PAR"},
		{par.emit, contracts.StatusRouteDeleted, "hank", "CHD"},
	} {
		m, ok := want.em.last(want.id)
		d, _ := contracts.LookupStatus(want.id)
		if !ok || m.Properties["by"] != want.by || !m.Audit || !containsValue(m.Properties, want.arg) {
			t.Errorf("status %d (%s): got %+v (sent %v), want audit by %s naming %s", want.id, d.Text, m.Properties, ok, want.by, want.arg)
		}
	}
}

func containsValue(props map[string]string, v string) bool {
	for _, p := range props {
		if p == v {
			return true
		}
	}
	return false
}
