package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ServiceName is the service.name of meshgate's spans.
const ServiceName = "meshgate"

// instrumentation names meshgate's tracer.
const instrumentation = "github.com/meshgate/meshgate"

// TracingConfig configures tracing.
type TracingConfig struct {
	// Endpoint is the OTLP/HTTP endpoint (http(s)://host:4318, spans go to
	// its /v1/traces). Empty: the standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
	// or OTEL_EXPORTER_OTLP_ENDPOINT environment variables; without any of
	// them tracing is off.
	Endpoint string
	// Version is the service.version.
	Version string
	// SampleRatio is the share of traces started here that are recorded
	// (1: all; a caller's sampled traceparent is always followed).
	SampleRatio float64
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string
	// Log receives the exporter's errors (a collector that cannot be
	// reached, …); default: discarded.
	Log *slog.Logger
}

// StartTracing installs the OTLP/HTTP exporter as the global tracer
// provider and the W3C trace-context propagator, when an endpoint is
// configured; it returns whether tracing is on and a function that flushes
// and stops it (a no-op when off).
func StartTracing(ctx context.Context, cfg TracingConfig) (bool, func(context.Context) error, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	var opts []otlptracehttp.Option
	switch {
	case cfg.Endpoint != "":
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return false, nil, fmt.Errorf("--otel-endpoint %q: want an OTLP/HTTP URL such as http://collector:4318", cfg.Endpoint)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(u.String()))
	case getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "", getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "":
		// The exporter reads them (and OTEL_EXPORTER_OTLP_HEADERS etc.).
	default:
		return false, func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return false, nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	ratio := cfg.SampleRatio
	if ratio <= 0 || ratio > 1 {
		ratio = 1
	}
	res := resource.NewSchemaless(attribute.String("service.name", ServiceName), attribute.String("service.version", cfg.Version))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	)
	if cfg.Log != nil {
		log := cfg.Log
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing: " + err.Error()) }))
	}
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return true, func(ctx context.Context) error {
		err := tp.Shutdown(ctx)
		otel.SetTracerProvider(noop.NewTracerProvider())
		return err
	}, nil
}

// Tracer returns meshgate's tracer (a no-op one while tracing is off).
func Tracer() trace.Tracer { return otel.Tracer(instrumentation) }

// End ends span, recording err (if any) as its status.
func End(span trace.Span, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// TraceParent returns the W3C traceparent of the span in ctx, or "" when
// there is none being recorded.
func TraceParent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), sc.TraceFlags())
}

// Link returns a span link to the span a traceparent names, and whether it
// names one.
func Link(traceparent string) (trace.Link, bool) {
	if traceparent == "" {
		return trace.Link{}, false
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return trace.Link{}, false
	}
	return trace.Link{SpanContext: sc}, true
}
