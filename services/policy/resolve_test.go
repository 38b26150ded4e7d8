package policy

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// TestResolvePrecedence checks, setting by setting, that the lowest
// priority configuring a setting wins it, that a setting left out never
// overrides, and that each value names the object it came from.
func TestResolvePrecedence(t *testing.T) {
	c := NewCatalog(now)
	var lab, strict, other contracts.SettingsInfo
	c, lab = mustApply(t, c, settings("Lab", 10, func(s *contracts.SettingsSections) {
		s.RemoteTools = &contracts.RemoteToolsSettings{Enabled: ptr(true), AccessLevel: ptr("view"), PermittedViewers: ptr([]string{"alice"})}
	}))
	c, strict = mustApply(t, c, settings("Strict", 5, func(s *contracts.SettingsSections) {
		s.RemoteTools = &contracts.RemoteToolsSettings{AccessLevel: ptr("full"), PermittedViewers: ptr([]string{})}
		s.Agent = &contracts.AgentSettings{Heartbeat: ptr(contracts.Duration(10 * time.Second))}
	}))
	c, other = mustApply(t, c, settings("Other", 1, func(s *contracts.SettingsSections) {
		s.RemoteTools = &contracts.RemoteToolsSettings{Enabled: ptr(false)}
	}))
	for _, d := range []struct{ ref, coll string }{{"Lab", "web"}, {"Strict", "web"}, {"Strict", "db"}, {"Other", "elsewhere"}} {
		var err error
		if c, _, _, err = c.Deploy(d.ref, contracts.Named{ID: d.coll, Name: d.coll}, "alice", now); err != nil {
			t.Fatal(err)
		}
	}
	def := contracts.Named{ID: contracts.DefaultSettingsID, Name: contracts.DefaultSettingsName}
	named := func(i contracts.SettingsInfo) contracts.Named { return contracts.Named{ID: i.ID, Name: i.Name} }

	rows := []struct {
		name  string
		colls []string
		path  string
		value string
		from  contracts.Named
	}{
		{"lab alone: its value", []string{"web-only-lab"}, "remoteTools.enabled", "false", def},
		{"lab wins enabled (strict leaves it out)", []string{"web"}, "remoteTools.enabled", "true", named(lab)},
		{"strict wins the level (priority 5 < 10)", []string{"web"}, "remoteTools.accessLevel", `"full"`, named(strict)},
		{"an empty list configured wins", []string{"web"}, "remoteTools.permittedViewers", `[]`, named(strict)},
		{"default fills what nobody sets", []string{"web"}, "remoteTools.promptUser", "true", def},
		{"not configured anywhere", []string{"web"}, "agent.inventory", "null", contracts.Named{}},
		{"strict's agent section", []string{"db"}, "agent.heartbeat", `"10s"`, named(strict)},
		{"no collections: default only", nil, "remoteTools.accessLevel", `"full"`, def},
		{"other collection only", []string{"elsewhere"}, "remoteTools.enabled", "false", named(other)},
		{"priority 1 beats 10", []string{"web", "elsewhere"}, "remoteTools.enabled", "false", named(other)},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			res := c.Resolve(r.colls)
			var got *contracts.PolicyValue
			for _, v := range res.Values() {
				if v.Setting == r.path {
					v := v
					got = &v
				}
			}
			if got == nil {
				t.Fatalf("setting %s: not in the resultant policy", r.path)
			}
			if string(got.Value) != r.value {
				t.Errorf("%s: got value %s, want %s", r.path, got.Value, r.value)
			}
			switch {
			case r.from == (contracts.Named{}) && got.From != nil:
				t.Errorf("%s: got from %+v, want none (not configured)", r.path, *got.From)
			case r.from != (contracts.Named{}) && (got.From == nil || *got.From != r.from):
				t.Errorf("%s: got from %+v, want %+v", r.path, got.From, r.from)
			}
		})
	}

	// Every setting is listed, in a fixed order.
	if got, want := len(c.Resolve(nil).Values()), len(contracts.SettingPaths()); got != want || want != 18 {
		t.Fatalf("got %d values, want %d (18 settings)", got, want)
	}
}

func TestResolveHash(t *testing.T) {
	c, _ := mustApply(t, NewCatalog(now), settings("A", 10, func(s *contracts.SettingsSections) {
		s.RemoteTools = &contracts.RemoteToolsSettings{Enabled: ptr(true)}
	}))
	c, _, _, _ = c.Deploy("A", contracts.Named{ID: "web", Name: "Web"}, "alice", now)
	in, out := c.Resolve([]string{"web"}), c.Resolve(nil)
	if in.Hash == out.Hash {
		t.Fatalf("a client in and one out of the collection: got the same hash")
	}
	if again := c.Resolve([]string{"web"}); again.Hash != in.Hash {
		t.Fatalf("resolving twice: got two hashes")
	}
	// A change to another client's settings leaves this one's hash alone.
	c2, _ := mustApply(t, c, settings("B", 11, func(s *contracts.SettingsSections) {
		s.RemoteTools = &contracts.RemoteToolsSettings{Enabled: ptr(false)}
	}))
	if c2.Resolve([]string{"web"}).Hash != in.Hash {
		t.Fatalf("an undeployed object changed the hash")
	}
	// The signed body carries the values and their origins.
	p := in.Policy("LAB", "c1", 7, now, time.Hour)
	data, _ := json.Marshal(p)
	var back contracts.Policy
	if err := json.Unmarshal(data, &back); err != nil || back.Revision != 7 || !back.Expires.Equal(now.Add(time.Hour)) ||
		!*back.Settings.RemoteTools.Enabled || back.Origins["remoteTools.enabled"].Name != "A" {
		t.Fatalf("got %+v %v", back, err)
	}
}

func TestComplianceState(t *testing.T) {
	for _, tc := range []struct {
		rev  uint64
		rec  *complianceRecord
		want string
	}{
		{0, &complianceRecord{AppliedRevision: 1}, contracts.ComplianceUnknown},
		{5, nil, contracts.ComplianceUnknown},
		{5, &complianceRecord{AppliedRevision: 5}, contracts.ComplianceApplied},
		{5, &complianceRecord{AppliedRevision: 6}, contracts.ComplianceApplied},
		{5, &complianceRecord{AppliedRevision: 4}, contracts.CompliancePending},
		{5, &complianceRecord{AppliedRevision: 4, RejectedRevision: 5, Reason: "expired"}, contracts.ComplianceFailed},
		{5, &complianceRecord{AppliedRevision: 4, RejectedRevision: 3}, contracts.CompliancePending},
	} {
		if got, _ := complianceState(tc.rev, tc.rec); got != tc.want {
			t.Errorf("revision %d, report %+v: got %s, want %s", tc.rev, tc.rec, got, tc.want)
		}
	}
}
