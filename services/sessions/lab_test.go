package sessions_test

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/cli"
	"github.com/stewardhq/steward/services/client"
	"github.com/stewardhq/steward/services/internal/natstest"
	"github.com/stewardhq/steward/services/internal/rpc"
	"github.com/stewardhq/steward/services/sessions"
	"github.com/stewardhq/steward/services/site"
)

// This file runs a real site in process (embedded NATS, every service,
// the auth callout) for the broker's tests, with clients played by fake
// agents: they enroll with a token, heartbeat, and answer grants as the
// test says.

const labSite = "LAB"

// lab is a running site and its bootstrap administrator.
type lab struct {
	t     *testing.T
	site  *site.Site
	dir   string
	admin *client.Client
	svc   *nats.Conn // the site's service key: what services use
}

func testLog() *slog.Logger {
	if os.Getenv("STEWARD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startLab(t *testing.T) *lab {
	t.Helper()
	dir := t.TempDir()
	s, err := site.New(context.Background(), site.Config{DataDir: dir, Listen: freePort(t), Site: labSite, SiteSet: true, Log: testLog()})
	if err != nil {
		t.Fatalf("start site: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	l := &lab{t: t, site: s, dir: dir}
	l.svc = connectSeedFile(t, s.URL(), filepath.Join(dir, "keys", "service.nk"), "")
	for _, name := range site.AllServices {
		wait(t, 15*time.Second, "service "+name, func() bool {
			_, err := l.svc.Request("$SRV.PING.steward-"+name, nil, 200*time.Millisecond)
			return err == nil
		})
	}
	if l.admin, err = client.Connect(context.Background(), client.Options{Server: s.URL(), Identity: s.AdminIdentity()}); err != nil {
		t.Fatalf("admin connect: %v", err)
	}
	t.Cleanup(l.admin.Close)
	return l
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wait(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func connectSeedFile(t *testing.T, url, path, inbox string) *nats.Conn {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.ParseDecoratedNKey(data)
	if err != nil {
		if kp, err = nkeys.FromSeed([]byte(strings.TrimSpace(string(data)))); err != nil {
			t.Fatalf("seed %s: %v", path, err)
		}
	}
	return connectKey(t, url, kp, inbox)
}

func connectKey(t *testing.T, url string, kp nkeys.KeyPair, inbox string) *nats.Conn {
	t.Helper()
	pub, _ := kp.PublicKey()
	opts := []nats.Option{nats.Nkey(pub, kp.Sign), nats.NoReconnect()}
	if inbox != "" {
		opts = append(opts, nats.CustomInboxPrefix(inbox))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", pub, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// operator adds operator name with roles on the collections (names) and
// returns its identity file and a connected client.
func (l *lab) operator(name string, roles, colls []string) (string, *client.Client) {
	t := l.t
	t.Helper()
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	if _, err := l.admin.AdminsAdd(ctxT(t), contracts.AdminAddRequest{Name: name, Kind: contracts.AdminUser, Key: pub, Roles: roles, Collections: colls}); err != nil {
		t.Fatalf("add operator %s: %v", name, err)
	}
	seed, _ := kp.Seed()
	path := filepath.Join(t.TempDir(), name+".nk")
	if err := client.WriteIdentity(path, client.Identity{Site: labSite, Operator: name, Seed: seed}); err != nil {
		t.Fatal(err)
	}
	c, err := client.Connect(context.Background(), client.Options{Server: l.site.URL(), Identity: path})
	if err != nil {
		t.Fatalf("connect as %s: %v", name, err)
	}
	t.Cleanup(c.Close)
	return path, c
}

// setRemoteTools deploys remote tools settings to All Systems and waits
// until the broker's source of a client's resultant policy (the policy
// service) gives them for each of the clients.
func (l *lab) setRemoteTools(rt contracts.RemoteToolsSettings, clients ...*fakeAgent) {
	t := l.t
	t.Helper()
	s := contracts.Settings{Name: "Remote tools", Priority: 10, SettingsSections: contracts.SettingsSections{RemoteTools: &rt}}
	if _, err := l.admin.SettingsApply(ctxT(t), s); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if _, err := l.admin.SettingsDeploy(ctxT(t), s.Name, contracts.AllSystemsName); err != nil && contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("deploy: %v", err)
	}
	var want map[string]json.RawMessage // the fields set; the resultant has the defaults too
	b, _ := json.Marshal(rt)
	_ = json.Unmarshal(b, &want)
	facts := sessions.BusFacts{NC: l.svc, Site: labSite}
	for _, c := range clients {
		wait(t, 15*time.Second, "the resultant remote tools of "+c.name, func() bool {
			set, err := facts.Policy(ctxT(t), c.id)
			if err != nil || set.RemoteTools == nil {
				return false
			}
			var got map[string]json.RawMessage
			b, _ := json.Marshal(*set.RemoteTools)
			_ = json.Unmarshal(b, &got)
			for k, v := range want {
				if !bytes.Equal(got[k], v) {
					return false
				}
			}
			return true
		})
	}
}

// audit waits for the audit message msgID of session id.
func (l *lab) audit(t *testing.T, msgID int, session string) contracts.StatusMessage {
	t.Helper()
	var found contracts.StatusMessage
	wait(t, 15*time.Second, "the audit message of session "+session, func() bool {
		for _, m := range l.audits(t, msgID) {
			if m.Properties["session"] == session {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// audits lists the status messages msgID so far.
func (l *lab) audits(t *testing.T, msgID int) []contracts.StatusMessage {
	resp, err := l.admin.StatusList(ctxT(t), contracts.StatusListRequest{Filter: contracts.StatusFilter{MsgIDs: []int{msgID}}, Limit: 1000})
	if err != nil {
		return nil
	}
	return resp.Messages
}

// fakeAgent is an enrolled client: it heartbeats (when online) and
// delivers the grants it receives to the test, which answers them.
type fakeAgent struct {
	id     string
	name   string
	nc     *nats.Conn
	grants chan grant
}

// grant is a grant as the agent received it.
type grant struct {
	contracts.SessionGrant
	msg *nats.Msg
}

// answer answers the grant as an agent does.
func (g grant) answer(t *testing.T, ans contracts.SessionGrantAnswer) {
	ans.Header, ans.Session = contracts.NewHeader(contracts.TypeSessionGrantAnswer), g.Session
	data, _ := json.Marshal(ans)
	if err := g.msg.Respond(data); err != nil {
		t.Errorf("answer the grant: %v", err)
	}
}

// agent enrolls a client named name; online: it heartbeats until the test
// ends (a client that never did is offline).
func (l *lab) agent(name string, online bool) *fakeAgent {
	t := l.t
	t.Helper()
	tok, _, err := l.admin.TokensCreate(ctxT(t), time.Hour, 1, "test")
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	inbox, _ := contracts.Inbox(pub)
	enc := connectKey(t, l.site.URL(), kp, inbox)
	subj, _ := contracts.Enroll(labSite, pub)
	var resp contracts.EnrollResponse
	err = rpc.Call(ctxT(t), enc, subj, contracts.EnrollRequest{Header: contracts.NewHeader(contracts.TypeEnrollRequest), Token: tok,
		Name: name, Hostname: name, OS: "linux", Arch: "amd64", AgentVersion: "test", Capability: contracts.CapabilityVersion}, &resp)
	if err != nil || resp.Status != contracts.EnrollApproved {
		t.Fatalf("enroll %s: %+v, %v", name, resp, err)
	}
	enc.Close()
	inbox, _ = contracts.Inbox(resp.ClientID)
	a := &fakeAgent{id: resp.ClientID, name: name, nc: connectKey(t, l.site.URL(), kp, inbox), grants: make(chan grant, 16)}
	down, _ := contracts.AgentDown(labSite, a.id, contracts.KindSessionGrant)
	if _, err := a.nc.Subscribe(down, func(m *nats.Msg) {
		var sg contracts.SignedGrant
		var g contracts.SessionGrant
		if err := json.Unmarshal(m.Data, &sg); err != nil {
			t.Errorf("signed grant: %v", err)
			return
		}
		if err := json.Unmarshal(sg.Grant, &g); err != nil {
			t.Errorf("grant: %v", err)
			return
		}
		a.grants <- grant{SessionGrant: g, msg: m}
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if online {
		hb, _ := contracts.AgentUp(labSite, a.id, contracts.KindHeartbeat)
		data, _ := json.Marshal(contracts.Heartbeat{Header: contracts.NewHeader(contracts.TypeHeartbeat), Name: name, Hostname: name, OS: "linux",
			Arch: "amd64", AgentVersion: "test", Capability: contracts.CapabilityVersion, Interval: contracts.Duration(time.Minute), Started: time.Now()})
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			for {
				_ = a.nc.Publish(hb, data)
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		})
		t.Cleanup(func() { close(stop); wg.Wait() })
	}
	wait(t, 15*time.Second, name+" known to discovery, online="+map[bool]string{true: "yes", false: "no"}[online], func() bool {
		cs, err := l.admin.ClientsList(ctxT(t), "")
		if err != nil {
			return false
		}
		for _, c := range cs {
			if c.ID == a.id {
				return c.Online == online && c.Status == contracts.ClientApproved
			}
		}
		return false
	})
	return a
}

// nextGrant waits for the next grant the agent receives.
func (a *fakeAgent) nextGrant(t *testing.T) grant {
	t.Helper()
	select {
	case g := <-a.grants:
		return g
	case <-time.After(20 * time.Second):
		t.Fatalf("%s received no grant", a.name)
	}
	panic("unreachable")
}

// stewardRun is the CLI running in the background: its stderr so far,
// and its end.
type stewardRun struct {
	stderr *natstest.Buffer
	done   chan struct{} // closed when it returned err
	err    error
	cancel context.CancelFunc
}

// steward runs `steward args...` as identity in the background until it
// returns or the test ends.
func (l *lab) steward(identity string, args ...string) *stewardRun {
	var out bytes.Buffer
	r := &stewardRun{stderr: &natstest.Buffer{}, done: make(chan struct{})}
	root := cli.NewRoot(&out, r.stderr)
	root.SetIn(strings.NewReader(""))
	root.SetArgs(append([]string{"--server", l.site.URL(), "--identity", identity}, args...))
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		r.err = root.ExecuteContext(ctx)
	}()
	l.t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func ptr[T any](v T) *T { return &v }
