package status

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"github.com/stewardhq/steward/contracts"
)

// matchEnv is what a rule's match expression sees of a message. The names
// are the expression's variables: id, uuid, severity, component, source,
// client, instance, site, text, audit, unknown, properties, time,
// forwardedFrom.
type matchEnv struct {
	ID         int               `expr:"id"`
	UUID       string            `expr:"uuid"`
	Severity   string            `expr:"severity"`
	Component  string            `expr:"component"`
	Source     string            `expr:"source"`
	Client     string            `expr:"client"`
	Instance   string            `expr:"instance"`
	Site       string            `expr:"site"`
	Text       string            `expr:"text"`
	Audit      bool              `expr:"audit"`
	Unknown    bool              `expr:"unknown"`
	Properties map[string]string `expr:"properties"`
	Time       time.Time         `expr:"time"`
	// ForwardedFrom is the child site that forwarded the message, "" for
	// this site's own.
	ForwardedFrom string `expr:"forwardedFrom"`
}

func envOf(m *contracts.StatusMessage) matchEnv {
	props := m.Properties
	if props == nil {
		props = map[string]string{}
	}
	return matchEnv{
		ID: m.MsgID, UUID: m.ID, Severity: m.Severity, Component: m.Component, Source: m.Source,
		Client: m.Client, Instance: m.Instance, Site: m.Site, Text: m.Text, Audit: m.Audit,
		Unknown: m.Unknown, Properties: props, Time: m.Time, ForwardedFrom: m.ForwardedFrom,
	}
}

// rule is a stored rule, compiled.
type rule struct {
	def   contracts.StatusRule
	match *vm.Program
	words []*template.Template // exec: the command's words
}

// maxRuleNameLen and the characters of a rule name: it is a KV key.
const maxRuleNameLen = 64

func validRuleName(n string) error {
	if n == "" || len(n) > maxRuleNameLen {
		return fmt.Errorf("rule name %q must be 1 to %d characters", n, maxRuleNameLen)
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("rule name %q: only letters, digits, '-' and '_'", n)
		}
	}
	return nil
}

// compileRule checks and compiles def. Every failure is a CodeBadRequest
// that says what is wrong and where.
func compileRule(site string, def contracts.StatusRule) (*rule, error) {
	bad := func(format string, args ...any) error {
		return contracts.Errorf(contracts.CodeBadRequest, "rule %s: "+format, append([]any{def.Name}, args...)...)
	}
	if err := def.Validate(); err != nil {
		return nil, bad("%v", err)
	}
	if err := validRuleName(def.Name); err != nil {
		return nil, bad("%v", err)
	}
	prog, err := compileMatch(def.Match)
	if err != nil {
		return nil, bad("match does not compile: %s", compileError(def.Match, err))
	}
	r := &rule{def: def, match: prog}
	// Try it once: an expression that exceeds expr's memory budget on an
	// ordinary message would never match anything.
	if _, err := r.matches(exampleMessage()); overBudget(err) {
		return nil, bad("match: %v", errOverBudget)
	}
	switch def.Action {
	case contracts.RuleExec:
		words, err := splitWords(def.Target)
		if err != nil {
			return nil, bad("command: %v", err)
		}
		if len(words) == 0 {
			return nil, bad("command is empty")
		}
		for i, w := range words {
			t, err := template.New(fmt.Sprintf("word%d", i)).Option("missingkey=zero").Parse(w)
			if err != nil {
				return nil, bad("command word %d (%q): %v", i+1, w, err)
			}
			r.words = append(r.words, t)
		}
		// Render once against an example so that a template that cannot
		// execute (a field the message lacks) is refused now.
		if _, err := r.command(exampleMessage()); err != nil {
			return nil, bad("command: %v", err)
		}
	case contracts.RuleWebhook:
		u, err := url.Parse(def.Target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, bad("url %q: want an absolute http or https URL", def.Target)
		}
	case contracts.RuleForward:
		if err := validForward(site, def.Target); err != nil {
			return nil, bad("%v", err)
		}
	}
	return r, nil
}

// compileError says on one line (it travels in a header) what is wrong
// with expression src and where, as line:column and a mark in the line:
// "unknown name sevirity (1:1) in `⟨here⟩sevirity == \"x\"`".
func compileError(src string, err error) string {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return strings.Join(strings.Fields(err.Error()), " ")
	}
	msg := fmt.Sprintf("%s (%d:%d)", fe.Message, fe.Line, fe.Column+1) // Column counts from 0
	line := strings.Split(src, "\n")[max(fe.Line-1, 0)]
	if r := []rune(line); fe.Column <= len(r) {
		msg += fmt.Sprintf(" in `%s⟨here⟩%s`", string(r[:fe.Column]), string(r[fe.Column:]))
	}
	return msg
}

