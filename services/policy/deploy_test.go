package policy

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

func deployReq(ref, coll string) contracts.SettingsDeployRequest {
	return contracts.SettingsDeployRequest{Header: contracts.NewHeader(contracts.TypeSettingsDeployRequest), Ref: ref, Collection: coll}
}

// storedCatalog is the catalog as the bucket holds it.
func (ts *testSite) storedCatalog(t *testing.T) *Catalog {
	t.Helper()
	kv, err := ts.js.KeyValue(context.Background(), SettingsBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), CatalogKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := DecodeCatalog(e.Value())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestUndeployResolvesTheCollectionFirst: after Frontend is renamed Web
// and a new collection takes the name Frontend, undeploy --collection
// Frontend means the new collection, where nothing is deployed (it
// removed the deployment from Web: the name stored at deploy time was
// matched before discovery was asked). A deleted collection's deployment
// is still found by its stored name. The renamed collection shows its
// new name in show, list and clients policy, and a resync stores it.
func TestUndeployResolvesTheCollectionFirst(t *testing.T) {
	ts := startTestSite(t, 1)
	ts.dir.set(contracts.Named{ID: "coll-fe", Name: "Frontend"}, []string{"f1", "f2"})
	ts.apply(t, contracts.Settings{Name: "Lab remote tools", Priority: 10, SettingsSections: contracts.SettingsSections{
		RemoteTools: &contracts.RemoteToolsSettings{Enabled: ptr(true)}}})
	ts.deploy(t, contracts.KindSettingsDeploy, "Lab remote tools", "Frontend")
	natstest.Wait(t, 10*time.Second, "f1's policy", func() bool { p, ok := ts.agents.get("f1"); return ok && enabled(p) })

	// collections update Frontend --name Web; collections create Frontend.
	ts.dir.set(contracts.Named{ID: "coll-fe", Name: "Web"}, []string{"f1", "f2"})
	ts.dir.set(contracts.Named{ID: "coll-fe2", Name: "Frontend"}, []string{"n1"})

	var resp contracts.SettingsDeployResponse
	err := ts.op(contracts.KindSettingsUndeploy, deployReq("Lab remote tools", "Frontend"), &resp)
	if contracts.CodeOf(err) != contracts.CodeNotFound || !strings.Contains(err.Error(), "Lab remote tools is not deployed to Frontend") || !strings.Contains(err.Error(), "deployed to: Web") {
		t.Fatalf("undeploy from the new Frontend: got %v (%+v), want not_found: not deployed to Frontend (deployed to: Web)", err, resp)
	}
	// (The record, not the push: a push of its loss would come later.)
	if e, ok := ts.svcs[0].model.client("f1"); !ok || !slices.Contains(e.rec.Collections, "coll-fe") {
		t.Fatalf("f1 lost its settings: in collections %v", e.rec.Collections)
	}

	// Show, list and clients policy name the collection as discovery does now.
	var sr contracts.SettingsResponse
	if err := ts.op(contracts.KindSettingsShow, settingsReq("Lab remote tools", false), &sr); err != nil || len(sr.Settings.Deployments) != 1 || sr.Settings.Deployments[0].Collection.Name != "Web" {
		t.Fatalf("show: %v %+v, want deployed to Web", err, sr.Settings.Deployments)
	}
	var lr contracts.SettingsListResponse
	if err := ts.op(contracts.KindSettingsList, contracts.SettingsListRequest{Header: contracts.NewHeader(contracts.TypeSettingsListRequest)}, &lr); err != nil || lr.Settings[0].Deployments[0].Collection.Name != "Web" {
		t.Fatalf("list: %v %+v, want deployed to Web", err, lr.Settings[0].Deployments)
	}
	var cp contracts.ClientPolicyResponse
	if err := ts.op(contracts.KindClientsPolicy, contracts.ClientPolicyRequest{Header: contracts.NewHeader(contracts.TypeClientPolicyRequest), Ref: "f1"}, &cp); err != nil || len(cp.Collections) != 1 || cp.Collections[0].Name != "Web" {
		t.Fatalf("clients policy: %v %+v, want Web", err, cp.Collections)
	}
	// A resync asks discovery anyway: the stored name becomes Web.
	if !ts.svcs[0].resync(context.Background(), true) {
		t.Fatal("resync incomplete")
	}
	if d := ts.storedCatalog(t).Named("Lab remote tools").Deployments[0].Collection; d != (contracts.Named{ID: "coll-fe", Name: "Web"}) {
		t.Fatalf("stored deployment after the resync: %+v, want coll-fe named Web", d)
	}

	// By its name now, the deployment goes.
	if r := ts.deploy(t, contracts.KindSettingsUndeploy, "Lab remote tools", "Web"); r.Result != contracts.DeployUndeployed || r.Collection.ID != "coll-fe" || r.Clients != 2 {
		t.Fatalf("undeploy from Web: %+v", r)
	}

	// A collection deleted since the deployment: discovery does not know
	// it, and the deployment is found by the name it stored.
	ts.dir.set(contracts.Named{ID: "coll-old", Name: "Old"}, []string{"o1"})
	ts.deploy(t, contracts.KindSettingsDeploy, "Lab remote tools", "Old")
	ts.dir.mu.Lock()
	delete(ts.dir.colls, "coll-old")
	ts.dir.mu.Unlock()
	if r := ts.deploy(t, contracts.KindSettingsUndeploy, "Lab remote tools", "old"); r.Result != contracts.DeployUndeployed || r.Collection.ID != "coll-old" {
		t.Fatalf("undeploy from the deleted Old: %+v", r)
	}
	err = ts.op(contracts.KindSettingsUndeploy, deployReq("Lab remote tools", "Gone"), &resp)
	if contracts.CodeOf(err) != contracts.CodeNotFound || !strings.Contains(err.Error(), `unknown collection "Gone"`) {
		t.Fatalf("undeploy from a collection nobody knows: got %v, want not_found", err)
	}
}

// TestUndeployWhereNotDeployed: undeploying from a collection the object
// is not deployed to is not_found, naming where it is deployed. It said
// "unchanged ... 0 clients got a new policy" and exit 0.
func TestUndeployWhereNotDeployed(t *testing.T) {
	ts := startTestSite(t, 1)
	ts.dir.set(pilot, []string{"p1"})
	ts.dir.set(web, []string{"w1"})
	ts.apply(t, contracts.Settings{Name: "Pilot view", Priority: 20})
	var resp contracts.SettingsDeployResponse
	err := ts.op(contracts.KindSettingsUndeploy, deployReq("Pilot view", "Web"), &resp)
	if contracts.CodeOf(err) != contracts.CodeNotFound || err.Error() != "Pilot view is not deployed to Web (it is deployed to no collection)" {
		t.Fatalf("undeploy, deployed nowhere: got %v, want not_found", err)
	}
	ts.deploy(t, contracts.KindSettingsDeploy, "Pilot view", "Pilot")
	err = ts.op(contracts.KindSettingsUndeploy, deployReq("Pilot view", "Web"), &resp)
	if contracts.CodeOf(err) != contracts.CodeNotFound || err.Error() != "Pilot view is not deployed to Web (deployed to: Pilot)" {
		t.Fatalf("undeploy from Web: got %v, want not_found naming Pilot", err)
	}
}
