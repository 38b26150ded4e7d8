package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
	"github.com/stewardhq/steward/services/discovery"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// startServer runs a server without authentication that still presents a
// nonce, so an operator connecting with its NKey (as the CLI does) gets in.
// (natstest.Start presents none, and nats.go refuses NKey auth without one.)
func startServer(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true, AlwaysEnableNonce: true,
	})
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

type cliEnv struct {
	t        *testing.T
	url      string
	identity string
	nc       *nats.Conn
	js       jetstream.JetStream
}

// newCLIEnv starts a server with the admin stream and discovery, and writes
// an operator identity.
func newCLIEnv(t *testing.T) *cliEnv {
	srv := startServer(t)
	e := &cliEnv{t: t, url: srv.ClientURL(), nc: natstest.Connect(t, srv)}
	var err error
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	evs, _ := contracts.EventAll("LAB", "admin")
	if _, err := e.js.CreateOrUpdateStream(context.Background(), jetstream.StreamConfig{
		Name: discovery.EventsStream, Subjects: []string{evs}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	svc, err := discovery.New(context.Background(), discovery.Config{NC: natstest.Connect(t, srv), Site: "LAB", Log: discardLog(), NoAuthz: true, NoStatusMessages: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := svc.Run(ctx); err != nil {
			t.Errorf("discovery: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-svc.Ready():
	case <-done:
		t.Fatal("discovery stopped")
	}

	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	e.identity = filepath.Join(t.TempDir(), "admin.nk")
	if err := client.WriteIdentity(e.identity, client.Identity{Site: "LAB", Operator: "admin", Seed: seed}); err != nil {
		t.Fatal(err)
	}
	return e
}

// run runs `steward args...` as the operator and returns its stdout.
func (e *cliEnv) run(args ...string) (string, error) {
	e.t.Helper()
	var out, errb bytes.Buffer
	root := NewRoot(&out, &errb)
	root.SetArgs(append(args, "--server", e.url, "--identity", e.identity, "--site", "LAB", "--operator", "admin", "--otlp-endpoint", ""))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func (e *cliEnv) enroll(action string, c contracts.Client) {
	e.t.Helper()
	subj, _ := contracts.Event("LAB", "admin", "client")
	data, _ := json.Marshal(contracts.ClientEvent{Header: contracts.NewHeader(contracts.TypeClientEvent), Action: action, Client: c})
	if _, err := e.js.Publish(context.Background(), subj, data); err != nil {
		e.t.Fatal(err)
	}
}

func TestClientsList(t *testing.T) {
	e := newCLIEnv(t)

	out, err := e.run("clients", "list", "-o", "json")
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if strings.TrimSpace(out) != "[]" {
		t.Errorf("empty list: got %q, want []", out)
	}

	e.enroll(contracts.ClientEnrolled, contracts.Client{ID: "id-2", Name: "a2", OS: "linux", Arch: "amd64", AgentVersion: "0.1.0"})
	e.enroll(contracts.ClientQueued, contracts.Client{ID: "id-1", Name: "a1", OS: "windows"})
	hb, _ := contracts.AgentUp("LAB", "id-2", contracts.KindHeartbeat)
	data, _ := json.Marshal(contracts.Heartbeat{Header: contracts.NewHeader(contracts.TypeHeartbeat), Name: "a2", OS: "linux", Arch: "amd64", AgentVersion: "0.1.0", Capability: 1, Interval: contracts.Duration(time.Minute)})

	var got []map[string]any
	natstest.Wait(t, 5*time.Second, "two clients, a2 online", func() bool {
		_ = e.nc.Publish(hb, data)
		out, err = e.run("clients", "list", "-o", "json")
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("list -o json is not a JSON array: %v\n%s", err, out)
		}
		return len(got) == 2 && got[1]["online"] == true
	})
	if got[0]["name"] != "a1" || got[0]["id"] != "id-1" || got[0]["status"] != "pending" || got[1]["name"] != "a2" {
		t.Errorf("got %v, want a1 (pending) then a2", got)
	}
	for _, k := range []string{"id", "name", "status", "online", "lastSeen", "firstSeen"} {
		if _, ok := got[1][k]; !ok {
			t.Errorf("client object lacks %q: %v", k, got[1])
		}
	}

	out, err = e.run("clients", "list", "--status", "pending", "-o", "json")
	if err != nil || !strings.Contains(out, `"a1"`) || strings.Contains(out, `"a2"`) {
		t.Errorf("--status pending: got %s, %v; want a1 only", out, err)
	}

	out, err = e.run("clients", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[0], "LAST SEEN") ||
		!strings.HasPrefix(lines[1], "a1") || !strings.Contains(lines[2], "linux/amd64") || !strings.Contains(lines[2], " yes ") {
		t.Errorf("table:\n%s", out)
	}

	if _, err := e.run("clients", "list", "--status", "online"); err == nil || !strings.Contains(err.Error(), "pending, approved or blocked") {
		t.Errorf("bad --status: got %v", err)
	}
}

func TestClientsShowAndActions(t *testing.T) {
	e := newCLIEnv(t)
	e.enroll(contracts.ClientEnrolled, contracts.Client{ID: "id-1", Name: "web", Key: "UKEY"})
	var out string
	var err error
	natstest.Wait(t, 5*time.Second, "client web", func() bool {
		out, err = e.run("clients", "show", "web", "-o", "json")
		return err == nil
	})
	var c contracts.Client
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.ID != "id-1" || c.Key != "UKEY" {
		t.Errorf("show -o json: got %s (%v), want the client object", out, err)
	}
	out, err = e.run("clients", "show", "id-1")
	if err != nil || !strings.Contains(out, "Status:") || !strings.Contains(out, "approved") {
		t.Errorf("show: got %q, %v", out, err)
	}
	if _, err := e.run("clients", "show", "nope"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Errorf("show nope: got %v, want not_found", err)
	}
	if _, err := e.run("clients", "show"); err == nil {
		t.Error("show without REF: no error")
	}

	// approve, block and delete are the admin service's; a stand-in answers.
	for _, kind := range []string{contracts.KindClientsApprove, contracts.KindClientsBlock, contracts.KindClientsDelete} {
		subj, _ := contracts.OpUpAll("LAB", kind)
		sub, err := e.nc.Subscribe(subj, func(m *nats.Msg) {
			var req contracts.ClientRequest
			if err := contracts.Decode(m.Data, contracts.TypeClientRequest, &req); err != nil {
				t.Errorf("%s: %v", kind, err)
				return
			}
			resp, _ := json.Marshal(contracts.ClientResponse{Header: contracts.NewHeader(contracts.TypeClientResponse),
				Client: contracts.Client{ID: "id-1", Name: req.Ref, Status: kind}})
			_ = m.Respond(resp)
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for verb, kind := range map[string]string{"approve": contracts.KindClientsApprove, "block": contracts.KindClientsBlock} {
		out, err := e.run("clients", verb, "web", "-o", "json")
		var c contracts.Client
		if err != nil || json.Unmarshal([]byte(out), &c) != nil || c.Status != kind || c.Name != "web" {
			t.Errorf("%s: got %s, %v", verb, out, err)
		}
	}

	if _, err := e.run("clients", "delete", "web"); err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Errorf("delete without --yes: got %v, want a request for --yes", err)
	}
	out, err = e.run("clients", "delete", "web", "--yes")
	if err != nil || !strings.Contains(out, "deleted client web") {
		t.Errorf("delete --yes: got %q, %v", out, err)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
