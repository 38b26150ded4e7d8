package status

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
	"github.com/stewardhq/steward/services/internal/natstest"
	"github.com/stewardhq/steward/services/rbac"
)

// oomMatch asks expr for about a terabyte before its budget is charged.
const oomMatch = `len(repeat(repeat("x", 999999), 1000000)) > 0`

// TestMatchRefusesUnboundedAllocation: a match expression (Site:Modify may
// add one) cannot allocate without bound: builtins that allocate before
// expr charges its budget, string concatenation, string() of composite
// values, patterns made at run time and nested predicates are refused when
// the rule is compiled, with where.
func TestMatchRefusesUnboundedAllocation(t *testing.T) {
	tests := []struct {
		match string
		want  string
	}{
		{oomMatch, "function repeat is not allowed"},
		{`len(repeat(repeat("x", 999999), 300)) > 0`, "function repeat is not allowed"},
		{`len(replace(text, "", text)) > 0`, "function replace is not allowed"},
		{`len(join(map(1..999, text))) > 0`, "function join is not allowed"},
		{`len(split(text, "")) > 0`, "function split is not allowed"},
		{`toJSON(properties) != ""`, "function toJSON is not allowed"},
		{`len(toBase64(text)) > 0`, "function toBase64 is not allowed"},
		{`len(reduce(1..40, #acc, text)) > 0`, "function reduce is not allowed"},
		{`len(map(1..9999, text)) > 0`, "function map is not allowed"},
		{`filter(keys(properties), true) != nil`, "function filter is not allowed"},
		{`groupBy(values(properties), #) != nil`, "function groupBy is not allowed"},
		{`len(sortBy(values(properties), #)) > 0`, "function sortBy is not allowed"},
		{`upper(text) contains "X"`, "function upper is not allowed"},
		{`text + text != ""`, "+ is allowed on numbers"},
		{`let a = text; let b = a + a; b != ""`, "+ is allowed on numbers"},
		{`trim(text) + "x" != ""`, "+ is allowed on numbers"},
		{`string(properties) != ""`, "string() takes"},
		{`let a = [text, text]; let b = [a, a]; string(b) != ""`, "string() takes"},
		{`text matches text`, "constant pattern"},
		{`any(1..9000, text matches "(a?a?a?aaa)+x")`, "matches may not run inside a predicate"},
		{`count(values(properties), # matches "^x") > 0`, "matches may not run inside a predicate"},
		{`all(values(properties), any(values(properties), true))`, "inside another"},
		{`count(1..99999, true) > 0`, "more memory than a match may"},
		{strings.Repeat("id == 1 || ", 200) + "true", "characters"},
	}
	for _, tt := range tests {
		t.Run(tt.match[:min(len(tt.match), 40)], func(t *testing.T) {
			_, err := compileRule(site, contracts.StatusRule{Name: "boom", Match: tt.match, Action: contracts.RuleStore})
			if err == nil {
				t.Fatalf("compiled; want it refused (%q)", tt.want)
			}
			if contracts.CodeOf(err) != contracts.CodeBadRequest || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("got %v (%v), want a one-line bad_request containing %q", err, contracts.CodeOf(err), tt.want)
			}
		})
	}
}

// TestMatchBoundedSubset: what status rules match on still compiles and
// evaluates: fields, properties, comparisons, contains and constant
// patterns, lower/upper, ranges with in, predicates over properties, time
// arithmetic, let, string() of a number.
func TestMatchBoundedSubset(t *testing.T) {
	m := exampleMessage() // 1012 (client blocked) by alice, an audit message
	m.Time = time.Now()
	tests := []struct {
		match string
		want  bool
	}{
		{`severity == "warning" && component == "admin"`, true},
		{`audit && properties["by"] == "alice"`, true},
		{`text contains "blocked" && text matches "^Client c1"`, true},
		{`text matches "(?i)WEB-01" && indexOf(text, "web") > 0`, true},
		{`id in 1000..1999 && id not in [1001, 1002]`, true},
		{`any(keys(properties), # == "by") && count(values(properties), # startsWith "w") == 1`, true},
		{`time > now() - duration("1h") && time.Year() >= 2024`, true},
		{`let by = properties["by"]; by != "" && hasPrefix(by, "al") && trimPrefix(by, "al") == "ice"`, true},
		{`string(id) startsWith "10" && id + 1 > 1000 && len(text) < 1000`, true},
		{`forwardedFrom == "" && first([source, client]) == "c1"`, true},
		{`unknown`, false},
	}
	for _, tt := range tests {
		r, err := compileRule(site, contracts.StatusRule{Name: "ok", Match: tt.match, Action: contracts.RuleStore})
		if err != nil {
			t.Errorf("%s: %v", tt.match, err)
			continue
		}
		if got, err := r.matches(m); err != nil || got != tt.want {
			t.Errorf("%s: got %v, %v; want %v", tt.match, got, err, tt.want)
		}
	}
}

