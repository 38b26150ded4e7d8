package integration

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/agent"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
	"github.com/stewardhq/steward/services/site"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testLog logs to the test output when STEWARD_TEST_LOG is set.
func testLog(t testing.TB) *slog.Logger {
	if os.Getenv("STEWARD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return quiet
}

// runningSite is a site serving in the background of a test.
type runningSite struct {
	*site.Site
	dir    string
	listen string
	cancel context.CancelFunc
	done   chan error
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startSite runs a site on dir and listen until the test ends (or stop).
func startSite(t testing.TB, dir, listen, code string) *runningSite {
	t.Helper()
	return startSiteLog(t, dir, listen, code, testLog(t))
}

// startSiteLog is startSite logging to log.
func startSiteLog(t testing.TB, dir, listen, code string, log *slog.Logger) *runningSite {
	t.Helper()
	s, err := site.New(context.Background(), site.Config{DataDir: dir, Listen: listen, Site: code, SiteSet: true, Log: log})
	if err != nil {
		t.Fatalf("start site: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runningSite{Site: s, dir: dir, listen: listen, cancel: cancel, done: make(chan error, 1)}
	go func() { rs.done <- s.Run(ctx) }()
	t.Cleanup(rs.stop)
	rs.waitServices(t)
	return rs
}

// waitServices waits until every service of the site answers its $SRV
// PING: they register their endpoints in Run, after New returns.
func (rs *runningSite) waitServices(t testing.TB) {
	t.Helper()
	nc := rs.serviceConn(t)
	for _, name := range site.AllServices {
		wait(t, 15*time.Second, "service "+name+" to answer", func() bool {
			_, err := nc.Request("$SRV.PING.steward-"+name, nil, 200*time.Millisecond)
			return err == nil
		})
	}
	nc.Close()
}

// stop shuts the site down and waits for it; safe to call twice.
func (rs *runningSite) stop() {
	if rs.cancel == nil {
		return
	}
	rs.cancel()
	<-rs.done
	rs.cancel = nil
}

// operator connects as the bootstrap administrator.
func (rs *runningSite) operator(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.Connect(context.Background(), client.Options{Server: rs.URL(), Identity: rs.AdminIdentity()})
	if err != nil {
		t.Fatalf("operator connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// addOperator adds an operator through by, with a key made here, and
// connects as it. colls are collection names ("All Systems" for every
// client).
func (rs *runningSite) addOperator(t testing.TB, by *client.Client, name string, roles, colls []string) *client.Client {
	t.Helper()
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	req := contracts.AdminAddRequest{Name: name, Kind: contracts.AdminUser, Key: pub, Roles: roles, Collections: colls}
	if _, err := by.AdminsAdd(ctx(t), req); err != nil {
		t.Fatalf("add operator %s: %v", name, err)
	}
	return rs.connectOperator(t, kp, name)
}

// connectOperator connects as operator name with key kp.
func (rs *runningSite) connectOperator(t testing.TB, kp nkeys.KeyPair, name string) *client.Client {
	t.Helper()
	seed, _ := kp.Seed()
	path := filepath.Join(t.TempDir(), name+".nk")
	if err := client.WriteIdentity(path, client.Identity{Site: rs.Info.Site, Operator: name, Seed: seed}); err != nil {
		t.Fatal(err)
	}
	c, err := client.Connect(context.Background(), client.Options{Server: rs.URL(), Identity: path})
	if err != nil {
		t.Fatalf("connect as %s: %v", name, err)
	}
	t.Cleanup(c.Close)
	return c
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers (a site's log).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// serviceConn connects with the site's service key (what services use).
func (rs *runningSite) serviceConn(t testing.TB) *nats.Conn {
	t.Helper()
	return connectWithSeedFile(t, rs.URL(), filepath.Join(rs.dir, "keys", "service.nk"), "")
}

func (rs *runningSite) token(t testing.TB, uses int, ttl time.Duration) string {
	t.Helper()
	tok, _, err := rs.operator(t).TokensCreate(ctx(t), ttl, uses, "test")
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	return tok
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// runningAgent is an agent running in the background of a test.
type runningAgent struct {
	*agent.Agent
	dir    string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startAgent(t testing.TB, url, token, dir, name string) *runningAgent {
	t.Helper()
	a, err := agent.New(agent.Config{Server: url, Token: token, StateDir: dir, Name: name, Heartbeat: time.Second, Log: testLog(t), ContentSpread: time.Second})
	if err != nil {
		t.Fatalf("agent %s: %v", name, err)
	}
	c, cancel := context.WithCancel(context.Background())
	ra := &runningAgent{Agent: a, dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() { ra.done <- a.Run(c) }()
	t.Cleanup(ra.stop)
	return ra
}

func (ra *runningAgent) stop() {
	ra.once.Do(func() {
		ra.cancel()
		<-ra.done
		ra.Close()
	})
}

// seedOf reads an agent's NKey seed from its state dir.
func seedOf(t testing.TB, dir string) string { return filepath.Join(dir, "agent.nk") }

// connectWithSeedFile connects with the NKey in path; inbox is the custom
// inbox principal ("" for the default).
func connectWithSeedFile(t testing.TB, url, path, inbox string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.ParseDecoratedNKey(data)
	if err != nil {
		kp, err = nkeys.FromSeed([]byte(strings.TrimSpace(string(data))))
		if err != nil {
			t.Fatalf("seed %s: %v", path, err)
		}
	}
	return connectKey(t, url, kp, inbox, opts...)
}

func connectKey(t testing.TB, url string, kp nkeys.KeyPair, inbox string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	pub, _ := kp.PublicKey()
	all := []nats.Option{nats.Nkey(pub, kp.Sign), nats.NoReconnect()}
	if inbox != "" {
		all = append(all, nats.CustomInboxPrefix("_INBOX."+inbox))
	}
	nc, err := nats.Connect(url, append(all, opts...)...)
	if err != nil {
		t.Fatalf("connect as %s: %v", pub, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// wait polls cond until it holds or timeout passes.
func wait(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clientByID finds a client in the operator's list.
func clientByID(t testing.TB, c *client.Client, id string) (contracts.Client, bool) {
	t.Helper()
	list, err := c.ClientsList(ctx(t), "")
	if err != nil {
		t.Logf("clients list: %v", err)
		return contracts.Client{}, false
	}
	for _, cl := range list {
		if cl.ID == id {
			return cl, true
		}
	}
	return contracts.Client{}, false
}

func waitOnline(t testing.TB, c *client.Client, id string, online bool) {
	t.Helper()
	wait(t, 15*time.Second, "client "+id+" online="+map[bool]string{true: "true", false: "false"}[online], func() bool {
		cl, ok := clientByID(t, c, id)
		return ok && cl.Online == online
	})
}
