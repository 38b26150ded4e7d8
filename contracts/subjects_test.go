package contracts

import (
	"strings"
	"testing"
)

// subjectBuilder adapts one builder to a common shape for the tables below.
type subjectBuilder struct {
	name  string
	build func(args ...string) (string, error)
	good  []string     // arguments that make a valid subject
	want  string       // the subject good makes
	kinds map[int]bool // argument positions holding a dotted kind
}

var subjectBuilders = []subjectBuilder{
	{"Enroll", func(a ...string) (string, error) { return Enroll(a[0], a[1]) },
		[]string{"s1", "UAGENTKEY"}, "steward.s1.enroll.UAGENTKEY", nil},
	{"EnrollAll", func(a ...string) (string, error) { return EnrollAll(a[0]) },
		[]string{"s1"}, "steward.s1.enroll.*", nil},
	{"AgentUp", func(a ...string) (string, error) { return AgentUp(a[0], a[1], a[2]) },
		[]string{"s1", "c1", KindHeartbeat}, "steward.s1.agent.c1.up.heartbeat", map[int]bool{2: true}},
	{"AgentDown", func(a ...string) (string, error) { return AgentDown(a[0], a[1], a[2]) },
		[]string{"s1", "c1", KindApproval}, "steward.s1.agent.c1.down.approval", map[int]bool{2: true}},
	{"AgentUpAll", func(a ...string) (string, error) { return AgentUpAll(a[0], a[1]) },
		[]string{"s1", KindHeartbeat}, "steward.s1.agent.*.up.heartbeat", map[int]bool{1: true}},
	{"OpUp", func(a ...string) (string, error) { return OpUp(a[0], a[1], a[2]) },
		[]string{"s1", "alice", KindTokensCreate}, "steward.s1.op.alice.up.tokens.create", map[int]bool{2: true}},
	{"OpDown", func(a ...string) (string, error) { return OpDown(a[0], a[1], a[2]) },
		[]string{"s1", "alice", KindClientsList}, "steward.s1.op.alice.down.clients.list", map[int]bool{2: true}},
	{"OpUpAll", func(a ...string) (string, error) { return OpUpAll(a[0], a[1]) },
		[]string{"s1", KindSiteServices}, "steward.s1.op.*.up.site.services", map[int]bool{1: true}},
	{"Svc", func(a ...string) (string, error) { return Svc(a[0], a[1], a[2]) },
		[]string{"s1", "admin", "lookup"}, "steward.s1.svc.admin.lookup", nil},
	{"Event", func(a ...string) (string, error) { return Event(a[0], a[1], a[2]) },
		[]string{"s1", "admin", "client"}, "steward.s1.event.admin.client", nil},
	{"EventAll", func(a ...string) (string, error) { return EventAll(a[0], a[1]) },
		[]string{"s1", "admin"}, "steward.s1.event.admin.>", nil},
	{"AgentSpace", func(a ...string) (string, error) { return AgentSpace(a[0], a[1], a[2]) },
		[]string{"s1", "c1", "up"}, "steward.s1.agent.c1.up.>", nil},
	{"OpSpace", func(a ...string) (string, error) { return OpSpace(a[0], a[1], a[2]) },
		[]string{"s1", "alice", "down"}, "steward.s1.op.alice.down.>", nil},
	{"Inbox", func(a ...string) (string, error) { return Inbox(a[0]) },
		[]string{"alice"}, "_INBOX.alice", nil},
}

// badTokens may not stand where one subject token goes.
var badTokens = []string{
	"", ".", "*", ">",
	"a.b", ".a", "a.",
	"a*", "*a", "a>", ">a",
	" ", "a b", " a", "a ",
	"\t", "a\tb", "\n", "a\nb", "a\r\nb", "a\u00a0b", // whitespace, ASCII and not
	"a\x00b", "a\x1bb", // control characters
}

// badKinds may not stand where a dotted kind goes: every token of the kind is
// checked, so an empty token or a wildcard anywhere is refused.
var badKinds = []string{
	"", ".", "..",
	"a..b", ".a", "a.", ".a.b", "a.b.",
	"a.*", "*.a", "a.>", ">", "*", "a.b*", "a.>b",
	"a. b", "a.b c", "a.\tb", "a.b\n", "\na.b",
	"a.b\x00",
}

func TestSubjectBuildersGood(t *testing.T) {
	for _, b := range subjectBuilders {
		got, err := b.build(b.good...)
		if err != nil {
			t.Errorf("%s%q: got error %v, want %q", b.name, b.good, err, b.want)
			continue
		}
		if got != b.want {
			t.Errorf("%s%q: got %q, want %q", b.name, b.good, got, b.want)
		}
	}
}

