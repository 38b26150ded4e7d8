package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	agentcli "github.com/stewardhq/steward/agent/cli"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

// policyWait bounds every wait for a policy to reach an agent.
const policyWait = 20 * time.Second

// settingsFile writes a settings file for `steward settings apply -f`.
func settingsFile(t testing.TB, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "settings.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// cli runs `steward` as the bootstrap administrator and fails the test on
// an error.
func (rs *runningSite) cli(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, err := steward(t, rs, rs.AdminIdentity(), "", args...)
	if err != nil {
		t.Fatalf("steward %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// cliJSON runs `steward ... -o json` and decodes the output into v.
func (rs *runningSite) cliJSON(t testing.TB, v any, args ...string) {
	t.Helper()
	out := rs.cli(t, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("steward %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// agentCLI runs `steward-agent` and returns what it printed.
func agentCLI(t testing.TB, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := agentcli.NewRoot(&out, &errb)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx(t))
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

// agentPolicy is the policy the agent with state dir dir holds, read with
// `steward-agent status -o json` through its control socket.
func agentPolicy(t testing.TB, dir string) *contracts.AgentPolicyStatus {
	t.Helper()
	out, err := agentCLI(t, "status", "--state-dir", dir, "-o", "json")
	if err != nil {
		t.Fatalf("steward-agent status: %v\n%s", err, out)
	}
	var st contracts.AgentStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	return st.Policy
}

// valueOf is the value and origin of setting in a resultant policy.
func valueOf(t testing.TB, p contracts.ClientPolicyResponse, setting string) (string, string, int) {
	t.Helper()
	for _, v := range p.Settings {
		if v.Setting == setting {
			from := ""
			if v.From != nil {
				from = v.From.Name
			}
			return string(v.Value), from, v.Priority
		}
	}
	t.Fatalf("setting %s is not in the resultant policy", setting)
	return "", "", 0
}

// enrolledAgent starts an agent and waits until the site lists it.
func enrolledAgent(t testing.TB, rs *runningSite, admin *client.Client, token, name string) *runningAgent {
	t.Helper()
	a := startAgent(t, rs.URL(), token, t.TempDir(), name)
	wait(t, 15*time.Second, name+" enrolled", func() bool { return a.ClientID() != "" })
	waitOnline(t, admin, a.ClientID(), true)
	return a
}

const labSettings = `name: Lab remote tools
priority: 10
remoteTools:
  enabled: true
  accessLevel: full
  promptTimeout: 45s
  permittedViewers: [alice, "group:helpdesk"]
  tunnelPorts: [5900, 22]
`

const strictSettings = `name: Strict
priority: 5
remoteTools:
  accessLevel: view
agent:
  heartbeat: 2s
`

// TestPolicyPrecedenceAndOrigin deploys two settings objects to one
// collection and checks, through the CLI and the agents' own status, that
// each setting comes from the lowest priority that configures it, that
// what nobody configures comes from the Default Client Settings or stays
// unconfigured, that a client outside the collection gets only the
// defaults, and that compliance follows the acknowledgements.
func TestPolicyPrecedenceAndOrigin(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	admin := rs.operator(t)
	tok := rs.token(t, 5, time.Hour)
	web := enrolledAgent(t, rs, admin, tok, "web-01")
	db := enrolledAgent(t, rs, admin, tok, "db-01")

	rs.cli(t, "collections", "create", "Web", "--member", "web-01")
	wait(t, 15*time.Second, "Web to hold web-01", func() bool { return slices.Equal(members(t, admin, "Web"), []string{web.ClientID()}) })

	// Declarative and idempotent.
	lab := settingsFile(t, labSettings)
	if out := rs.cli(t, "settings", "apply", "-f", lab); !strings.HasPrefix(out, `created "Lab remote tools"`) {
		t.Fatalf("first apply: got %q", out)
	}
	if out := rs.cli(t, "settings", "apply", "-f", lab); !strings.HasPrefix(out, `unchanged "Lab remote tools"`) {
		t.Fatalf("second apply: got %q", out)
	}
	rs.cli(t, "settings", "apply", "-f", settingsFile(t, strictSettings))
	var dep contracts.SettingsDeployResponse
	rs.cliJSON(t, &dep, "settings", "deploy", "Lab remote tools", "--collection", "Web")
	if dep.Result != contracts.DeployDeployed || dep.Members != 1 || dep.Collection.Name != "Web" {
		t.Fatalf("deploy: got %+v", dep)
	}
	rs.cli(t, "settings", "deploy", "Strict", "--collection", "web") // collection names in any case

	// The agent in Web runs the merge; the one outside, the defaults.
	wait(t, policyWait, "web-01 to run Lab and Strict", func() bool {
		p := agentPolicy(t, web.dir)
		return p != nil && p.Settings.RemoteTools != nil && *p.Settings.RemoteTools.AccessLevel == "view" && *p.Settings.RemoteTools.Enabled
	})
	p := agentPolicy(t, web.dir)
	if got := p.Origins["remoteTools.accessLevel"].Name; got != "Strict" {
		t.Fatalf("agent: accessLevel from %q, want Strict", got)
	}
	if time.Duration(p.Intervals.Heartbeat) != 2*time.Second || !slices.Equal(p.RemoteControlUsers, []string{"alice", "group:helpdesk"}) {
		t.Fatalf("agent: got heartbeat %s, remote control users %v", time.Duration(p.Intervals.Heartbeat), p.RemoteControlUsers)
	}
	wait(t, policyWait, "db-01 to run the defaults", func() bool {
		p := agentPolicy(t, db.dir)
		return p != nil && p.Revision > 0
	})
	if p := agentPolicy(t, db.dir); *p.Settings.RemoteTools.Enabled || p.Origins["remoteTools.enabled"].Name != contracts.DefaultSettingsName {
		t.Fatalf("db-01: got %+v", p.Settings.RemoteTools)
	}

	// The resultant policy at the site: value and origin per setting.
	var rp contracts.ClientPolicyResponse
	wait(t, policyWait, "web-01 to report its revision applied", func() bool {
		rs.cliJSON(t, &rp, "clients", "policy", "web-01")
		return rp.Revision > 0 && rp.AppliedRevision == rp.Revision && rp.State == contracts.ComplianceApplied
	})
	for _, row := range []struct {
		setting, value, from string
		prio                 int
	}{
		{"remoteTools.accessLevel", `"view"`, "Strict", 5},
		{"remoteTools.enabled", "true", "Lab remote tools", 10},
		{"remoteTools.promptTimeout", `"45s"`, "Lab remote tools", 10},
		{"remoteTools.permittedViewers", `["alice","group:helpdesk"]`, "Lab remote tools", 10},
		{"remoteTools.promptUser", "true", contracts.DefaultSettingsName, contracts.DefaultSettingsPriority},
		{"remoteAssistance.manage", "false", contracts.DefaultSettingsName, contracts.DefaultSettingsPriority},
		{"agent.heartbeat", `"2s"`, "Strict", 5},
		{"agent.inventory", "null", "", 0},
	} {
		v, from, prio := valueOf(t, rp, row.setting)
		var compacted bytes.Buffer
		_ = json.Compact(&compacted, []byte(v))
		if compacted.String() != row.value || from != row.from || prio != row.prio {
			t.Errorf("%s: got %s from %q (%d), want %s from %q (%d)", row.setting, compacted.String(), from, prio, row.value, row.from, row.prio)
		}
	}
	if p := agentPolicy(t, web.dir); p.Revision != rp.Revision {
		t.Fatalf("agent revision %d, site revision %d", p.Revision, rp.Revision)
	}
	if len(rp.Collections) != 1 || rp.Collections[0].Name != "Web" {
		t.Fatalf("collections: got %+v", rp.Collections)
	}
	table := rs.cli(t, "clients", "policy", "web-01")
	if !strings.Contains(table, "remoteTools.accessLevel") || !strings.Contains(table, "Strict") {
		t.Fatalf("table:\n%s", table)
	}

	// Compliance per client.
	var comp contracts.SettingsComplianceResponse
	rs.cliJSON(t, &comp, "settings", "compliance", "Lab remote tools")
	if comp.Summary.Applied != 1 || len(comp.Clients) != 1 || comp.Clients[0].Client.Name != "web-01" || comp.Clients[0].State != contracts.ComplianceApplied {
		t.Fatalf("compliance: got %+v", comp)
	}
	if sum := rs.cli(t, "settings", "compliance", "Lab remote tools", "--summary"); !strings.Contains(sum, "1 applied, 0 pending") || strings.Contains(sum, "CLIENT") {
		t.Fatalf("compliance --summary prints the counts alone (a header with no rows read as no clients):\n%s", sum)
	}
	var def contracts.SettingsComplianceResponse
	wait(t, policyWait, "both clients to comply with the defaults", func() bool {
		rs.cliJSON(t, &def, "settings", "compliance", contracts.DefaultSettingsName)
		return def.Summary.Applied == 2
	})

	// A client that enrolls later gets the settings deployed to All
	// Systems with its first policy (the membership event of All Systems).
	rs.cli(t, "settings", "apply", "-f", settingsFile(t, "name: Everyone\npriority: 50\nremoteTools:\n  playSound: true\n"))
	rs.cli(t, "settings", "deploy", "Everyone", "--collection", "All Systems")
	late := enrolledAgent(t, rs, admin, tok, "late-01")
	wait(t, policyWait, "late-01 to get Everyone", func() bool {
		p := agentPolicy(t, late.dir)
		return p != nil && p.Settings.RemoteTools != nil && *p.Settings.RemoteTools.PlaySound
	})

	// List and show.
	var list []contracts.SettingsInfo
	rs.cliJSON(t, &list, "settings", "list")
	var names []string
	for _, s := range list {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"Strict", "Lab remote tools", "Everyone", contracts.DefaultSettingsName}) {
		t.Fatalf("list: got %v, want by priority, the default last", names)
	}
	if out := rs.cli(t, "settings", "show", "Strict"); !strings.Contains(out, "remoteTools.accessLevel") || !strings.Contains(out, "Web") {
		t.Fatalf("show:\n%s", out)
	}

	// Deleting a deployed object is refused, naming where; --force does it
	// and the client's policy follows.
	_, errOut, err := steward(t, rs, rs.AdminIdentity(), "", "settings", "delete", "Strict")
	if err == nil || !strings.Contains(err.Error(), `deployed to "Web"`) {
		t.Fatalf("delete deployed: got %v %s", err, errOut)
	}
	rs.cli(t, "settings", "delete", "Strict", "--force")
	wait(t, policyWait, "web-01 to lose Strict", func() bool {
		p := agentPolicy(t, web.dir)
		return *p.Settings.RemoteTools.AccessLevel == "full" && p.Settings.Agent == nil
	})
}

// TestPolicyBadInput: a settings file with an unknown key or a wrong type
// is refused naming the line; two objects with one priority, a deployment
// to an unknown collection and an unknown settings object are refused by
// the site.
func TestPolicyBadInput(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	id := rs.AdminIdentity()
	for _, tc := range []struct {
		name, file, want string
	}{
		{"unknown key", "name: X\npriority: 7\nremoteTools:\n  enabld: true\n", `line 4: unknown key "enabld" in remoteTools`},
		{"wrong type", "name: X\npriority: 7\nremoteTools:\n  tunnelPorts: [22, ssh]\n", `line 4: remoteTools.tunnelPorts[1]: want a whole number`},
		{"bad value", "name: X\npriority: 7\nremoteAssistance:\n  level: everything\n", `line 4: remoteAssistance.level: "everything": must be one of full, view, none`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := steward(t, rs, id, "", "settings", "apply", "-f", settingsFile(t, tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	rs.cli(t, "settings", "apply", "-f", settingsFile(t, "name: A\npriority: 7\n"))
	_, _, err := steward(t, rs, id, "name: B\npriority: 7\n", "settings", "apply", "-f", "-")
	if err == nil || !strings.Contains(err.Error(), `priority 7 is taken by settings object "A"`) {
		t.Fatalf("duplicate priority: got %v", err)
	}
	_, _, err = steward(t, rs, id, "", "settings", "deploy", "A", "--collection", "Nowhere")
	if err == nil || !strings.Contains(err.Error(), `unknown collection "Nowhere"`) {
		t.Fatalf("unknown collection: got %v", err)
	}
	_, _, err = steward(t, rs, id, "", "settings", "deploy", "Nothing", "--collection", "All Systems")
	if err == nil || !strings.Contains(err.Error(), `no settings object named or with id "Nothing"`) {
		t.Fatalf("unknown settings: got %v", err)
	}
	_, _, err = steward(t, rs, id, "", "settings", "delete", contracts.DefaultSettingsName)
	if err == nil || !strings.Contains(err.Error(), "built in") {
		t.Fatalf("delete the default: got %v", err)
	}
}

// TestPolicyTattooAndRevert walks Remote Assistance through the seed's
// states on a real agent: the user's own choices, the site managing with
// and without override, the values left tattooed when the settings are
// undeployed, `steward-agent settings reset`, and revertOnUnmanage; and
// the Remote Control Users record that outlives remote tools until reset.
func TestPolicyTattooAndRevert(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	admin := rs.operator(t)
	a := enrolledAgent(t, rs, admin, rs.token(t, 1, time.Hour), "pc-01")
	rs.cli(t, "collections", "create", "Helpdesk", "--member", "pc-01")
	wait(t, 15*time.Second, "Helpdesk to hold pc-01", func() bool { return len(members(t, admin, "Helpdesk")) == 1 })

	// The user's own choice: view only, no offers.
	if out, err := agentCLI(t, "settings", "user", "--state-dir", a.dir, "level=view", "unsolicited=false"); err != nil {
		t.Fatalf("settings user: %v\n%s", err, out)
	}
	effective := func() string {
		p := agentPolicy(t, a.dir)
		if p == nil {
			return ""
		}
		e := p.RemoteAssistance.Effective
		if e.Level == nil || e.Unsolicited == nil {
			return ""
		}
		return *e.Level + "/" + map[bool]string{true: "offers", false: "no-offers"}[*e.Unsolicited]
	}
	wait(t, policyWait, "the defaults and the user's choice", func() bool { return effective() == "view/no-offers" })

	ra := `name: Managed RA
priority: 10
remoteAssistance:
  manage: true
  overrideUserSettings: %s
  unsolicited: true
  level: full
  revertOnUnmanage: %s
remoteTools:
  enabled: %s
  permittedViewers: [alice]
`
	apply := func(override, revert, tools string) {
		t.Helper()
		rs.cli(t, "settings", "apply", "-f", settingsFile(t, fmt.Sprintf(ra, override, revert, tools)))
	}
	apply("false", "false", "true")
	rs.cli(t, "settings", "deploy", "Managed RA", "--collection", "Helpdesk")
	// Without override the user's choices (level, unsolicited) win.
	wait(t, policyWait, "managed without override", func() bool {
		p := agentPolicy(t, a.dir)
		return p != nil && p.RemoteAssistance.Managed && !p.RemoteAssistance.Override
	})
	if got := effective(); got != "view/no-offers" {
		t.Fatalf("managed, user's choices win: got %s", got)
	}
	apply("true", "false", "true")
	wait(t, policyWait, "managed with override", func() bool { return effective() == "full/offers" })
	if p := agentPolicy(t, a.dir); p.RemoteAssistance.Sources["level"] != "site" || !slices.Equal(p.RemoteControlUsers, []string{"alice"}) {
		t.Fatalf("override: got %+v, users %v", p.RemoteAssistance, p.RemoteControlUsers)
	}

	// Undeployed: the last values stay in force, tattooed.
	rs.cli(t, "settings", "undeploy", "Managed RA", "--collection", "Helpdesk")
	wait(t, policyWait, "tattooed", func() bool { p := agentPolicy(t, a.dir); return p.RemoteAssistance.Tattooed })
	if got := effective(); got != "full/offers" {
		t.Fatalf("tattooed: got %s, want the site's last values in force", got)
	}
	if p := agentPolicy(t, a.dir); !slices.Equal(p.RemoteControlUsers, []string{"alice"}) || *p.Settings.RemoteTools.Enabled {
		t.Fatalf("after undeploy: remote tools %v, record %v; want disabled and the record kept", *p.Settings.RemoteTools.Enabled, p.RemoteControlUsers)
	}
	// Undeploying again is refused: it is deployed there no more (it said
	// unchanged, as if that were done).
	if _, errOut, err := steward(t, rs, rs.AdminIdentity(), "", "settings", "undeploy", "Managed RA", "--collection", "Helpdesk"); err == nil || !strings.Contains(err.Error()+errOut, "not deployed to") {
		t.Fatalf("undeploy again: %v %q, want an error saying it is not deployed there", err, errOut)
	}
	status, _ := agentCLI(t, "status", "--state-dir", a.dir)
	if !strings.Contains(status, "tattooed") {
		t.Fatalf("steward-agent status does not say tattooed:\n%s", status)
	}
	// Reset returns the user's own values and clears the record.
	out, err := agentCLI(t, "settings", "reset", "--state-dir", a.dir, "-o", "json")
	if err != nil {
		t.Fatalf("settings reset: %v\n%s", err, out)
	}
	var reset contracts.AgentSettingsResponse
	if err := json.Unmarshal([]byte(out), &reset); err != nil || !slices.Equal(reset.Changed, []string{"remoteAssistance", "remoteControlUsers"}) {
		t.Fatalf("reset: got %s %v", out, err)
	}
	if got := effective(); got != "view/no-offers" {
		t.Fatalf("after reset: got %s, want the user's view/no-offers", got)
	}

	// revertOnUnmanage: turning manage off returns the user's values at once.
	apply("true", "true", "false")
	rs.cli(t, "settings", "deploy", "Managed RA", "--collection", "Helpdesk")
	wait(t, policyWait, "managed again", func() bool { return effective() == "full/offers" })
	rs.cli(t, "settings", "apply", "-f", settingsFile(t, "name: Managed RA\npriority: 10\nremoteAssistance:\n  manage: false\n  revertOnUnmanage: true\n"))
	wait(t, policyWait, "reverted", func() bool {
		p := agentPolicy(t, a.dir)
		return !p.RemoteAssistance.Managed && !p.RemoteAssistance.Tattooed && effective() == "view/no-offers"
	})
}

// TestPolicyCatchUp stops an agent, changes its policy twice (a setting,
// and its membership), and starts it again: it converges on connect, and
// compliance shows it pending while away and applied after.
func TestPolicyCatchUp(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	admin := rs.operator(t)
	tok := rs.token(t, 1, time.Hour)
	a := enrolledAgent(t, rs, admin, tok, "laptop-07")
	rs.cli(t, "collections", "create", "Laptops", "--member", "laptop-07")
	rs.cli(t, "collections", "create", "Travel")
	rs.cli(t, "settings", "apply", "-f", settingsFile(t, "name: Laptops\npriority: 20\nremoteTools:\n  accessLevel: view\n"))
	rs.cli(t, "settings", "apply", "-f", settingsFile(t, "name: Travel\npriority: 10\nremoteTools:\n  enabled: true\n"))
	rs.cli(t, "settings", "deploy", "Laptops", "--collection", "Laptops")
	rs.cli(t, "settings", "deploy", "Travel", "--collection", "Travel")
	wait(t, policyWait, "the first policy", func() bool {
		p := agentPolicy(t, a.dir)
		return p != nil && p.Settings.RemoteTools != nil && *p.Settings.RemoteTools.AccessLevel == "view"
	})
	dir := a.dir
	a.stop()
	waitOnline(t, admin, a.ClientID(), false)

	// While it is away: a setting changes, and it joins another collection.
	rs.cli(t, "settings", "apply", "-f", settingsFile(t, "name: Laptops\npriority: 20\nremoteTools:\n  accessLevel: none\n"))
	rs.cli(t, "collections", "add", "Travel", "laptop-07")
	var rp contracts.ClientPolicyResponse
	wait(t, policyWait, "the site to hold the new policy", func() bool {
		rs.cliJSON(t, &rp, "clients", "policy", "laptop-07")
		v, _, _ := valueOf(t, rp, "remoteTools.enabled")
		return v == "true" && rp.State == contracts.CompliancePending
	})
	var comp contracts.SettingsComplianceResponse
	rs.cliJSON(t, &comp, "settings", "compliance", "Laptops")
	if comp.Summary.Pending != 1 {
		t.Fatalf("compliance while away: got %+v, want pending", comp.Summary)
	}

	// Back: it fetches at connect and converges.
	b := startAgent(t, rs.URL(), "", dir, "laptop-07")
	wait(t, policyWait, "the agent to catch up", func() bool {
		p := agentPolicy(t, b.dir)
		return p != nil && p.Revision == rp.Revision
	})
	p := agentPolicy(t, b.dir)
	if *p.Settings.RemoteTools.AccessLevel != "none" || !*p.Settings.RemoteTools.Enabled {
		t.Fatalf("after catch-up: got %+v", p.Settings.RemoteTools)
	}
	wait(t, policyWait, "compliance applied", func() bool {
		rs.cliJSON(t, &comp, "settings", "compliance", "Laptops")
		return comp.Summary.Applied == 1
	})
}
