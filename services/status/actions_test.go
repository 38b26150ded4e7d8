package status

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// TestRuleExec: an exec rule runs its command (no shell) with the message
// rendered into its words and on its stdin.
func TestRuleExec(t *testing.T) {
	tee, err := exec.LookPath("tee")
	if err != nil {
		t.Fatalf("the exec rule runs tee (coreutils), which is not on PATH: %v", err)
	}
	e := newEnv(t, nil)
	dir := t.TempDir()
	e.addRule(contracts.StatusRule{
		Name:   "page-despooler",
		Match:  `severity == "error" && component == "agent"`,
		Action: contracts.RuleExec,
		Target: tee + " " + filepath.Join(dir, "page-{{.MsgID}}-{{.ID}}.json"),
	})
	quiet := agentMsg(contracts.StatusAgentConnectionLost, nil) // a warning: no match
	loud := agentMsg(contracts.StatusAgentOutboxOverflow, map[string]string{"limit": "10000", "dropped": "7"})
	e.send(client1, item(t, quiet), item(t, loud))

	path := filepath.Join(dir, "page-10003-"+loud.ID+".json")
	e.waitFor("the exec rule's file", func() bool {
		data, err := os.ReadFile(path)
		return err == nil && json.Valid(data)
	})
	data, _ := os.ReadFile(path)
	var got contracts.StatusMessage
	if err := json.Unmarshal(data, &got); err != nil || got.ID != loud.ID || got.Source != client1 {
		t.Errorf("command stdin: got %s (%v), want the message %s from %s", data, err, loud.ID, client1)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 1 {
		t.Errorf("files: got %v, want only the error's", files)
	}
}

// TestRuleWebhook: a webhook rule POSTs the message as JSON, with the uuid
// as Idempotency-Key.
func TestRuleWebhook(t *testing.T) {
	var mu sync.Mutex
	var got []contracts.StatusMessage
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m contracts.StatusMessage
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &m) != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got, keys = append(got, m), append(keys, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, nil)
	e.addRule(contracts.StatusRule{Name: "to-chat", Match: "audit", Action: contracts.RuleWebhook, Target: srv.URL + "/hook"})

	em := newTestEmitter(t, e, contracts.ComponentAdmin)
	blocked := em.Emit(context.Background(), contracts.StatusClientBlocked, map[string]string{"client": client1, "name": "web-01", "by": "alice"})
	em.Emit(context.Background(), contracts.StatusServiceRetrying, map[string]string{"service": "steward-admin"}) // not audit

	// Audit messages are the block and the rule's own addition (also an
	// audit message, stored after the rule was in force).
	e.waitFor("the webhook", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 2 })
	mu.Lock()
	defer mu.Unlock()
	seen := map[int]bool{}
	for i, m := range got {
		seen[m.MsgID] = true
		if !m.Audit || keys[i] != m.ID {
			t.Errorf("webhook got %+v with key %q, want audit messages keyed by their uuid", m, keys[i])
		}
	}
	if !seen[contracts.StatusClientBlocked] || !seen[contracts.StatusRuleAdded] || len(got) != 2 {
		t.Errorf("webhook got ids %v, want the block (%s) and the rule's addition only", seen, blocked.ID)
	}
}

// TestRuleWebhookHangs: a webhook that never answers times out, is retried
// with backoff and reported each time, and is given up and reported after
// the last attempt; meanwhile ingestion goes on.
func TestRuleWebhookHangs(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	e := newEnv(t, nil) // ActionAttempts 3, backoff 10ms
	e.addRule(contracts.StatusRule{
		Name: "slow-hook", Match: "id == 10003", Action: contracts.RuleWebhook, Target: srv.URL,
		Timeout: contracts.Duration(100 * time.Millisecond),
	})
	m := agentMsg(contracts.StatusAgentOutboxOverflow, nil)
	start := time.Now()
	if ack := e.send(client1, item(t, m)); len(ack.Stored) != 1 {
		t.Fatalf("ingest: got %+v, want stored", ack)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("ingest took %s with a hanging webhook, want it not to wait on actions", d)
	}
	e.waitFor("the give-up report", func() bool { return len(e.find(contracts.StatusRuleActionGaveUp)) == 1 })
	retries := e.find(contracts.StatusRuleActionFailed)
	if len(retries) != 2 {
		t.Errorf("retry reports: got %d, want 2 (attempts 1 and 2 of 3)", len(retries))
	}
	for _, r := range append(retries, e.find(contracts.StatusRuleActionGaveUp)...) {
		if r.Properties["rule"] != "slow-hook" || r.Properties["message"] != m.ID || !strings.Contains(r.Properties["error"], "no answer within") {
			t.Errorf("report: got %+v, want one naming slow-hook, %s and the timeout", r.Properties, m.ID)
		}
	}
	mu.Lock()
	n := calls
	mu.Unlock()
	if n != 3 {
		t.Errorf("webhook calls: got %d, want 3", n)
	}
	// The reports themselves trigger no action, even though a rule could
	// match them: no fourth call, and nothing left in the action queue.
	info, err := e.svc.actions.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("action queue: got %d jobs left, want 0", info.State.Msgs)
	}
}

