package status

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// seed stores a known mix: from client1 5 warnings (connection lost) and 3
// errors (outbox overflow); from client2 4 infos (regained), the oldest two
// hours old; and from the admin service 2 audit messages.
func seed(t *testing.T, e *env) (all []contracts.StatusMessage) {
	t.Helper()
	var items1, items2 []contracts.OutboxItem
	for i := range 5 {
		m := agentMsg(contracts.StatusAgentConnectionLost, map[string]string{"n": string(rune('a' + i))})
		items1 = append(items1, item(t, m))
	}
	for range 3 {
		items1 = append(items1, item(t, agentMsg(contracts.StatusAgentOutboxOverflow, nil)))
	}
	for i := range 4 {
		m := agentMsg(contracts.StatusAgentConnectionRegained, nil)
		if i == 0 {
			m.Time = time.Now().Add(-2 * time.Hour)
		}
		items2 = append(items2, item(t, m))
	}
	e.send(client1, items1...)
	e.send(client2, items2...)
	em := newTestEmitter(t, e, contracts.ComponentAdmin)
	ctx := context.Background()
	for _, by := range []string{"alice", "bob"} {
		if err := em.Publish(ctx, em.Message(ctx, contracts.StatusTokenCreated, map[string]string{"by": by})); err != nil {
			t.Fatal(err)
		}
	}
	return e.stored()
}

func TestList(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e)
	ctx := context.Background()
	hourAgo := time.Now().Add(-time.Hour)
	tests := []struct {
		name   string
		filter contracts.StatusFilter
		want   int
		check  func(m contracts.StatusMessage) bool
	}{
		{"errors", contracts.StatusFilter{Severities: []string{contracts.SeverityError}}, 3, func(m contracts.StatusMessage) bool { return m.Severity == "error" }},
		{"warnings and errors of client1", contracts.StatusFilter{Severities: []string{"warning", "error"}, Clients: []string{client1}}, 8, func(m contracts.StatusMessage) bool { return m.Client == client1 }},
		{"by id", contracts.StatusFilter{MsgIDs: []int{contracts.StatusAgentConnectionRegained}}, 4, nil},
		{"since an hour ago (the agent's time, not arrival)", contracts.StatusFilter{Since: hourAgo, Clients: []string{client2}}, 3, nil},
		{"until an hour ago", contracts.StatusFilter{Until: hourAgo}, 1, nil},
		{"audit only", contracts.StatusFilter{AuditOnly: true, Components: []string{contracts.ComponentAdmin}}, 2, func(m contracts.StatusMessage) bool { return m.Audit && m.Source == site }},
		{"component", contracts.StatusFilter{Components: []string{contracts.ComponentSessions}}, 0, nil},
		{"source", contracts.StatusFilter{Sources: []string{client2}}, 4, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := e.op.StatusList(ctx, contracts.StatusListRequest{Filter: tt.filter})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Messages) != tt.want || resp.Next != "" {
				t.Fatalf("got %d messages (next %q), want %d and no next page", len(resp.Messages), resp.Next, tt.want)
			}
			for _, m := range resp.Messages {
				if tt.check != nil && !tt.check(m) {
					t.Errorf("message %+v does not fit the filter", m)
				}
			}
		})
	}

	// Paging: 3 at a time through client1's 8, in stream order, no repeats.
	var got []string
	after := ""
	pages := 0
	for {
		resp, err := e.op.StatusList(ctx, contracts.StatusListRequest{Filter: contracts.StatusFilter{Clients: []string{client1}}, Limit: 3, After: after})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, m := range resp.Messages {
			got = append(got, m.ID)
		}
		if resp.Next == "" {
			break
		}
		after = resp.Next
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	var want []string
	for _, m := range e.stored() {
		if m.Client == client1 {
			want = append(want, m.ID)
		}
	}
	if !slices.Equal(got, want) || pages != 3 {
		t.Errorf("paging: got %d ids in %d pages, want the %d in stream order in 3 pages", len(got), pages, len(want))
	}

	// Bad input.
	if _, err := e.op.StatusList(ctx, contracts.StatusListRequest{Filter: contracts.StatusFilter{Severities: []string{"fatal"}}}); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Errorf("bad severity: got %v, want bad_request", err)
	}
	if _, err := e.op.StatusList(ctx, contracts.StatusListRequest{After: "x"}); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Errorf("bad cursor: got %v, want bad_request", err)
	}
}

