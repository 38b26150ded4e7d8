package agent

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/stewardhq/steward/agent/control"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
)

func TestEnrolledAgentHeartbeats(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	beats := heartbeats(t, b.services())
	a := b.startAgent(nil)

	m := receive(t, beats, "the heartbeat sent on connect")
	want, _ := contracts.AgentUp(testSite, b.clientID, contracts.KindHeartbeat)
	if m.Subject != want {
		t.Fatalf("got subject %s, want %s", m.Subject, want)
	}
	var hb contracts.Heartbeat
	if err := contracts.Decode(m.Data, contracts.TypeHeartbeat, &hb); err != nil {
		t.Fatal(err)
	}
	if hb.Name != "pc-042" || hb.AgentVersion != "1.2.3-test" || hb.Capability != contracts.CapabilityVersion ||
		hb.Interval != contracts.Duration(time.Hour) || hb.OS == "" || hb.Arch == "" || hb.Started.IsZero() {
		t.Fatalf("got heartbeat %+v, want the agent's name, version, capability and interval", hb)
	}
	if m.Header.Get("traceparent") == "" {
		t.Fatalf("got headers %v, want a traceparent", m.Header)
	}

	waitFor(t, "status connected", func() bool {
		st := a.Status()
		return st.State == StateConnected && st.Connected && !st.LastHeartbeat.IsZero()
	})
	st, err := control.Status(context.Background(), a.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	if st.ClientID != b.clientID || st.Site != testSite || st.SiteKey != b.sitePub || st.State != StateConnected ||
		st.Capability != contracts.CapabilityVersion || st.Server != b.srv.ClientURL() {
		t.Fatalf("got status %+v, want the enrolled, connected agent", st)
	}
	if a.ClientID() != b.clientID || a.PublicKey() != b.agentPub {
		t.Fatalf("got client %s key %s, want %s %s", a.ClientID(), a.PublicKey(), b.clientID, b.agentPub)
	}
	select {
	case <-a.Enrolled():
	default:
		t.Fatal("Enrolled() not closed for an enrolled agent")
	}
}

func TestHeartbeatInterval(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	beats := heartbeats(t, b.services())
	b.startAgent(func(c *Config) { c.Heartbeat = 50 * time.Millisecond })
	for i := range 3 {
		receive(t, beats, "heartbeat "+string(rune('1'+i)))
	}
}

// TestHeartbeatIntervalAnnounced: a policy that changes the heartbeat
// interval is announced with a heartbeat at once. The site judges a client
// offline after missed beats of the interval it last heard; lengthened in
// silence (40 s to 10 min), connected clients showed offline for minutes.
func TestHeartbeatIntervalAnnounced(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	beats := heartbeats(t, b.services())
	a := b.startAgent(nil) // heartbeat every hour: a second beat is the announcement
	receive(t, beats, "the heartbeat at connect")
	ag := &contracts.AgentSettings{Heartbeat: ptr(contracts.Duration(10 * time.Minute))}
	a.applyPolicy(context.Background(), signPolicy(t, b.siteKP, b.policyFor(1, contracts.SettingsSections{Agent: ag})), "test")
	var hb contracts.Heartbeat
	if err := json.Unmarshal(receive(t, beats, "a heartbeat announcing the new interval").Data, &hb); err != nil {
		t.Fatal(err)
	}
	if time.Duration(hb.Interval) != 10*time.Minute {
		t.Fatalf("heartbeat says interval %s, want 10m", time.Duration(hb.Interval))
	}
}

// TestReconnectsAfterServerRestart restarts the server on the same port
// and checks that the agent comes back, with a heartbeat at once, without
// enrolling again. A JetStream stream kept on disk across the restart
// records the heartbeats, so none can slip past the test.
func TestReconnectsAfterServerRestart(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	svc := b.services()
	js, err := jetstream.New(svc)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := contracts.AgentUpAll(testSite, contracts.KindHeartbeat)
	stream, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "HEARTBEATS", Subjects: []string{all}})
	if err != nil {
		t.Fatal(err)
	}
	msgs := func(s jetstream.Stream) uint64 {
		info, err := s.Info(context.Background())
		if err != nil {
			return 0
		}
		return info.State.Msgs
	}
	a := b.startAgent(nil) // heartbeat every hour: every heartbeat seen here is a connect
	waitFor(t, "the first heartbeat", func() bool { return msgs(stream) == 1 })

	b.srv.Shutdown()
	b.srv.WaitForShutdown()
	waitFor(t, "the agent to notice the server is gone", func() bool {
		st := a.Status()
		return !st.Connected && st.State == StateDisconnected
	})

	b.start() // same port, same JetStream store
	svc = b.services()
	js, err = jetstream.New(svc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err = js.Stream(context.Background(), "HEARTBEATS")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a heartbeat after the restart", func() bool { return msgs(stream) == 2 })
	waitFor(t, "status connected", func() bool { return a.Status().State == StateConnected })
	if a.ClientID() != b.clientID {
		t.Fatalf("got client id %s after reconnect, want %s", a.ClientID(), b.clientID)
	}
}

