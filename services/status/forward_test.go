package status

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
	"github.com/stewardhq/steward/services/internal/rpc"
)

// siteConn is a connection with the site inbox prefix of site.
func siteConn(t *testing.T, e *env, site string) *nats.Conn {
	t.Helper()
	inbox, err := contracts.SiteInbox(site)
	if err != nil {
		t.Fatal(err)
	}
	return natstest.Connect(t, e.srv, nats.CustomInboxPrefix(inbox))
}

// newForwardEnv is an env whose site has peers and, with siteNC, a
// connection to other sites.
func newForwardEnv(t *testing.T, peers StaticPeers, siteNC bool, tweak func(*Config)) *env {
	t.Helper()
	srv := natstest.Start(t)
	var snc *nats.Conn
	if siteNC {
		inbox, _ := contracts.SiteInbox(site)
		snc = natstest.Connect(t, srv, nats.CustomInboxPrefix(inbox))
	}
	return newEnvOn(t, srv, func(c *Config) {
		c.Peers, c.SiteNC = peers, snc
		if tweak != nil {
			tweak(c)
		}
	})
}

// TestForwardToParent: a forward rule with target parent asks the parent
// (from the peers) on steward.<parent>.site.<site>.status.forward, with a
// reply inbox the leaf link carries (contracts.SiteInbox), and waits for its
// acknowledgement. A stand-in parent answers here.
func TestForwardToParent(t *testing.T) {
	e := newForwardEnv(t, StaticPeers{{Site: "PAR", Role: contracts.PeerParent}, {Site: "KID", Role: contracts.PeerChild}}, true, nil)
	subj, _ := contracts.SiteSubject("PAR", site, contracts.KindStatusForward)
	var mu sync.Mutex
	var got []contracts.StatusMessage
	var replies []string
	sub, err := e.nc.Subscribe(subj, func(m *nats.Msg) {
		var sm contracts.StatusMessage
		if err := contracts.Decode(m.Data, contracts.TypeStatusMessage, &sm); err != nil {
			t.Errorf("forwarded payload: %v", err)
			return
		}
		mu.Lock()
		got, replies = append(got, sm), append(replies, m.Reply)
		mu.Unlock()
		b, _ := json.Marshal(contracts.StatusForwardAck{Header: contracts.NewHeader(contracts.TypeStatusForwardAck), MessageID: sm.ID})
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	e.addRule(contracts.StatusRule{Name: "up", Match: `id == 10001`, Action: contracts.RuleForward, Target: contracts.ForwardParent})
	m := agentMsg(contracts.StatusAgentConnectionLost, map[string]string{"site": site, "server": "x", "error": "eof"})
	e.send(client1, item(t, m))
	e.waitFor("the parent to get the message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	if got[0].ID != m.ID || got[0].MsgID != contracts.StatusAgentConnectionLost || got[0].Site != site {
		t.Errorf("forwarded: got %+v, want message %s", got[0], m.ID)
	}
	if want, _ := contracts.SiteInbox(site); !strings.HasPrefix(replies[0], want+".") {
		t.Errorf("reply subject %q: want it under %s", replies[0], want)
	}
	if n := len(e.find(contracts.StatusRuleActionFailed)); n != 0 {
		t.Errorf("got %d action failures, want none", n)
	}
}

// TestForwardNoParent: without a parent the action fails with a clear
// error, reported (4002) and retried, then given up (4003).
func TestForwardNoParent(t *testing.T) {
	e := newForwardEnv(t, StaticPeers{{Site: "KID", Role: contracts.PeerChild}}, true, nil)
	e.addRule(contracts.StatusRule{Name: "up", Match: `id == 10001`, Action: contracts.RuleForward, Target: contracts.ForwardParent})
	e.send(client1, item(t, agentMsg(contracts.StatusAgentConnectionLost, map[string]string{"site": site, "server": "x", "error": "eof"})))
	e.waitFor("the action to give up", func() bool { return len(e.find(contracts.StatusRuleActionGaveUp)) == 1 })
	failed := e.find(contracts.StatusRuleActionFailed)
	if len(failed) == 0 || !strings.Contains(failed[0].Properties["error"], "has no parent site") {
		t.Fatalf("failures: got %+v, want one saying the site has no parent", failed)
	}
}

// TestGiveUpDoesNotFeedRules: a rule forwarding every error to a parent
// that does not exist gives up once per message; the give-up is reported
// as 4003 only, not also as a service error that the same rule would
// forward, fail and give up on again, without end.
func TestGiveUpDoesNotFeedRules(t *testing.T) {
	e := newForwardEnv(t, StaticPeers{{Site: "KID", Role: contracts.PeerChild}}, true, nil)
	e.addRule(contracts.StatusRule{Name: "errors-up", Match: `id == 10001 || severity == "error"`, Action: contracts.RuleForward, Target: contracts.ForwardParent})
	e.send(client1, item(t, agentMsg(contracts.StatusAgentConnectionLost, map[string]string{"site": site, "server": "x", "error": "eof"})))
	e.waitFor("the action to give up", func() bool { return len(e.find(contracts.StatusRuleActionGaveUp)) >= 1 })
	time.Sleep(time.Second) // a loop gives up again every few tens of ms here
	if n := len(e.find(contracts.StatusRuleActionGaveUp)); n != 1 {
		t.Errorf("%d give-ups for one message, want 1", n)
	}
	if n := len(e.find(contracts.StatusServiceFailed)); n != 0 {
		t.Errorf("%d service-failed messages from the give-up, want 0", n)
	}
}

// forwardAs sends m to this site's forward endpoint as site from would.
func forwardAs(e *env, nc *nats.Conn, from string, m contracts.StatusMessage) (contracts.StatusForwardAck, error) {
	subj, err := contracts.SiteSubject(site, from, contracts.KindStatusForward)
	if err != nil {
		return contracts.StatusForwardAck{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var ack contracts.StatusForwardAck
	err = rpc.Call(ctx, nc, subj, m, &ack)
	return ack, err
}

// TestReceiveForward: a child's forwarded message is stored once (by its
// uuid), from the site the subject names whatever the payload says, and
// only from a child.
func TestReceiveForward(t *testing.T) {
	e := newForwardEnv(t, StaticPeers{{Site: "PAR", Role: contracts.PeerParent}, {Site: "KID", Role: contracts.PeerChild}}, false, nil)
	kid := siteConn(t, e, "KID")
	e.addRule(contracts.StatusRule{Name: "mark", Match: `forwardedFrom == "KID"`, Action: contracts.RuleWebhook, Target: "http://127.0.0.1:1/never"})

	m := agentMsg(contracts.StatusAgentConnectionLost, map[string]string{"site": "KID", "server": "x", "error": "eof"})
	m.Time = time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	m.Site, m.Source, m.Client, m.ForwardedFrom = "EVIL", "EVIL", client1, "EVIL"
	m.Component, m.Severity, m.Text = contracts.ComponentAgent, contracts.SeverityWarning, "lost it"
	ack, err := forwardAs(e, kid, "KID", m)
	if err != nil || ack.MessageID != m.ID || ack.Duplicate {
		t.Fatalf("forward: got %+v, %v; want a fresh ack of %s", ack, err, m.ID)
	}
	ack, err = forwardAs(e, kid, "KID", m)
	if err != nil || !ack.Duplicate {
		t.Fatalf("resend: got %+v, %v; want a duplicate ack", ack, err)
	}
	got := e.find(contracts.StatusAgentConnectionLost)
	if len(got) != 1 {
		t.Fatalf("stored: got %d, want 1", len(got))
	}
	s := got[0]
	if s.ID != m.ID || s.Site != site || s.Source != "KID" || s.ForwardedFrom != "KID" || s.Client != "" ||
		s.Instance != "agent/"+client1 || !s.Time.Equal(m.Time) || s.Text != "lost it" || s.Severity != contracts.SeverityWarning ||
		s.Properties["server"] != "x" || s.Received.IsZero() {
		t.Errorf("stored: got %+v", s)
	}
	list, err := e.op.StatusList(context.Background(), contracts.StatusListRequest{Header: contracts.NewHeader(contracts.TypeStatusListRequest), Filter: contracts.StatusFilter{Sources: []string{"KID"}}})
	if err != nil || len(list.Messages) != 1 || list.Messages[0].ForwardedFrom != "KID" {
		t.Errorf("list --source KID: got %+v, %v", list, err)
	}
	// The rules run on it like on any message (the webhook fails: reported).
	e.waitFor("the rule to run on it", func() bool {
		for _, f := range e.find(contracts.StatusRuleActionFailed) {
			if f.Properties["message"] == m.ID && f.Properties["rule"] == "mark" {
				return true
			}
		}
		return false
	})

	for _, tt := range []struct {
		from string
		code contracts.Code
	}{
		{"ZZZ", contracts.CodePermissionDenied}, // not linked
		{"PAR", contracts.CodePermissionDenied}, // the parent is no child
		{site, contracts.CodeBadRequest},        // itself
	} {
		m2 := agentMsg(contracts.StatusAgentConnectionLost, nil)
		if _, err := forwardAs(e, siteConn(t, e, tt.from), tt.from, m2); contracts.CodeOf(err) != tt.code {
			t.Errorf("from %s: got %v, want %v", tt.from, err, tt.code)
		}
	}
	bad := agentMsg(contracts.StatusAgentConnectionLost, nil)
	bad.Severity, bad.Component = "", "a.b"
	if _, err := forwardAs(e, kid, "KID", bad); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Errorf("malformed: got %v, want bad_request", err)
	}
	if n := len(e.find(contracts.StatusAgentConnectionLost)); n != 1 {
		t.Errorf("stored after refusals: got %d, want 1", n)
	}
}

// TestForwardRateLimit: each child site has its own token bucket.
func TestForwardRateLimit(t *testing.T) {
	e := newForwardEnv(t, StaticPeers{{Site: "KID", Role: contracts.PeerChild}, {Site: "KID2", Role: contracts.PeerChild}}, false, func(c *Config) {
		c.ForwardRate, c.ForwardBurst = 0.001, 1
	})
	kid := siteConn(t, e, "KID")
	msg := func() contracts.StatusMessage {
		m := agentMsg(contracts.StatusAgentConnectionLost, nil)
		m.Component, m.Severity = contracts.ComponentAgent, contracts.SeverityWarning
		return m
	}
	if _, err := forwardAs(e, kid, "KID", msg()); err != nil {
		t.Fatal(err)
	}
	if _, err := forwardAs(e, kid, "KID", msg()); contracts.CodeOf(err) != contracts.CodeUnavailable {
		t.Errorf("over the limit: got %v, want unavailable", err)
	}
	if _, err := forwardAs(e, siteConn(t, e, "KID2"), "KID2", msg()); err != nil {
		t.Errorf("another child: got %v, want it stored", err)
	}
	e.waitFor("the rate-limit report", func() bool {
		r := e.find(contracts.StatusRateLimited)
		return len(r) == 1 && r[0].Properties["source"] == "KID"
	})
}

// TestForwardRuleCannotPoseAsChild: a forward rule (Site:Modify) publishes
// through JetStream, which is a request; on this site's own
// steward.<site>.site.<child>.status.forward the status service took the
// message as forwarded by that child and stored it so. Such a target, and
// any other request-space subject, is refused when the rule is added, and
// a rule stored with one (by an older version) is skipped.
func TestForwardRuleCannotPoseAsChild(t *testing.T) {
	e := newForwardEnv(t, StaticPeers{{Site: "KID", Role: contracts.PeerChild}}, false, nil)
	ctx := context.Background()
	target, _ := contracts.SiteSubject(site, "KID", contracts.KindStatusForward)
	def := contracts.StatusRule{Name: "pose", Match: `id == 10001`, Action: contracts.RuleForward, Target: target, Order: 1}
	if _, err := e.op.StatusRulesAdd(ctx, def); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Errorf("add a forward to %s: got %v, want bad_request", target, err)
	}
	// As an older version would have stored it.
	def.Created, def.By = time.Now().UTC(), "otto"
	data, _ := json.Marshal(def)
	if _, err := e.svc.rules.kv.Put(ctx, def.Name, data); err != nil {
		t.Fatal(err)
	}
	m := agentMsg(contracts.StatusAgentConnectionLost, map[string]string{"site": site, "server": "x", "error": "eof"})
	e.send(client1, item(t, m))
	e.caughtUp()
	if info, err := e.svc.actions.Info(ctx); err != nil || info.State.LastSeq != 0 {
		t.Errorf("action queue: got %+v, %v; want no job queued", info.State, err)
	}
	e.waitFor("the queued actions to run", func() bool {
		info, err := e.svc.actions.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})
	for _, s := range e.stored() {
		if s.ForwardedFrom != "" || s.Source == "KID" {
			t.Errorf("stored as forwarded by KID: %+v", s)
		}
	}
}
