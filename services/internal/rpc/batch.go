package rpc

import (
	"context"
	"errors"
	"log/slog"

	"github.com/nats-io/nats.go/micro"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/telemetry"
	"go.opentelemetry.io/otel/trace"
)

// ItemFunc stores one outbox item from the agent the subject names. It
// returns a contracts.Error with CodeBadRequest or CodeTooLarge to refuse the
// item for good, a plain error to leave it for a resend, or a wait function
// (such as waiting on a JetStream PubAckFuture) that reports when the item is
// durable. All items are started before any wait is called, so writes are
// pipelined.
type ItemFunc func(ctx context.Context, from contracts.SubjectInfo, item contracts.OutboxItem) (wait func(context.Context) error, err error)

// BatchHandler serves agents' outbox batches (contracts.OutboxBatch) and
// answers with a contracts.OutboxAck naming the items that are stored and
// those refused for good; the rest stay in the agent's outbox.
func BatchHandler(log *slog.Logger, fn ItemFunc) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		ctx := telemetry.Extract(context.Background(), map[string][]string(r.Headers()))
		ctx, span := telemetry.Tracer("steward/rpc").Start(ctx, contracts.TypeOutboxBatch, trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		defer recoverInto(log, r, span)

		from, err := contracts.ParseSubject(r.Subject())
		if err != nil || from.Space != "agent" {
			respondError(log, r, span, contracts.Errorf(contracts.CodeBadRequest, "outbox batches come from agent subjects, not %s", r.Subject()))
			return
		}
		var batch contracts.OutboxBatch
		if err := contracts.DecodeLimit(r.Data(), contracts.TypeOutboxBatch, &batch, contracts.MaxBatchBytes); err != nil {
			respondError(log, r, span, err)
			return
		}
		ack := ingest(ctx, log, from, batch.Items, fn)
		if r.Reply() == "" {
			return
		}
		if err := r.RespondJSON(ack); err != nil {
			log.Warn("respond failed", "subject", r.Subject(), "err", err)
		}
	})
}

// ingest runs fn over items and builds the acknowledgement.
func ingest(ctx context.Context, log *slog.Logger, from contracts.SubjectInfo, items []contracts.OutboxItem, fn ItemFunc) *contracts.OutboxAck {
	ack := &contracts.OutboxAck{Header: contracts.NewHeader(contracts.TypeOutboxAck), Stored: []string{}}
	type pending struct {
		id   string
		wait func(context.Context) error
	}
	var waits []pending
	reject := func(id string, err error) bool {
		var ce *contracts.Error
		if errors.As(err, &ce) && (ce.Code == contracts.CodeBadRequest || ce.Code == contracts.CodeTooLarge) {
			ack.Rejected = append(ack.Rejected, contracts.OutboxRejection{ID: id, Code: ce.Code, Message: ce.Message})
			return true
		}
		return false
	}
	for _, it := range items {
		wait, err := fn(ctx, from, it)
		if err != nil {
			if !reject(it.ID, err) {
				log.Warn("outbox item left for resend", "client", from.Principal, "item", it.ID, "err", err)
			}
			continue
		}
		waits = append(waits, pending{it.ID, wait})
	}
	for _, p := range waits {
		if p.wait != nil {
			if err := p.wait(ctx); err != nil {
				if !reject(p.id, err) {
					log.Warn("outbox item left for resend", "client", from.Principal, "item", p.id, "err", err)
				}
				continue
			}
		}
		ack.Stored = append(ack.Stored, p.id)
	}
	return ack
}
