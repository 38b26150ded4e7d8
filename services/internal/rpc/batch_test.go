package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

func TestBatchHandler(t *testing.T) {
	s := natstest.Start(t)
	nc := natstest.Connect(t, s)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var gotFrom []string
	fn := func(_ context.Context, from contracts.SubjectInfo, it contracts.OutboxItem) (func(context.Context) error, error) {
		gotFrom = append(gotFrom, from.Principal)
		switch string(it.Data) {
		case `"bad"`:
			return nil, contracts.Errorf(contracts.CodeBadRequest, "bad item")
		case `"later"`:
			return nil, errors.New("store unavailable")
		case `"waitfail"`:
			return func(context.Context) error { return errors.New("no ack") }, nil
		}
		return func(context.Context) error { return nil }, nil
	}
	svc, err := micro.AddService(nc, micro.Config{Name: "t", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.AddEndpoint("in", BatchHandler(log, fn), micro.WithEndpointSubject("steward.LAB.agent.*.up.test")); err != nil {
		t.Fatal(err)
	}
	item := func(id, data string) contracts.OutboxItem {
		return contracts.OutboxItem{ID: id, Type: "x", Time: time.Now(), Data: json.RawMessage(data)}
	}
	batch := contracts.OutboxBatch{Header: contracts.NewHeader(contracts.TypeOutboxBatch), Items: []contracts.OutboxItem{
		item("a", `"ok"`), item("b", `"bad"`), item("c", `"later"`), item("d", `"waitfail"`), item("e", `"ok"`),
	}}
	var ack contracts.OutboxAck
	if err := Call(context.Background(), nc, "steward.LAB.agent.c1.up.test", batch, &ack); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ack.Stored, []string{"a", "e"}) {
		t.Fatalf("got stored %v, want [a e]", ack.Stored)
	}
	if len(ack.Rejected) != 1 || ack.Rejected[0].ID != "b" || ack.Rejected[0].Code != contracts.CodeBadRequest {
		t.Fatalf("got rejected %+v, want b as bad_request", ack.Rejected)
	}
	for _, p := range gotFrom {
		if p != "c1" {
			t.Fatalf("item attributed to %q, want the subject's c1", p)
		}
	}

	// A batch whose JSON is too large, or malformed, is refused whole.
	huge := contracts.OutboxBatch{Header: contracts.NewHeader(contracts.TypeOutboxBatch), Items: []contracts.OutboxItem{
		item("z", `"`+strings.Repeat("x", contracts.MaxBatchBytes)+`"`)}}
	if err := Call(context.Background(), nc, "steward.LAB.agent.c1.up.test", huge, &ack); contracts.CodeOf(err) != contracts.CodeTooLarge {
		t.Fatalf("oversized batch: got %v, want too_large", err)
	}
	dup := contracts.OutboxBatch{Header: contracts.NewHeader(contracts.TypeOutboxBatch), Items: []contracts.OutboxItem{item("a", `1`), item("a", `2`)}}
	if err := Call(context.Background(), nc, "steward.LAB.agent.c1.up.test", dup, &ack); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Fatalf("repeated ids: got %v, want bad_request", err)
	}
}
