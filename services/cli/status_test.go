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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
	"github.com/stewardhq/steward/services/internal/natstest"
	"github.com/stewardhq/steward/services/internal/rpc"
	"github.com/stewardhq/steward/services/status"
)

const statusClient = "0195a3c4-0000-7000-8000-0000000000c1"

type statusEnv struct {
	t        *testing.T
	url      string
	identity string
	nc       *nats.Conn
}

// newStatusEnv starts a server with a status service and writes an
// operator identity.
func newStatusEnv(t *testing.T) *statusEnv {
	t.Helper()
	srv := natstest.Start(t)
	e := &statusEnv{t: t, url: srv.ClientURL(), nc: natstest.Connect(t, srv)}
	svc, err := status.New(context.Background(), status.Config{
		NC: natstest.Connect(t, srv), Site: "LAB", Rate: -1, NoAuthz: true,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := svc.Run(ctx); err != nil {
			t.Errorf("status: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	<-svc.Ready()

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

// command is `steward status ...` with the global flags set for e. It is
// built here, not through NewRoot, so it is tested on its own.
func (e *statusEnv) command(stdout, stderr io.Writer, args ...string) *cobra.Command {
	g := &globals{server: e.url, identity: e.identity, site: "LAB", operator: "admin", timeout: 10 * time.Second, stdout: stdout, stderr: stderr}
	root := &cobra.Command{Use: "steward", SilenceUsage: true, SilenceErrors: true}
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "table or json")
	root.AddCommand(newStatusCmd(g))
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(append([]string{"status"}, args...))
	return root
}

func (e *statusEnv) run(args ...string) (string, string, error) {
	e.t.Helper()
	var out, errb bytes.Buffer
	err := e.command(&out, &errb, args...).ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func (e *statusEnv) mustRun(args ...string) string {
	e.t.Helper()
	out, stderr, err := e.run(args...)
	if err != nil {
		e.t.Fatalf("steward status %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// send stores messages as the agent statusClient's outbox would.
func (e *statusEnv) send(msgs ...contracts.StatusMessage) {
	e.t.Helper()
	batch := contracts.OutboxBatch{Header: contracts.NewHeader(contracts.TypeOutboxBatch)}
	for _, m := range msgs {
		data, _ := json.Marshal(m)
		batch.Items = append(batch.Items, contracts.OutboxItem{ID: m.ID, Type: contracts.TypeStatusMessage, Time: m.Time, Data: data})
	}
	subj, _ := contracts.AgentUp("LAB", statusClient, contracts.KindStatus)
	var ack contracts.OutboxAck
	if err := rpc.Call(context.Background(), e.nc, subj, batch, &ack); err != nil || len(ack.Stored) != len(msgs) {
		e.t.Fatalf("send: %v, ack %+v", err, ack)
	}
}

func TestStatusCLIListShow(t *testing.T) {
	e := newStatusEnv(t)
	lost := contracts.NewStatus(contracts.StatusAgentConnectionLost, map[string]string{"site": "LAB", "server": "nats://x", "error": "eof"})
	full := contracts.NewStatus(contracts.StatusAgentOutboxOverflow, map[string]string{"limit": "100", "dropped": "3"})
	old := contracts.NewStatus(contracts.StatusAgentConnectionRegained, nil)
	old.Time = time.Now().Add(-3 * time.Hour)
	e.send(lost, full, old)

	out := e.mustRun("list", "--severity", "error", "-o", "json")
	var got []contracts.StatusMessage
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("list -o json: %v\n%s", err, out)
	}
	if len(got) != 1 || got[0].ID != full.ID || got[0].Source != statusClient {
		t.Errorf("list --severity error: got %+v, want the overflow from %s", got, statusClient)
	}

	// The default window is the last hour: the old message is left out.
	out = e.mustRun("list", "--client", statusClient)
	if !strings.Contains(out, "TIME") || !strings.Contains(out, "10001") || !strings.Contains(out, "10003") || strings.Contains(out, "10002") {
		t.Errorf("list table: got\n%s\nwant 10001 and 10003 only", out)
	}
	out = e.mustRun("list", "--since", "1d", "--id", "10002", "-o", "json")
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 || got[0].ID != old.ID {
		t.Errorf("list --since 1d --id 10002: got %s", out)
	}

	// Paging says how to go on.
	out, stderr, err := e.run("list", "--limit", "1")
	if err != nil || !strings.Contains(stderr, "--after ") || strings.Count(out, "\n") != 2 {
		t.Errorf("list --limit 1: got %q / %q / %v, want one row and the next cursor on stderr", out, stderr, err)
	}
	out = e.mustRun("list", "--client", statusClient, "--limit", "1", "--all", "-o", "json")
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 2 {
		t.Errorf("list --all: got %s, want both messages of the hour", out)
	}

	if _, _, err := e.run("list", "--component", "nope"); err == nil || !strings.Contains(err.Error(), `--component "nope": want one of`) {
		t.Errorf("list --component nope: got %v, want the known components", err)
	}

	out = e.mustRun("show", full.ID)
	for _, want := range []string{full.ID, "Severity:", "error", "Properties:", "dropped:", "3"} {
		if !strings.Contains(out, want) {
			t.Errorf("show: got\n%s\nwant %q in it", out, want)
		}
	}
	if _, _, err := e.run("show", "01a1fead-4285-71cc-b802-2773f7f0dda9"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Errorf("show unknown: got %v, want not_found", err)
	}
	if _, _, err := e.run("list", "--since", "yesterday"); err == nil || !strings.Contains(err.Error(), "--since") {
		t.Errorf("bad --since: got %v", err)
	}
}

func TestStatusCLICatalogComponents(t *testing.T) {
	e := newStatusEnv(t)
	out := e.mustRun("catalog")
	if !strings.Contains(out, "10001") || !strings.Contains(out, "(any)") || !strings.Contains(out, "was blocked by {by}") {
		t.Errorf("catalog: got\n%s", out)
	}
	var cat []contracts.StatusDef
	if err := json.Unmarshal([]byte(e.mustRun("catalog", "-o", "json")), &cat); err != nil || len(cat) != len(contracts.Catalog()) {
		t.Errorf("catalog -o json: got %d entries (%v)", len(cat), err)
	}

	var msgs []contracts.StatusMessage
	for range 5 {
		msgs = append(msgs, contracts.NewStatus(contracts.StatusAgentOutboxOverflow, nil))
	}
	e.send(msgs...)
	natstest.Wait(t, 15*time.Second, "the agent component critical", func() bool {
		return strings.Contains(e.mustRun("components"), "CRITICAL")
	})
	out = e.mustRun("components")
	for _, want := range []string{"Messages within the last 1h0m0s", "agent", "CRITICAL", "5 errors (critical at 5)", "despooler", "OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("components: got\n%s\nwant %q in it", out, want)
		}
	}
	out = e.mustRun("clients", statusClient)
	if !strings.Contains(out, statusClient) || !strings.Contains(out, "10003") {
		t.Errorf("clients: got\n%s", out)
	}
}

func TestStatusCLIRules(t *testing.T) {
	e := newStatusEnv(t)
	e.send(contracts.NewStatus(contracts.StatusAgentOutboxOverflow, nil), contracts.NewStatus(contracts.StatusAgentConnectionLost, nil))

	out := e.mustRun("rules", "add", "--name", "page-agent", "--match", `severity == "error" && component == "agent"`, "--action", "exec", "--command", "/usr/local/bin/page {{.ID}}")
	if !strings.Contains(out, "page-agent") || !strings.Contains(out, "/usr/local/bin/page {{.ID}}") {
		t.Errorf("rules add: got\n%s", out)
	}
	e.mustRun("rules", "add", "--name", "drop-noise", "--match", "id == 9001", "--action", "discard", "--order", "1")
	e.mustRun("rules", "add", "--name", "to-chat", "--match", "audit", "--action", "webhook", "--url", "http://127.0.0.1:9/hook")

	var rules []contracts.StatusRule
	if err := json.Unmarshal([]byte(e.mustRun("rules", "list", "-o", "json")), &rules); err != nil || len(rules) != 3 || rules[0].Name != "drop-noise" {
		t.Errorf("rules list: got %+v (%v), want three, drop-noise first", rules, err)
	}

	out = e.mustRun("rules", "test", "page-agent")
	if !strings.Contains(out, "1 of") || !strings.Contains(out, "exec /usr/local/bin/page ") {
		t.Errorf("rules test: got\n%s", out)
	}

	// Bad input: a match that does not compile (with its position), a
	// target flag that does not go with the action, a missing flag.
	_, _, err := e.run("rules", "add", "--name", "bad", "--match", `severity ==`, "--action", "store")
	if contracts.CodeOf(err) != contracts.CodeBadRequest || !strings.Contains(err.Error(), "(1:") {
		t.Errorf("bad match: got %v, want bad_request with the position", err)
	}
	if _, _, err := e.run("rules", "add", "--name", "x", "--match", "true", "--action", "exec", "--url", "http://x"); err == nil || !strings.Contains(err.Error(), "--url goes with --action webhook") {
		t.Errorf("--url with exec: got %v", err)
	}
	if _, _, err := e.run("rules", "add", "--name", "x", "--action", "store"); err == nil || !strings.Contains(err.Error(), "match") {
		t.Errorf("no --match: got %v", err)
	}

	if out := e.mustRun("rules", "delete", "to-chat"); !strings.Contains(out, "deleted rule to-chat") {
		t.Errorf("rules delete: got %q", out)
	}
	if _, _, err := e.run("rules", "delete", "to-chat"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Errorf("delete twice: got %v, want not_found", err)
	}
}

func TestStatusCLIFollow(t *testing.T) {
	e := newStatusEnv(t)
	var out, errb natstest.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- e.command(&out, &errb, "follow", "--severity", "error", "-o", "json").ExecuteContext(ctx)
	}()

	sent := map[string]bool{}
	natstest.Wait(t, 15*time.Second, "a followed message", func() bool {
		m := contracts.NewStatus(contracts.StatusAgentOutboxOverflow, nil)
		sent[m.ID] = true
		e.send(m, contracts.NewStatus(contracts.StatusAgentConnectionLost, nil))
		return strings.Contains(out.String(), "\n")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("follow: %v\n%s", err, errb.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m contracts.StatusMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil || !sent[m.ID] || m.Severity != contracts.SeverityError {
			t.Errorf("follow line %q: want one JSON error message that was sent", line)
		}
	}
}

func TestParseStatusTime(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"", time.Time{}, false},
		{"1h", now.Add(-time.Hour), false},
		{"90m", now.Add(-90 * time.Minute), false},
		{"1d", now.Add(-24 * time.Hour), false},
		{"1.5d", now.Add(-36 * time.Hour), false},
		{"2w", now.Add(-14 * 24 * time.Hour), false},
		{"2026-11-20T08:00:00Z", time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC), false},
		{"-1h", time.Time{}, true},
		{"yesterday", time.Time{}, true},
		{"xd", time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := parseStatusTime(tt.in, now)
		if (err != nil) != tt.err || !got.Equal(tt.want) {
			t.Errorf("parseStatusTime(%q): got %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
	if got, err := parseStatusTime("2026-11-20", now); err != nil || got.Day() != 20 {
		t.Errorf("date: got %v, %v", got, err)
	}
}

// TestStatusTableNames: a source that is a known client is shown by its
// name; others (the site, a client not listed) as they are.
func TestStatusTableNames(t *testing.T) {
	var b bytes.Buffer
	msgs := []contracts.StatusMessage{
		{MsgID: 10001, Source: statusClient, Text: "from the agent"},
		{MsgID: 1001, Source: "LAB", Text: "from the site"},
		{MsgID: 10002, Source: "0195a3c4-0000-7000-8000-0000000000ff", Text: "from a client not listed"},
	}
	statusTable(&b, msgs, map[string]string{statusClient: "web-01"})
	out := b.String()
	for _, want := range []string{"web-01", "LAB", "0195a3c4-0000-7000-8000-0000000000ff"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, statusClient) {
		t.Errorf("table shows the ID of a named client:\n%s", out)
	}
}
