package follow

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/services/internal/natstest"
)

func TestDurableWaitsForStreamAndRecreatesConsumer(t *testing.T) {
	s := natstest.Start(t)
	js, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Durable(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), js, "EVENTS",
			jetstream.ConsumerConfig{Durable: "test", AckPolicy: jetstream.AckExplicitPolicy},
			func(m jetstream.Msg) { got.Add(1); _ = m.Ack() })
	}()
	t.Cleanup(func() { cancel(); <-done })

	// The owner creates its stream after the follower started.
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"ev.>"}}); err != nil {
		t.Fatal(err)
	}
	publish := func() {
		if _, err := js.Publish(context.Background(), "ev.x", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	publish()
	natstest.Wait(t, 10*time.Second, "the first event", func() bool { return got.Load() == 1 })

	// Someone deletes the consumer: the follower makes it again and goes on.
	if err := js.DeleteConsumer(context.Background(), "EVENTS", "test"); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, 15*time.Second, "the consumer recreated", func() bool {
		_, err := js.Consumer(context.Background(), "EVENTS", "test")
		return err == nil
	})
	publish()
	natstest.Wait(t, 15*time.Second, "an event after the recreation", func() bool { return got.Load() >= 2 })
}