func TestShow(t *testing.T) {
	e := newEnv(t, nil)
	all := seed(t, e)
	ctx := context.Background()
	for _, want := range []contracts.StatusMessage{all[0], all[len(all)-1]} {
		got, err := e.op.StatusShow(ctx, want.ID)
		if err != nil {
			t.Fatalf("show %s: %v", want.ID, err)
		}
		if got.ID != want.ID || got.Text != want.Text {
			t.Errorf("show: got %+v, want %+v", got, want)
		}
	}
	// A version 4 uuid is looked for from the start.
	m := agentMsg(contracts.StatusAgentConnectionLost, nil)
	m.ID = "8f14e45f-ceea-467f-a8f5-6ed7e3f0b3c1"
	e.send(client1, item(t, m))
	if got, err := e.op.StatusShow(ctx, m.ID); err != nil || got.ID != m.ID {
		t.Errorf("show v4: got %+v, %v", got, err)
	}
	if _, err := e.op.StatusShow(ctx, "01a1fead-4285-71cc-b802-2773f7f0dda9"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Errorf("unknown uuid: got %v, want not_found", err)
	}
}

// TestRulesTest: a replay says what the rule would have done to each stored
// message, which earlier rule would have stopped it, and does nothing.
func TestRulesTest(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e)
	e.caughtUp() // the rules below must not meet the stored messages live
	ctx := context.Background()
	// Added after the messages were stored: a replay is the only way it
	// meets them.
	e.addRule(contracts.StatusRule{Name: "drop-first", Match: `properties["n"] == "a"`, Action: contracts.RuleDiscard, Order: 1})
	e.addRule(contracts.StatusRule{Name: "page", Match: `severity != "info" && client != ""`, Action: contracts.RuleExec, Target: "/usr/local/bin/page {{.ID}} --severity={{.Severity}}"})

	resp, err := e.op.StatusRulesTest(ctx, contracts.StatusRuleTestRequest{Name: "page", Filter: contracts.StatusFilter{Since: time.Now().Add(-24 * time.Hour)}, Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Matched != 8 || len(resp.Results) != 5 || resp.Scanned < 14 || resp.Truncated {
		t.Fatalf("replay: got matched %d, %d results, scanned %d, truncated %v; want 8, 5, at least 14, false", resp.Matched, len(resp.Results), resp.Scanned, resp.Truncated)
	}
	first := resp.Results[0]
	if want := "exec /usr/local/bin/page " + first.Message.ID + " --severity=warning"; first.Would != want {
		t.Errorf("would: got %q, want %q", first.Would, want)
	}
	if first.ShadowedBy != "drop-first" || resp.Results[1].ShadowedBy != "" {
		t.Errorf("shadowed by: got %q then %q, want drop-first then none", first.ShadowedBy, resp.Results[1].ShadowedBy)
	}
	// Nothing ran, nothing was deleted.
	if info, _ := e.svc.actions.Info(ctx); info.State.Msgs != 0 || info.State.LastSeq != 0 {
		t.Errorf("action queue after a replay: got %+v, want untouched", info.State)
	}

	if _, err := e.op.StatusRulesTest(ctx, contracts.StatusRuleTestRequest{Name: "nope"}); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Errorf("unknown rule: got %v, want not_found", err)
	}
}

