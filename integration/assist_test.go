//go:build unix

package integration

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/agent"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

// Remote Assistance end to end: a real site (broker, policy, status), a
// real agent, the user's `steward-agent assist` (agent.Assist, what the
// command runs: the agent's control socket and a shell in a PTY) and the
// helpers' client calls (what `steward assist list|accept|offer` run).

// assistSettings is a settings object managing Remote Assistance (the
// site's values override the user's) with the permitted viewers given.
// Remote tools stay disabled: Remote Assistance does not need them.
func assistSettings(solicited, unsolicited bool, level string, viewers []string) contracts.Settings {
	return contracts.Settings{Name: "Remote assistance", Priority: 10, SettingsSections: contracts.SettingsSections{
		RemoteTools: &contracts.RemoteToolsSettings{
			Enabled: ptrTo(false), PermittedViewers: ptrTo(viewers),
			PromptTimeout: ptrTo(contracts.Duration(10 * time.Second)),
		},
		RemoteAssistance: &contracts.RemoteAssistanceSettings{
			Manage: ptrTo(true), OverrideUserSettings: ptrTo(true),
			Solicited: ptrTo(solicited), Unsolicited: ptrTo(unsolicited), Level: ptrTo(level),
		},
	}}
}

// setAssist applies and deploys s to All Systems and waits until the agent
// runs its Remote Assistance values.
func (l *sessionLab) setAssist(t *testing.T, s contracts.Settings) {
	t.Helper()
	if _, err := l.admin.SettingsApply(ctx(t), s); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if _, err := l.admin.SettingsDeploy(ctx(t), s.Name, contracts.AllSystemsName); err != nil && contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("deploy: %v", err)
	}
	ra := s.RemoteAssistance
	wait(t, 15*time.Second, "the agent to run the Remote Assistance settings", func() bool {
		st := l.agent.PolicyStatus().RemoteAssistance
		e := st.Effective
		return st.Managed && e.Solicited != nil && *e.Solicited == *ra.Solicited &&
			e.Unsolicited != nil && *e.Unsolicited == *ra.Unsolicited && e.Level != nil && *e.Level == *ra.Level
	})
}

// assistUser is a user running `steward-agent assist` on the client: the
// test types into it and reads what the user's terminal shows.
type assistUser struct {
	t    *testing.T
	keys *os.File // what the user types
	out  *lockedBuffer
	done chan struct{}
	err  error
}

// startAssistUser runs agent.Assist as user dave against l's agent.
func (l *sessionLab) startAssistUser(t *testing.T, message string) *assistUser {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	u := &assistUser{t: t, keys: w, out: &lockedBuffer{}, done: make(chan struct{})}
	go func() {
		defer close(u.done)
		u.err = agent.Assist(context.Background(), agent.AssistOptions{StateDir: l.agent.dir, User: "dave", Message: message,
			Shell: "/bin/sh", In: r, Out: u.out})
	}()
	t.Cleanup(func() {
		_, _ = w.Write([]byte("exit\n"))
		select {
		case <-u.done:
		case <-time.After(15 * time.Second):
			t.Error("steward-agent assist did not end after exit")
		}
		w.Close()
		r.Close()
	})
	return u
}

func (u *assistUser) text() string { return string(u.out.Bytes()) }

// shows waits until the user's terminal shows s.
func (u *assistUser) shows(s string) {
	u.t.Helper()
	wait(u.t, 15*time.Second, "the user's terminal to show "+s, func() bool {
		select {
		case <-u.done:
			u.t.Fatalf("steward-agent assist ended (%v) before showing %q; it showed:\n%s", u.err, s, u.text())
		default:
		}
		return strings.Contains(u.text(), s)
	})
}

func (u *assistUser) typeKeys(s string) {
	u.t.Helper()
	if _, err := u.keys.Write([]byte(s)); err != nil {
		u.t.Fatal(err)
	}
}

// helperView collects what a helper's session shows.
type helperView struct {
	s   *client.Session
	out *lockedBuffer
}

func watch(s *client.Session) *helperView {
	h := &helperView{s: s, out: &lockedBuffer{}}
	go func() { _, _ = io.Copy(h.out, s) }()
	return h
}

