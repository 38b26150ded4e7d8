package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/telemetry"
)

// This file is the test bench: a real in-process NATS server that grants
// each key exactly the subjects the site's auth callout would, and a fake
// site that answers enrollment requests.

func TestMain(m *testing.M) {
	// Install the propagator so that trace context travels in headers.
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Config{Service: "steward-agent-test"})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	_ = shutdown(context.Background())
	os.Exit(code)
}

const testSite = "LAB"

// bench is one test's server, site identity and agent key.
type bench struct {
	t        *testing.T
	srv      *server.Server
	opts     *server.Options
	siteKP   nkeys.KeyPair // the site signing key
	sitePub  string
	svcKP    nkeys.KeyPair // the "services" principal the fake site connects as
	agentPub string
	dir      string // the agent's state dir
	clientID string
	logs     map[*Agent]*logBuffer
	stops    map[*Agent]func()
}

// newBench creates an agent key in a fresh state dir and starts a server
// that knows that key as an agent with client ID clientID (enrollment and
// enrolled permissions both), plus a services principal.
func newBench(t *testing.T) *bench {
	t.Helper()
	b := &bench{t: t, dir: t.TempDir(), clientID: "9d0f3a52-5f43-4d3b-9a1e-2c6a2b1f7e01"}
	kp, err := createKey(filepath.Join(b.dir, KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	b.agentPub, _ = kp.PublicKey()
	b.siteKP, _ = nkeys.CreateAccount()
	b.sitePub, _ = b.siteKP.PublicKey()
	b.svcKP, _ = nkeys.CreateUser()
	b.opts = &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		NoLog:     true,
		NoSigs:    true,
		JetStream: true,
		StoreDir:  t.TempDir(),
	}
	b.setUsers(true)
	b.start()
	return b
}

// setUsers sets the server's principals; the agent's key is left out when
// agentKnown is false (the site blocked it: the server refuses the key;
// a deleted client's key is granted enrollment only, see grantAgent).
func (b *bench) setUsers(agentKnown bool) {
	svcPub, _ := b.svcKP.PublicKey()
	users := []*server.NkeyUser{{Nkey: svcPub}}
	if agentKnown {
		enroll, _ := contracts.Enroll(testSite, b.agentPub)
		up, _ := contracts.AgentSpace(testSite, b.clientID, "up")
		down, _ := contracts.AgentSpace(testSite, b.clientID, "down")

		pubInbox, _ := contracts.Inbox(b.agentPub)
		idInbox, _ := contracts.Inbox(b.clientID)
		users = append(users, &server.NkeyUser{Nkey: b.agentPub, Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{enroll, up}},
			Subscribe: &server.SubjectPermission{Allow: []string{down, pubInbox + ".>", idInbox + ".>"}},
		}})
	}
	b.opts.Nkeys = users
}

func (b *bench) start() {
	b.t.Helper()
	s, err := server.NewServer(b.opts)
	if err != nil {
		b.t.Fatalf("nats server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		b.t.Fatal("nats server not ready")
	}
	b.t.Cleanup(s.Shutdown)
	b.srv = s
	b.opts.Port = s.Addr().(*net.TCPAddr).Port
}

// services connects as the site's services.
func (b *bench) services() *nats.Conn {
	b.t.Helper()
	pub, _ := b.svcKP.PublicKey()
	nc, err := nats.Connect(b.srv.ClientURL(), nats.Nkey(pub, b.svcKP.Sign))
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(nc.Close)
	return nc
}

// approval is the approved EnrollResponse the site signs for this agent.
func (b *bench) approval(signer nkeys.KeyPair, clientID, agentKey string) contracts.EnrollResponse {
	signerPub, _ := signer.PublicKey()
	resp := contracts.EnrollResponse{
		Header:   contracts.NewHeader(contracts.TypeEnrollResponse),
		Status:   contracts.EnrollApproved,
		ClientID: clientID,
		Site:     testSite,
		SiteKey:  signerPub,
	}
	sig, err := signer.Sign(contracts.EnrollAttestation(resp.Site, resp.ClientID, agentKey, resp.Time))
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Signature = base64.RawURLEncoding.EncodeToString(sig)
	return resp
}

// token is an enrollment token of the bench's site.
func (b *bench) token() string {
	return contracts.EnrollmentToken{Site: testSite, SiteKey: b.sitePub, ID: "tok-1", Secret: "s3cret"}.String()
}

// enrolled writes the identity the site would have granted into the state
// dir, as if the agent had enrolled before.
func (b *bench) enrolled() {
	b.t.Helper()
	s, err := state.Open(b.dir)
	if err != nil {
		b.t.Fatal(err)
	}
	defer s.Close()
	err = s.PutIdentity(state.Identity{
		ClientID: b.clientID, AgentKey: b.agentPub, Site: testSite, SiteKey: b.sitePub,
		Name: "pc-042", Server: b.srv.ClientURL(), EnrolledAt: time.Now(),
	})
	if err != nil {
		b.t.Fatal(err)
	}
}

// enrollRequest is one request the fake site received.
type enrollRequest struct {
	subject string
	header  nats.Header
	req     contracts.EnrollRequest
}

// fakeSite answers enrollment requests on the services connection with
// answer; it returns a channel of the requests it saw.
func (b *bench) fakeSite(nc *nats.Conn, answer func(r enrollRequest, m *nats.Msg)) <-chan enrollRequest {
	b.t.Helper()
	seen := make(chan enrollRequest, 64)
	all, _ := contracts.EnrollAll(testSite)
	_, err := nc.Subscribe(all, func(m *nats.Msg) {
		var r enrollRequest
		r.subject, r.header = m.Subject, m.Header
		if err := contracts.Decode(m.Data, contracts.TypeEnrollRequest, &r.req); err != nil {
			b.t.Errorf("site got a bad enrollment request: %v", err)
			return
		}
		answer(r, m)
		select {
		case seen <- r:
		default:
		}
	})
	if err != nil {
		b.t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		b.t.Fatal(err)
	}
	return seen
}

func respond(t *testing.T, m *nats.Msg, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		t.Error(err)
		return
	}
	// A request answered while the test's cleanup closes the connection
	// has no one left to answer.
	if err := m.Respond(data); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("respond: %v", err)
	}
}