func TestRulesCRUD(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	a := e.addRule(contracts.StatusRule{Name: "a", Match: "audit", Action: contracts.RuleStore})
	b := e.addRule(contracts.StatusRule{Name: "b", Match: "id == 9001", Action: contracts.RuleDiscard})
	c := e.addRule(contracts.StatusRule{Name: "c", Match: "true", Action: contracts.RuleStore, Order: 5})
	if a.Order != 10 || b.Order != 20 || c.Order != 5 || a.By != "alice" || a.Created.IsZero() {
		t.Errorf("orders and owner: got a=%d b=%d c=%d by %q, want 10 20 5 by alice", a.Order, b.Order, c.Order, a.By)
	}
	list, err := e.op.StatusRulesList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range list {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"c", "a", "b"}) {
		t.Errorf("list: got %v, want [c a b] (the order they run)", names)
	}
	if _, err := e.op.StatusRulesAdd(ctx, contracts.StatusRule{Name: "a", Match: "true", Action: contracts.RuleStore}); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Errorf("duplicate: got %v, want conflict", err)
	}
	_, err = e.op.StatusRulesAdd(ctx, contracts.StatusRule{Name: "bad", Match: `severity ==`, Action: contracts.RuleStore})
	if contracts.CodeOf(err) != contracts.CodeBadRequest || !strings.Contains(err.Error(), "(1:") {
		t.Errorf("bad match: got %v, want bad_request with the position", err)
	}
	if _, err := e.op.StatusRulesDelete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.op.StatusRulesDelete(ctx, "b"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Errorf("delete twice: got %v, want not_found", err)
	}
	if got := len(e.svc.rules.current().rules); got != 2 {
		t.Errorf("rules in force after delete: got %d, want 2", got)
	}
	// Adding and deleting rules are audit messages.
	e.waitFor("rule audit messages", func() bool {
		return len(e.find(contracts.StatusRuleAdded)) == 3 && len(e.find(contracts.StatusRuleDeleted)) == 1
	})
	if m := e.find(contracts.StatusRuleDeleted)[0]; !m.Audit || m.Properties["by"] != "alice" {
		t.Errorf("delete audit: got %+v, want audit by alice", m)
	}
}