func TestRefusedKeyKeepsRetrying(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	// The site blocked the client: the server refuses the key.
	b.setUsers(false)
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
	b.start()

	a := b.startAgent(nil)
	waitFor(t, "state refused", func() bool { return a.Status().State == StateRefused })
	if msg := a.Status().Message; !strings.Contains(msg, "refuses this agent's key") {
		t.Fatalf("got message %q, want it to say the key is refused", msg)
	}

	// The operator re-admits the client; the agent gets in on its own.
	beats := heartbeats(t, b.services())
	b.setUsers(true)
	if err := b.srv.ReloadOptions(b.opts); err != nil {
		t.Fatal(err)
	}
	receive(t, beats, "a heartbeat once the key is allowed again")
	waitFor(t, "state connected", func() bool { return a.Status().State == StateConnected })
}

func TestEnrollWithToken(t *testing.T) {
	b := newBench(t)
	svc := b.services()
	beats := heartbeats(t, svc)
	seen := b.fakeSite(svc, func(r enrollRequest, m *nats.Msg) {
		respond(t, m, b.approval(b.siteKP, b.clientID, b.agentPub))
	})
	a := b.startAgent(func(c *Config) { c.Token = b.token() })

	r := receive(t, seen, "the enrollment request")
	wantSubject, _ := contracts.Enroll(testSite, b.agentPub)
	if r.subject != wantSubject {
		t.Fatalf("got subject %s, want %s", r.subject, wantSubject)
	}
	if r.req.Token != b.token() || r.req.Name != "pc-042" || r.req.Capability != contracts.CapabilityVersion ||
		r.req.AgentVersion != "1.2.3-test" || r.req.OS == "" || r.req.Arch == "" {
		t.Fatalf("got request %+v, want the token, name, version and capability", r.req)
	}
	if r.header.Get("traceparent") == "" {
		t.Fatalf("got headers %v, want a traceparent", r.header)
	}

	receive(t, a.Enrolled(), "enrollment")
	m := receive(t, beats, "the first heartbeat as an enrolled client")
	if want, _ := contracts.AgentUp(testSite, b.clientID, contracts.KindHeartbeat); m.Subject != want {
		t.Fatalf("got heartbeat on %s, want %s", m.Subject, want)
	}
	id, ok := a.Identity()
	if !ok || id.ClientID != b.clientID || id.SiteKey != b.sitePub || id.AgentKey != b.agentPub || id.Site != testSite {
		t.Fatalf("got identity %+v, want client %s pinned to %s", id, b.clientID, b.sitePub)
	}
}

