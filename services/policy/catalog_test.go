package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
)

var now = time.Date(2026, 11, 21, 14, 30, 0, 0, time.UTC)

func settings(name string, prio int, fn func(*contracts.SettingsSections)) contracts.Settings {
	s := contracts.Settings{Name: name, Priority: prio}
	if fn != nil {
		fn(&s.SettingsSections)
	}
	return s
}

func mustApply(t *testing.T, c *Catalog, s contracts.Settings) (*Catalog, contracts.SettingsInfo) {
	t.Helper()
	next, info, _, err := c.Apply(s, "alice", now)
	if err != nil {
		t.Fatalf("apply %s: %v", s.Name, err)
	}
	return next, info
}

func TestApplyCreateUpdateUnchanged(t *testing.T) {
	c := NewCatalog(now)
	s := settings("Lab remote tools", 10, func(ss *contracts.SettingsSections) {
		ss.RemoteTools = &contracts.RemoteToolsSettings{Enabled: ptr(true)}
	})
	c1, info, result, err := c.Apply(s, "alice", now)
	if err != nil || result != contracts.ApplyCreated || info.ID == "" || info.CreatedBy != "alice" {
		t.Fatalf("create: got %q %+v %v, want created with an id", result, info, err)
	}
	c2, _, result, err := c1.Apply(s, "bob", now)
	if err != nil || result != contracts.ApplyUnchanged || c2 != c1 {
		t.Fatalf("same again: got %q, %v (same catalog %v), want unchanged and the catalog as it was", result, err, c2 == c1)
	}
	s.RemoteTools.Enabled = ptr(false)
	c3, info3, result, err := c2.Apply(s, "bob", now)
	if err != nil || result != contracts.ApplyUpdated || info3.ID != info.ID || info3.UpdatedBy != "bob" {
		t.Fatalf("change: got %q %+v %v, want updated, same id", result, info3, err)
	}
	if got, _ := c3.Find("LAB REMOTE TOOLS"); *got.RemoteTools.Enabled {
		t.Fatalf("find by name in another case: got enabled, want the update")
	}
	// The original catalog was not changed in place.
	if got, _ := c1.Find(info.ID); !*got.RemoteTools.Enabled {
		t.Fatalf("apply changed the catalog it was given")
	}
	// An empty section reads as no section: not a change.
	s2 := s
	s2.Agent = &contracts.AgentSettings{}
	if _, _, result, _ := c3.Apply(s2, "bob", now); result != contracts.ApplyUnchanged {
		t.Fatalf("empty section: got %q, want unchanged", result)
	}
}

func TestApplyRefusals(t *testing.T) {
	c, _ := mustApply(t, NewCatalog(now), settings("A", 10, nil))
	cases := []struct {
		name string
		s    contracts.Settings
		code contracts.Code
		want string
	}{
		{"duplicate priority", settings("B", 10, nil), contracts.CodeConflict, `priority 10 is taken by settings object "A"`},
		{"priority 0", settings("B", 0, nil), contracts.CodeBadRequest, "priority: 0: must be 1 to 9999"},
		{"priority of the default", settings("B", 10000, nil), contracts.CodeBadRequest, "must be 1 to 9999"},
		{"bad level", settings("B", 11, func(s *contracts.SettingsSections) {
			s.RemoteTools = &contracts.RemoteToolsSettings{AccessLevel: ptr("fulll")}
		}), contracts.CodeBadRequest, `remoteTools.accessLevel: "fulll": must be one of full, view, none`},
		{"bad port", settings("B", 11, func(s *contracts.SettingsSections) {
			s.RemoteTools = &contracts.RemoteToolsSettings{TunnelPorts: ptr([]int{22, 70000})}
		}), contracts.CodeBadRequest, "remoteTools.tunnelPorts[1]: 70000"},
		{"repeated viewer", settings("B", 11, func(s *contracts.SettingsSections) {
			s.RemoteTools = &contracts.RemoteToolsSettings{PermittedViewers: ptr([]string{"alice", "Alice"})}
		}), contracts.CodeBadRequest, `permittedViewers[1]: "Alice" is listed twice`},
		{"heartbeat too short", settings("B", 11, func(s *contracts.SettingsSections) {
			s.Agent = &contracts.AgentSettings{Heartbeat: ptr(contracts.Duration(time.Millisecond))}
		}), contracts.CodeBadRequest, "agent.heartbeat: 1ms: must be 1s"},
		{"name with a control character", settings("B\x01", 11, nil), contracts.CodeBadRequest, "control character"},
		{"default with a priority", settings(contracts.DefaultSettingsName, 5, nil), contracts.CodeBadRequest, "always have priority 10000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := c.Apply(tc.s, "alice", now)
			if contracts.CodeOf(err) != tc.code || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v (%s), want %s containing %q", err, contracts.CodeOf(err), tc.code, tc.want)
			}
		})
	}
}

