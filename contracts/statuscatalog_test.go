package contracts

import (
	"go/token"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCatalog checks every entry: a unique ID inside its component's block,
// a valid severity, and a text whose every brace opens a named insertion
// string.
func TestCatalog(t *testing.T) {
	seen := map[int]bool{}
	for _, d := range Catalog() {
		if seen[d.ID] {
			t.Errorf("id %d: got it twice, want each id once", d.ID)
		}
		seen[d.ID] = true
		if got := StatusComponentOf(d.ID); got != d.Component {
			t.Errorf("id %d (%s): got it in the block of %q, want in its own component's block", d.ID, d.Component, got)
		}
		if !ValidSeverity(d.Severity) {
			t.Errorf("id %d: severity %q: want one of %v", d.ID, d.Severity, Severities())
		}
		if d.Text == "" {
			t.Errorf("id %d: got an empty text", d.ID)
		}
		// Every brace belongs to a well-formed, named insertion string.
		literal := 0
		for _, seg := range parseText(d.Text) {
			if !seg.param {
				literal += strings.Count(seg.s, "{") + strings.Count(seg.s, "}")
			}
		}
		if literal != 0 {
			t.Errorf("id %d: text %q: got %d braces outside a {name} insertion string, want 0", d.ID, d.Text, literal)
		}
		// Rendering with every parameter leaves no insertion string behind.
		props := map[string]string{}
		for _, p := range d.Params() {
			props[p] = "<" + p + ">"
		}
		if got := Render(d.Text, props); strings.ContainsAny(got, "{}") {
			t.Errorf("id %d: rendered with every parameter: got %q, want no braces left", d.ID, got)
		}
	}
}

// TestCatalogConstants parses the source so that a Status* ID constant
// cannot lack an entry, nor an entry its constant.
func TestCatalogConstants(t *testing.T) {
	declared := map[int]string{}
	for _, c := range sourceConsts(t) {
		if !strings.HasPrefix(c.Name, "Status") || c.Kind != token.INT {
			continue
		}
		n, _ := strconv.Atoi(c.Lit)
		if other, ok := declared[n]; ok {
			t.Errorf("%s: %s = %d: got the same id as %s", c.Pos, c.Name, n, other)
		}
		declared[n] = c.Name
		if _, ok := LookupStatus(n); !ok {
			t.Errorf("%s: %s = %d: got no catalog entry, want one", c.Pos, c.Name, n)
		}
	}
	for _, d := range Catalog() {
		if _, ok := declared[d.ID]; !ok {
			t.Errorf("catalog id %d: got no Status* constant, want one", d.ID)
		}
	}
}

// TestCatalogRequiredEntries pins the messages other parts rely on.
func TestCatalogRequiredEntries(t *testing.T) {
	tests := []struct {
		id        int
		component string
		audit     bool
	}{
		{StatusAgentConnectionLost, ComponentAgent, false},
		{StatusAgentConnectionRegained, ComponentAgent, false},
		{StatusAgentOutboxOverflow, ComponentAgent, false},
		{StatusRateLimited, ComponentStatus, false},
		{StatusRuleActionFailed, ComponentStatus, false},
		{StatusRuleActionGaveUp, ComponentStatus, false},
		{StatusServiceStarted, ComponentAny, false},
		{StatusServiceStopping, ComponentAny, false},
		{StatusTokenCreated, ComponentAdmin, true},
		{StatusTokenRevoked, ComponentAdmin, true},
		{StatusClientEnrolled, ComponentAdmin, true},
		{StatusClientQueued, ComponentAdmin, true},
		{StatusClientApproved, ComponentAdmin, true},
		{StatusClientBlocked, ComponentAdmin, true},
		{StatusClientDeleted, ComponentAdmin, true},
		{StatusOperatorAdded, ComponentAdmin, true},
		{StatusOperatorRevoked, ComponentAdmin, true},
		{StatusRoleChanged, ComponentAdmin, true},
		{StatusSettingsChanged, ComponentPolicy, true},
		{StatusSessionRequested, ComponentSessions, true},
		{StatusSessionDenied, ComponentSessions, true},
		{StatusSessionStarted, ComponentSessions, true},
		{StatusSessionEnded, ComponentSessions, true},
		{StatusRuleAdded, ComponentStatus, true},
		{StatusRuleDeleted, ComponentStatus, true},
	}
	for _, tt := range tests {
		d, ok := LookupStatus(tt.id)
		if !ok {
			t.Errorf("id %d: got no entry", tt.id)
			continue
		}
		if d.Component != tt.component || d.Audit != tt.audit {
			t.Errorf("id %d: got component %q audit %v, want %q %v", tt.id, d.Component, d.Audit, tt.component, tt.audit)
		}
	}
}

func TestNewStatus(t *testing.T) {
	before := time.Now().Add(-time.Second)
	m := NewStatus(StatusClientBlocked, map[string]string{"client": "c1", "name": "web-01", "by": "alice"})
	if m.Type != TypeStatusMessage || m.Severity != SeverityWarning || m.Component != ComponentAdmin || !m.Audit || m.Unknown {
		t.Errorf("NewStatus: got %+v, want a warning audit message of admin", m)
	}
	if want := "Client c1 (web-01) was blocked by alice."; m.Text != want {
		t.Errorf("text: got %q, want %q", m.Text, want)
	}
	if at, ok := StatusIDTime(m.ID); !ok || at.Before(before) {
		t.Errorf("StatusIDTime(%s): got %v %v, want a version 7 UUID made now", m.ID, at, ok)
	}
	if err := m.Validate(); err != nil {
		t.Errorf("Validate: got %v, want nil", err)
	}

	// A missing insertion string shows as written.
	m = NewStatus(StatusClientBlocked, map[string]string{"client": "c1"})
	if want := "Client c1 ({name}) was blocked by {by}."; m.Text != want {
		t.Errorf("text with missing properties: got %q, want %q", m.Text, want)
	}

	// An unknown ID is flagged, info, and lists its properties.
	m = NewStatus(9001, map[string]string{"disk": "/var", "free": "2%"})
	if !m.Unknown || m.Severity != SeverityInfo || m.Audit {
		t.Errorf("unknown id: got %+v, want Unknown info", m)
	}
	if want := `Message ID 9001 is not in this site's catalog. Properties: disk="/var" free="2%"`; m.Text != want {
		t.Errorf("unknown text: got %q, want %q", m.Text, want)
	}

	// A generic ID keeps the sender's component.
	m = StatusMessage{MsgID: StatusServiceStarted, Component: ComponentDiscovery}
	ApplyCatalog(&m)
	if m.Component != ComponentDiscovery {
		t.Errorf("generic id: component got %q, want discovery", m.Component)
	}
}

func TestRender(t *testing.T) {
	tests := []struct{ text, want string }{
		{"plain", "plain"},
		{"{a} and {b}", "1 and 2"},
		{"{a}{a}", "11"},
		{"{missing}", "{missing}"},
		{"brace { alone", "brace { alone"},
		{"{not valid}", "{not valid}"},
		{"{}", "{}"},
		{"{a", "{a"},
	}
	for _, tt := range tests {
		if got := Render(tt.text, map[string]string{"a": "1", "b": "2"}); got != tt.want {
			t.Errorf("Render(%q): got %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestStatusSubjects(t *testing.T) {
	got, err := StatusSubject("s1", ComponentAgent, SeverityError, "c1")
	if err != nil || got != "steward.s1.event.status.msg.agent.error.c1" {
		t.Errorf("StatusSubject: got %q %v", got, err)
	}
	if _, err := StatusSubject("s1", "a.b", SeverityError, "c1"); err == nil {
		t.Errorf("StatusSubject with a dotted component: got nil error, want one")
	}
	got, err = StatusSubjectFilter("s1", "", SeverityError, "")
	if err != nil || got != "steward.s1.event.status.msg.*.error.*" {
		t.Errorf("StatusSubjectFilter: got %q %v", got, err)
	}
	if _, err := StatusSubjectFilter("s1", ">", "", ""); err == nil {
		t.Errorf("StatusSubjectFilter with a wildcard: got nil error, want one")
	}
	got, err = StatusSubjectAll("s1")
	if err != nil || got != "steward.s1.event.status.msg.>" {
		t.Errorf("StatusSubjectAll: got %q %v", got, err)
	}
	got, err = StatusFollowSubject("s1", "alice", "f1")
	if err != nil || got != "steward.s1.op.alice.down.status.follow.f1" {
		t.Errorf("StatusFollowSubject: got %q %v", got, err)
	}
	si, err := ParseSubject(got)
	if err != nil || si.Principal != "alice" || si.Kind != KindStatusFollow+".f1" {
		t.Errorf("ParseSubject(%q): got %+v %v", got, si, err)
	}
}

func TestStatusRuleValidate(t *testing.T) {
	tests := []struct {
		name string
		rule StatusRule
		ok   bool
	}{
		{"exec", StatusRule{Name: "r", Match: "audit", Action: RuleExec, Target: "/bin/true"}, true},
		{"discard", StatusRule{Name: "r", Match: "id == 9001", Action: RuleDiscard}, true},
		{"discard with target", StatusRule{Name: "r", Match: "true", Action: RuleDiscard, Target: "x"}, false},
		{"webhook without url", StatusRule{Name: "r", Match: "true", Action: RuleWebhook}, false},
		{"unknown action", StatusRule{Name: "r", Match: "true", Action: "mail", Target: "x"}, false},
		{"no match", StatusRule{Name: "r", Match: " ", Action: RuleStore}, false},
		{"bad name", StatusRule{Name: "a b", Match: "true", Action: RuleStore}, false},
		{"long timeout", StatusRule{Name: "r", Match: "true", Action: RuleExec, Target: "x", Timeout: Duration(time.Hour)}, false},
	}
	for _, tt := range tests {
		err := tt.rule.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%s: Validate got %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestStatusFilterMatch(t *testing.T) {
	m := StatusMessage{Header: Header{Time: t1}, MsgID: 5001, Severity: SeverityError, Component: ComponentSessions, Source: "c1", Client: "c1", Audit: true}
	tests := []struct {
		name string
		f    StatusFilter
		want bool
	}{
		{"empty", StatusFilter{}, true},
		{"since before", StatusFilter{Since: t0}, true},
		{"since after", StatusFilter{Since: t2}, false},
		{"until after", StatusFilter{Until: t2}, true},
		{"until at", StatusFilter{Until: t1}, false},
		{"severity", StatusFilter{Severities: []string{SeverityWarning, SeverityError}}, true},
		{"other severity", StatusFilter{Severities: []string{SeverityInfo}}, false},
		{"component", StatusFilter{Components: []string{ComponentSessions}}, true},
		{"client", StatusFilter{Clients: []string{"c2"}}, false},
		{"source", StatusFilter{Sources: []string{"c1"}}, true},
		{"id", StatusFilter{MsgIDs: []int{5001}}, true},
		{"audit", StatusFilter{AuditOnly: true}, true},
	}
	for _, tt := range tests {
		if got := tt.f.Match(&m); got != tt.want {
			t.Errorf("%s: Match got %v, want %v", tt.name, got, tt.want)
		}
	}
}
