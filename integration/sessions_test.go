package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/agent"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/cli"
	"github.com/stewardhq/steward/services/client"
)

// fixedInventory reports the same inventory every time: the client's
// local administrators and logged-on users are what the test says.
type fixedInventory struct{ inv contracts.Inventory }

func (f fixedInventory) Collect(context.Context) (contracts.Inventory, error) { return f.inv, nil }

// sessionLab is a site, its administrator, and one client whose local
// administrators are bob and root and on which users (possibly none) are
// logged on.
type sessionLab struct {
	rs    *runningSite
	admin *client.Client
	agent *runningAgent
	id    string
}

func ptrTo[T any](v T) *T { return &v }

// remoteTools is a settings object with remote tools as given.
func remoteTools(enabled bool, level string, prompt bool, viewers []string, ports []int) contracts.Settings {
	return contracts.Settings{Name: "Remote tools", Priority: 10, SettingsSections: contracts.SettingsSections{
		RemoteTools: &contracts.RemoteToolsSettings{
			Enabled: ptrTo(enabled), AccessLevel: ptrTo(level), PromptUser: ptrTo(prompt),
			PromptTimeout: ptrTo(contracts.Duration(2 * time.Second)), AllowWhenNoUser: ptrTo(true),
			PermittedViewers: ptrTo(viewers), TunnelPorts: ptrTo(ports),
		}}}
}

func startSessionLab(t *testing.T, users []string, cfg func(*agent.Config)) *sessionLab {
	t.Helper()
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	admin := rs.operator(t)
	tok := rs.token(t, 1, time.Hour)
	dir := t.TempDir()
	c := agent.Config{Server: rs.URL(), Token: tok, StateDir: dir, Name: "web-01", Heartbeat: time.Second, Log: testLog(t),
		Inventory:     fixedInventory{contracts.Inventory{OS: contracts.OSInfo{Name: "Debian", Family: "linux"}, Admins: []string{"root", "bob"}, Users: users}},
		LoggedOnUsers: func() []string { return users }}
	if cfg != nil {
		cfg(&c)
	}
	a, err := agent.New(c)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	ra := &runningAgent{Agent: a, dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() { ra.done <- a.Run(cctx) }()
	t.Cleanup(ra.stop)
	wait(t, 15*time.Second, "web-01 enrolled", func() bool { return a.ClientID() != "" })
	waitOnline(t, admin, a.ClientID(), true)
	return &sessionLab{rs: rs, admin: admin, agent: ra, id: a.ClientID()}
}

// setPolicy applies and deploys s to All Systems and waits until the agent
// runs it.
func (l *sessionLab) setPolicy(t *testing.T, s contracts.Settings) {
	t.Helper()
	resp, err := l.admin.SettingsApply(ctx(t), s)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if _, err := l.admin.SettingsDeploy(ctx(t), s.Name, contracts.AllSystemsName); err != nil && contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("deploy: %v", err)
	}
	want := resp.Settings.Revision
	wait(t, 15*time.Second, "the agent to run the policy", func() bool {
		ps := l.agent.PolicyStatus()
		rt := ps.Settings.RemoteTools
		return ps.Revision > 0 && rt != nil && rt.Enabled != nil && *rt.Enabled == *s.RemoteTools.Enabled &&
			rt.AccessLevel != nil && *rt.AccessLevel == *s.RemoteTools.AccessLevel && want > 0
	})
}

// run opens a shell session running argv and returns its output and end.
func run(t *testing.T, c *client.Client, ref string, argv ...string) (string, contracts.SessionEnd, *client.Session, error) {
	t.Helper()
	s, err := c.SessionOpen(ctx(t), contracts.SessionOpenRequest{Ref: ref, Kind: contracts.SessionShell, Command: argv})
	if err != nil {
		return "", contracts.SessionEnd{}, nil, err
	}
	out, _ := io.ReadAll(s)
	<-s.Done()
	return string(out), s.Ended(), s, nil
}