func TestEnrollPendingThenApproved(t *testing.T) {
	b := newBench(t)
	svc := b.services()
	beats := heartbeats(t, svc)
	seen := b.fakeSite(svc, func(r enrollRequest, m *nats.Msg) {
		respond(t, m, contracts.EnrollResponse{
			Header: contracts.NewHeader(contracts.TypeEnrollResponse), Status: contracts.EnrollPending,
			ClientID: b.clientID, Site: testSite, SiteKey: b.sitePub, Message: "no token: waiting for approval",
		})
	})
	a := b.startAgent(nil) // no token, no site: LAB

	r := receive(t, seen, "the enrollment request")
	if r.req.Token != "" {
		t.Fatalf("got token %q, want none", r.req.Token)
	}
	waitFor(t, "state pending", func() bool { return a.Status().State == StatePending })
	if got := a.Status().SiteKey; got != b.sitePub {
		t.Fatalf("got pinned site key %q while pending, want %s (first use)", got, b.sitePub)
	}
	if msg := a.Status().Message; !strings.Contains(msg, "no token: waiting for approval") || !strings.Contains(msg, b.clientID) {
		t.Fatalf("got message %q, want the pending client id and the site's reason", msg)
	}
	if a.ClientID() != "" {
		t.Fatal("ClientID() is set before approval")
	}
	// Pending agents ask again (EnrollRetry), in case an approval is missed.
	receive(t, seen, "a repeated enrollment request")

	// An approval signed by another key is refused: the pending answer
	// pinned the site key on first use.
	other := b.otherKey()
	inbox, _ := contracts.Inbox(b.agentPub)
	publishJSON(t, svc, inbox+"."+contracts.KindApproval, b.approval(other, b.clientID, b.agentPub))
	waitFor(t, "the forged approval refused", func() bool { return a.Status().State == StateRefused })
	if _, ok := a.Identity(); ok {
		t.Fatal("enrolled with an approval signed by another key")
	}

	// The operator approves: the site pushes the signed approval.
	publishJSON(t, svc, inbox+"."+contracts.KindApproval, b.approval(b.siteKP, b.clientID, b.agentPub))
	receive(t, a.Enrolled(), "enrollment")
	receive(t, beats, "the first heartbeat")
	waitFor(t, "state connected", func() bool { return a.Status().State == StateConnected })
}

// TestEnrollPendingTokenReason: a token the site does not accept (here
// expired) queues the agent as pending with the token code; the operator's
// approval, signed by the pinned key, admits it.
func TestEnrollPendingTokenReason(t *testing.T) {
	b := newBench(t)
	svc := b.services()
	b.fakeSite(svc, func(r enrollRequest, m *nats.Msg) {
		respond(t, m, contracts.EnrollResponse{
			Header: contracts.NewHeader(contracts.TypeEnrollResponse), Status: contracts.EnrollPending,
			ClientID: b.clientID, Site: testSite, SiteKey: b.sitePub,
			Reason: contracts.CodeTokenExpired, Message: "token tok-1 expired",
		})
	})
	a := b.startAgent(func(c *Config) { c.Token = b.token() })
	waitFor(t, "state pending", func() bool { return a.Status().State == StatePending })
	if msg := a.Status().Message; !strings.Contains(msg, "token_expired: token tok-1 expired") {
		t.Fatalf("got message %q, want the token code and reason", msg)
	}
	inbox, _ := contracts.Inbox(b.agentPub)
	publishJSON(t, svc, inbox+"."+contracts.KindApproval, b.approval(b.siteKP, b.clientID, b.agentPub))
	receive(t, a.Enrolled(), "enrollment")
}

func TestEnrollRefusesSiteKeyOtherThanPinned(t *testing.T) {
	b := newBench(t)
	svc := b.services()
	other := b.otherKey()
	seen := b.fakeSite(svc, func(r enrollRequest, m *nats.Msg) {
		respond(t, m, b.approval(other, b.clientID, b.agentPub)) // valid signature, wrong key
	})
	a := b.startAgent(func(c *Config) { c.Token = b.token() })
	receive(t, seen, "the enrollment request")
	waitFor(t, "state refused", func() bool { return a.Status().State == StateRefused })
	if msg := a.Status().Message; !strings.Contains(msg, "pins") {
		t.Fatalf("got message %q, want it to name the pinned key", msg)
	}
	receive(t, seen, "a retry after the refusal")
	if _, ok := a.Identity(); ok {
		t.Fatal("enrolled with an unpinned site key")
	}
}

