package status

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
	"github.com/stewardhq/steward/services/internal/natstest"
	"github.com/stewardhq/steward/services/rbac"
)

// TestAuditKeptWhateverTheRules: an Operations Administrator (Site:Modify,
// no security rights) adds a discard rule and a store rule on audit
// messages, ordered first. Audit records are kept all the same (a
// session's, and the rule changes 4010 and 4011, the discard's own
// included), and the Full Administrator's webhook on audit still gets
// each: store and discard rules do not apply to audit messages. On other
// messages the discard works as before.
func TestAuditKeptWhateverTheRules(t *testing.T) {
	var mu sync.Mutex
	hooked := map[string]bool{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m contracts.StatusMessage
		if json.Unmarshal(body, &m) == nil {
			mu.Lock()
			hooked[m.ID] = true
			mu.Unlock()
		}
	}))
	t.Cleanup(hook.Close)

	az := &staticAuthz{}
	srv := natstest.Start(t)
	e := newEnvOn(t, srv, func(c *Config) { c.NoAuthz, c.Authz = false, az })
	m, err := rbac.NewModel(rbac.Document{Admins: []rbac.Admin{
		adminUser("alice", contracts.RoleFullAdministrator),
		adminUser("otto", contracts.RoleOperationsAdministrator),
	}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	az.m.Store(m)
	ctx := context.Background()
	alice := e.op // "alice"
	otto := client.New(natstest.Connect(t, srv), site, "otto")
	if _, err := alice.StatusRulesAdd(ctx, contracts.StatusRule{Name: "to-chat", Match: "audit", Action: contracts.RuleWebhook, Target: hook.URL, Order: 50}); err != nil {
		t.Fatalf("alice adds the webhook: %v", err)
	}
	if _, err := otto.StatusRulesAdd(ctx, contracts.StatusRule{Name: "keep-quiet", Match: "audit", Action: contracts.RuleStore, Order: 2}); err != nil {
		t.Fatalf("otto adds the store rule: %v", err)
	}
	if _, err := otto.StatusRulesAdd(ctx, contracts.StatusRule{Name: "quiet", Match: `audit || id == 10001`, Action: contracts.RuleDiscard, Order: 1}); err != nil {
		t.Fatalf("otto adds the discard rule: %v", err)
	}

	em := newTestEmitter(t, e, contracts.ComponentSessions)
	session := em.Message(ctx, contracts.StatusSessionStarted, map[string]string{"operator": "otto", "client": client1, "kind": "remote-control"})
	if err := em.Publish(ctx, session); err != nil {
		t.Fatal(err)
	}
	noise := agentMsg(contracts.StatusAgentConnectionLost, nil) // 10001, not audit
	e.send(client1, item(t, noise))
	if _, err := otto.StatusRulesDelete(ctx, "keep-quiet"); err != nil {
		t.Fatalf("otto deletes the store rule: %v", err)
	}
	e.waitFor("the rule deletion's audit record", func() bool { return len(e.find(contracts.StatusRuleDeleted)) == 1 })
	e.caughtUp()

	kept := map[string]contracts.StatusMessage{}
	added := map[string]bool{}
	for _, m := range e.stored() {
		kept[m.ID] = m
		if m.MsgID == contracts.StatusRuleAdded {
			added[m.Properties["rule"]] = true
		}
	}
	if _, ok := kept[session.ID]; !ok {
		t.Error("the session's audit record was discarded")
	}
	if !added["quiet"] || !added["keep-quiet"] || !added["to-chat"] {
		t.Errorf("rule-added audit records kept: %v, want quiet, keep-quiet and to-chat", added)
	}
	if _, ok := kept[noise.ID]; ok {
		t.Error("the discard rule did not discard a message that is not audit")
	}
	// The webhook ran on every audit message, past the store and discard
	// rules ordered before it.
	e.waitFor("the webhook on the audit records", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range kept {
			if m.Audit && !hooked[m.ID] && (m.MsgID != contracts.StatusRuleAdded || m.Properties["rule"] != "to-chat") {
				return false
			}
		}
		return hooked[session.ID]
	})
	// rules test says so.
	resp, err := alice.StatusRulesTest(ctx, contracts.StatusRuleTestRequest{Name: "quiet", Filter: contracts.StatusFilter{AuditOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Results {
		if r.Would != "nothing: an audit message is always kept and the later rules run" {
			t.Errorf("rules test of the discard on %d: got %q", r.Message.MsgID, r.Would)
		}
	}
}
