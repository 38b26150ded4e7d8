package agent

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/agent/control"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
)

// newClientID is the client ID the site gives the agent's key when it
// enrolls again after its client was deleted.
const newClientID = "3c6f1e0a-7b2d-4e58-9f14-5a8d2c7b9e33"

// grantAgent sets what the server grants the agent's key, as the site's
// auth callout does (services/admin decide): clientID "" is a key the site
// does not know (never enrolled, or its client deleted), which may only
// ask to enroll and hear the answer; otherwise the grant of that client
// (with enrollment, as the bench's users always have). Applied at the next
// restart or reload.
func (b *bench) grantAgent(clientID string) {
	svcPub, _ := b.svcKP.PublicKey()
	enroll, _ := contracts.Enroll(testSite, b.agentPub)
	pubInbox, _ := contracts.Inbox(b.agentPub)
	perms := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{enroll}},
		Subscribe: &server.SubjectPermission{Allow: []string{pubInbox + ".>"}},
	}
	if clientID != "" {
		up, _ := contracts.AgentSpace(testSite, clientID, "up")
		down, _ := contracts.AgentSpace(testSite, clientID, "down")
		idInbox, _ := contracts.Inbox(clientID)
		perms.Publish.Allow = append(perms.Publish.Allow, up)
		perms.Subscribe.Allow = append(perms.Subscribe.Allow, down, idInbox+".>")
	}
	b.opts.Nkeys = []*server.NkeyUser{{Nkey: svcPub}, {Nkey: b.agentPub, Permissions: perms}}
}

// restart restarts the server on the same port: every connection is
// closed, as the site's kick of a deleted client closes the agent's.
func (b *bench) restart() {
	b.t.Helper()
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
	b.start()
}

// debugTo also logs the agent's debug lines to buf.
func debugTo(buf *logBuffer) func(*Config) {
	return func(c *Config) {
		c.Log = slog.New(teeHandler{c.Log.Handler(), slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})})
	}
}

// TestDeletedClient: the site deletes the client of a running agent
// without a token. The server then admits the agent's key only to enroll;
// the agent must not show itself connected: state deleted, with what to
// do, logged at Error once while it keeps checking with backoff, and its
// identity untouched (the server's word is not enough to discard it).
// When the server admits it as its client again, it is connected again.
func TestDeletedClient(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	debug := &logBuffer{}
	a := b.startAgent(debugTo(debug))
	waitFor(t, "connected", func() bool { return a.Status().State == StateConnected })

	b.grantAgent("") // steward clients delete pc-042 --yes
	b.restart()
	waitFor(t, "state deleted", func() bool { return a.Status().State == StateDeleted })
	st := a.Status()
	for _, want := range []string{"not known to site LAB", "deleted at the site", "--token or STEWARD_TOKEN", "steward tokens create"} {
		if !strings.Contains(st.Message, want) {
			t.Errorf("status message %q does not say %q", st.Message, want)
		}
	}
	if st.Connected || a.Connected() {
		t.Errorf("status says connected while the site does not know the client: %+v", st)
	}
	if !a.Deleted() {
		t.Error("Deleted() is false")
	}
	// steward-agent status (table and -o json) shows what the socket says.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cst, err := control.Status(ctx, a.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	if cst.State != StateDeleted || cst.Connected || !strings.Contains(cst.Message, "not known to site LAB") {
		t.Errorf("control socket status: state %q, connected %v, message %q", cst.State, cst.Connected, cst.Message)
	}

	// It checks again and again (closing the connection in between), and
	// says so at Error only once.
	waitFor(t, "three more checks", func() bool {
		return strings.Count(debug.String(), "the site still does not know this client") >= 3
	})
	logs := b.logs[a].String()
	if n := strings.Count(logs, "the site does not know this client"); n != 1 {
		t.Errorf("the deletion was logged %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs, "level=ERROR") {
		t.Errorf("the deletion was not logged at Error:\n%s", logs)
	}
	if id, _ := a.Identity(); id.ClientID != b.clientID || a.Status().State != StateDeleted {
		t.Fatalf("without a token the identity changed: %+v", id)
	}

	// The server admits it as the client again.
	b.grantAgent(b.clientID)
	b.restart()
	hb := heartbeats(t, b.services())
	m := receive(t, hb, "a heartbeat")
	if want, _ := contracts.AgentUp(testSite, b.clientID, contracts.KindHeartbeat); m.Subject != want {
		t.Fatalf("heartbeat on %s, want %s", m.Subject, want)
	}
	waitFor(t, "connected again", func() bool { return a.Status().State == StateConnected })
	if !strings.Contains(b.logs[a].String(), "the site knows this client again") {
		t.Error("the recovery was not logged")
	}
}

