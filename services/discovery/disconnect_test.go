package discovery

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// startAccountsServer runs a server shaped like a site's: agents (NKey
// users) and services in account STEWARD with JetStream, and a system
// account, so disconnect advisories flow as they do in production.
func startAccountsServer(t *testing.T, agentKey string) *server.Server {
	t.Helper()
	dir := t.TempDir()
	conf := fmt.Sprintf(`
listen: "127.0.0.1:-1"
jetstream { store_dir: %q }
accounts {
  STEWARD { jetstream: enabled, users: [ {nkey: %q}, {user: svc, password: svc} ] }
  SYS { users: [ {user: sys, password: sys} ] }
}
system_account: SYS
`, filepath.Join(dir, "js"), agentKey)
	path := filepath.Join(dir, "server.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// TestDisconnectMarksOffline closes an agent's connection and expects its
// client offline at once, long before any missed heartbeat.
func TestDisconnectMarksOffline(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	srv := startAccountsServer(t, pub)
	svc := natstest.Connect(t, srv, nats.UserInfo("svc", "svc"))
	sys := natstest.Connect(t, srv, nats.UserInfo("sys", "sys"))

	e := &env{t: t, srv: srv, nc: svc, js: newJS(t, svc)}
	createAdminStream(t, e.js)
	startService(t, Config{NC: natstest.Connect(t, srv, nats.UserInfo("svc", "svc")), Sys: sys, Log: quietLog()})

	c := client("c1", "web-01")
	c.Key = pub
	e.publishEvent(contracts.ClientEnrolled, c)
	e.waitRecord("c1", "enrolled", func(r record, ok bool) bool { return ok })

	agent, err := nats.Connect(srv.ClientURL(), nats.Nkey(pub, kp.Sign))
	if err != nil {
		t.Fatalf("agent connect: %v", err)
	}
	defer agent.Close()
	e.nc = agent
	e.heartbeat("c1", contracts.Heartbeat{Name: "web-01", Interval: contracts.Duration(time.Hour)})
	e.nc = svc
	e.waitRecord("c1", "online", func(r record, ok bool) bool { return r.Online })

	// A service's own connection closing marks nobody offline.
	other := natstest.Connect(t, srv, nats.UserInfo("svc", "svc"))
	other.Close()

	agent.Close()
	e.waitRecord("c1", "offline after the agent disconnected", func(r record, ok bool) bool { return !r.Online })
}
