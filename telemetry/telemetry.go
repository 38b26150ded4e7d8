// Package telemetry sets up OpenTelemetry tracing for every Steward binary and
// carries trace context across NATS in message headers.
//
// Tracing is always on in-process (so trace IDs exist and travel with
// messages, and status messages can cite them); spans are exported only when
// an OTLP/HTTP endpoint is given (--otlp-endpoint).
package telemetry

import (
	"context"
	"fmt"

	"github.com/stewardhq/steward/contracts"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Config says which process is tracing and where spans go.
type Config struct {
	Service  string // e.g. "steward", "steward-agent"
	Version  string
	Endpoint string // OTLP/HTTP endpoint such as "127.0.0.1:4318"; empty: no export
	Insecure bool   // plain HTTP to the endpoint
}

// Setup installs the global tracer provider and the W3C trace-context
// propagator. The returned function flushes and stops the exporter.
func Setup(ctx context.Context, cfg Config) (func(context.Context) error, error) {
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(resource.NewSchemaless(
			semconv.ServiceName(cfg.Service), semconv.ServiceVersion(cfg.Version))),
	}
	if cfg.Endpoint != "" {
		eopts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(cfg.Endpoint)}
		if cfg.Insecure {
			eopts = append(eopts, otlptracehttp.WithInsecure())
		}
		exp, err := otlptracehttp.New(ctx, eopts...)
		if err != nil {
			return nil, fmt.Errorf("otlp exporter for %s: %w", cfg.Endpoint, err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp.Shutdown, nil
}

// Tracer returns a named tracer from the global provider.
func Tracer(name string) trace.Tracer { return otel.Tracer(name) }

// Inject writes the trace context of ctx into NATS headers h (a nats.Header).
func Inject(ctx context.Context, h map[string][]string) {
	otel.GetTextMapPropagator().Inject(ctx, contracts.HeaderCarrier(h))
}

// Extract returns ctx with the trace context found in NATS headers h.
func Extract(ctx context.Context, h map[string][]string) context.Context {
	if h == nil {
		return ctx
	}
	return otel.GetTextMapPropagator().Extract(ctx, contracts.HeaderCarrier(h))
}

// TraceID returns the trace ID of ctx, or "" when there is none.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}
