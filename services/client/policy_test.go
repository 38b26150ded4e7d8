package client

import (
	"strings"
	"testing"
	"time"
)

const labFile = `name: Lab remote tools
priority: 10                # lower wins; the built-in "Default Client Settings" is lowest
remoteTools:
  enabled: true
  accessLevel: full         # full | view | none
  promptUser: true
  promptTimeout: 30s
  allowWhenNoUser: true     # no prompt when nobody is logged on
  showIndicator: true
  playSound: false
  permittedViewers: [alice, "group:helpdesk"]
  tunnelPorts: [5900, 3389, 22]
remoteAssistance:
  manage: true              # the site controls Remote Assistance on the client
  overrideUserSettings: true
  unsolicited: true         # helpers may offer help
  solicited: true           # users may ask for help
  level: full               # full | view | none
  revertOnUnmanage: false
agent:
  policyRefresh: 15m
  heartbeat: 60s
  inventory: 6h
`

func TestParseSettingsIssueExample(t *testing.T) {
	s, err := ParseSettings([]byte(labFile))
	if err != nil {
		t.Fatal(err)
	}
	rt, ra, ag := s.RemoteTools, s.RemoteAssistance, s.Agent
	if s.Name != "Lab remote tools" || s.Priority != 10 || !*rt.Enabled || *rt.AccessLevel != "full" ||
		time.Duration(*rt.PromptTimeout) != 30*time.Second || *rt.PlaySound || len(*rt.PermittedViewers) != 2 ||
		(*rt.PermittedViewers)[1] != "group:helpdesk" || (*rt.TunnelPorts)[2] != 22 || !*ra.Manage || *ra.RevertOnUnmanage ||
		time.Duration(*ag.PolicyRefresh) != 15*time.Minute || time.Duration(*ag.Inventory) != 6*time.Hour {
		t.Fatalf("got %+v", s)
	}
	// Left out is not configured; an empty list is configured and empty.
	s, err = ParseSettings([]byte("name: x\npriority: 3\nremoteTools:\n  permittedViewers: []\n  enabled:\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.RemoteTools.Enabled != nil || s.RemoteTools.PermittedViewers == nil || len(*s.RemoteTools.PermittedViewers) != 0 || s.Agent != nil {
		t.Fatalf("got %+v", s.RemoteTools)
	}
}

func TestParseSettingsErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string
	}{
		{"unknown key", "name: x\npriority: 1\nremoteTools:\n  enabled: true\n  colour: blue\n",
			`line 5: unknown key "colour" in remoteTools (known: enabled, accessLevel, promptUser, promptTimeout, allowWhenNoUser, showIndicator, playSound, permittedViewers, tunnelPorts)`},
		{"unknown section", "name: x\npriority: 1\nremoteDesktop:\n  enabled: true\n",
			`line 3: unknown key "remoteDesktop" in the settings file (known: name, description, priority, remoteTools, remoteAssistance, agent)`},
		{"bool as text", "name: x\npriority: 1\nremoteTools:\n  promptUser: sometimes\n",
			`line 4: remoteTools.promptUser: want true or false, got text ("sometimes")`},
		{"number as text", "name: x\npriority: ten\n", `line 2: priority: want a whole number, got text ("ten")`},
		{"port as text", "name: x\npriority: 1\nremoteTools:\n  tunnelPorts: [22, ssh]\n", `line 4: remoteTools.tunnelPorts[1]: want a whole number, got text ("ssh")`},
		{"list as scalar", "name: x\npriority: 1\nremoteTools:\n  permittedViewers: alice\n", `line 4: remoteTools.permittedViewers: want a list`},
		{"duration without unit", "name: x\npriority: 1\nagent:\n  heartbeat: 60\n", `line 4: agent.heartbeat: "60" is not a duration`},
		{"bad level", "name: x\npriority: 1\nremoteAssistance:\n  manage: true\n  level: fulll\n", `line 5: remoteAssistance.level: "fulll": must be one of full, view, none`},
		{"bad port value", "name: x\npriority: 1\nremoteTools:\n  tunnelPorts:\n    - 22\n    - 70000\n", `line 6: remoteTools.tunnelPorts[1]: 70000: a port is 1 to 65535`},
		{"priority out of range", "name: x\npriority: 0\n", `line 2: priority: 0: must be 1 to 9999`},
		{"no name", "priority: 5\n", `line 1: name: settings name "" must be 1 to 128 characters`},
		{"syntax", "name: x\npriority: 1\nremoteTools:\n  enabled: true\n bad indent: 1\n", "line 4: did not find expected key"},
		{"section as scalar", "name: x\npriority: 1\nagent: fast\n", `line 3: agent: want a section of keys, got text ("fast")`},
		{"empty", "", "empty"},
		{"two documents", "name: x\npriority: 1\n---\nname: y\npriority: 2\n", `line 3: a second YAML document; a settings file holds one settings object (put "y" in a file of its own)`},
		{"two documents after an empty one", "name: x\npriority: 1\n---\n---\nname: y\npriority: 2\n", `a second YAML document`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSettings([]byte(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestParseSettingsTrailingSeparator: a "---" at the end, or followed by
// comments alone, ends the one document; it is no second one.
func TestParseSettingsTrailingSeparator(t *testing.T) {
	for _, file := range []string{"name: x\npriority: 1\n---\n", "name: x\npriority: 1\n---\n# nothing more\n", "---\nname: x\npriority: 1\n"} {
		if s, err := ParseSettings([]byte(file)); err != nil || s.Name != "x" {
			t.Errorf("%q: got %+v, %v", file, s, err)
		}
	}
}