func TestSessionCommandOutputAndExitCode(t *testing.T) {
	l := startSessionLab(t, nil, nil)
	l.setPolicy(t, remoteTools(true, contracts.AccessFull, false, []string{"admin"}, nil))

	out, end, s, err := run(t, l.admin, "web-01", "sh", "-c", "echo hello from $(hostname >/dev/null; echo web); exit 3")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if !strings.Contains(out, "hello from web") {
		t.Errorf("output: got %q", out)
	}
	if end.ExitCode == nil || *end.ExitCode != 3 {
		t.Errorf("exit code: got %+v, want 3", end)
	}

	// The recording plays back the same output, as asciicast v2.
	var cast bytes.Buffer
	var info contracts.SessionInfo
	wait(t, 15*time.Second, "the recording", func() bool {
		cast.Reset()
		info, err = l.admin.SessionRecording(ctx(t), s.Info.ID, &cast)
		return err == nil
	})
	if !strings.HasPrefix(cast.String(), `{"version":2,`) || info.State != contracts.SessionEnded {
		t.Errorf("recording: got %q (state %s)", cast.String(), info.State)
	}
	var played bytes.Buffer
	if err := cli.PlayCast(ctx(t), &cast, &played, 0); err != nil || !strings.Contains(played.String(), "hello from web") {
		t.Errorf("played recording: got %q, %v", played.String(), err)
	}
	recs, err := l.admin.SessionRecordings(ctx(t), "web-01")
	if err != nil || len(recs) != 1 || recs[0].ExitCode == nil || *recs[0].ExitCode != 3 || recs[0].BytesOut == 0 {
		t.Errorf("recordings list: got %+v, %v", recs, err)
	}

	// The CLI returns the command's exit status as its own.
	var stdout, stderr bytes.Buffer
	root := cli.NewRoot(&stdout, &stderr)
	root.SetArgs([]string{"--server", l.rs.URL(), "--identity", l.rs.AdminIdentity(), "session", "shell", "web-01", "--", "sh", "-c", "echo via-cli; exit 7"})
	err = root.ExecuteContext(ctx(t))
	if code, ok := cli.ExitCode(err); !ok || code != 7 || !strings.Contains(stdout.String(), "via-cli") {
		t.Errorf("cli: got err %v (code %d), stdout %q, stderr %q; want exit 7", err, code, stdout.String(), stderr.String())
	}
}

// TestSessionTunnelEcho carries an echo protocol through a tunnel: local
// TCP -> operator -> broker -> agent -> the client's loopback port.
func TestSessionTunnelEcho(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	port := echo.Addr().(*net.TCPAddr).Port
	l := startSessionLab(t, nil, nil)
	l.setPolicy(t, remoteTools(true, contracts.AccessFull, false, []string{"admin"}, []int{port}))

	s, err := l.admin.SessionOpen(ctx(t), contracts.SessionOpenRequest{Ref: "web-01", Kind: contracts.SessionTunnel, Port: port})
	if err != nil {
		t.Fatalf("open tunnel: %v", err)
	}
	msg := bytes.Repeat([]byte("echo through the site\n"), 20000) // ~440 KB: many frames, the window turns over
	go func() {
		_, _ = s.Write(msg)
		_ = s.CloseWrite()
	}()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: got %d bytes (%v), want the %d sent", len(got), err, len(msg))
	}
	s.End()
	wait(t, 15*time.Second, "the tunnel's byte counts", func() bool {
		recs, err := l.admin.SessionRecordings(ctx(t), "")
		return err == nil && len(recs) == 1 && recs[0].BytesIn == int64(len(msg)) && recs[0].BytesOut == int64(len(msg))
	})

	// A port the policy does not list is refused by the broker.
	_, err = l.admin.SessionOpen(ctx(t), contracts.SessionOpenRequest{Ref: "web-01", Kind: contracts.SessionTunnel, Port: port + 1})
	if contracts.CodeOf(err) != contracts.CodePolicyDenied || !strings.Contains(err.Error(), "tunnel ports") {
		t.Errorf("tunnel to an unlisted port: got %v, want policy_denied", err)
	}

	// The CLI refuses such a tunnel before it listens (it listened, and
	// refused each connection).
	if _, _, err := steward(t, l.rs, l.rs.AdminIdentity(), "", "session", "tunnel", "web-01", "--port", strconv.Itoa(port+1), "--local", "127.0.0.1:0"); contracts.CodeOf(err) != contracts.CodePolicyDenied || !strings.Contains(err.Error(), "not in the tunnel ports") {
		t.Errorf("session tunnel to an unlisted port: got %v, want policy_denied before listening", err)
	}

	// The CLI's tunnel: a local listener whose connections are sessions.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tctx, stop := context.WithCancel(ctx(t))
	done := make(chan error, 1)
	go func() { done <- cli.ServeTunnel(tctx, l.admin, ln, "web-01", port, io.Discard) }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Write([]byte("ping\n"))
	buf := make([]byte, 5)
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping\n" {
		t.Errorf("cli tunnel: got %q, %v", buf, err)
	}
	conn.Close()
	stop()
	<-done
}

