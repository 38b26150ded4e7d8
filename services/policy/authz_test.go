package policy

import (
	"strings"
	"testing"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/rbac"
)

// staticAuthz is an RBAC model that does not change.
type staticAuthz struct{ m *rbac.Model }

func (s staticAuthz) Model() *rbac.Model { return s.m }

var (
	pilot = contracts.Named{ID: "coll-pilot", Name: "Pilot"}
	web   = contracts.Named{ID: "coll-web", Name: "Web"}
)

// startScopedSite runs the service with authorization: alice is a Full
// Administrator over All Systems, pat an Operations Administrator scoped
// to Pilot.
func startScopedSite(t *testing.T) *testSite {
	t.Helper()
	m, err := rbac.NewModel(rbac.Document{Schema: rbac.Schema, Admins: []rbac.Admin{
		{Name: "alice", Kind: contracts.AdminUser, Key: "UALICE", Roles: []string{contracts.RoleFullAdministrator}, Collections: []contracts.Named{rbac.AllSystems}},
		{Name: "pat", Kind: contracts.AdminUser, Key: "UPAT", Roles: []string{contracts.RoleOperationsAdministrator}, Collections: []contracts.Named{pilot}},
	}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	ts := startTestSite(t, 1, func(c *Config) { c.NoAuthz, c.Authz = false, staticAuthz{m} })
	ts.dir.set(pilot, []string{"p1", "p2"})
	ts.dir.set(web, []string{"w1", "w2", "w3"})
	return ts
}

func applyReq(s contracts.Settings) contracts.SettingsApplyRequest {
	return contracts.SettingsApplyRequest{Header: contracts.NewHeader(contracts.TypeSettingsApplyRequest), Settings: s}
}

func settingsReq(ref string, force bool) contracts.SettingsRequest {
	return contracts.SettingsRequest{Header: contracts.NewHeader(contracts.TypeSettingsRequest), Ref: ref, Force: force}
}

// wantDenied fails unless err is permission_denied and names want.
func wantDenied(t *testing.T, what string, err error, want string) {
	t.Helper()
	if contracts.CodeOf(err) != contracts.CodePermissionDenied || !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: got %v, want permission_denied naming %s", what, err, want)
	}
}

// TestScopedOperatorReachesOnlyItsCollections: an operator scoped to Pilot
// may create settings objects and change or delete those deployed only
// within Pilot; changing or deleting (--force) one deployed to Web, or
// changing the Default Client Settings (every client), is refused naming
// the collection, and nothing changes. Apply and delete checked only
// ClientSettings:Modify/Delete, so pat could rewrite Web's policy.
func TestScopedOperatorReachesOnlyItsCollections(t *testing.T) {
	ts := startScopedSite(t)
	rt := func(enabled bool, viewers ...string) contracts.SettingsSections {
		return contracts.SettingsSections{RemoteTools: &contracts.RemoteToolsSettings{Enabled: ptr(enabled), PermittedViewers: &viewers}}
	}
	webTools := contracts.Settings{Name: "Web tools", Priority: 10, SettingsSections: rt(true, "alice")}
	ts.apply(t, webTools)
	ts.deploy(t, contracts.KindSettingsDeploy, "Web tools", "Web")
	ts.apply(t, contracts.Settings{Name: "Pilot view", Priority: 20, SettingsSections: rt(true)})
	ts.deploy(t, contracts.KindSettingsDeploy, "Pilot view", "Pilot")
	ts.apply(t, contracts.Settings{Name: "Both", Priority: 30, SettingsSections: rt(false)})
	ts.deploy(t, contracts.KindSettingsDeploy, "Both", "Pilot")
	ts.deploy(t, contracts.KindSettingsDeploy, "Both", "Web")

	var ar contracts.SettingsApplyResponse
	var sr contracts.SettingsResponse
	// Changing an object deployed to Web (permitted viewers for Web's clients).
	hijack := webTools
	hijack.SettingsSections = rt(true, "pat")
	wantDenied(t, "pat changes Web tools", ts.opAs("pat", contracts.KindSettingsApply, applyReq(hijack), &ar), `collection "Web"`)
	wantDenied(t, "pat changes Both", ts.opAs("pat", contracts.KindSettingsApply, applyReq(contracts.Settings{Name: "both", Priority: 30, SettingsSections: rt(true)}), &ar), `collection "Web"`)
	// The Default Client Settings reach every client.
	wantDenied(t, "pat changes the defaults", ts.opAs("pat", contracts.KindSettingsApply,
		applyReq(contracts.Settings{Name: contracts.DefaultSettingsName, SettingsSections: rt(true)}), &ar), `collection "All Systems"`)
	// delete --force undeploys from Web.
	wantDenied(t, "pat deletes Web tools --force", ts.opAs("pat", contracts.KindSettingsDelete, settingsReq("Web tools", true), &sr), `collection "Web"`)
	wantDenied(t, "pat deletes Both --force", ts.opAs("pat", contracts.KindSettingsDelete, settingsReq("Both", true), &sr), `collection "Web"`)

	// Nothing changed: Web's clients have alice as their viewer, the
	// defaults are the built-in ones, both objects are there.
	for _, id := range []string{"w1", "w2", "w3"} {
		if p, ok := ts.agents.get(id); !ok || !enabled(p) || (*p.Settings.RemoteTools.PermittedViewers)[0] != "alice" {
			t.Fatalf("%s after the refusals: %+v", id, p.Settings.RemoteTools)
		}
	}
	if err := ts.opAs("alice", contracts.KindSettingsShow, settingsReq(contracts.DefaultSettingsID, false), &sr); err != nil || *sr.Settings.RemoteTools.Enabled {
		t.Fatalf("the defaults after pat's refused change: %v, %+v", err, sr.Settings.RemoteTools)
	}
	for _, ref := range []string{"Web tools", "Both"} {
		if err := ts.opAs("alice", contracts.KindSettingsShow, settingsReq(ref, false), &sr); err != nil {
			t.Fatalf("%s after pat's refused delete: %v", ref, err)
		}
	}

	// Within Pilot pat may change and delete; a new object needs only Create.
	if err := ts.opAs("pat", contracts.KindSettingsApply, applyReq(contracts.Settings{Name: "Pilot view", Priority: 20, SettingsSections: rt(false)}), &ar); err != nil || ar.Result != contracts.ApplyUpdated || ar.Clients != 2 {
		t.Fatalf("pat changes Pilot view: %+v, %v; want updated for 2 clients", ar, err)
	}
	if err := ts.opAs("pat", contracts.KindSettingsApply, applyReq(contracts.Settings{Name: "Pat's new", Priority: 40, SettingsSections: rt(true)}), &ar); err != nil || ar.Result != contracts.ApplyCreated {
		t.Fatalf("pat creates an object: %+v, %v", ar, err)
	}
	if err := ts.opAs("pat", contracts.KindSettingsDelete, settingsReq("Pat's new", false), &sr); err != nil {
		t.Fatalf("pat deletes its undeployed object: %v", err)
	}
	if err := ts.opAs("pat", contracts.KindSettingsDelete, settingsReq("Pilot view", true), &sr); err != nil || sr.Clients != 2 {
		t.Fatalf("pat deletes Pilot view --force: %+v, %v; want 2 clients changed", sr, err)
	}
	// alice (All Systems) may do all of it.
	if err := ts.opAs("alice", contracts.KindSettingsDelete, settingsReq("Both", true), &sr); err != nil {
		t.Fatalf("alice deletes Both --force: %v", err)
	}
}
