package status

import (
	"context"
	"log/slog"

	"github.com/stewardhq/steward/contracts"
)

// ErrorsAsStatus returns a logger that logs as log does and also emits
// every record at error level as a StatusServiceFailed message of service
// (operation: "answer <subject>" when the record names a subject, else its
// "operation" attribute or message; error: its "err" attribute), so a service's errors reach `steward status` and its rules,
// not only the site log. The emitter must not log its own failures through
// the returned logger (it would feed itself); give it the plain one.
func ErrorsAsStatus(log *slog.Logger, sink Sink, service string) *slog.Logger {
	if sink == nil {
		return log
	}
	return slog.New(&errorSink{next: log.Handler(), sink: sink, service: service})
}

type errorSink struct {
	next    slog.Handler
	sink    Sink
	service string
	attrs   []slog.Attr
}

func (h *errorSink) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError || h.next.Enabled(ctx, l)
}

func (h *errorSink) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		op, errText := r.Message, ""
		visit := func(a slog.Attr) bool {
			switch a.Key {
			case "err", "error":
				errText = a.Value.String()
			case "subject":
				op = "answer " + a.Value.String()
			case "operation":
				op = a.Value.String()
			}
			return true
		}
		for _, a := range h.attrs {
			visit(a)
		}
		r.Attrs(visit)
		if errText == "" {
			errText = r.Message
		}
		h.sink.Emit(ctx, contracts.StatusServiceFailed, map[string]string{"service": h.service, "operation": op, "error": errText})
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *errorSink) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &errorSink{next: h.next.WithAttrs(attrs), sink: h.sink, service: h.service, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *errorSink) WithGroup(name string) slog.Handler {
	return &errorSink{next: h.next.WithGroup(name), sink: h.sink, service: h.service, attrs: h.attrs}
}
