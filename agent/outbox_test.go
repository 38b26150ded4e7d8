package agent

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
)

// ackService answers outbox batches of kind on the bench's server: decide
// says, per item, "store", "reject" or "" (leave it). It records what it
// stored.
type ackService struct {
	mu     sync.Mutex
	stored []contracts.OutboxItem
	seen   map[string]int
}

func (s *ackService) serve(t *testing.T, nc *nats.Conn, kind string, decide func(contracts.OutboxItem) string) *nats.Subscription {
	t.Helper()
	subj, _ := contracts.AgentUpAll(testSite, kind)
	sub, err := nc.Subscribe(subj, func(m *nats.Msg) {
		var b contracts.OutboxBatch
		if err := contracts.DecodeLimit(m.Data, contracts.TypeOutboxBatch, &b, contracts.MaxBatchBytes); err != nil {
			t.Errorf("bad batch: %v", err)
			return
		}
		ack := contracts.OutboxAck{Header: contracts.NewHeader(contracts.TypeOutboxAck), Stored: []string{}}
		s.mu.Lock()
		for _, it := range b.Items {
			s.seen[it.ID]++
			switch decide(it) {
			case "store":
				s.stored = append(s.stored, it)
				ack.Stored = append(ack.Stored, it.ID)
			case "reject":
				ack.Rejected = append(ack.Rejected, contracts.OutboxRejection{ID: it.ID, Code: contracts.CodeBadRequest, Message: "no"})
			}
		}
		s.mu.Unlock()
		respond(t, m, ack)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

func (s *ackService) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.stored)
}

type note struct{ N int }

func TestOutboxDeliversInOrderAndEmpties(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	svc := &ackService{seen: map[string]int{}}
	svc.serve(t, b.services(), "test", func(contracts.OutboxItem) string { return "store" })
	a := b.startAgent(nil)
	for i := range 1200 { // more than one batch
		if err := a.Enqueue("test", "steward.v1.note", note{i}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all delivered", func() bool { return svc.count() == 1200 && a.OutboxLen() == 0 })
	svc.mu.Lock()
	defer svc.mu.Unlock()
	for i, it := range svc.stored {
		var n note
		if err := json.Unmarshal(it.Data, &n); err != nil || n.N != i || it.Type != "steward.v1.note" || it.Time.IsZero() {
			t.Fatalf("item %d: got %+v (%s), want note %d in order", i, n, it.Data, i)
		}
	}
}

func TestOutboxKeepsWhatTheSiteDidNotStore(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	a := b.startAgent(func(c *Config) { c.RetryMax = 100 * time.Millisecond })
	// Nobody answers yet: the messages wait, durable.
	for i := range 3 {
		if err := a.Enqueue("test", "steward.v1.note", note{i}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "agent connected", func() bool { return a.Status().Connected })
	if a.OutboxLen() != 3 {
		t.Fatalf("got %d waiting, want 3", a.OutboxLen())
	}
	// A site that stores 0, refuses 1 and leaves 2 until its third try.
	svc := &ackService{seen: map[string]int{}}
	svc.serve(t, b.services(), "test", func(it contracts.OutboxItem) string {
		var n note
		_ = json.Unmarshal(it.Data, &n)
		switch {
		case n.N == 0:
			return "store"
		case n.N == 1:
			return "reject"
		case svc.seen[it.ID] >= 3:
			return "store"
		}
		return ""
	})
	waitFor(t, "outbox drained", func() bool { return a.OutboxLen() == 0 })
	if svc.count() != 2 {
		t.Fatalf("got %d stored, want 2 (the refused one dropped)", svc.count())
	}
}

func TestOutboxSurvivesAgentRestartAndSiteOutage(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	a := b.startAgent(func(c *Config) { c.RetryMax = 100 * time.Millisecond })
	waitFor(t, "agent connected", func() bool { return a.Status().Connected })
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
	waitFor(t, "agent disconnected", func() bool { return !a.Status().Connected })
	for i := range 5 {
		if err := a.Enqueue("test", "steward.v1.note", note{i}); err != nil {
			t.Fatal(err)
		}
	}
	// The agent process ends while the site is away.
	b.stopAgent(a)

	b.start()
	svc := &ackService{seen: map[string]int{}}
	svc.serve(t, b.services(), "test", func(contracts.OutboxItem) string { return "store" })
	a2 := b.startAgent(func(c *Config) { c.RetryMax = 100 * time.Millisecond })
	waitFor(t, "kept messages delivered after restart", func() bool { return svc.count() == 5 && pendingOf(a2, "test") == 0 })
}

func TestEnqueueRefusals(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	a := b.startAgent(func(c *Config) { c.OutboxMax = 2 })
	if err := a.Enqueue("bad.*", "t", note{}); err == nil {
		t.Fatal("got nil error for a kind with a wildcard")
	}
	if err := a.Enqueue("bad..kind", "t", note{}); err == nil {
		t.Fatal("got nil error for a kind with an empty token")
	}
	big := make([]byte, contracts.MaxBatchBytes)
	if err := a.Enqueue("test", "t", big); err == nil {
		t.Fatal("got nil error for an item larger than a batch")
	}
	// With nobody answering, the third message overflows a cap of 2.
	_ = a.Enqueue("test", "t", note{1})
	_ = a.Enqueue("test", "t", note{2})
	if err := a.Enqueue("test", "t", note{3}); err == nil {
		t.Fatal("got nil error past OutboxMax")
	}
}

func TestDownHandler(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	got := make(chan string, 1)
	a := b.newAgent(nil)
	a.HandleDown("test.ping", func(_ context.Context, m *nats.Msg) { got <- string(m.Data) })
	// A handler that fails (a defect) loses its message, not the agent.
	a.HandleDown("test.panic", func(context.Context, *nats.Msg) { panic("a defect") })
	b.run(a)
	waitFor(t, "agent connected", func() bool { return a.Status().Connected })
	svc := b.services()
	subj, _ := contracts.AgentDown(testSite, b.clientID, "test.ping")
	// Kinds nobody handles, a prefix and an extension of the handled one
	// among them, are dropped: the one down.> subscription dispatches by
	// the exact kind.
	var others []string
	for _, kind := range []string{"test.panic", "test", "test.ping.more", "test.other"} {
		o, _ := contracts.AgentDown(testSite, b.clientID, kind)
		others = append(others, o)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, o := range others {
			if err := svc.Publish(o, []byte(o)); err != nil {
				t.Fatal(err)
			}
		}
		if err := svc.Publish(subj, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if m != "hello" {
				t.Fatalf("got %q, want hello", m)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("down handler never called")
		}
	}
}

// TestLinkStatusMessages: losing and regaining the site are status messages
// that reach the site after the outage, with the time they happened.
func TestLinkStatusMessages(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	a := b.startAgent(func(c *Config) { c.RetryMax = 100 * time.Millisecond })
	waitFor(t, "agent connected", func() bool { return a.Status().Connected })
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
	down := time.Now()
	waitFor(t, "agent disconnected", func() bool { return !a.Status().Connected })
	b.start()
	svc := &ackService{seen: map[string]int{}}
	svc.serve(t, b.services(), contracts.KindStatus, func(contracts.OutboxItem) string { return "store" })
	waitFor(t, "lost and regained delivered", func() bool { return svc.count() == 2 })
	svc.mu.Lock()
	defer svc.mu.Unlock()
	var lost, back contracts.StatusMessage
	_ = json.Unmarshal(svc.stored[0].Data, &lost)
	_ = json.Unmarshal(svc.stored[1].Data, &back)
	if lost.MsgID != contracts.StatusAgentConnectionLost || back.MsgID != contracts.StatusAgentConnectionRegained {
		t.Fatalf("got ids %d, %d; want lost then regained", lost.MsgID, back.MsgID)
	}
	if lost.Time.After(down.Add(2*time.Second)) || !back.Time.After(lost.Time) {
		t.Fatalf("got lost at %s (server down at %s), regained at %s: want the times they happened", lost.Time, down, back.Time)
	}
	if lost.Text == "" || back.Properties["duration"] == "" {
		t.Fatalf("got %+v / %+v, want rendered text and the outage duration", lost, back)
	}
}

// pendingOf counts the outbox entries of one kind.
func pendingOf(a *Agent, kind string) int {
	all, _ := a.store.Pending(0)
	n := 0
	for _, e := range all {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// TestOutboxPartialAckWaits: a site that takes only part of a batch (a
// rate limit, as the status service's per-source one) gets the rest after
// a short wait, not at once: every partial answer sent the agent straight
// back with the next batch, in a loop of batches the site decoded only to
// refuse.
func TestOutboxPartialAckWaits(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	nc := b.services()
	var (
		mu       sync.Mutex
		arrivals []time.Time
		stored   int
	)
	subj, _ := contracts.AgentUpAll(testSite, "test")
	sub, err := nc.Subscribe(subj, func(m *nats.Msg) {
		var batch contracts.OutboxBatch
		if err := contracts.DecodeLimit(m.Data, contracts.TypeOutboxBatch, &batch, contracts.MaxBatchBytes); err != nil {
			t.Errorf("bad batch: %v", err)
			return
		}
		ack := contracts.OutboxAck{Header: contracts.NewHeader(contracts.TypeOutboxAck), Stored: []string{}}
		for _, it := range batch.Items[:min(10, len(batch.Items))] { // ten a batch
			ack.Stored = append(ack.Stored, it.ID)
		}
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		stored += len(ack.Stored)
		mu.Unlock()
		respond(t, m, ack)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	a := b.newAgent(func(c *Config) { c.RetryMax = 2 * time.Second })
	for i := range 40 {
		if err := a.Enqueue("test", "steward.v1.note", note{i}); err != nil {
			t.Fatal(err)
		}
	}
	b.run(a)
	waitFor(t, "the 40 messages stored, ten a batch", func() bool { return a.OutboxLen() == 0 })
	mu.Lock()
	defer mu.Unlock()
	if stored != 40 || len(arrivals) != 4 {
		t.Fatalf("stored %d in %d batches, want 40 in 4", stored, len(arrivals))
	}
	for i := 1; i < len(arrivals); i++ {
		// backoff(1, 1s) waits half a second at least.
		if gap := arrivals[i].Sub(arrivals[i-1]); gap < 400*time.Millisecond {
			t.Fatalf("batch %d came %v after a partial answer, want a wait of half a second or more", i+1, gap)
		}
	}
}