// startAgent runs an agent on the bench's state dir until the test ends.
func (b *bench) startAgent(mod func(*Config)) *Agent {
	b.t.Helper()
	a := b.newAgent(mod)
	b.run(a)
	return a
}

// newAgent makes an agent on the bench's state dir without running it.
func (b *bench) newAgent(mod func(*Config)) *Agent {
	b.t.Helper()
	logs := &logBuffer{}
	cfg := Config{
		Server:      b.srv.ClientURL(),
		StateDir:    b.dir,
		Name:        "pc-042",
		Heartbeat:   time.Hour,
		Log:         slog.New(teeHandler{testLogger(b.t).Handler(), slog.NewTextHandler(logs, nil)}),
		Version:     "1.2.3-test",
		EnrollRetry: 200 * time.Millisecond,
		RetryMax:    300 * time.Millisecond,
		// Inventory reports are tested on their own (report_test.go).
		InventoryInterval: -1,
		// Content is fetched as soon as the agent is told to (the spread is
		// tested on its own).
		ContentSpread: -1,
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	if b.logs == nil {
		b.logs = map[*Agent]*logBuffer{}
		b.stops = map[*Agent]func(){}
	}
	b.logs[a] = logs
	return a
}

// run runs a until the test ends or stopAgent.
func (b *bench) run(a *Agent) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					b.t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				b.t.Error("Run did not return after its context ended")
			}
			if err := a.Close(); err != nil {
				b.t.Errorf("Close: %v", err)
			}
			// The agent used only the subjects the server grants it.
			if logs := b.logs[a].String(); strings.Contains(logs, "denied a subject") {
				b.t.Errorf("the agent hit a permissions violation:\n%s", logs)
			}
		})
	}
	b.stops[a] = stop
	b.t.Cleanup(stop)
}

// stopAgent stops a running agent now (as its process ending would).
func (b *bench) stopAgent(a *Agent) { b.stops[a]() }

// teeHandler sends every record to two handlers.
type teeHandler [2]slog.Handler

func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h[0].Enabled(ctx, l) || h[1].Enabled(ctx, l)
}

func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	for _, x := range h {
		if x.Enabled(ctx, r.Level) {
			_ = x.Handle(ctx, r.Clone())
		}
	}
	return nil
}

func (h teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{h[0].WithAttrs(as), h[1].WithAttrs(as)}
}

func (h teeHandler) WithGroup(g string) slog.Handler {
	return teeHandler{h[0].WithGroup(g), h[1].WithGroup(g)}
}

// heartbeats subscribes the services connection to every agent heartbeat.
func heartbeats(t *testing.T, nc *nats.Conn) <-chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 64)
	all, _ := contracts.AgentUpAll(testSite, contracts.KindHeartbeat)
	if _, err := nc.ChanSubscribe(all, ch); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return ch
}

// receive waits for a message on ch.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	panic("unreachable")
}

// waitFor polls cond every 10ms until it holds or 10s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testLogger logs to the test's output while the test runs and drops what
// late callbacks log after it ended.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{w: t.Output()}
	t.Cleanup(func() { w.mu.Lock(); w.w = nil; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.w == nil {
		return len(p), nil
	}
	return w.w.Write(p)
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// otherKey is a signing key that is not the site's.
func (b *bench) otherKey() nkeys.KeyPair {
	kp, err := nkeys.CreateAccount()
	if err != nil {
		b.t.Fatal(err)
	}
	return kp
}

func publishJSON(t *testing.T, nc *nats.Conn, subject string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(subject, data); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}