func TestEnrollNoResponders(t *testing.T) {
	b := newBench(t) // no site listens
	a := b.startAgent(func(c *Config) { c.Token = b.token() })
	waitFor(t, "the no-site message", func() bool {
		return strings.Contains(a.Status().Message, "no site with site code LAB answers")
	})
	if st := a.Status(); st.State != StateEnrolling || st.SiteKey != b.sitePub {
		t.Fatalf("got state %s site key %s, want enrolling with the token's site key", st.State, st.SiteKey)
	}
}

func TestEnrollTokenError(t *testing.T) {
	b := newBench(t)
	svc := b.services()
	seen := b.fakeSite(svc, func(r enrollRequest, m *nats.Msg) {
		reply := nats.NewMsg(m.Reply)
		reply.Header.Set(micro.ErrorCodeHeader, "2003")
		reply.Header.Set(micro.ErrorHeader, "every use of token tok-1 is taken")
		if err := m.RespondMsg(reply); err != nil {
			t.Error(err)
		}
	})
	a := b.startAgent(func(c *Config) { c.Token = b.token() })
	receive(t, seen, "the enrollment request")
	waitFor(t, "state refused", func() bool { return a.Status().State == StateRefused })
	if msg := a.Status().Message; !strings.Contains(msg, "token_spent") || !strings.Contains(msg, "every use") {
		t.Fatalf("got message %q, want the code and the site's reason", msg)
	}
}