// validForward checks a forward target: contracts.ForwardParent (the
// parent site), or a literal subject outside the server's and the inboxes'
// spaces, outside this site's own status subjects (which would loop) and
// outside every site's request spaces. A forward is a JetStream publish,
// that is a request: on steward.<site>.site.<child>.status.forward this
// site's own status service would take the message as forwarded by that
// child, and on an agent's, operator's, service's or enrollment subject
// the service answering would take it as sent by whoever the subject
// names. Only the subject says who sent a request, so the status service
// never publishes on those.
func validForward(site, subject string) error {
	if subject == contracts.ForwardParent {
		return nil
	}
	toks := strings.Split(subject, ".")
	for _, tok := range toks {
		if err := contracts.ValidToken(tok); err != nil {
			return fmt.Errorf("subject %q: %v", subject, err)
		}
	}
	ownStatus, _ := contracts.EventAll(site, "status")
	switch {
	case strings.HasPrefix(subject, "$"), strings.HasPrefix(subject, "_INBOX."), contracts.IsSiteInbox(subject):
		return fmt.Errorf("subject %q: forwarding into the server's or an inbox's space is not allowed", subject)
	case strings.HasPrefix(subject, strings.TrimSuffix(ownStatus, ">")):
		return fmt.Errorf("subject %q: is this site's own status stream (the message would loop)", subject)
	case len(toks) >= 3 && toks[0] == contracts.Root && requestSpaces[toks[2]]:
		return fmt.Errorf("subject %q: is in the %s request space, where the subject says who sends (forward to the parent with the target %q)", subject, toks[2], contracts.ForwardParent)
	}
	return nil
}

// requestSpaces are the third tokens of Steward subjects on which a
// request's subject names its sender (contracts.ParseSubject), and the
// inboxes.
var requestSpaces = map[string]bool{"agent": true, "op": true, "site": true, "svc": true, "enroll": true, "inbox": true}

// exampleMessage is a message with every field set, to try templates on.
func exampleMessage() *contracts.StatusMessage {
	m := contracts.NewStatus(contracts.StatusClientBlocked, map[string]string{"client": "c1", "name": "web-01", "by": "alice"})
	m.Site, m.Source, m.Client, m.Instance = "SITE", "c1", "c1", "steward-admin/1"
	return &m
}

// matches reports whether the rule matches m. An expression that fails at
// run time does not match.
func (r *rule) matches(m *contracts.StatusMessage) (bool, error) {
	out, err := runBounded(r.match, envOf(m), matchBudget)
	if err != nil {
		return false, err
	}
	b, _ := out.(bool)
	return b, nil
}

// command renders the exec command's words for m.
func (r *rule) command(m *contracts.StatusMessage) ([]string, error) {
	args := make([]string, 0, len(r.words))
	for _, t := range r.words {
		var b bytes.Buffer
		if err := t.Execute(&b, m); err != nil {
			return nil, err
		}
		args = append(args, b.String())
	}
	if args[0] == "" {
		return nil, errors.New("the command's first word renders empty")
	}
	return args, nil
}

// describe says what the rule does to m, for `rules test`.
func (r *rule) describe(m *contracts.StatusMessage) string {
	switch r.def.Action {
	case contracts.RuleExec:
		args, err := r.command(m)
		if err != nil {
			return "exec fails: " + err.Error()
		}
		q := make([]string, len(args))
		for i, a := range args {
			q[i] = quoteWord(a)
		}
		return "exec " + strings.Join(q, " ")
	case contracts.RuleWebhook:
		return "POST " + r.def.Target
	case contracts.RuleForward:
		if r.def.Target == contracts.ForwardParent {
			return "forward to the parent site"
		}
		return "forward to " + r.def.Target
	case contracts.RuleStore, contracts.RuleDiscard:
		if m.Audit {
			return "nothing: an audit message is always kept and the later rules run"
		}
		if r.def.Action == contracts.RuleStore {
			return "store (later rules do not run)"
		}
		return "discard"
	}
	return r.def.Action
}

// timeout is the rule's action timeout.
func (r *rule) timeout() time.Duration {
	if r.def.Timeout > 0 {
		return time.Duration(r.def.Timeout)
	}
	return contracts.DefaultRuleTimeout
}

