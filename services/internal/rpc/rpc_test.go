package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/nats-io/nats.go/micro"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// TestNoResponders: nothing listening is CodeUnavailable with the
// operator's hint, and also nats.ErrNoResponders, for a caller to whom a
// service that does not run is not a failure.
func TestNoResponders(t *testing.T) {
	nc := natstest.Connect(t, natstest.Start(t))
	var resp struct{}
	err := Call(context.Background(), nc, "nobody.here", struct{}{}, &resp)
	if contracts.CodeOf(err) != contracts.CodeUnavailable || !errors.Is(err, nats.ErrNoResponders) || !strings.Contains(err.Error(), "no service answers nobody.here") {
		t.Fatalf("got %v (code %v): want unavailable, no responders, naming the subject", err, contracts.CodeOf(err))
	}
}

// TestHandlerPanic: a handler that panics answers its request as
// internal, logs the panic, and the service (and the process, which every
// service of a site shares) goes on answering.
func TestHandlerPanic(t *testing.T) {
	nc := natstest.Connect(t, natstest.Start(t))
	var logs natstest.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	svc, err := micro.AddService(nc, micro.Config{Name: "p", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	fn := func(_ context.Context, _ contracts.SubjectInfo, r micro.Request) ([]byte, nats.Header, error) {
		if string(r.Data()) == "boom" {
			var page []int
			_ = page[len(r.Data()):] // out of range
		}
		return []byte("fine"), nil, nil
	}
	if err := svc.AddEndpoint("raw", RawHandler(log, "raw", fn), micro.WithEndpointSubject("steward.LAB.op.*.up.raw")); err != nil {
		t.Fatal(err)
	}
	batch := func(context.Context, contracts.SubjectInfo, contracts.OutboxItem) (func(context.Context) error, error) {
		panic("an item handler's bug")
	}
	if err := svc.AddEndpoint("batch", BatchHandler(log, batch), micro.WithEndpointSubject("steward.LAB.agent.*.up.panic")); err != nil {
		t.Fatal(err)
	}
	_, err = CallMsg(context.Background(), nc, &nats.Msg{Subject: "steward.LAB.op.alice.up.raw", Data: []byte("boom")})
	if contracts.CodeOf(err) != contracts.CodeInternal {
		t.Fatalf("panicking handler: got %v, want internal", err)
	}
	items := contracts.OutboxBatch{Header: contracts.NewHeader(contracts.TypeOutboxBatch), Items: []contracts.OutboxItem{{ID: "a", Type: "x", Time: time.Now(), Data: json.RawMessage(`1`)}}}
	var ack contracts.OutboxAck
	if err := Call(context.Background(), nc, "steward.LAB.agent.c1.up.panic", items, &ack); contracts.CodeOf(err) != contracts.CodeInternal {
		t.Fatalf("panicking batch handler: got %v, want internal", err)
	}
	m, err := CallMsg(context.Background(), nc, &nats.Msg{Subject: "steward.LAB.op.alice.up.raw", Data: []byte("ok")})
	if err != nil || string(m.Data) != "fine" {
		t.Fatalf("after the panics: got %v, %v", m, err)
	}
	out := logs.String()
	if !strings.Contains(out, "request handler panicked") || !strings.Contains(out, "slice bounds out of range") {
		t.Fatalf("the panic is not logged:\n%s", out)
	}
}