func TestSecondAgentOnSameStateDir(t *testing.T) {
	dir := t.TempDir()
	first, err := New(Config{StateDir: dir, Name: "pc-1", Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	start := time.Now()
	second, err := New(Config{StateDir: dir, Name: "pc-1", Log: testLogger(t)})
	if err == nil {
		second.Close()
		t.Fatal("a second agent opened the same state dir")
	}
	if !errors.Is(err, state.ErrLocked) || !strings.Contains(err.Error(), "is in use by another steward-agent") {
		t.Fatalf("got %v, want the in-use error", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("second agent took %s to fail", took)
	}
	// The first agent's socket still answers.
	if _, err := control.Status(context.Background(), first.SocketPath()); err != nil {
		t.Fatalf("first agent's control socket: %v", err)
	}
}

func TestStatusBeforeRunAndAfterClose(t *testing.T) {
	dir := t.TempDir()
	a, err := New(Config{StateDir: dir, Name: "pc-1", Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	st := a.Status()
	if st.State != StateEnrolling || st.Site != DefaultSite || st.ClientID != "" || st.Type != contracts.TypeAgentStatus {
		t.Fatalf("got %+v, want an enrolling agent of site LAB", st)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := control.Status(context.Background(), control.SocketPath(dir)); !errors.Is(err, control.ErrNotRunning) {
		t.Fatalf("after Close: got %v, want ErrNotRunning", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	tok := contracts.EnrollmentToken{Site: "P01", SiteKey: "AKEY", ID: "i", Secret: "x"}.String()
	cases := []struct {
		name    string
		cfg     Config
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{name: "no state dir", cfg: Config{}, wantErr: "--state-dir"},
		{name: "defaults", cfg: Config{StateDir: "rel/dir", Name: "pc"}, check: func(t *testing.T, c Config) {
			if !filepath.IsAbs(c.StateDir) || c.Server != "" || c.Heartbeat != DefaultHeartbeat ||
				c.EnrollRetry != DefaultEnrollRetry || c.RetryMax != DefaultRetryMax || c.Log == nil || c.Version != "dev" || c.Site != "" {
				t.Fatalf("got %+v", c)
			}
		}},
		{name: "site from token", cfg: Config{StateDir: "d", Name: "pc", Token: tok}, check: func(t *testing.T, c Config) {
			if c.Site != "P01" {
				t.Fatalf("got site %q, want P01", c.Site)
			}
		}},
		{name: "site conflicts with token", cfg: Config{StateDir: "d", Name: "pc", Token: tok, Site: "LAB"}, wantErr: "does not match the token's site P01"},
		{name: "bad token", cfg: Config{StateDir: "d", Name: "pc", Token: "nope"}, wantErr: "--token"},
		{name: "dotted site", cfg: Config{StateDir: "d", Name: "pc", Site: "A.B"}, wantErr: "site code"},
		{name: "bad name", cfg: Config{StateDir: "d", Name: "pc 1"}, wantErr: "--name"},
		{name: "hostname", cfg: Config{StateDir: "d"}, check: func(t *testing.T, c Config) {
			if c.Name == "" || strings.Contains(c.Name, ".") {
				t.Fatalf("got name %q, want the short host name", c.Name)
			}
		}},
		{name: "negative heartbeat", cfg: Config{StateDir: "d", Name: "pc", Heartbeat: -1}, wantErr: "positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg
			err := c.CheckAndSetDefaults()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestStoredIdentityWins(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	a, err := New(Config{StateDir: b.dir, Site: "OTHER", Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Site() != testSite || a.Name() != "pc-042" || a.ClientID() != b.clientID || a.Status().Server != b.srv.ClientURL() {
		t.Fatalf("got site %s name %s client %s server %s, want the stored identity", a.Site(), a.Name(), a.ClientID(), a.Status().Server)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	a, err := New(Config{StateDir: dir, Name: "pc", Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	pub := a.PublicKey()
	a.Close()
	path := filepath.Join(dir, KeyFileName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("got key mode %o, want 600", perm)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "SU") {
		t.Fatal("key file holds no user seed")
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".agent.nk-*"))
	if len(leftovers) != 0 {
		t.Fatalf("temp files left: %v", leftovers)
	}

	// The key is reused, and a loose mode is warned about, never logging the seed.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	a, err = New(Config{StateDir: dir, Name: "pc", Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if a.PublicKey() != pub {
		t.Fatalf("got key %s on the second start, want %s", a.PublicKey(), pub)
	}
	if !strings.Contains(logs.String(), "readable by group or others") {
		t.Fatalf("no warning about mode 0644 in %q", logs.String())
	}
	seed := strings.TrimSpace(strings.Split(string(data), "\n")[2])
	if strings.Contains(logs.String(), seed) {
		t.Fatal("the seed was logged")
	}

	// A damaged key file is an error, not a new identity.
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{StateDir: dir, Name: "pc", Log: testLogger(t)}); err == nil || !strings.Contains(err.Error(), "holds no NKey seed") {
		t.Fatalf("got %v, want a no-seed error", err)
	}
}

func TestKeyMustMatchIdentity(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	path := filepath.Join(b.dir, KeyFileName)

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{StateDir: b.dir, Log: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "is missing") || !strings.Contains(err.Error(), b.clientID) {
		t.Fatalf("missing key: got %v, want an error naming the enrolled client", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("a new key was created although the state holds an identity")
	}

	if _, err := createKey(path); err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{StateDir: b.dir, Log: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "enrolled as client") {
		t.Fatalf("other key: got %v, want a mismatch error", err)
	}
}

func TestBackoff(t *testing.T) {
	max := 30 * time.Second
	for attempt := 1; attempt <= 40; attempt++ {
		want := min(250*time.Millisecond<<min(attempt-1, 20), max)
		for range 50 {
			d := backoff(attempt, 250*time.Millisecond, max)
			if d < want/2 || d >= want {
				t.Fatalf("attempt %d: got %s, want in [%s, %s)", attempt, d, want/2, want)
			}
		}
	}
}
