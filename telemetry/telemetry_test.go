package telemetry

import (
	"context"
	"testing"
)

func TestTraceContextCrossesHeaders(t *testing.T) {
	shutdown, err := Setup(context.Background(), Config{Service: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })

	ctx, span := Tracer("test").Start(context.Background(), "send")
	defer span.End()
	h := map[string][]string{}
	Inject(ctx, h)
	if len(h["traceparent"]) != 1 {
		t.Fatalf("got headers %v, want a traceparent", h)
	}
	got := TraceID(Extract(context.Background(), h))
	if want := TraceID(ctx); got != want || want == "" {
		t.Fatalf("got trace id %q, want %q", got, want)
	}
	if TraceID(Extract(context.Background(), nil)) != "" {
		t.Fatal("got a trace id from no headers")
	}
}
