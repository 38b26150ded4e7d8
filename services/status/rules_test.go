package status

import (
	"slices"
	"strings"
	"testing"

	"github.com/stewardhq/steward/contracts"
)

func mustRule(t *testing.T, def contracts.StatusRule) *rule {
	t.Helper()
	r, err := compileRule(site, def)
	if err != nil {
		t.Fatalf("compile %s: %v", def.Name, err)
	}
	return r
}

func TestCompileRule(t *testing.T) {
	tests := []struct {
		name    string
		def     contracts.StatusRule
		wantErr string // substring; "" compiles
	}{
		{"issue example exec", contracts.StatusRule{Name: "page-despooler", Match: `severity == "error" && component == "despooler"`, Action: contracts.RuleExec, Target: "/usr/local/bin/page {{.ID}}"}, ""},
		{"bare audit", contracts.StatusRule{Name: "to-chat", Match: "audit", Action: contracts.RuleWebhook, Target: "http://127.0.0.1:9000/hook"}, ""},
		{"id", contracts.StatusRule{Name: "drop-noise", Match: "id == 9001", Action: contracts.RuleDiscard}, ""},
		{"properties", contracts.StatusRule{Name: "p", Match: `properties["by"] == "alice" && text contains "blocked"`, Action: contracts.RuleStore}, ""},
		{"syntax error with position", contracts.StatusRule{Name: "bad", Match: `severity == `, Action: contracts.RuleStore}, "(1:"},
		{"unknown variable", contracts.StatusRule{Name: "bad", Match: `sevirity == "error"`, Action: contracts.RuleStore}, "unknown name sevirity (1:1) in `⟨here⟩sevirity"},
		{"second line", contracts.StatusRule{Name: "bad", Match: "id == 1 &&\n  foo", Action: contracts.RuleStore}, "unknown name foo (2:3) in `  ⟨here⟩foo`"},
		{"not a bool", contracts.StatusRule{Name: "bad", Match: `id + 1`, Action: contracts.RuleStore}, "bool"},
		{"type mismatch", contracts.StatusRule{Name: "bad", Match: `id == "x"`, Action: contracts.RuleStore}, "mismatched types"},
		{"bad template", contracts.StatusRule{Name: "bad", Match: "true", Action: contracts.RuleExec, Target: "/bin/echo {{.ID | nosuchfunc}}"}, "command word 2"},
		{"unterminated action", contracts.StatusRule{Name: "bad", Match: "true", Action: contracts.RuleExec, Target: "/bin/echo {{.ID"}, "unterminated"},
		{"template on a missing field", contracts.StatusRule{Name: "bad", Match: "true", Action: contracts.RuleExec, Target: "/bin/echo {{.Nope}}"}, "Nope"},
		{"unterminated quote", contracts.StatusRule{Name: "bad", Match: "true", Action: contracts.RuleExec, Target: "/bin/echo 'x"}, "unterminated"},
		{"relative url", contracts.StatusRule{Name: "bad", Match: "true", Action: contracts.RuleWebhook, Target: "/hook"}, "absolute http"},
		{"ftp url", contracts.StatusRule{Name: "bad", Match: "true", Action: contracts.RuleWebhook, Target: "ftp://x/y"}, "absolute http"},
		{"forward wildcard", contracts.StatusRule{Name: "bad", Match: "true", Action: contracts.RuleForward, Target: "steward.P.>"}, "not allowed"},
		{"forward into own stream", contracts.StatusRule{Name: "bad", Match: "true", Action: contracts.RuleForward, Target: "steward.LAB.event.status.msg.agent.error.c1"}, "loop"},
		{"forward into system", contracts.StatusRule{Name: "bad", Match: "true", Action: contracts.RuleForward, Target: "$JS.API.STREAM.DELETE.STATUS"}, "not allowed"},
		{"forward to the parent site", contracts.StatusRule{Name: "up", Match: "true", Action: contracts.RuleForward, Target: contracts.ForwardParent}, ""},
		{"name not a key", contracts.StatusRule{Name: "règle", Match: "true", Action: contracts.RuleStore}, "only letters"},
		{"no action", contracts.StatusRule{Name: "bad", Match: "true"}, "action"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compileRule(site, tt.def)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got %v, want it to compile", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("got no error, want one containing %q", tt.wantErr)
			case tt.wantErr != "":
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("got %q, want it to contain %q", err, tt.wantErr)
				}
				if contracts.CodeOf(err) != contracts.CodeBadRequest {
					t.Errorf("code: got %v, want bad_request", contracts.CodeOf(err))
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("got %q, want one line (errors travel in a header)", err)
				}
			}
		})
	}
}

