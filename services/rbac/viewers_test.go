package rbac

import (
	"strings"
	"testing"

	"github.com/stewardhq/steward/contracts"
)

func TestParsePrincipal(t *testing.T) {
	tests := []struct {
		in   string
		want Principal
	}{
		{"alice", Principal{"", "alice"}},
		{`LAB\Alice`, Principal{"", "alice"}},
		{"alice@lab.example", Principal{"", "alice"}},
		{"group:Helpdesk", Principal{"group", "helpdesk"}},
		{`GROUP:LAB\Helpdesk`, Principal{"group", "helpdesk"}},
		{"user:bob", Principal{"user", "bob"}},
		{"  bob  ", Principal{"", "bob"}},
	}
	for _, tt := range tests {
		if got := ParsePrincipal(tt.in); got != tt.want {
			t.Errorf("ParsePrincipal(%q): got %+v, want %+v", tt.in, got, tt.want)
		}
	}
	if !SamePrincipal(`LAB\Helpdesk`, "helpdesk") || SamePrincipal("", "") || SamePrincipal("ann", "anne") {
		t.Error("SamePrincipal: wrong answer")
	}
}

// TestPermittedViewer: the Permitted Viewers list resolves to operators,
// their administrator groups and the client's local groups, comparing
// names case-insensitively with or without a domain; local administrators
// are permitted too (seed 000, Q287710).
func TestPermittedViewer(t *testing.T) {
	helpdesk := Admin{Name: "Helpdesk", Kind: contracts.AdminGroup, Roles: []string{contracts.RoleRemoteToolsOperator}, Collections: []contracts.Named{AllSystems}}
	rto := []string{contracts.RoleRemoteToolsOperator}
	alice := user("alice", rto, AllSystems)
	bob := user("bob", rto, AllSystems)
	bob.MemberOf = []string{"helpdesk"}
	carl := user("carl", rto, AllSystems)
	revoked := user("rory", rto, AllSystems)
	revoked.Revoked = true
	// An operator named like a client's built-in superuser cannot be made
	// now (contracts.ValidAdminName); one stored before is still no local
	// administrator.
	root := user("root", rto, AllSystems)
	administrator := user("Administrator", rto, AllSystems)
	m := mustModel(t, Document{Admins: []Admin{helpdesk, alice, bob, carl, revoked, root, administrator}})
	local := ClientPrincipals{
		Admins: []string{"root", `WEB01\Carl`, `WEB01\Administrator`, `BUILTIN\Administrators`},
		Groups: map[string][]string{"Support": {`LAB\Alice`}, "Ops": {"group:helpdesk"}, "Administrators": {`WEB01\Administrator`, "root"}},
	}
	tests := []struct {
		name    string
		op      string
		viewers []string
		ok      bool
		why     string
	}{
		{"by name", "alice", []string{"alice"}, true, "user alice"},
		{"by name with a domain", "alice", []string{`LAB\ALICE`}, true, "user alice"},
		{"by UPN", "alice", []string{"Alice@lab.example"}, true, "user alice"},
		{"not listed", "alice", []string{"bob"}, false, "not a permitted viewer"},
		{"empty list", "alice", nil, false, "not a permitted viewer"},
		{"through a Steward group", "bob", []string{"group:helpdesk"}, true, "administrator group helpdesk"},
		// The gotcha of seed 000: a domain-qualified group name must match.
		{"domain-qualified group", "bob", []string{`LAB\Helpdesk`}, true, "administrator group helpdesk"},
		{"a user: entry does not match a group", "bob", []string{"user:helpdesk"}, false, "not a permitted viewer"},
		{"a group: entry does not match a user", "alice", []string{"group:alice"}, false, "not a permitted viewer"},
		{"through a local group", "alice", []string{`WEB01\support`}, true, `local group "Support"`},
		{"through a local group holding a Steward group", "bob", []string{"Ops"}, true, `local group "Ops"`},
		{"local administrator", "carl", nil, true, "local administrator"},
		{"root is every Linux client's, nobody's", "root", nil, false, "not a permitted viewer"},
		{"Administrator is every Windows client's", "Administrator", nil, false, "not a permitted viewer"},
		{"but may be listed by name", "root", []string{"root"}, true, "user root"},
		{"nor through a local group holding it", "Administrator", []string{"Administrators"}, false, "not a permitted viewer"},
		{"revoked operator", "rory", []string{"rory"}, false, "revoked"},
		{"unknown operator", "zed", []string{"zed"}, false, "not an administrative user"},
	}
	for _, tt := range tests {
		ok, why := PermittedViewer(m, tt.op, tt.viewers, local)
		if ok != tt.ok || !strings.Contains(why, tt.why) {
			t.Errorf("%s: got %v %q, want %v containing %q", tt.name, ok, why, tt.ok, tt.why)
		}
	}
	if ok, _ := PermittedViewer(nil, "alice", []string{"alice"}, local); ok {
		t.Error("nil model: got permitted, want refused")
	}
	// What admitted the operator, for the agent's own check: the entry as
	// written, or the local administrator account as inventoried.
	for _, c := range []struct {
		op      string
		viewers []string
		via     string
	}{
		{"alice", []string{"bob", `LAB\ALICE`}, contracts.ViaViewer + `LAB\ALICE`},
		{"alice", []string{`WEB01\support`}, contracts.ViaViewer + `WEB01\support`},
		{"carl", nil, contracts.ViaAdmin + `WEB01\Carl`},
		{"alice", nil, ""},
	} {
		if _, _, via := PermittedVia(m, c.op, c.viewers, local); via != c.via {
			t.Errorf("%s with viewers %q: via %q, want %q", c.op, c.viewers, via, c.via)
		}
	}
}