func TestDefaultSettings(t *testing.T) {
	c := NewCatalog(now)
	d := c.Default()
	if d == nil || !d.BuiltIn || d.Priority != contracts.DefaultSettingsPriority {
		t.Fatalf("got %+v, want the built-in default at priority %d", d, contracts.DefaultSettingsPriority)
	}
	// Applying the default changes what is given; the rest keeps the
	// factory value.
	s := settings(contracts.DefaultSettingsName, 0, func(s *contracts.SettingsSections) {
		s.Agent = &contracts.AgentSettings{Heartbeat: ptr(contracts.Duration(2 * time.Minute))}
	})
	c2, info, result, err := c.Apply(s, "alice", now)
	if err != nil || result != contracts.ApplyUpdated || info.ID != contracts.DefaultSettingsID {
		t.Fatalf("got %q %+v %v, want the default updated", result, info, err)
	}
	if got := c2.Default(); time.Duration(*got.Agent.Heartbeat) != 2*time.Minute || got.RemoteTools == nil || *got.RemoteTools.PromptUser != true {
		t.Fatalf("got %+v, want heartbeat 2m and factory remote tools", got.SettingsSections)
	}
	if _, _, err := c2.Delete(contracts.DefaultSettingsName, true); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("delete the default: got %v, want conflict", err)
	}
	if _, _, _, err := c2.Deploy(contracts.DefaultSettingsID, contracts.Named{ID: "c1", Name: "Web"}, "alice", now); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Fatalf("deploy the default: got %v, want bad_request", err)
	}
}

func TestDeployUndeployDelete(t *testing.T) {
	c, info := mustApply(t, NewCatalog(now), settings("A", 10, nil))
	web := contracts.Named{ID: "coll-web", Name: "Web"}
	c2, got, changed, err := c.Deploy("A", web, "alice", now)
	if err != nil || !changed || len(got.Deployments) != 1 || got.Deployments[0].Collection != web {
		t.Fatalf("deploy: got %+v %v %v", got, changed, err)
	}
	if !c2.Tracked("coll-web") || c.Tracked("coll-web") {
		t.Fatalf("tracked: got %v after and %v before, want true and false", c2.Tracked("coll-web"), c.Tracked("coll-web"))
	}
	if c3, _, changed, _ := c2.Deploy(info.ID, web, "bob", now); changed || c3 != c2 {
		t.Fatalf("deploy again: got changed %v, want unchanged", changed)
	}
	_, _, err = c2.Delete("A", false)
	if contracts.CodeOf(err) != contracts.CodeConflict || !strings.Contains(err.Error(), `deployed to "Web"`) {
		t.Fatalf("delete deployed: got %v, want conflict naming Web", err)
	}
	c4, after, err := c2.Undeploy("A", web, "alice", now)
	if err != nil || len(after.Deployments) != 0 || c4.Tracked("coll-web") {
		t.Fatalf("undeploy: got %+v %v", after, err)
	}
	// By ID only: a collection that took the name Web since is another.
	_, _, err = c2.Undeploy("A", contracts.Named{ID: "coll-new", Name: "Web"}, "alice", now)
	if contracts.CodeOf(err) != contracts.CodeNotFound || err.Error() != "A is not deployed to Web (coll-new) (deployed to: Web (coll-web))" {
		t.Fatalf("undeploy from another collection named Web: got %v, want not_found", err)
	}
	c5, deleted, err := c2.Delete("A", true)
	if err != nil || deleted.ID != info.ID || len(c5.Settings) != 1 {
		t.Fatalf("force delete: got %+v %v, %d objects left", deleted, err, len(c5.Settings))
	}
}

