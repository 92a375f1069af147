package products

import (
	"context"

	"go.opentelemetry.io/otel/trace"
)

// traceParentFrom returns the W3C traceparent of the span in ctx (the
// request being traced), or "" when nothing is traced.
func traceParentFrom(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}