// TestRuleForward: a forward rule publishes the message, unchanged and
// deduplicated by uuid, to a subject a stream captures (here on the same
// server, standing in for a parent site's intake).
func TestRuleForward(t *testing.T) {
	e := newEnv(t, nil)
	const target = "steward.PARENT.status.intake"
	ctx := context.Background()
	parent, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "PARENT_INTAKE", Subjects: []string{target}, Duplicates: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.addRule(contracts.StatusRule{Name: "to-parent", Match: `severity != "info"`, Action: contracts.RuleForward, Target: target})
	m := agentMsg(contracts.StatusAgentConnectionLost, map[string]string{"site": site, "server": "x", "error": "eof"})
	e.send(client1, item(t, m))

	e.waitFor("the forwarded message", func() bool {
		info, err := parent.Info(ctx)
		return err == nil && info.State.Msgs == 1
	})
	raw, err := parent.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	var got contracts.StatusMessage
	if err := json.Unmarshal(raw.Data, &got); err != nil || got.ID != m.ID || got.Site != site || got.Source != client1 {
		t.Errorf("forwarded: got %+v (%v), want message %s from %s at %s", got, err, m.ID, client1, site)
	}
	if id := raw.Header.Get(jetstream.MsgIDHeader); id != m.ID {
		t.Errorf("Nats-Msg-Id: got %q, want %q", id, m.ID)
	}
}