// TestDeletedClientEnrollsAgainWithToken is the walk-through: the client
// was deleted while the agent was stopped, and the agent is started again
// with a token. It enrolls again with its key, and the approval replaces
// the stored identity: a new client that heartbeats. What was the old
// client's goes: the policy's revision (the settings stay in force) and
// the unsent policy acknowledgements; content outcomes are reported again;
// the machine's status messages stay for the new client.
func TestDeletedClientEnrollsAgainWithToken(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	s, err := state.Open(b.dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.UpdateContent(0, func(idx map[string]state.ContentEntry) ([]state.Entry, error) {
		e := state.ContentEntry{Package: "tool", Version: "1.0.0", Digest: "sha256-abc", State: contracts.ContentInstalled,
			Size: 1, Bytes: 1, Updated: time.Now().UTC(), Assigned: true, Reported: true}
		idx[e.Key()] = e
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	twoHours := contracts.Duration(2 * time.Hour)
	ack, err := newEntry(contracts.KindPolicyAck, contracts.TypePolicyAck, contracts.PolicyAck{
		Header: contracts.NewHeader(contracts.TypePolicyAck), Revision: 5, Applied: true, AppliedRevision: 5})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.UpdatePolicy(0, func(p *state.PolicyState) ([]state.Entry, error) {
		p.Revision = 5
		p.Settings.Agent = &contracts.AgentSettings{Heartbeat: &twoHours}
		return []state.Entry{ack}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := newEntry(contracts.KindStatus, contracts.TypeStatusMessage, contracts.NewStatus(contracts.StatusAgentConnectionLost, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(0, msg); err != nil {
		t.Fatal(err)
	}
	s.Close()

	b.grantAgent("") // deleted while the agent was stopped
	b.restart()
	svc := b.services()
	hb := heartbeats(t, svc)
	seen := b.fakeSite(svc, func(r enrollRequest, m *nats.Msg) {
		if r.req.Token != b.token() {
			t.Errorf("enrollment request with token %q, want the agent's", r.req.Token)
			return
		}
		// The site admits the key as a new client.
		b.grantAgent(newClientID)
		if err := b.srv.ReloadOptions(b.opts); err != nil {
			t.Error(err)
		}
		respond(t, m, b.approval(b.siteKP, newClientID, b.agentPub))
	})

	a := b.startAgent(func(c *Config) { c.Token = b.token() })
	r := receive(t, seen, "an enrollment request")
	if want, _ := contracts.Enroll(testSite, b.agentPub); r.subject != want {
		t.Fatalf("enrollment on %s, want %s (the same key)", r.subject, want)
	}
	m := receive(t, hb, "a heartbeat")
	if want, _ := contracts.AgentUp(testSite, newClientID, contracts.KindHeartbeat); m.Subject != want {
		t.Fatalf("heartbeat on %s, want %s", m.Subject, want)
	}
	waitFor(t, "connected as the new client", func() bool {
		st := a.Status()
		return st.State == StateConnected && st.ClientID == newClientID
	})
	logs := b.logs[a].String()
	for _, want := range []string{"the site does not know this client", "enrolling again", "enrolled again as a new client"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log does not say %q:\n%s", want, logs)
		}
	}
	b.stopAgent(a)

	s, err = state.Open(b.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id, ok, err := s.GetIdentity()
	if err != nil || !ok {
		t.Fatalf("identity: %v %v", ok, err)
	}
	if id.ClientID != newClientID || id.AgentKey != b.agentPub || id.SiteKey != b.sitePub || id.Site != testSite {
		t.Fatalf("stored identity %+v, want client %s with the same key and site key", id, newClientID)
	}
	idx, err := s.ContentIndex()
	if err != nil {
		t.Fatal(err)
	}
	if len(idx) != 1 || idx[0].State != contracts.ContentInstalled || idx[0].Reported {
		t.Fatalf("content index %+v, want tool@1.0.0 still installed and to be reported to the new client", idx)
	}
	p, err := s.Policy()
	if err != nil {
		t.Fatal(err)
	}
	if p.Revision != 0 || p.Settings.Agent == nil || p.Settings.Agent.Heartbeat == nil || *p.Settings.Agent.Heartbeat != twoHours {
		t.Fatalf("policy revision %d, agent settings %+v: want revision 0 (the new client has applied none) and the settings kept", p.Revision, p.Settings.Agent)
	}
	left, err := s.Pending(0)
	if err != nil {
		t.Fatal(err)
	}
	var status bool
	for _, e := range left {
		switch {
		case e.Kind == contracts.KindPolicyAck:
			t.Errorf("the old client's policy acknowledgement is still in the outbox: %+v", e)
		case e.Item.ID == msg.Item.ID:
			status = true
		}
	}
	if !status {
		t.Errorf("the machine's status message left the outbox: %+v", left)
	}
}

// TestDeletedWhileRunningEnrollsAgain: an agent that was given a token
// (kept in its environment) is deleted while it runs: it enrolls again at
// once, with the same key, and runs as the new client.
func TestDeletedWhileRunningEnrollsAgain(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	a := b.startAgent(func(c *Config) { c.Token = b.token() })
	waitFor(t, "connected", func() bool { return a.Status().State == StateConnected })
	if logs := b.logs[a].String(); !strings.Contains(logs, "the token is used only if the site no longer knows this client") {
		t.Errorf("the start does not say what the token is for:\n%s", logs)
	}

	b.grantAgent("")
	b.restart()
	svc := b.services()
	hb := heartbeats(t, svc)
	b.fakeSite(svc, func(r enrollRequest, m *nats.Msg) {
		b.grantAgent(newClientID)
		if err := b.srv.ReloadOptions(b.opts); err != nil {
			t.Error(err)
		}
		respond(t, m, b.approval(b.siteKP, newClientID, b.agentPub))
	})
	m := receive(t, hb, "a heartbeat")
	if want, _ := contracts.AgentUp(testSite, newClientID, contracts.KindHeartbeat); m.Subject != want {
		t.Fatalf("heartbeat on %s, want %s", m.Subject, want)
	}
	waitFor(t, "connected as the new client", func() bool {
		st := a.Status()
		return st.State == StateConnected && st.ClientID == newClientID && !a.Deleted()
	})
}

// TestDeletedClientTokenOfAnotherSite: a token of another site key (the
// same site code) is not used to enroll again: the status says why and
// what to do, and the site sees no enrollment request.
func TestDeletedClientTokenOfAnotherSite(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	b.grantAgent("")
	b.restart()
	svc := b.services()
	seen := b.fakeSite(svc, func(r enrollRequest, m *nats.Msg) {
		t.Errorf("the agent asked to enroll with a token of another site: %+v", r.req)
	})
	otherPub, _ := b.otherKey().PublicKey()
	tok := contracts.EnrollmentToken{Site: testSite, SiteKey: otherPub, ID: "tok-2", Secret: "s3cret"}.String()
	debug := &logBuffer{}
	a := b.startAgent(func(c *Config) {
		c.Token = tok
		debugTo(debug)(c)
	})
	waitFor(t, "state deleted", func() bool { return a.Status().State == StateDeleted })
	if msg := a.Status().Message; !strings.Contains(msg, "will not use it") || !strings.Contains(msg, "move "+b.dir) {
		t.Errorf("status message %q does not say why the token is not used and what to do", msg)
	}
	waitFor(t, "two more checks", func() bool {
		return strings.Count(debug.String(), "the site still does not know this client") >= 2
	})
	if len(seen) != 0 {
		t.Fatal("the site got an enrollment request")
	}
	if id, _ := a.Identity(); id.ClientID != b.clientID {
		t.Fatalf("the identity changed: %+v", id)
	}
}