// TestValidForward: the word parent names the parent site; literal
// subjects are checked as before.
func TestValidForward(t *testing.T) {
	tests := []struct {
		target  string
		wantErr string // substring; "" is valid
	}{
		{"parent", ""},
		{contracts.ForwardParent, ""},
		{"steward.PARENT.status.intake", ""},
		{"Parent", ""}, // a one-token subject, not the keyword
		{"parent.>", "not allowed"},
		{"steward.LAB.event.status.msg.agent.error.c1", "loop"},
		{"$JS.API.STREAM.DELETE.STATUS", "not allowed"},
		{"_INBOX.site-LAB.x", "not allowed"},
		{"steward.PAR.inbox.site.x", "not allowed"},
		{"a b", "not allowed"},
		{"steward.LAB.site.KID.status.forward", "request space"},
		{"steward.PAR.site.LAB.status.forward", "request space"},
		{"steward.LAB.agent.c1.up.status", "request space"},
		{"steward.LAB.op.alice.up.status.rules.add", "request space"},
		{"steward.LAB.svc.admin.site-peers", "request space"},
		{"steward.LAB.enroll.NKEY", "request space"},
		{"steward.LAB.event.status.action", "loop"},
		{"steward.LAB.event.status.agents.agent.error.c1", "loop"},
		{"steward.LAB.archive.status", ""},
		{"steward.LAB.event.archive.status", ""},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			err := validForward(site, tt.target)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("validForward(%q): got %v, want it valid", tt.target, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("validForward(%q): got %v, want an error containing %q", tt.target, err, tt.wantErr)
			}
		})
	}
	r, err := compileRule(site, contracts.StatusRule{Name: "up", Match: `forwardedFrom == ""`, Action: contracts.RuleForward, Target: contracts.ForwardParent})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.describe(exampleMessage()); got != "forward to the parent site" {
		t.Errorf("describe: got %q", got)
	}
}

