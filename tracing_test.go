package main

import (
	"bytes"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collector "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an in-process OTLP/HTTP trace receiver: it decodes each
// ExportTraceServiceRequest and keeps the spans.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	svc   map[string]bool // service.name values seen
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want a protobuf POST to /v1/traces", http.StatusBadRequest)
		return
	}
	b, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msg collector.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range msg.GetResourceSpans() {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				r.svc[a.GetValue().GetStringValue()] = true
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&collector.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// find returns the spans whose name starts with prefix and that pass keep.
func (r *otlpReceiver) find(prefix string, keep func(*tracepb.Span) bool) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range r.spans {
		if strings.HasPrefix(s.GetName(), prefix) && (keep == nil || keep(s)) {
			out = append(out, s)
		}
	}
	return out
}

func linksTo(s *tracepb.Span, traceID, spanID []byte) bool {
	for _, l := range s.GetLinks() {
		if bytes.Equal(l.GetTraceId(), traceID) && bytes.Equal(l.GetSpanId(), spanID) {
			return true
		}
	}
	return false
}

// TestTracingLinksAMutationToItsEvents sends the gateway's spans to an
// in-process OTLP/HTTP receiver and follows one mutation: its operation
// span continues the caller's trace (traceparent header), each SQL
// statement is a child span, and the relay's Kafka publish and the
// inventory reaction's consume spans link back to the mutation's span
// through the traceparent its change event carries.
func TestTracingLinksAMutationToItsEvents(t *testing.T) {
	recv := &otlpReceiver{svc: map[string]bool{}}
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close) // after the gateway's stop, which flushes its spans
	g := startGateway(t, "--otel-endpoint", srv.URL)

	const traceHex = "4bf92f3577b34da6a3ce929d0e0e4736"
	body := `{"query": "mutation PlaceOne { placeOrder(customerId: 2, lines: [{itemId: 1, quantity: 1}]) { id } }"}`
	req, _ := http.NewRequest(http.MethodPost, g.base+"/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceHex+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(string(b), `"errors"`) {
		t.Fatalf("placeOrder: %d %s", resp.StatusCode, b)
	}
	traceID, _ := hex.DecodeString(traceHex)
	var op *tracepb.Span
	eventually(t, 30*time.Second, "the mutation's span", func() bool {
		spans := recv.find("graphql mutation PlaceOne", nil)
		if len(spans) > 0 {
			op = spans[0]
		}
		return op != nil
	})
	if !bytes.Equal(op.GetTraceId(), traceID) {
		t.Errorf("the operation span is in trace %x, want the caller's %s", op.GetTraceId(), traceHex)
	}
	if !recv.svc["meshgate"] {
		t.Errorf("service names %v, want meshgate", recv.svc)
	}
	childOf := func(s *tracepb.Span) bool {
		return bytes.Equal(s.GetTraceId(), op.GetTraceId()) && bytes.Equal(s.GetParentSpanId(), op.GetSpanId())
	}
	if sql := recv.find("db ", childOf); len(sql) == 0 {
		t.Error("no SQL statement span under the operation's span")
	}
	linked := func(s *tracepb.Span) bool { return linksTo(s, op.GetTraceId(), op.GetSpanId()) }
	eventually(t, 30*time.Second, "a Kafka publish span linked to the mutation", func() bool {
		return len(recv.find("kafka publish orders", linked)) > 0
	})
	eventually(t, 30*time.Second, "a Kafka consume span of the inventory reaction linked to the mutation", func() bool {
		return len(recv.find("kafka consume inventory", linked)) > 0
	})
}
