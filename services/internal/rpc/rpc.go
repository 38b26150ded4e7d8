// Package rpc is the thin layer between NATS micro endpoints and Steward's
// domain functions: decode a contracts request, take the caller from the
// subject, call the domain, encode the answer or a coded error.
package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Func is a domain function behind an endpoint. from is what the subject
// says about the caller; the payload never says who the caller is.
type Func[Req, Resp any] func(ctx context.Context, from contracts.SubjectInfo, req *Req) (*Resp, error)

// Handler adapts fn to a micro.Handler for requests of type string typ.
// Errors with a contracts code are answered with that code; others are
// logged and answered as CodeInternal without their text.
func Handler[Req, Resp any](log *slog.Logger, typ string, fn Func[Req, Resp]) micro.Handler {
	return RawHandler(log, typ, func(ctx context.Context, from contracts.SubjectInfo, r micro.Request) ([]byte, nats.Header, error) {
		var req Req
		if err := contracts.Decode(r.Data(), typ, &req); err != nil {
			return nil, nil, err
		}
		resp, err := fn(ctx, from, &req)
		if err != nil {
			return nil, nil, err
		}
		b, err := json.Marshal(resp)
		return b, nil, err
	})
}

// RawFunc handles a request whose payload is not a JSON message (a
// chunk's bytes): it answers with data and headers, or a coded error.
type RawFunc func(ctx context.Context, from contracts.SubjectInfo, r micro.Request) (data []byte, hdr nats.Header, err error)

// RawHandler adapts fn to a micro.Handler as Handler does for JSON
// requests: the caller from the subject, coded errors answered with their
// code, others logged and answered as CodeInternal.
func RawHandler(log *slog.Logger, name string, fn RawFunc) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		ctx := telemetry.Extract(context.Background(), map[string][]string(r.Headers()))
		ctx, span := telemetry.Tracer("steward/rpc").Start(ctx, name,
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("messaging.destination.name", r.Subject())))
		defer span.End()
		defer recoverInto(log, r, span)
		from, err := contracts.ParseSubject(r.Subject())
		if err != nil {
			respondError(log, r, span, contracts.Errorf(contracts.CodeBadRequest, "%v", err))
			return
		}
		data, hdr, err := fn(ctx, from, r)
		if err != nil {
			respondError(log, r, span, err)
			return
		}
		if r.Reply() == "" {
			return
		}
		err = r.Respond(data, micro.WithHeaders(micro.Headers(hdr)))
		// micro formats the publish error with %s (not %w): its text is
		// all that says the answer was over max_payload.
		if err != nil && strings.Contains(err.Error(), nats.ErrMaxPayload.Error()) {
			// Not sent: the caller would only time out. Say why instead.
			log.Warn("answer too large for the server; answered too_large", "subject", r.Subject(), "bytes", len(data))
			respondError(log, r, span, contracts.Errorf(contracts.CodeTooLarge,
				"the answer is %d bytes, over what the server carries in one message; ask for less (a narrower filter, a lower limit)", len(data)))
			return
		}
		if err != nil {
			log.Warn("respond failed", "subject", r.Subject(), "err", err)
		}
	})
}

// recoverInto answers a request whose handler panicked as CodeInternal,
// with the panic and its stack in the log: one bad request loses its
// answer, not the process (every service of a site shares one).
func recoverInto(log *slog.Logger, r micro.Request, span trace.Span) {
	if p := recover(); p != nil {
		log.Error("request handler panicked", "subject", r.Subject(), "panic", p, "stack", string(debug.Stack()))
		respondError(log, r, span, fmt.Errorf("panic: %v", p))
	}
}

func respondError(log *slog.Logger, r micro.Request, span trace.Span, err error) {
	var ce *contracts.Error
	if !errors.As(err, &ce) {
		log.Error("request failed", "subject", r.Subject(), "err", err)
		ce = contracts.Errorf(contracts.CodeInternal, "internal error (see the site log)")
	}
	span.SetStatus(codes.Error, ce.Message)
	if r.Reply() == "" {
		log.Warn("dropped message", "subject", r.Subject(), "code", ce.Code.String(), "err", ce.Message)
		return
	}
	data, _ := json.Marshal(ce)
	if rerr := r.Error(strconv.Itoa(int(ce.Code)), ce.Message, data); rerr != nil {
		log.Warn("respond failed", "subject", r.Subject(), "err", rerr)
	}
}

// Call sends req to subject and decodes the answer into resp. A coded
// failure comes back as *contracts.Error; no responder as CodeUnavailable.
func Call(ctx context.Context, nc *nats.Conn, subject string, req any, resp any) error {
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	reply, err := CallMsg(ctx, nc, msg)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(reply.Data, resp); err != nil {
		return contracts.Errorf(contracts.CodeInternal, "malformed answer from %s: %v", subject, err)
	}
	return nil
}

// CallMsg sends msg (raw: a chunk, say) as a request and returns the
// answer, with Call's errors: a coded failure as *contracts.Error, no
// responder or no answer in time as CodeUnavailable.
func CallMsg(ctx context.Context, nc *nats.Conn, msg *nats.Msg) (*nats.Msg, error) {
	subject := msg.Subject
	ctx, span := telemetry.Tracer("steward/rpc").Start(ctx, subject, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	telemetry.Inject(ctx, map[string][]string(msg.Header))
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	reply, err := nc.RequestMsgWithContext(ctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, noResponders{contracts.Errorf(contracts.CodeUnavailable, "no service answers %s (is the site running?)", subject)}
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return nil, contracts.Errorf(contracts.CodeUnavailable, "no answer on %s in time", subject)
	case err != nil:
		return nil, err
	}
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		return nil, &contracts.Error{Code: contracts.ParseCode(code), Message: reply.Header.Get(micro.ErrorHeader)}
	}
	return reply, nil
}

// noResponders is CallMsg's answer when nothing listens on the subject:
// CodeUnavailable, and errors.Is nats.ErrNoResponders for a caller to
// whom a service that does not run is not a failure.
type noResponders struct{ err *contracts.Error }

func (e noResponders) Error() string   { return e.err.Error() }
func (e noResponders) Unwrap() []error { return []error{e.err, nats.ErrNoResponders} }

// DefaultTimeout bounds a Call whose context has no deadline.
const DefaultTimeout = 10 * time.Second