func TestEvaluate(t *testing.T) {
	exec := func(name, match string, order int) contracts.StatusRule {
		return contracts.StatusRule{Name: name, Match: match, Action: contracts.RuleExec, Target: "/bin/true", Order: order}
	}
	set := newRuleSet([]*rule{
		mustRule(t, contracts.StatusRule{Name: "keep-audit", Match: "audit", Action: contracts.RuleStore, Order: 20}),
		mustRule(t, exec("page", `severity == "error"`, 10)),
		mustRule(t, contracts.StatusRule{Name: "drop-noise", Match: "id == 9001 || audit", Action: contracts.RuleDiscard, Order: 30}),
		mustRule(t, exec("after-drop", "true", 40)),
		mustRule(t, exec("bad-at-runtime", `int(properties["n"]) > 3`, 5)),
	})
	msg := func(id int, sev string, audit bool) *contracts.StatusMessage {
		return &contracts.StatusMessage{MsgID: id, Severity: sev, Audit: audit, Component: contracts.ComponentAgent}
	}
	tests := []struct {
		name    string
		m       *contracts.StatusMessage
		keep    bool
		actions []string
		stopped string
	}{
		{"nothing matches but the catch-all", msg(10001, "info", false), true, []string{"after-drop"}, ""},
		{"error pages, then runs on", msg(10001, "error", false), true, []string{"page", "after-drop"}, ""},
		{"audit: no store or discard rule applies, every action runs", msg(1013, "warning", true), true, []string{"after-drop"}, ""},
		{"audit error: kept, paged and the catch-all runs", msg(1013, "error", true), true, []string{"page", "after-drop"}, ""},
		{"noise discarded; the rule after it never runs", msg(9001, "error", false), false, []string{"page"}, "drop-noise"},
		{"action reports never trigger actions", &contracts.StatusMessage{MsgID: contracts.StatusRuleActionFailed, Component: contracts.ComponentStatus, Severity: "error"}, true, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := set.evaluate(tt.m)
			var names []string
			for _, r := range d.actions {
				names = append(names, r.def.Name)
			}
			if d.keep != tt.keep || !slices.Equal(names, tt.actions) || d.stopped != tt.stopped {
				t.Errorf("got keep=%v actions=%v stopped=%q, want keep=%v actions=%v stopped=%q", d.keep, names, d.stopped, tt.keep, tt.actions, tt.stopped)
			}
		})
	}
	// The rule failing at run time (a number that is not one) is
	// reported, and matches nothing.
	d := set.evaluate(&contracts.StatusMessage{MsgID: 1, Properties: map[string]string{"n": "seven"}})
	if len(d.errs) != 1 || !strings.Contains(d.errs[0].Error(), "bad-at-runtime") {
		t.Errorf("run-time errors: got %v, want one from bad-at-runtime", d.errs)
	}

	// shadow: the discard rule (order 30) shadows after-drop for noise.
	after := set.rules[len(set.rules)-1]
	if got := set.shadow(after, msg(9001, "info", false)); got != "drop-noise" {
		t.Errorf("shadow: got %q, want drop-noise", got)
	}
	if got := set.shadow(set.rules[0], msg(9001, "info", false)); got != "" {
		t.Errorf("shadow of the first rule: got %q, want none", got)
	}
	// Nothing shadows a rule on an audit message, and the rules keep it.
	if got := set.shadow(after, msg(1013, "info", true)); got != "" {
		t.Errorf("shadow on an audit message: got %q, want none", got)
	}
	if !set.keeps(msg(1013, "info", true)) || set.keeps(msg(9001, "info", false)) {
		t.Errorf("keeps: want the audit message kept and the noise not")
	}
}

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{"/usr/local/bin/page {{.ID}}", []string{"/usr/local/bin/page", "{{.ID}}"}, false},
		{"  a   b\tc ", []string{"a", "b", "c"}, false},
		{`echo 'two words' "and \"more\"" x\ y`, []string{"echo", "two words", `and "more"`, "x y"}, false},
		{`a'b'"c"d`, []string{"abcd"}, false},
		{`echo '' x`, []string{"echo", "", "x"}, false},
		{`echo $HOME; rm -rf /`, []string{"echo", "$HOME;", "rm", "-rf", "/"}, false},
		{`'open`, nil, true},
		{`"open`, nil, true},
		{`trailing\`, nil, true},
		{`/bin/echo {{index .Properties "by"}} '{{ .ID }}'`, []string{"/bin/echo", `{{index .Properties "by"}}`, "{{ .ID }}"}, false},
		{`x{{.ID}}y z`, []string{"x{{.ID}}y", "z"}, false},
		{`{{.ID`, nil, true},
	}
	for _, tt := range tests {
		got, err := splitWords(tt.in)
		if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
			t.Errorf("splitWords(%q): got %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// A message's content can never add arguments or run a shell: each word is
// rendered on its own.
func TestCommandInjection(t *testing.T) {
	r := mustRule(t, contracts.StatusRule{Name: "x", Match: "true", Action: contracts.RuleExec, Target: `/bin/echo {{index .Properties "by"}}`})
	m := contracts.NewStatus(contracts.StatusClientBlocked, map[string]string{"by": "a; rm -rf / $(reboot)"})
	args, err := r.command(&m)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/bin/echo", "a; rm -rf / $(reboot)"}; !slices.Equal(args, want) {
		t.Errorf("got %q, want %q", args, want)
	}
	if got, want := r.describe(&m), `exec /bin/echo 'a; rm -rf / $(reboot)'`; got != want {
		t.Errorf("describe: got %q, want %q", got, want)
	}
}

func TestComponentState(t *testing.T) {
	th := DefaultThresholds
	tests := []struct {
		counts [3]int
		state  string
	}{
		{[3]int{0, 0, 0}, contracts.ComponentOK},
		{[3]int{1999, 9, 0}, contracts.ComponentOK},
		{[3]int{0, 0, 1}, contracts.ComponentWarning},
		{[3]int{0, 10, 0}, contracts.ComponentWarning},
		{[3]int{0, 0, 5}, contracts.ComponentCritical},
		{[3]int{0, 50, 1}, contracts.ComponentCritical},
		{[3]int{5000, 0, 0}, contracts.ComponentCritical},
	}
	for _, tt := range tests {
		if got, reason := componentState(tt.counts, th); got != tt.state || (got != contracts.ComponentOK && reason == "") {
			t.Errorf("counts %v: got %q (%q), want %q with a reason", tt.counts, got, reason, tt.state)
		}
	}
}