func TestSubjectBuildersRejectBadTokens(t *testing.T) {
	for _, b := range subjectBuilders {
		for pos := range b.good {
			bad := badTokens
			if b.kinds[pos] {
				bad = badKinds
			}
			for _, tok := range bad {
				args := append([]string(nil), b.good...)
				args[pos] = tok
				if got, err := b.build(args...); err == nil {
					t.Errorf("%s%q (argument %d = %q): got %q, want an error", b.name, args, pos, tok, got)
				}
			}
		}
	}
}

// Every kind argument takes dotted kinds; each of the Kind* constants builds.
func TestSubjectKinds(t *testing.T) {
	kinds := []string{
		KindHeartbeat, KindApproval,
		KindTokensCreate, KindTokensList, KindTokensRevoke,
		KindClientsList, KindClientsShow, KindClientsApprove, KindClientsBlock, KindClientsDelete,
		KindSiteServices,
		"a.b.c.d",
	}
	for _, b := range subjectBuilders {
		for pos := range b.kinds {
			for _, kind := range kinds {
				args := append([]string(nil), b.good...)
				args[pos] = kind
				got, err := b.build(args...)
				if err != nil {
					t.Errorf("%s%q: got error %v, want a subject", b.name, args, err)
					continue
				}
				if want := "." + kind; !strings.HasSuffix(got, want) {
					t.Errorf("%s%q: got %q, want it to end %q", b.name, args, got, want)
				}
			}
		}
	}
}

func TestParseSubjectRoundTrip(t *testing.T) {
	must := func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("building subject: %v", err)
		}
		return s
	}
	tests := []struct {
		subject string
		want    SubjectInfo
	}{
		{must(Enroll("s1", "UAGENTKEY")), SubjectInfo{Site: "s1", Space: "enroll", Principal: "UAGENTKEY"}},
		{must(AgentUp("s1", "c1", KindHeartbeat)), SubjectInfo{Site: "s1", Space: "agent", Principal: "c1", Direction: "up", Kind: "heartbeat"}},
		{must(AgentDown("s1", "c1", KindApproval)), SubjectInfo{Site: "s1", Space: "agent", Principal: "c1", Direction: "down", Kind: "approval"}},
		{must(AgentUp("s1", "c1", "a.b.c")), SubjectInfo{Site: "s1", Space: "agent", Principal: "c1", Direction: "up", Kind: "a.b.c"}},
		{must(OpUp("s1", "alice", KindTokensCreate)), SubjectInfo{Site: "s1", Space: "op", Principal: "alice", Direction: "up", Kind: "tokens.create"}},
		{must(OpDown("s1", "alice", KindClientsApprove)), SubjectInfo{Site: "s1", Space: "op", Principal: "alice", Direction: "down", Kind: "clients.approve"}},
		{must(Svc("s1", "admin", "lookup")), SubjectInfo{Site: "s1", Space: "svc", Principal: "admin", Kind: "lookup"}},
		{must(Event("s1", "admin", "client")), SubjectInfo{Site: "s1", Space: "event", Principal: "admin", Kind: "client"}},
		// Sites, principals and kinds are opaque tokens: other steward words may appear in them.
		{must(AgentUp("agent", "up", "down.enroll")), SubjectInfo{Site: "agent", Space: "agent", Principal: "up", Direction: "up", Kind: "down.enroll"}},
		{must(OpUp("s-1_x", "bob@example", "x")), SubjectInfo{Site: "s-1_x", Space: "op", Principal: "bob@example", Direction: "up", Kind: "x"}},
	}
	for _, tt := range tests {
		got, err := ParseSubject(tt.subject)
		if err != nil {
			t.Errorf("ParseSubject(%q): got error %v, want %+v", tt.subject, err, tt.want)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseSubject(%q): got %+v, want %+v", tt.subject, got, tt.want)
		}
	}
}

func TestParseSubjectRejectsJunk(t *testing.T) {
	tests := []struct {
		name    string
		subject string
	}{
		{"empty", ""},
		{"root only", "steward"},
		{"no space", "steward.s1"},
		{"not steward", "nats.s1.agent.c1.up.heartbeat"},
		{"root case", "Steward.s1.agent.c1.up.heartbeat"},
		{"inbox", "_INBOX.alice"},
		{"unknown space", "steward.s1.bogus.c1.up.heartbeat"},
		{"space case", "steward.s1.Agent.c1.up.heartbeat"},
		{"enroll too short", "steward.s1.enroll"},
		{"enroll too long", "steward.s1.enroll.UKEY.extra"},
		{"agent no kind", "steward.s1.agent.c1.up"},
		{"agent no direction", "steward.s1.agent.c1"},
		{"agent bad direction", "steward.s1.agent.c1.sideways.heartbeat"},
		{"op no kind", "steward.s1.op.alice.down"},
		{"op bad direction", "steward.s1.op.alice.UP.tokens.create"},
		{"svc no verb", "steward.s1.svc.admin"},
		{"event no kind", "steward.s1.event.admin"},
		{"wildcard principal", "steward.s1.agent.*.up.heartbeat"},
		{"wildcard site", "steward.*.agent.c1.up.heartbeat"},
		{"wildcard enroll", "steward.s1.enroll.*"},
		{"full wildcard", "steward.s1.event.admin.>"},
		{"full wildcard root", "steward.>"},
		{"empty token", "steward..agent.c1.up.heartbeat"},
		{"empty kind token", "steward.s1.agent.c1.up..heartbeat"},
		{"leading dot", ".steward.s1.svc.admin.lookup"},
		{"trailing dot", "steward.s1.svc.admin.lookup."},
		{"space", "steward.s1.svc.admin.look up"},
		{"tab", "steward.s1.svc.admin\t.lookup"},
		{"newline", "steward.s1.svc.admin.lookup\n"},
	}
	for _, tt := range tests {
		if got, err := ParseSubject(tt.subject); err == nil {
			t.Errorf("%s: ParseSubject(%q): got %+v, want an error", tt.name, tt.subject, got)
		}
	}
}

