package status

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
	"go.opentelemetry.io/otel/trace"
)

// TestEmitter: a service's message is stored with the site as source, its
// instance, its component for a generic ID and the trace of its context;
// while the stream is missing it is retried, and stored once it exists.
func TestEmitter(t *testing.T) {
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	em, err := NewEmitter(EmitterConfig{NC: nc, Site: site, Component: contracts.ComponentDiscovery, Instance: "steward-discovery/i1", Log: quietLog(), Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{1}}))

	// No status stream yet (the status service is not running): Emit
	// returns at once and the emitter keeps trying.
	start := time.Now()
	started := em.Emit(ctx, contracts.StatusServiceStarted, map[string]string{"service": "steward-discovery", "instance": "i1", "version": "0.1.0"})
	offline := em.Emit(ctx, contracts.StatusClientOffline, map[string]string{"client": "c1", "name": "web-01", "lastSeen": "14:00"})
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Emit took %s, want it not to wait", d)
	}

	// The status service creates the stream; the queued messages land.
	all, _ := contracts.StatusSubjectAll(site)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: Stream, Subjects: []string{all}, Duplicates: time.Minute}); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, 15*time.Second, "the emitted messages", func() bool { return len(storedIn(t, js)) == 2 })
	got := storedIn(t, js)
	for i, want := range []contracts.StatusMessage{started, offline} {
		m := got[i]
		if m.ID != want.ID || m.Site != site || m.Source != site || m.Instance != "steward-discovery/i1" || m.TraceID != tid.String() || m.Received.IsZero() {
			t.Errorf("stored %d: got %+v, want %s from %s, instance and trace set", i, m, want.ID, site)
		}
		if m.Component != contracts.ComponentDiscovery {
			t.Errorf("stored %d: component %q, want discovery", i, m.Component)
		}
	}

	// Publish waits until stored; a second publish of the same message
	// (a retry) is not stored twice.
	m := em.Message(context.Background(), contracts.StatusServiceFailed, map[string]string{"service": "steward-discovery", "operation": "sweep", "error": "boom"})
	for range 2 {
		if err := em.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(storedIn(t, js)); n != 3 {
		t.Errorf("after publishing one message twice: got %d stored, want 3", n)
	}

	// Close with the stream gone: what is queued is dropped when the
	// deadline passes, and counted.
	if err := js.DeleteStream(context.Background(), Stream); err != nil {
		t.Fatal(err)
	}
	em.Emit(ctx, contracts.StatusServiceStopping, nil)
	cctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_ = em.Close(cctx)
	if em.Dropped() != 1 {
		t.Errorf("dropped: got %d, want 1", em.Dropped())
	}
	em.Emit(ctx, contracts.StatusServiceStopping, nil) // after Close: dropped, not blocked
	if em.Dropped() != 2 {
		t.Errorf("dropped after close: got %d, want 2", em.Dropped())
	}
}
