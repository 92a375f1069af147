package streaming

import (
	"context"

	"github.com/IBM/sarama"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/telemetry"
)

// traceHeader is the Kafka header carrying the W3C traceparent of the
// request whose change an event is (the audit entry's TraceParent).
const traceHeader = "traceparent"

// maxLinks bounds the links of one publish or consume span (a batch may
// hold hundreds of changes of the same few requests).
const maxLinks = 128

// links returns span links to the distinct traceparents given.
func links(traceparents func(yield func(string) bool)) []trace.Link {
	var out []trace.Link
	seen := map[string]bool{}
	for tp := range traceparents {
		if seen[tp] || len(out) >= maxLinks {
			continue
		}
		seen[tp] = true
		if l, ok := telemetry.Link(tp); ok {
			out = append(out, l)
		}
	}
	return out
}

// publishSpan starts the span of one relay publication of a product's
// entries, linked to the requests that made them.
func publishSpan(ctx context.Context, product string, entries []products.AuditEntry) (context.Context, trace.Span) {
	ls := links(func(yield func(string) bool) {
		for i := range entries {
			if !yield(entries[i].TraceParent) {
				return
			}
		}
	})
	return telemetry.Tracer().Start(ctx, "kafka publish "+product, trace.WithSpanKind(trace.SpanKindProducer), trace.WithLinks(ls...),
		trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.operation.type", "publish"),
			attribute.String("meshgate.product", product), attribute.Int("messaging.batch.message_count", len(entries))))
}

// consumeSpan starts the span of one consumed batch applied by a reacting
// product, linked to the requests whose changes the messages are (their
// traceparent headers).
func consumeSpan(ctx context.Context, product string, msgs []*sarama.ConsumerMessage) (context.Context, trace.Span) {
	ls := links(func(yield func(string) bool) {
		for _, m := range msgs {
			for _, h := range m.Headers {
				if h != nil && string(h.Key) == traceHeader && !yield(string(h.Value)) {
					return
				}
			}
		}
	})
	return telemetry.Tracer().Start(ctx, "kafka consume "+product, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(ls...),
		trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.operation.type", "process"),
			attribute.String("meshgate.product", product), attribute.Int("messaging.batch.message_count", len(msgs))))
}
