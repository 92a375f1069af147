package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/meshgate/meshgate/products"
)

// TestLogHandlerNamesTheRequest: a record logged with a request's context
// gets its request id, operation and caller, once, whoever logs it; the
// access log's context (outside the operation) learns them from the
// request record.
func TestLogHandlerNamesTheRequest(t *testing.T) {
	var buf bytes.Buffer
	log := Logger(slog.New(slog.NewJSONHandler(&buf, nil)))
	if Logger(log) != log {
		t.Error("Logger wrapped an already wrapped logger again")
	}
	reqCtx, req := WithRequest(products.WithRequestID(context.Background(), "r-1"))
	opCtx := WithOperation(products.WithIdentity(reqCtx, &products.Identity{Subject: "apikey:ci"}), &Operation{Name: "Orders"})
	log.ErrorContext(opCtx, "boom", "request_id", "r-1")
	log.InfoContext(reqCtx, "request")
	if req.Operation() != "Orders" || req.Subject() != "apikey:ci" {
		t.Errorf("request record: %q %q", req.Operation(), req.Subject())
	}
	if n := bytes.Count(buf.Bytes(), []byte(`"request_id"`)); n != 2 {
		t.Errorf("%d request_id attributes in two records: %s", n, buf.Bytes())
	}
	dec := json.NewDecoder(&buf)
	for _, msg := range []string{"boom", "request"} {
		var rec map[string]any
		if err := dec.Decode(&rec); err != nil {
			t.Fatal(err)
		}
		if rec["msg"] != msg || rec["request_id"] != "r-1" || rec["operation"] != "Orders" || rec["subject"] != "apikey:ci" {
			t.Errorf("record %v", rec)
		}
	}
}

// TestTraceParentRoundTrip: the traceparent of a span context names it
// again as a link.
func TestTraceParentRoundTrip(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	tp := TraceParent(trace.ContextWithSpanContext(context.Background(), sc))
	if tp != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Fatalf("traceparent %q", tp)
	}
	l, ok := Link(tp)
	if !ok || l.SpanContext.TraceID() != tid || l.SpanContext.SpanID() != sid {
		t.Errorf("link %v %v", l, ok)
	}
	if _, ok := Link("garbage"); ok {
		t.Error("a malformed traceparent made a link")
	}
	if TraceParent(context.Background()) != "" {
		t.Error("a traceparent without a span")
	}
}