// Subscription subjects contain wildcards, so ParseSubject refuses them: a
// sender's identity can only come from a concrete subject.
func TestParseSubjectRefusesSubscriptions(t *testing.T) {
	for _, b := range subjectBuilders {
		if !strings.ContainsAny(b.want, "*>") {
			continue
		}
		if got, err := ParseSubject(b.want); err == nil {
			t.Errorf("ParseSubject(%q) from %s: got %+v, want an error", b.want, b.name, got)
		}
	}
}

func TestSpaceDirection(t *testing.T) {
	tests := []struct {
		dir  string
		want string // "" for an error
	}{
		{"up", "steward.s1.agent.c1.up.>"},
		{"down", "steward.s1.agent.c1.down.>"},
		{"Up", ""},
		{"sideways", ""},
		{"up.down", ""},
		{"", ""},
	}
	for _, tt := range tests {
		for _, f := range []struct {
			name  string
			space func(site, principal, dir string) (string, error)
			want  string
		}{
			{"AgentSpace", AgentSpace, tt.want},
			{"OpSpace", OpSpace, strings.Replace(tt.want, ".agent.c1.", ".op.c1.", 1)},
		} {
			got, err := f.space("s1", "c1", tt.dir)
			if f.want == "" {
				if err == nil {
					t.Errorf("%s(s1, c1, %q): got %q, want an error", f.name, tt.dir, got)
				}
				continue
			}
			if err != nil || got != f.want {
				t.Errorf("%s(s1, c1, %q): got %q, %v, want %q", f.name, tt.dir, got, err, f.want)
			}
		}
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"web-01", true},
		{"Zoë", true},
		{strings.Repeat("n", 64), true},
		{"", false},
		{strings.Repeat("n", 65), false},
		{"web.01", false},
		{"web 01", false},
		{"web*", false},
		{"web>", false},
		{"web\n", false},
	}
	for _, tt := range tests {
		err := ValidName(tt.name)
		if got := err == nil; got != tt.ok {
			t.Errorf("ValidName(%q): got ok=%v (err %v), want ok=%v", tt.name, got, err, tt.ok)
		}
	}
}

func TestSiteSubjects(t *testing.T) {
	s, err := SiteSubject("CHD", "PAR", KindReplOffer)
	if err != nil || s != "steward.CHD.site.PAR.repl.offer" {
		t.Fatalf("SiteSubject = %q, %v", s, err)
	}
	si, err := ParseSubject(s)
	if err != nil || si.Space != "site" || si.Site != "CHD" || si.Principal != "PAR" || si.Kind != KindReplOffer {
		t.Fatalf("ParseSubject = %+v, %v", si, err)
	}
	if _, err := ParseSubject("steward.CHD.site.PAR"); err == nil {
		t.Fatal("a site subject without a kind parsed")
	}
	if _, err := SiteSubject("CHD", "P.R", KindReplOffer); err == nil {
		t.Fatal("a sending site with '.' made a subject")
	}
	all, err := SiteSubjectAll("CHD", KindReplChunk)
	if err != nil || all != "steward.CHD.site.*.repl.chunk" {
		t.Fatalf("SiteSubjectAll = %q, %v", all, err)
	}
	sp, err := SiteSpace("PAR", "CHD")
	if err != nil || sp != "steward.PAR.site.CHD.>" {
		t.Fatalf("SiteSpace = %q, %v", sp, err)
	}
	in, err := SiteInbox("PAR")
	if err != nil || in != "steward.PAR.inbox.site" {
		t.Fatalf("SiteInbox = %q, %v", in, err)
	}
	for subj, want := range map[string]bool{in + ".x": true, "steward.OTH.inbox.site": true, "steward.PAR.site.CHD.x": false, "steward.PAR": false, "other.PAR.inbox.x": false} {
		if IsSiteInbox(subj) != want {
			t.Errorf("IsSiteInbox(%q) = %v, want %v", subj, !want, want)
		}
	}
}
