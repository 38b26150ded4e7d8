package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

// TestPolicyAuthorization decides every policy endpoint for operators of
// the built-in roles, scoped to All Systems or to one collection: each row
// is a principal, an action and the expected answer.
func TestPolicyAuthorization(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	admin := rs.operator(t)
	tok := rs.token(t, 2, time.Hour)
	enrolledAgent(t, rs, admin, tok, "web-01")
	enrolledAgent(t, rs, admin, tok, "db-01")
	rs.cli(t, "collections", "create", "Web", "--member", "web-01")
	rs.cli(t, "collections", "create", "DB", "--member", "db-01")
	rs.cli(t, "settings", "apply", "-f", settingsFile(t, "name: Base\npriority: 100\n"))

	ops := rs.addOperator(t, admin, "ops", []string{contracts.RoleOperationsAdministrator}, []string{"Web"})
	analyst := rs.addOperator(t, admin, "analyst", []string{contracts.RoleReadOnlyAnalyst}, []string{contracts.AllSystemsName})
	apps := rs.addOperator(t, admin, "apps", []string{contracts.RoleApplicationAdministrator}, []string{contracts.AllSystemsName})
	remote := rs.addOperator(t, admin, "remote", []string{contracts.RoleRemoteToolsOperator}, []string{contracts.AllSystemsName})

	n := 0
	newSettings := func() contracts.Settings {
		n++
		return contracts.Settings{Name: "S" + string(rune('a'+n)), Priority: 200 + n}
	}
	actions := map[string]func(c *client.Client) error{
		"apply new": func(c *client.Client) error { _, err := c.SettingsApply(ctx(t), newSettings()); return err },
		"apply existing": func(c *client.Client) error {
			_, err := c.SettingsApply(ctx(t), contracts.Settings{Name: "Base", Priority: 100})
			return err
		},
		"list":              func(c *client.Client) error { _, err := c.SettingsList(ctx(t)); return err },
		"deploy to Web":     func(c *client.Client) error { _, err := c.SettingsDeploy(ctx(t), "Base", "Web"); return err },
		"deploy to DB":      func(c *client.Client) error { _, err := c.SettingsDeploy(ctx(t), "Base", "DB"); return err },
		"undeploy from Web": func(c *client.Client) error { _, err := c.SettingsUndeploy(ctx(t), "Base", "Web"); return err },
		"compliance":        func(c *client.Client) error { _, err := c.SettingsCompliance(ctx(t), "Base", false); return err },
		"policy of web-01":  func(c *client.Client) error { _, err := c.ClientPolicy(ctx(t), "web-01"); return err },
		"policy of db-01":   func(c *client.Client) error { _, err := c.ClientPolicy(ctx(t), "db-01"); return err },
		"delete":            func(c *client.Client) error { _, err := c.SettingsDelete(ctx(t), "Base", true); return err },
	}
	const ok, denied, notFound = "ok", "denied", "not found"
	rows := []struct {
		who    string
		c      *client.Client
		action string
		want   string
	}{
		{"analyst", analyst, "list", ok},
		{"analyst", analyst, "compliance", ok},
		{"analyst", analyst, "policy of db-01", ok},
		{"analyst", analyst, "apply new", denied},
		{"analyst", analyst, "apply existing", denied},
		{"analyst", analyst, "deploy to Web", denied},
		{"analyst", analyst, "delete", denied},
		{"apps", apps, "list", ok},
		{"apps", apps, "apply new", denied},
		{"apps", apps, "deploy to Web", denied},
		{"remote", remote, "list", denied},
		{"remote", remote, "policy of web-01", denied},
		{"ops (Web)", ops, "apply new", ok},
		{"ops (Web)", ops, "apply existing", ok},
		{"ops (Web)", ops, "deploy to Web", ok},
		{"ops (Web)", ops, "undeploy from Web", ok},
		{"ops (Web)", ops, "deploy to DB", denied},
		{"ops (Web)", ops, "policy of web-01", ok},
		{"ops (Web)", ops, "policy of db-01", notFound},
		{"admin", admin, "deploy to DB", ok},
		{"admin", admin, "delete", ok},
	}
	for _, r := range rows {
		t.Run(r.who+" "+r.action, func(t *testing.T) {
			err := actions[r.action](r.c)
			got := ok
			switch contracts.CodeOf(err) {
			case contracts.CodePermissionDenied:
				got = denied
			case contracts.CodeNotFound:
				got = notFound
			}
			if err != nil && got == ok {
				t.Fatalf("got %v, want %s", err, r.want)
			}
			if got != r.want {
				t.Fatalf("got %s (%v), want %s", got, err, r.want)
			}
			if got == denied && !strings.Contains(err.Error(), "permission denied") {
				t.Fatalf("denial reads %q", err)
			}
		})
	}
}
