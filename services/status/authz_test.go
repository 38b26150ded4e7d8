package status

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
	"github.com/stewardhq/steward/services/internal/natstest"
	"github.com/stewardhq/steward/services/rbac"
)

// staticAuthz is an Authorizer holding a model the test sets.
type staticAuthz struct{ m atomic.Pointer[rbac.Model] }

func (a *staticAuthz) Model() *rbac.Model { return a.m.Load() }

func adminUser(name string, roles ...string) rbac.Admin {
	return rbac.Admin{Name: name, Kind: contracts.AdminUser, Key: "U" + strings.ToUpper(name), Roles: roles,
		Collections: []contracts.Named{rbac.AllSystems}, Created: time.Now(), CreatedBy: "test"}
}

// TestAuthz decides every operator endpoint for principals of several
// roles: a row per principal, endpoint and expected answer.
func TestAuthz(t *testing.T) {
	az := &staticAuthz{}
	srv := natstest.Start(t)
	cfg := testConfig(natstest.Connect(t, srv))
	cfg.NoAuthz, cfg.Authz = false, az
	startService(t, cfg)
	nc := natstest.Connect(t, srv)
	ctx := context.Background()

	// Before the model is loaded every request is refused.
	if _, err := client.New(nc, site, "alice").StatusCatalog(ctx); contracts.CodeOf(err) != contracts.CodeUnavailable {
		t.Fatalf("no model yet: got %v, want unavailable", err)
	}

	revoked := adminUser("rex", contracts.RoleFullAdministrator)
	revoked.Revoked = true
	scopedFull := adminUser("fran", contracts.RoleFullAdministrator)
	scopedFull.Collections = []contracts.Named{{ID: "C-web", Name: "Web"}}
	m, err := rbac.NewModel(rbac.Document{Admins: []rbac.Admin{
		adminUser("alice", contracts.RoleFullAdministrator),
		adminUser("ralph", contracts.RoleReadOnlyAnalyst),
		adminUser("otto", contracts.RoleOperationsAdministrator),
		adminUser("paula", contracts.RoleApplicationAdministrator),
		adminUser("nora"), // no role
		revoked,
		scopedFull,
	}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	az.m.Store(m)

	endpoints := map[string]func(c *client.Client, name string) error{
		"list": func(c *client.Client, _ string) error {
			_, err := c.StatusList(ctx, contracts.StatusListRequest{})
			return err
		},
		"components": func(c *client.Client, _ string) error { _, err := c.StatusComponents(ctx); return err },
		"rules-list": func(c *client.Client, _ string) error { _, err := c.StatusRulesList(ctx); return err },
		"rules-add": func(c *client.Client, name string) error {
			_, err := c.StatusRulesAdd(ctx, contracts.StatusRule{Name: "r-" + name, Match: "false", Action: contracts.RuleStore})
			return err
		},
		// An exec rule runs a command on the site, a webhook posts
		// anywhere: a Full Administrator over All Systems's alone, to add
		// and to delete (alice's rules, made first, are deleted).
		"rules-add-exec": func(c *client.Client, name string) error {
			_, err := c.StatusRulesAdd(ctx, contracts.StatusRule{Name: "exec-" + name, Match: "false", Action: contracts.RuleExec, Target: "/bin/true"})
			return err
		},
		"rules-add-webhook": func(c *client.Client, name string) error {
			_, err := c.StatusRulesAdd(ctx, contracts.StatusRule{Name: "hook-" + name, Match: "false", Action: contracts.RuleWebhook, Target: "http://127.0.0.1:9/"})
			return err
		},
		"rules-delete-exec": func(c *client.Client, _ string) error {
			_, err := c.StatusRulesDelete(ctx, "exec-alice")
			return err
		},
	}
	const ok, denied = contracts.Code(0), contracts.CodePermissionDenied
	tests := []struct {
		op       string
		endpoint string
		want     contracts.Code
	}{
		{"alice", "list", ok}, {"alice", "components", ok}, {"alice", "rules-list", ok}, {"alice", "rules-add", ok},
		{"ralph", "list", ok}, {"ralph", "components", ok}, {"ralph", "rules-list", ok}, {"ralph", "rules-add", denied},
		{"otto", "list", ok}, {"otto", "rules-add", ok},
		{"paula", "list", ok}, {"paula", "rules-list", ok}, {"paula", "rules-add", denied},
		{"nora", "list", denied}, {"nora", "rules-list", denied}, {"nora", "rules-add", denied},
		{"rex", "list", denied}, {"rex", "rules-add", denied},
		{"mallory", "list", denied}, {"mallory", "rules-add", denied},
		{"alice", "rules-add-exec", ok}, {"alice", "rules-add-webhook", ok},
		{"otto", "rules-add-exec", denied}, {"otto", "rules-add-webhook", denied}, {"otto", "rules-delete-exec", denied},
		{"fran", "rules-add", ok}, {"fran", "rules-add-exec", denied}, {"fran", "rules-delete-exec", denied},
		{"alice", "rules-delete-exec", ok},
	}
	for _, tt := range tests {
		err := endpoints[tt.endpoint](client.New(nc, site, tt.op), tt.op)
		got := ok
		if err != nil {
			got = contracts.CodeOf(err)
		}
		if got != tt.want {
			t.Errorf("%s %s: got %v (%v), want %v", tt.op, tt.endpoint, got, err, tt.want)
		}
	}
}