func (h *helperView) shows(t *testing.T, s string) {
	t.Helper()
	wait(t, 15*time.Second, "the helper to see "+s, func() bool { return strings.Contains(string(h.out.Bytes()), s) })
}

// openRequest waits until op lists exactly one open request and returns it.
func openRequest(t *testing.T, op *client.Client) contracts.AssistInfo {
	t.Helper()
	var got []contracts.AssistInfo
	wait(t, 15*time.Second, "the request for assistance in the helper's list", func() bool {
		var err error
		got, err = op.AssistList(ctx(t))
		return err == nil && len(got) == 1
	})
	return got[0]
}

// assistAudit waits for the audit message of assistance request id.
func (l *sessionLab) assistAudit(t *testing.T, id string) contracts.StatusMessage {
	t.Helper()
	var found contracts.StatusMessage
	wait(t, 15*time.Second, "the audit of assistance request "+id, func() bool {
		resp, err := l.admin.StatusList(ctx(t), contracts.StatusListRequest{Filter: contracts.StatusFilter{MsgIDs: []int{contracts.StatusAssistRequested}}, Limit: 1000})
		if err != nil {
			return false
		}
		for _, m := range resp.Messages {
			if m.Properties["request"] == id {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// assistLab is a session lab with helpers: helen (Remote Tools Operator
// on All Systems, a permitted viewer), carol (Read-only Analyst on All
// Systems: sees the client, lacks RemoteControl) and erin (Remote Tools
// Operator on a collection without the client).
type assistLab struct {
	*sessionLab
	helen, carol, erin *client.Client
}

func startAssistLab(t *testing.T) *assistLab {
	t.Helper()
	l := startSessionLab(t, []string{"dave"}, nil)
	if _, err := l.admin.CollectionsCreate(ctx(t), contracts.CollectionCreateRequest{Name: "Nobody", Queries: []string{`name == "no-such-client"`}}); err != nil {
		t.Fatal(err)
	}
	return &assistLab{sessionLab: l,
		helen: l.rs.addOperator(t, l.admin, "helen", []string{contracts.RoleRemoteToolsOperator}, []string{contracts.AllSystemsName}),
		carol: l.rs.addOperator(t, l.admin, "carol", []string{contracts.RoleReadOnlyAnalyst}, []string{contracts.AllSystemsName}),
		erin:  l.rs.addOperator(t, l.admin, "erin", []string{contracts.RoleRemoteToolsOperator}, []string{"Nobody"}),
	}
}

// outsidersRefused: carol and erin may neither see nor take request (""
// for none) nor offer help to web-01.
func (l *assistLab) outsidersRefused(t *testing.T, request string) {
	t.Helper()
	if rs, err := l.carol.AssistList(ctx(t)); contracts.CodeOf(err) != contracts.CodePermissionDenied || len(rs) != 0 {
		t.Errorf("carol's list: got %+v, %v; want permission_denied", rs, err)
	}
	if rs, err := l.erin.AssistList(ctx(t)); err != nil || len(rs) != 0 {
		t.Errorf("erin's list: got %+v, %v; want none", rs, err)
	}
	if request != "" {
		if _, err := l.carol.AssistAccept(ctx(t), request); contracts.CodeOf(err) != contracts.CodePermissionDenied {
			t.Errorf("carol accepts: got %v (%v), want permission_denied", err, contracts.CodeOf(err))
		}
		// A client outside the operator's scope is not found, as for any
		// session: erin learns nothing of it.
		if _, err := l.erin.AssistAccept(ctx(t), request); contracts.CodeOf(err) != contracts.CodeNotFound {
			t.Errorf("erin accepts: got %v (%v), want not_found", err, contracts.CodeOf(err))
		}
	}
	if _, err := l.carol.AssistOffer(ctx(t), contracts.SessionOpenRequest{Ref: "web-01"}); contracts.CodeOf(err) != contracts.CodePermissionDenied {
		t.Errorf("carol offers: got %v (%v), want permission_denied", err, contracts.CodeOf(err))
	}
	if _, err := l.erin.AssistOffer(ctx(t), contracts.SessionOpenRequest{Ref: "web-01"}); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Errorf("erin offers: got %v (%v), want not_found", err, contracts.CodeOf(err))
	}
}

// TestAssistSolicitedFull: the user asks for help; helen sees the request
// and takes it, carol and erin can neither see nor take it; helen is
// connected at once with full control, types into the user's shell and
// sees what the user types; the user ends the session. The request, the
// session and its end are audited.
func TestAssistSolicitedFull(t *testing.T) {
	l := startAssistLab(t)
	l.setAssist(t, assistSettings(true, false, contracts.AccessFull, []string{"helen"}))
	if rs, err := l.helen.AssistList(ctx(t)); err != nil || len(rs) != 0 {
		t.Fatalf("list before any request: got %+v, %v", rs, err)
	}

	u := l.startAssistUser(t, "my build fails")
	u.shows("Waiting for a helper")
	req := openRequest(t, l.helen)
	if req.Client.ID != l.id || req.Client.Name != "web-01" || req.User != "dave" || req.Message != "my build fails" || req.Session != "" {
		t.Fatalf("listed request: got %+v", req)
	}
	if !strings.Contains(u.text(), req.ID) {
		t.Errorf("the user's terminal does not show the request's ID %s:\n%s", req.ID, u.text())
	}
	if m := l.assistAudit(t, req.ID); m.Properties["user"] != "dave" || m.Properties["client"] != l.id || m.Properties["name"] != "web-01" || !m.Audit {
		t.Errorf("assistance request audit: got %+v", m)
	}

	l.outsidersRefused(t, req.ID)
	// The refused accepts gave the request back.
	if again := openRequest(t, l.helen); again.ID != req.ID || again.Session != "" {
		t.Fatalf("after the refused accepts: got %+v", again)
	}

	s, err := l.helen.AssistAccept(ctx(t), req.ID)
	if err != nil {
		t.Fatalf("helen accepts: %v", err)
	}
	if s.Info.Kind != contracts.SessionAssist || s.Info.Access != contracts.AccessFull || s.Info.Consent != contracts.ConsentGiven || s.Info.Operator != "helen" {
		t.Errorf("session: got %+v", s.Info)
	}
	h := watch(s)
	u.shows("helen is connected to this terminal with full control")
	if rs, err := l.helen.AssistList(ctx(t)); err != nil || len(rs) != 0 {
		t.Errorf("list after the accept: got %+v, %v; want none", rs, err)
	}
	if _, err := l.admin.AssistAccept(ctx(t), req.ID); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Errorf("a second accept: got %v, want not_found", err)
	}
	if _, err := l.admin.AssistAccept(ctx(t), "not-a-request"); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Errorf("an accept of no request ID: got %v, want bad_request", err)
	}

	if _, err := s.Write([]byte("echo helper-$((40+2))\n")); err != nil {
		t.Fatal(err)
	}
	h.shows(t, "helper-42")
	u.shows("helper-42")
	u.typeKeys("echo user-$((1+1))\n")
	h.shows(t, "user-2")

	u.typeKeys(string([]byte{agent.AssistEscape, 'q'})) // the user ends the helper's session
	select {
	case <-s.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("the helper never heard the session end")
	}
	if e := s.Ended(); e.By != "user" || e.Abnormal {
		t.Errorf("end: got %+v, want by the user", e)
	}
	u.shows("The helper's session " + s.Info.ID + " ended")

	id := s.Info.ID
	if m := l.auditOf(t, contracts.StatusSessionRequested, id); m.Properties["operator"] != "helen" || m.Properties["kind"] != contracts.SessionAssist {
		t.Errorf("requested audit: got %+v", m.Properties)
	}
	if m := l.auditOf(t, contracts.StatusSessionStarted, id); m.Properties["access"] != contracts.AccessFull || m.Properties["consent"] != contracts.ConsentGiven || !m.Audit {
		t.Errorf("started audit: got %+v", m.Properties)
	}
	if m := l.auditOf(t, contracts.StatusSessionConsent, id); m.Properties["user"] != "dave" || m.Properties["consent"] != contracts.ConsentGiven {
		t.Errorf("consent audit: got %+v", m.Properties)
	}
	l.auditOf(t, contracts.StatusSessionEnded, id)
	wait(t, 15*time.Second, "the ended session's record", func() bool {
		recs, err := l.admin.SessionRecordings(ctx(t), "web-01")
		return err == nil && len(recs) == 1 && recs[0].ID == id && recs[0].BytesIn > 0 && recs[0].BytesOut > 0
	})
}

// TestAssistSolicitedViewOnly: at level view the helper who takes the
// request watches; the helper's keys never reach the user's shell.
func TestAssistSolicitedViewOnly(t *testing.T) {
	l := startAssistLab(t)
	l.setAssist(t, assistSettings(true, false, contracts.AccessView, []string{"helen"}))
	u := l.startAssistUser(t, "")
	u.shows("Waiting for a helper")
	req := openRequest(t, l.helen)

	s, err := l.helen.AssistAccept(ctx(t), req.ID)
	if err != nil {
		t.Fatalf("helen accepts: %v", err)
	}
	if s.Info.Access != contracts.AccessView {
		t.Fatalf("access: got %q, want view", s.Info.Access)
	}
	h := watch(s)
	u.shows("helen is connected to this terminal with view only")
	u.typeKeys("echo seen-$((3*3))\n")
	h.shows(t, "seen-9")
	if _, err := s.Write([]byte("echo typed-by-$((6*7))\n")); err != nil {
		t.Fatal(err)
	}
	s.End() // after the input, on the same subject: the input was handled first
	u.shows("The helper's session " + s.Info.ID + " ended")
	u.typeKeys("echo after-$((5+5))\n")
	u.shows("after-10")
	if strings.Contains(u.text(), "typed-by") || strings.Contains(string(h.out.Bytes()), "typed-by-42") {
		t.Fatalf("a view-only helper's keys reached the shared terminal:\n%s", u.text())
	}
	wait(t, 15*time.Second, "the ended session's record", func() bool {
		recs, err := l.admin.SessionRecordings(ctx(t), "web-01")
		return err == nil && len(recs) == 1 && recs[0].ID == s.Info.ID && recs[0].Access == contracts.AccessView
	})
	if recs, _ := l.admin.SessionRecordings(ctx(t), "web-01"); recs[0].BytesIn != 0 {
		t.Errorf("bytes of input relayed to the client: got %d, want 0", recs[0].BytesIn)
	}
	if m := l.auditOf(t, contracts.StatusSessionStarted, s.Info.ID); m.Properties["access"] != contracts.AccessView {
		t.Errorf("started audit: got %+v", m.Properties)
	}

	// A user who gives up before any helper came: taking the request is
	// refused by the client, and the dead request leaves the list.
	gone := l.startAssistUser(t, "never mind")
	gone.shows("Waiting for a helper")
	stale := openRequest(t, l.helen)
	gone.typeKeys("exit\n")
	select {
	case <-gone.done:
	case <-time.After(15 * time.Second):
		t.Fatal("steward-agent assist did not end after exit")
	}
	if _, err := l.helen.AssistAccept(ctx(t), stale.ID); contracts.CodeOf(err) != contracts.CodeClientRefused || !strings.Contains(err.Error(), "no assistance request") {
		t.Fatalf("accepting a request whose user left: got %v, want client_refused", err)
	}
	if rs, err := l.helen.AssistList(ctx(t)); err != nil || len(rs) != 0 {
		t.Errorf("list after the client refused the request: got %+v, %v; want none", rs, err)
	}
}

// TestAssistSolicitedOff: with solicited assistance off the user's request
// is refused on the client; a request that reaches the site anyway (sent
// with the agent's key, not through the agent's check) cannot be taken.
func TestAssistSolicitedOff(t *testing.T) {
	l := startAssistLab(t)
	l.setAssist(t, assistSettings(false, false, contracts.AccessFull, []string{"helen"}))
	err := agent.Assist(ctx(t), agent.AssistOptions{StateDir: l.agent.dir, User: "dave", Shell: "/bin/sh", In: os.Stdin, Out: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "asking for assistance is off on this client") {
		t.Fatalf("assist with solicited off: got %v", err)
	}
	if rs, err := l.helen.AssistList(ctx(t)); err != nil || len(rs) != 0 {
		t.Fatalf("list: got %+v, %v; want none", rs, err)
	}

	nc := connectWithSeedFile(t, l.rs.URL(), seedOf(t, l.agent.dir), l.id)
	subject, err := contracts.AgentUp(l.rs.Info.Site, l.id, contracts.KindAssistRequest)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(contracts.SessionAssistRequest{Header: contracts.NewHeader(contracts.TypeSessionAssistRequest),
		Request: uuid.NewString(), User: "mallory"})
	reply, err := nc.RequestMsg(&nats.Msg{Subject: subject, Data: data}, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code := reply.Header.Get("Nats-Service-Error-Code"); code == "" {
		req := openRequest(t, l.helen)
		if _, err := l.helen.AssistAccept(ctx(t), req.ID); contracts.CodeOf(err) != contracts.CodePolicyDenied || !strings.Contains(err.Error(), "solicited assistance is off") {
			t.Fatalf("accepting with solicited off: got %v, want policy_denied", err)
		}
	} else if contracts.ParseCode(code) != contracts.CodePolicyDenied {
		t.Fatalf("the site's answer to a request with solicited off: %s (%s), want policy_denied", reply.Header.Get("Nats-Service-Error"), code)
	}
}

// TestAssistOffer: helpers may offer help only when unsolicited assistance
// is on; the user accepts the offer on the shared terminal; carol and erin
// may not offer.
func TestAssistOffer(t *testing.T) {
	l := startAssistLab(t)
	l.setAssist(t, assistSettings(true, false, contracts.AccessFull, []string{"helen"}))
	u := l.startAssistUser(t, "")
	u.shows("Waiting for a helper")

	_, err := l.helen.AssistOffer(ctx(t), contracts.SessionOpenRequest{Ref: "web-01"})
	if contracts.CodeOf(err) != contracts.CodePolicyDenied || !strings.Contains(err.Error(), "unsolicited") {
		t.Fatalf("offer with unsolicited off: got %v (%v), want policy_denied", err, contracts.CodeOf(err))
	}

	s := assistSettings(true, true, contracts.AccessFull, []string{"helen"})
	s.Description = "offers on"
	l.setAssist(t, s)
	l.outsidersRefused(t, "")

	type result struct {
		s   *client.Session
		err error
	}
	offered := make(chan result, 1)
	go func() {
		s, err := l.helen.AssistOffer(ctx(t), contracts.SessionOpenRequest{Ref: "web-01", Cols: 100, Rows: 30})
		offered <- result{s, err}
	}()
	u.shows("helen offers to help you with full control")
	u.typeKeys(string([]byte{agent.AssistEscape, 'y'}))
	var r result
	select {
	case r = <-offered:
	case <-time.After(15 * time.Second):
		t.Fatal("the offer got no answer")
	}
	if r.err != nil {
		t.Fatalf("offer: %v", r.err)
	}
	if r.s.Info.Access != contracts.AccessFull || r.s.Info.Consent != contracts.ConsentGiven || r.s.Info.Kind != contracts.SessionAssist {
		t.Errorf("session: got %+v", r.s.Info)
	}
	h := watch(r.s)
	u.shows("helen is connected to this terminal with full control")
	if _, err := r.s.Write([]byte("echo offered-$((7*6))\n")); err != nil {
		t.Fatal(err)
	}
	h.shows(t, "offered-42")
	u.shows("offered-42")
	if m := l.auditOf(t, contracts.StatusSessionConsent, r.s.Info.ID); m.Properties["user"] != "dave" || m.Properties["consent"] != contracts.ConsentGiven {
		t.Errorf("consent audit: got %+v", m.Properties)
	}
	l.auditOf(t, contracts.StatusSessionStarted, r.s.Info.ID)
	r.s.End()
	l.auditOf(t, contracts.StatusSessionEnded, r.s.Info.ID)
}