// TestMatchEvaluationMemoryBounded: the costliest expressions the subset
// allows, on a message with a 60 KB text, allocate megabytes, not the
// gigabytes the refused ones ask for.
func TestMatchEvaluationMemoryBounded(t *testing.T) {
	m := exampleMessage()
	m.Text = strings.Repeat("x", 60<<10)
	for i := range contracts.MaxStatusProperties {
		m.Properties[strings.Repeat("k", i+1)] = strings.Repeat("v", 1000)
	}
	for _, match := range []string{
		`count(1..9000, text contains "y" || id == #) > 0`,
		`let a = [text, text, text, text]; let b = [a, a, a, a]; let c = [b, b, b, b]; len(c) > 0 && any(c, len(#) > 0)`,
		`any(values(properties), # contains "y") || count(1..5000, string(#) == text) > 0 || count(1..40, time.Format(text) == "") > 0`,
	} {
		r := mustRule(t, contracts.StatusRule{Name: "heavy", Match: match, Action: contracts.RuleStore})
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _ = r.matches(m)
		runtime.ReadMemStats(&after)
		// TotalAlloc counts what became garbage at once too.
		if got := after.TotalAlloc - before.TotalAlloc; got > 1<<30 {
			t.Errorf("%s: allocated %d MiB", match, got>>20)
		}
		if got := after.HeapInuse; got > 512<<20 {
			t.Errorf("%s: %d MiB in use after the evaluation", match, got>>20)
		}
	}
}

// TestRuleMatchCannotKillProcess: the rule that asked for a terabyte ended
// the process ("fatal error: runtime: out of memory" cannot be
// recovered): every service of the site, and again at each restart since
// the rule is stored. Now an operator with Site:Modify cannot add it, and
// a stored one (added by an older version) is skipped when the rules
// load: the process that evaluates it lives (a child process, so that a
// regression does not take the test binary down).
func TestRuleMatchCannotKillProcess(t *testing.T) {
	if os.Getenv("STEWARD_STATUS_OOM_CHILD") == "1" {
		r, err := compileRule(site, contracts.StatusRule{Name: "boom", Action: contracts.RuleStore, Match: oomMatch})
		if err == nil {
			_, _ = r.matches(exampleMessage())
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRuleMatchCannotKillProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STEWARD_STATUS_OOM_CHILD=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		l := strings.SplitN(string(out), "\n", 4)
		t.Fatalf("the process evaluating the rule died: %v: %s", err, strings.Join(l[:min(3, len(l))], " | "))
	}

	az := &staticAuthz{}
	srv := natstest.Start(t)
	e := newEnvOn(t, srv, func(c *Config) { c.NoAuthz, c.Authz = false, az })
	model, err := rbac.NewModel(rbac.Document{Admins: []rbac.Admin{adminUser("otto", contracts.RoleOperationsAdministrator)}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	az.m.Store(model)
	ctx := context.Background()
	otto := client.New(natstest.Connect(t, srv), site, "otto")
	def := contracts.StatusRule{Name: "boom", Match: oomMatch, Action: contracts.RuleStore, Order: 1}
	if _, err := otto.StatusRulesAdd(ctx, def); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Fatalf("Site:Modify adds the rule: got %v, want bad_request", err)
	}
	// As an older version would have stored it: skipped, the others run.
	def.Created, def.By = time.Now().UTC(), "otto"
	data, _ := json.Marshal(def)
	rev, err := e.svc.rules.kv.Put(ctx, def.Name, data)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	e.svc.rules.waitRevision(wctx, rev)
	if e.svc.rules.byNameNow("boom") != nil {
		t.Fatal("the stored rule was compiled, want it skipped")
	}
	m := agentMsg(contracts.StatusAgentConnectionLost, nil)
	e.send(client1, item(t, m))
	e.caughtUp()
	if len(e.find(contracts.StatusAgentConnectionLost)) != 1 {
		t.Error("the message was not stored")
	}
}