// auditOf waits for the audit message msgID of session id and returns it.
func (l *sessionLab) auditOf(t *testing.T, msgID int, session string) contracts.StatusMessage {
	t.Helper()
	var found contracts.StatusMessage
	wait(t, 15*time.Second, "audit message "+strconv.Itoa(msgID)+" of session "+session, func() bool {
		resp, err := l.admin.StatusList(ctx(t), contracts.StatusListRequest{Filter: contracts.StatusFilter{MsgIDs: []int{msgID}}, Limit: 1000})
		if err != nil {
			return false
		}
		for _, m := range resp.Messages {
			if m.Properties["session"] == session {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// TestSessionAuthorizationTable runs each row's operator, policy and user
// through the real broker and agent: role x scope x policy (enabled,
// access level, prompt) x Permitted Viewers x consent answer, each with
// its outcome and its audit message.
func TestSessionAuthorizationTable(t *testing.T) {
	l := startSessionLab(t, []string{"dave"}, nil)
	if _, err := l.admin.CollectionsCreate(ctx(t), contracts.CollectionCreateRequest{Name: "Nobody", Queries: []string{`name == "no-such-client"`}}); err != nil {
		t.Fatal(err)
	}
	ops := map[string]*client.Client{
		"alice": l.rs.addOperator(t, l.admin, "alice", []string{contracts.RoleRemoteToolsOperator}, []string{contracts.AllSystemsName}),
		"bob":   l.rs.addOperator(t, l.admin, "bob", []string{contracts.RoleRemoteToolsOperator}, []string{contracts.AllSystemsName}),
		"carol": l.rs.addOperator(t, l.admin, "carol", []string{contracts.RoleReadOnlyAnalyst}, []string{contracts.AllSystemsName}),
		"erin":  l.rs.addOperator(t, l.admin, "erin", []string{contracts.RoleRemoteToolsOperator}, []string{"Nobody"}),
	}
	const (
		accept  = "accept"
		refuse  = "deny"
		silence = "" // nobody answers
	)
	rows := []struct {
		name     string
		op       string
		enabled  bool
		level    string
		prompt   bool
		viewers  []string
		answer   string
		wantCode contracts.Code // 0: the session runs
		reason   string         // the denial's audit reason
		consent  string         // the started session's consent
	}{
		{"viewer, full, no prompt", "alice", true, contracts.AccessFull, false, []string{"alice"}, "", 0, "", contracts.ConsentNotRequired},
		{"role lacks RemoteControl", "carol", true, contracts.AccessFull, false, []string{"carol"}, "", contracts.CodePermissionDenied, contracts.DenyRole, ""},
		{"scope without the client", "erin", true, contracts.AccessFull, false, []string{"erin"}, "", contracts.CodeNotFound, "", ""},
		{"remote tools disabled", "alice", false, contracts.AccessFull, false, []string{"alice"}, "", contracts.CodePolicyDenied, contracts.DenyPolicy, ""},
		{"access level view for a shell", "alice", true, contracts.AccessView, false, []string{"alice"}, "", contracts.CodePolicyDenied, contracts.DenyPolicy, ""},
		{"access level none", "alice", true, contracts.AccessNone, false, []string{"alice"}, "", contracts.CodePolicyDenied, contracts.DenyPolicy, ""},
		{"not a permitted viewer", "alice", true, contracts.AccessFull, false, []string{"someone-else"}, "", contracts.CodeNotPermittedViewer, contracts.DenyViewer, ""},
		{"local administrator, not listed", "bob", true, contracts.AccessFull, false, []string{}, "", 0, "", contracts.ConsentNotRequired},
		{"viewer through a domain-qualified name", "alice", true, contracts.AccessFull, false, []string{`LAB\Alice`}, "", 0, "", contracts.ConsentNotRequired},
		{"prompt, the user accepts", "alice", true, contracts.AccessFull, true, []string{"alice"}, accept, 0, "", contracts.ConsentGiven},
		{"prompt, the user refuses", "alice", true, contracts.AccessFull, true, []string{"alice"}, refuse, contracts.CodeConsentRefused, contracts.DenyConsent, ""},
		{"prompt, nobody answers", "alice", true, contracts.AccessFull, true, []string{"alice"}, silence, contracts.CodeConsentRefused, contracts.DenyConsent, ""},
	}
	for i, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			s := remoteTools(row.enabled, row.level, row.prompt, row.viewers, nil)
			s.Description = strconv.Itoa(i) // a new revision for every row
			l.setPolicy(t, s)
			wait(t, 15*time.Second, "the policy's viewers at the agent", func() bool {
				rt := l.agent.PolicyStatus().Settings.RemoteTools
				return rt != nil && rt.PermittedViewers != nil && slices.Equal(*rt.PermittedViewers, row.viewers) &&
					rt.PromptUser != nil && *rt.PromptUser == row.prompt
			})
			answered := make(chan struct{})
			go func() {
				defer close(answered)
				if !row.prompt || row.answer == silence {
					return
				}
				deadline := time.Now().Add(15 * time.Second)
				for time.Now().Before(deadline) {
					if ps := l.agent.ConsentPrompts(); len(ps) == 1 {
						if _, err := l.agent.AnswerConsent(ps[0].ID, row.answer == accept, "dave"); err != nil {
							t.Errorf("answer: %v", err)
						}
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
				t.Errorf("no consent prompt appeared")
			}()
			id := uuid.Must(uuid.NewV7()).String()
			sess, err := ops[row.op].SessionOpen(ctx(t), contracts.SessionOpenRequest{Session: id, Ref: "web-01", Kind: contracts.SessionShell, Command: []string{"true"}})
			<-answered
			if row.wantCode == 0 {
				if err != nil {
					t.Fatalf("open: got %v, want the session", err)
				}
				_, _ = io.ReadAll(sess)
				<-sess.Done()
				if sess.Info.Consent != row.consent {
					t.Errorf("consent: got %q, want %q", sess.Info.Consent, row.consent)
				}
				started := l.auditOf(t, contracts.StatusSessionStarted, id)
				if started.Properties["operator"] != row.op || started.Properties["access"] != contracts.AccessFull || !started.Audit {
					t.Errorf("started audit: got %+v", started.Properties)
				}
				l.auditOf(t, contracts.StatusSessionEnded, id)
				if row.prompt {
					if c := l.auditOf(t, contracts.StatusSessionConsent, id); c.Properties["consent"] != row.consent || c.Properties["user"] != "dave" {
						t.Errorf("consent audit: got %+v", c.Properties)
					}
				}
				return
			}
			if contracts.CodeOf(err) != row.wantCode {
				t.Fatalf("open: got %v (code %v), want code %v", err, contracts.CodeOf(err), row.wantCode)
			}
			if row.reason == "" {
				return // not found: nothing the operator may see, nothing audited of the client
			}
			d := l.auditOf(t, contracts.StatusSessionDenied, id)
			if d.Properties["reason"] != row.reason || d.Properties["operator"] != row.op || d.Severity != contracts.SeverityWarning {
				t.Errorf("denied audit: got %+v, want reason %s", d.Properties, row.reason)
			}
			l.auditOf(t, contracts.StatusSessionRequested, id)
		})
	}
}

// TestSessionBrokerRestartEndsSessionsAbnormally: a session open when the
// site stops ends at once for its operator and its client, as ended
// abnormally; a session whose broker instance died without ending it (kill
// -9: an open record of an instance nobody answers for) is ended by the
// next broker's sweep. Both are audited as ended abnormally.
func TestSessionBrokerRestartEndsSessionsAbnormally(t *testing.T) {
	l := startSessionLab(t, nil, nil)
	l.setPolicy(t, remoteTools(true, contracts.AccessFull, false, []string{"admin"}, nil))
	s, err := l.admin.SessionOpen(ctx(t), contracts.SessionOpenRequest{Ref: "web-01", Kind: contracts.SessionShell, Command: []string{"cat"}})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	wait(t, 15*time.Second, "the session at the agent", func() bool { return len(l.agent.Sessions()) == 1 })

	// The record a dead instance left behind.
	nc := l.rs.serviceConn(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ghost := contracts.SessionInfo{ID: uuid.Must(uuid.NewV7()).String(), Client: contracts.Named{ID: l.id, Name: "web-01"},
		Operator: "admin", Kind: contracts.SessionShell, Access: contracts.AccessFull, State: contracts.SessionActive,
		Requested: time.Now().UTC(), Started: time.Now().UTC(), Instance: "a-dead-instance",
		Participants: []contracts.SessionParticipant{{Operator: "admin", Access: contracts.AccessFull, Joined: time.Now().UTC()}}}
	b, _ := json.Marshal(map[string]any{"info": ghost, "collections": []string{contracts.AllSystemsID}})
	for bucket, v := range map[string][]byte{"sessions": b, "sessions-open": []byte(ghost.Instance)} {
		kv, err := js.KeyValue(ctx(t), bucket)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx(t), ghost.ID, v); err != nil {
			t.Fatal(err)
		}
	}
	nc.Close()

	l.rs.stop()
	select {
	case <-s.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("the operator never heard the session end")
	}
	if e := s.Ended(); !e.Abnormal || !strings.Contains(e.Reason, "broker stopped") {
		t.Errorf("end at the operator: got %+v, want abnormal, the broker stopped", e)
	}
	wait(t, 15*time.Second, "the agent to end the session", func() bool { return len(l.agent.Sessions()) == 0 })

	rs := startSite(t, l.rs.dir, l.rs.listen, "LAB")
	admin := rs.operator(t)
	l.rs, l.admin = rs, admin
	wait(t, 15*time.Second, "both sessions recorded as ended abnormally", func() bool {
		recs, err := admin.SessionRecordings(ctx(t), "")
		if err != nil || len(recs) != 2 {
			return false
		}
		for _, r := range recs {
			if !r.Abnormal || r.State != contracts.SessionEnded {
				return false
			}
		}
		return true
	})
	if open, err := admin.SessionList(ctx(t), ""); err != nil || len(open) != 0 {
		t.Errorf("active sessions after the restart: got %+v, %v; want none", open, err)
	}
	for _, id := range []string{s.Info.ID, ghost.ID} {
		if m := l.auditOf(t, contracts.StatusSessionAbnormal, id); m.Severity != contracts.SeverityWarning || !m.Audit {
			t.Errorf("abnormal end audit of %s: got %+v", id, m)
		}
	}
}

// TestSessionJoinWaitsForTheUser: with promptUser on, the agent asks its
// user about a joiner as about the first operator, and the broker waits
// for the answer as long as the prompt lasts. It waited 15 s: a user who
// accepted later let the joiner in at the agent while the broker had
// recorded the join as denied (client offline) and audited no consent.
func TestSessionJoinWaitsForTheUser(t *testing.T) {
	l := startSessionLab(t, []string{"dave"}, nil)
	s := remoteTools(true, contracts.AccessFull, true, []string{"admin", "helen"}, nil)
	s.RemoteTools.PromptTimeout = ptrTo(contracts.Duration(time.Minute))
	l.setPolicy(t, s)
	helen := l.rs.addOperator(t, l.admin, "helen", []string{contracts.RoleRemoteToolsOperator}, []string{contracts.AllSystemsName})
	wait(t, 15*time.Second, "the prompting policy at the agent", func() bool {
		rt := l.agent.PolicyStatus().Settings.RemoteTools
		return rt != nil && rt.PromptUser != nil && *rt.PromptUser && slices.Contains(*rt.PermittedViewers, "helen")
	})
	answer := func(after time.Duration) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			deadline := time.Now().Add(after + 15*time.Second)
			for time.Now().Before(deadline) {
				if ps := l.agent.ConsentPrompts(); len(ps) == 1 {
					time.Sleep(time.Until(ps[0].Asked.Add(after)))
					if _, err := l.agent.AnswerConsent(ps[0].ID, true, "dave"); err != nil {
						t.Errorf("answer: %v", err)
					}
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Errorf("no consent prompt appeared")
		}()
		return done
	}
	answered := answer(0)
	sess, err := l.admin.SessionOpen(ctx(t), contracts.SessionOpenRequest{Ref: "web-01", Kind: contracts.SessionShell, Command: []string{"cat"}})
	<-answered
	if err != nil {
		t.Fatal(err)
	}
	defer l.admin.SessionEnd(context.Background(), sess.Info.ID, "done")
	answered = answer(17 * time.Second) // past the broker's own 15 s
	jctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	w, err := helen.SessionJoin(jctx, sess.Info.ID, true)
	<-answered
	if err != nil {
		t.Fatalf("a join the user accepted after 17 s: %v", err)
	}
	if w.Info.ID != sess.Info.ID {
		t.Fatalf("joined session %s, want %s", w.Info.ID, sess.Info.ID)
	}
	var consent contracts.StatusMessage
	wait(t, 15*time.Second, "the join's consent audited", func() bool {
		resp, err := l.admin.StatusList(ctx(t), contracts.StatusListRequest{Filter: contracts.StatusFilter{MsgIDs: []int{contracts.StatusSessionConsent}}, Limit: 1000})
		if err != nil {
			return false
		}
		for _, m := range resp.Messages {
			if m.Properties["session"] == sess.Info.ID && m.Properties["operator"] == "helen" {
				consent = m
				return true
			}
		}
		return false
	})
	if consent.Properties["consent"] != contracts.ConsentGiven || consent.Properties["user"] != "dave" {
		t.Fatalf("the join's consent audit: %+v", consent.Properties)
	}
}