// TestRuleDiscardAndStore: discard drops a message from the store (and
// from summaries and follows); store ends the evaluation so that a discard
// below does not apply.
func TestRuleDiscardAndStore(t *testing.T) {
	e := newEnv(t, nil)
	e.addRule(contracts.StatusRule{Name: "keep-errors", Match: `severity == "error"`, Action: contracts.RuleStore})
	e.addRule(contracts.StatusRule{Name: "drop-noise", Match: "id == 9001", Action: contracts.RuleDiscard})
	noise := agentMsg(9001, nil)
	loud := agentMsg(9001, nil)
	loud.Severity = contracts.SeverityError
	other := agentMsg(contracts.StatusAgentConnectionRegained, nil)
	e.send(client1, item(t, noise), item(t, loud), item(t, other))

	// The processor has seen the three once the client summary counts them.
	e.waitFor("the processor", func() bool {
		sums, err := e.op.StatusClients(context.Background(), client1)
		return err == nil && len(sums) == 1 && sums[0].Info+sums[0].Error == 2
	})
	ids := map[string]bool{}
	for _, m := range e.stored() {
		ids[m.ID] = true
	}
	if ids[noise.ID] || !ids[loud.ID] || !ids[other.ID] {
		t.Errorf("stored: noise %v, loud %v, other %v; want the noise discarded and the others kept", ids[noise.ID], ids[loud.ID], ids[other.ID])
	}
	// Nor is it counted in the component status.
	e.waitFor("agent component counts", func() bool {
		comps, err := e.op.StatusComponents(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range comps.Components {
			if c.Component == contracts.ComponentAgent {
				return c.Info == 1 && c.Error == 1
			}
		}
		return false
	})
}

// newTestEmitter is an emitter of a service of component on e's server.
func newTestEmitter(t *testing.T, e *env, component string) *Emitter {
	t.Helper()
	em, err := NewEmitter(EmitterConfig{NC: e.nc, Site: site, Component: component, Instance: "steward-" + component + "/test", Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := em.Close(ctx); err != nil {
			t.Errorf("emitter close: %v", err)
		}
	})
	return em
}

// TestActionQueueBounded: every job in STATUS_ACTIONS carries a whole copy
// of its message, and the queue had no limit: with a webhook that hangs,
// what agents send piled up there without bound on the site's JetStream
// disk. The queue is bounded now (refusing new jobs when full): a rule's
// action that does not fit is not queued, which is reported once per rule
// (4003) rather than per message, and the messages are stored and
// processed all the same.
func TestActionQueueBounded(t *testing.T) {
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); hook.Close() })
	e := newEnv(t, func(c *Config) {
		c.ActionQueueJobs, c.ActionQueueBytes = 20, 1<<20
		c.ActionAttempts, c.ActionBackoff = 5, []time.Duration{time.Minute}
	})
	e.addRule(contracts.StatusRule{Name: "page", Match: `component == "agent"`, Action: contracts.RuleWebhook, Target: hook.URL,
		Timeout: contracts.Duration(5 * time.Second)})
	props := largeProps()
	var ids []string
	for range 10 {
		var items []contracts.OutboxItem
		for range 30 {
			m := agentMsg(10999, props)
			ids = append(ids, m.ID)
			items = append(items, item(t, m))
		}
		if ack := e.send("c-noisy", items...); len(ack.Stored) != 30 {
			t.Fatalf("stored %d", len(ack.Stored))
		}
	}
	e.caughtUp() // the processor is not held up by the full queue
	ctx := context.Background()
	ai, err := e.svc.actions.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ai.Config.MaxMsgs != 20 || ai.Config.MaxBytes != 1<<20 || ai.Config.Discard != jetstream.DiscardNew || ai.State.Msgs > 20 || ai.State.Bytes > 1<<20 {
		t.Errorf("action queue: MaxMsgs %d MaxBytes %d discard %v, holds %d jobs %d bytes; want at most 20 jobs and 1 MiB, new ones refused",
			ai.Config.MaxMsgs, ai.Config.MaxBytes, ai.Config.Discard, ai.State.Msgs, ai.State.Bytes)
	}
	if got := len(e.find(10999)); got != len(ids) {
		t.Errorf("stored %d of the %d messages", got, len(ids))
	}
	e.waitFor("the report of the jobs not queued", func() bool { return len(e.find(contracts.StatusRuleActionGaveUp)) > 0 })
	reports := 0
	for _, m := range e.find(contracts.StatusRuleActionGaveUp) {
		if strings.Contains(m.Properties["error"], "action queue is full") {
			reports++
			if m.Properties["rule"] != "page" || m.Properties["attempts"] != "0" {
				t.Errorf("report: got %+v", m.Properties)
			}
		}
	}
	if reports != 1 {
		t.Errorf("got %d reports of a full queue, want one (at most one a minute per rule)", reports)
	}
}

// TestActionReportsBounded: each failure of an action was reported (4002,
// 4003) to the site's own stream, so a failing webhook on agents' messages
// turned their flood into one there. Reports are bounded per rule; the
// rest are logged and counted in the next report.
func TestActionReportsBounded(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ActionAttempts, c.ActionBackoff = 2, []time.Duration{10 * time.Millisecond} })
	e.addRule(contracts.StatusRule{Name: "refused", Match: `component == "agent"`, Action: contracts.RuleWebhook, Target: "http://127.0.0.1:1/hook"})
	for range 10 {
		var items []contracts.OutboxItem
		for range 30 {
			items = append(items, item(t, agentMsg(contracts.StatusAgentConnectionLost, nil)))
		}
		e.send(client1, items...)
	}
	e.caughtUp()
	ctx := context.Background()
	e.waitFor("every action to fail for good", func() bool {
		info, err := e.svc.actions.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})
	reports := len(e.find(contracts.StatusRuleActionFailed)) + len(e.find(contracts.StatusRuleActionGaveUp))
	if reports == 0 || reports >= 600 {
		t.Errorf("got %d reports of the 600 failures, want them bounded (a burst of %d, then %d a minute)", reports, actionReportsBurst, actionReportsPerMinute)
	}
}