// ruleSet is the compiled rules in the order they run: by Order, then name.
// discards says whether any rule discards: without one, every message is
// kept and whoever only needs to know that need not evaluate.
type ruleSet struct {
	rules    []*rule
	discards bool
}

func newRuleSet(rules []*rule) *ruleSet {
	rs := &ruleSet{rules: slices.Clone(rules)}
	for _, r := range rules {
		rs.discards = rs.discards || r.def.Action == contracts.RuleDiscard
	}
	slices.SortFunc(rs.rules, func(a, b *rule) int {
		if a.def.Order != b.def.Order {
			return a.def.Order - b.def.Order
		}
		return strings.Compare(a.def.Name, b.def.Name)
	})
	return rs
}

// selfReport reports whether m is one of the status service's reports on
// rule actions. Those never trigger actions, so that a failing action
// cannot feed on its own failure reports.
func selfReport(m *contracts.StatusMessage) bool {
	return m.Component == contracts.ComponentStatus && (m.MsgID == contracts.StatusRuleActionFailed || m.MsgID == contracts.StatusRuleActionGaveUp)
}

// decision is what the rules make of one message.
type decision struct {
	keep    bool    // store it (false: discard)
	actions []*rule // exec, webhook and forward rules to run, in order
	stopped string  // the store or discard rule that ended evaluation
	errs    []error // match expressions that failed at run time
}

// deciding reports whether r is a store or discard rule.
func (r *rule) deciding() bool {
	return r.def.Action == contracts.RuleStore || r.def.Action == contracts.RuleDiscard
}

// evaluate runs the rules over m in order. A matching store or discard
// rule decides and ends the evaluation; exec, webhook and forward rules
// that match before it are collected, and evaluation goes on. With no
// deciding rule the message is stored.
//
// Store and discard rules do not apply to audit messages: an audit record
// (who did what, including the rule changes 4010 and 4011) is always kept,
// and no store or discard rule (Site:Modify) keeps the exec, webhook and
// forward rules (a Full Administrator's, for exec and webhook) from
// running on it.
func (rs *ruleSet) evaluate(m *contracts.StatusMessage) decision {
	d := decision{keep: true}
	if rs == nil || len(rs.rules) == 0 {
		return d
	}
	self := selfReport(m)
	for _, r := range rs.rules {
		deciding := r.deciding()
		if (deciding && m.Audit) || (!deciding && self) {
			continue // would not apply: no need to evaluate
		}
		ok, err := r.matches(m)
		if err != nil {
			d.errs = append(d.errs, fmt.Errorf("rule %s: %w", r.def.Name, err))
			continue
		}
		if !ok {
			continue
		}
		if deciding {
			d.keep, d.stopped = r.def.Action == contracts.RuleStore, r.def.Name
			return d
		}
		d.actions = append(d.actions, r)
	}
	return d
}

// keeps reports whether the rules keep m (only a discard rule does not,
// and never an audit message).
func (rs *ruleSet) keeps(m *contracts.StatusMessage) bool {
	if rs == nil || !rs.discards || m.Audit {
		return true
	}
	return rs.evaluate(m).keep
}

// shadow returns the first store or discard rule ordered before r (by the
// set's order) that matches m: with it, r would not have run. Nothing
// shadows a rule on an audit message.
func (rs *ruleSet) shadow(r *rule, m *contracts.StatusMessage) string {
	if rs == nil || m.Audit {
		return ""
	}
	for _, o := range rs.rules {
		if o.def.Name == r.def.Name || o.def.Order > r.def.Order || (o.def.Order == r.def.Order && o.def.Name > r.def.Name) {
			break
		}
		if !o.deciding() {
			continue
		}
		if ok, _ := o.matches(m); ok {
			return o.def.Name
		}
	}
	return ""
}

// splitWords splits a command line into words as a POSIX shell would for
// quoting only: blanks separate words; 'single quotes' keep everything;
// "double quotes" keep everything but \" and \\; a backslash outside quotes
// escapes the next character; a template action {{ ... }} is kept whole,
// blanks and quotes included, for text/template to read. There is no
// expansion of any kind, and no shell ever runs: the words become the
// program and its arguments, each rendered on its own.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '{' && strings.HasPrefix(s[i:], "{{"):
			j := strings.Index(s[i+2:], "}}")
			if j < 0 {
				return nil, errors.New("unterminated {{ action")
			}
			cur.WriteString(s[i : i+2+j+2])
			i += 2 + j + 1
			inWord = true
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("trailing backslash")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// quoteWord quotes a word for display when it needs it.
func quoteWord(w string) string {
	if w != "" && !strings.ContainsAny(w, " \t\n'\"\\$`") {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}