func TestFollow(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan contracts.StatusMessage, 16)
	done := make(chan error, 1)
	go func() {
		done <- e.op.StatusFollow(ctx, contracts.StatusFilter{Severities: []string{contracts.SeverityError}}, 3*time.Second, func(m contracts.StatusMessage) error {
			got <- m
			return nil
		})
	}()
	// Keep sending until the follow is registered and an error arrives.
	sent := map[string]bool{}
	var first contracts.StatusMessage
	e.waitFor("a followed message", func() bool {
		select {
		case err := <-done:
			t.Fatalf("follow ended: %v", err)
		default:
		}
		loud := agentMsg(contracts.StatusAgentOutboxOverflow, nil)
		sent[loud.ID] = true
		e.send(client1, item(t, agentMsg(contracts.StatusAgentConnectionLost, nil)), item(t, loud))
		select {
		case first = <-got:
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
	if !sent[first.ID] || first.Severity != contracts.SeverityError {
		t.Errorf("followed: got %+v, want one of the errors sent", first)
	}
	// Once registered, every error sent arrives, once, and nothing else.
	want := map[string]bool{}
	for range 3 {
		loud := agentMsg(contracts.StatusAgentOutboxOverflow, nil)
		want[loud.ID] = true
		e.send(client1, item(t, agentMsg(contracts.StatusAgentConnectionLost, nil)), item(t, loud))
	}
	received := map[string]bool{first.ID: true}
	for len(want) > 0 {
		select {
		case m := <-got:
			if m.Severity != contracts.SeverityError || !(sent[m.ID] || want[m.ID]) || received[m.ID] {
				t.Errorf("followed: got %+v, want only the errors sent, each once", m)
			}
			received[m.ID] = true
			delete(want, m.ID)
		case <-time.After(10 * time.Second):
			t.Fatalf("followed: %d errors never arrived", len(want))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("follow ended with %v", err)
	}
	// Cancelled on the way out.
	e.waitFor("the follow to be cancelled", func() bool {
		e.svc.follows.mu.Lock()
		defer e.svc.follows.mu.Unlock()
		return len(e.svc.follows.m) == 0
	})
}

func TestComponentsAndClients(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.ComponentThresholds = map[string]contracts.StatusThresholds{
			contracts.ComponentSessions: {Error: contracts.StatusThreshold{Warning: 1, Critical: 2}},
		}
	})
	seed(t, e)
	em := newTestEmitter(t, e, contracts.ComponentDespooler)
	ctx := context.Background()
	for range 5 {
		em.Emit(ctx, contracts.StatusPackageQuarantined, map[string]string{"package": "p1", "from": "P01", "reason": "bad hash"})
	}
	states := func() map[string]contracts.ComponentState {
		resp, err := e.op.StatusComponents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]contracts.ComponentState{}
		for _, c := range resp.Components {
			out[c.Component] = c
		}
		return out
	}
	e.waitFor("despooler critical", func() bool { return states()[contracts.ComponentDespooler].Error == 5 })
	s := states()
	for comp, want := range map[string]string{
		contracts.ComponentDespooler: contracts.ComponentCritical, // 5 errors
		contracts.ComponentAgent:     contracts.ComponentCritical, // 3 errors, 5 warnings: critical is 5 errors... see below
		contracts.ComponentAdmin:     contracts.ComponentOK,
		contracts.ComponentSessions:  contracts.ComponentOK,
		contracts.ComponentPolicy:    contracts.ComponentOK,
	} {
		if comp == contracts.ComponentAgent {
			want = contracts.ComponentWarning // 3 errors: warning at 1, critical at 5
		}
		if got := s[comp].State; got != want {
			t.Errorf("%s: got %s (%+v), want %s", comp, got, s[comp], want)
		}
	}
	// The client2 message two hours old is outside the one-hour window.
	if a := s[contracts.ComponentAgent]; a.Info != 3 || a.Warning != 5 || a.Error != 3 {
		t.Errorf("agent counts: got info %d warning %d error %d, want 3 5 3", a.Info, a.Warning, a.Error)
	}
	if th := s[contracts.ComponentSessions].Thresholds; th.Error.Critical != 2 {
		t.Errorf("per-component thresholds: got %+v, want the override", th)
	}
	if s[contracts.ComponentDespooler].Reason == "" {
		t.Errorf("despooler: got no reason")
	}

	// Last status per client.
	e.waitFor("client summaries", func() bool {
		sums, err := e.op.StatusClients(ctx, "")
		return err == nil && len(sums) == 2 && sums[0].Info+sums[0].Warning+sums[0].Error+sums[1].Info+sums[1].Warning+sums[1].Error == 12
	})
	sums, _ := e.op.StatusClients(ctx, client1)
	if len(sums) != 1 || sums[0].Warning != 5 || sums[0].Error != 3 || sums[0].Last.MsgID != contracts.StatusAgentOutboxOverflow {
		t.Errorf("client1: got %+v, want 5 warnings, 3 errors, last an outbox overflow", sums)
	}
	if _, err := e.op.StatusClients(ctx, "nobody"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Errorf("unknown client: got %v, want not_found", err)
	}
}

func TestCatalogAndLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	cat, err := e.op.StatusCatalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(cat) != len(contracts.Catalog()) || cat[0].ID != contracts.StatusServiceStarted {
		t.Errorf("catalog: got %d entries starting %d, want the contracts catalog", len(cat), cat[0].ID)
	}
	// The service announced itself.
	e.waitFor("the started message", func() bool { return len(e.find(contracts.StatusServiceStarted)) == 1 })
	m := e.find(contracts.StatusServiceStarted)[0]
	if m.Component != contracts.ComponentStatus || m.Source != site || !strings.HasPrefix(m.Instance, ServiceName+"/") || m.Properties["version"] != ServiceVersion {
		t.Errorf("started: got %+v", m)
	}
}