func TestCatalogRoundTrip(t *testing.T) {
	c, _ := mustApply(t, NewCatalog(now), settings("A", 10, func(s *contracts.SettingsSections) {
		s.RemoteTools = &contracts.RemoteToolsSettings{PermittedViewers: ptr([]string{})}
	}))
	back, err := DecodeCatalog(c.Encode())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := back.Find("A")
	if a.RemoteTools.PermittedViewers == nil || len(*a.RemoteTools.PermittedViewers) != 0 {
		t.Fatalf("got viewers %v, want configured and empty", a.RemoteTools.PermittedViewers)
	}
	if _, err := DecodeCatalog([]byte(`{"schema": 99}`)); err == nil {
		t.Fatalf("newer schema: got nil error, want a refusal")
	}
	var raw map[string]any
	_ = json.Unmarshal(c.Encode(), &raw)
	if raw["schema"].(float64) != CatalogSchema {
		t.Fatalf("got schema %v", raw["schema"])
	}
}

// TestNamesThatReadAsIDs: a settings object may not be named like the
// Default Client Settings' id or like a settings id (settings show/delete
// default-client-settings reached the built-in, not the object named so).
// A catalog holding such a name from before answers the reference as
// ambiguous rather than with the object that has the id.
func TestNamesThatReadAsIDs(t *testing.T) {
	c := NewCatalog(now)
	for _, name := range []string{"default-client-settings", "Default-Client-Settings", "0f3c2a9e-5b1d-4c7e-9a8b-2d6f1e4c3b7a"} {
		_, _, _, err := c.Apply(settings(name, 10, nil), "alice", now)
		if contracts.CodeOf(err) != contracts.CodeBadRequest || !strings.Contains(err.Error(), "name: ") || !strings.Contains(err.Error(), "choose another name") {
			t.Errorf("apply %q: got %v, want bad_request on the name", name, err)
		}
	}
	legacy, err := DecodeCatalog([]byte(`{"schema":1,"settings":[
		{"name":"Default Client Settings","priority":10000,"id":"default-client-settings","builtIn":true,"created":"2026-01-01T00:00:00Z","createdBy":"site"},
		{"name":"default-client-settings","priority":10,"id":"7d1c7f0e-2f4a-4b8e-9c61-3a5e2b9d4f10","created":"2026-01-01T00:00:00Z","createdBy":"alice"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := legacy.Find("default-client-settings"); contracts.CodeOf(err) != contracts.CodeAmbiguous || !strings.Contains(err.Error(), "7d1c7f0e-2f4a-4b8e-9c61-3a5e2b9d4f10") {
		t.Fatalf("find default-client-settings: got %v, want ambiguous naming the other's id", err)
	}
	if _, _, err := legacy.Delete("default-client-settings", true); contracts.CodeOf(err) != contracts.CodeAmbiguous {
		t.Fatalf("delete default-client-settings: got %v, want ambiguous", err)
	}
	if got, err := legacy.Find(contracts.DefaultSettingsName); err != nil || !got.BuiltIn {
		t.Fatalf("find by the built-in's name: %+v %v", got, err)
	}
	if got, err := legacy.Find("7d1c7f0e-2f4a-4b8e-9c61-3a5e2b9d4f10"); err != nil || got.Name != "default-client-settings" {
		t.Fatalf("find the other by its id: %+v %v", got, err)
	}
	if _, _, err := legacy.Delete("7d1c7f0e-2f4a-4b8e-9c61-3a5e2b9d4f10", false); err != nil {
		t.Fatalf("delete the other by its id: %v", err)
	}
}
