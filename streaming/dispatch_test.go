package streaming

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/meshgate/meshgate/products"
)

// consumed returns the Kafka message the relay would publish for an order
// change at sequence, as the hub consumes it; a broken envelope keeps its
// headers but not its value.
func consumed(t testing.TB, d *products.Descriptor, sequence int64, broken bool) *sarama.ConsumerMessage {
	t.Helper()
	after := fmt.Sprintf(`{"id":%d,"status":"PLACED"}`, sequence)
	pm, err := testCodec.Message(d, &products.AuditEntry{Sequence: sequence, Product: d.Name, Entity: "Order", Key: sequence,
		Op: products.OpCreate, After: &after, Actor: "test", RequestID: "r", At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pm.Key.Encode()
	value, _ := pm.Value.Encode()
	if broken {
		value = []byte("not an envelope")
	}
	m := &sarama.ConsumerMessage{Topic: pm.Topic, Key: key, Value: value, Offset: sequence}
	for _, h := range pm.Headers {
		m.Headers = append(m.Headers, &sarama.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return m
}

// TestHubDecodesOnlyWatchedProducts: an event of a product no subscription
// covers only advances the hub's position (its envelope is not decoded,
// so even a broken one passes); once a subscription covers the product,
// its events are decoded and a broken one is skipped, leaving the gap to
// be read from the log.
func TestHubDecodesOnlyWatchedProducts(t *testing.T) {
	m := openMesh(t, sqliteBackend(t))
	h := &Hub{Stores: m.Stores, Codec: testCodec}
	h.init()
	d := m.Store("orders").Product
	r := newReorder()
	ctx := context.Background()
	h.dispatch(ctx, consumed(t, d, 1, false), r)
	h.dispatch(ctx, consumed(t, d, 2, true), r)
	if h.last["orders"] != 2 {
		t.Fatalf("position without subscribers: %d, want 2", h.last["orders"])
	}
	sb := h.subscribe(&Filter{}, []string{"orders"}, nil)
	defer h.unsubscribe(sb)
	h.dispatch(ctx, consumed(t, d, 3, false), r)
	h.dispatch(ctx, consumed(t, d, 4, true), r)
	h.dispatch(ctx, consumed(t, d, 5, false), r)
	if h.last["orders"] != 3 {
		t.Fatalf("position with a subscriber: %d, want 3 (4 is broken, 5 parked after it)", h.last["orders"])
	}
	if len(r.parked["orders"]) != 1 || r.parked["orders"][5] == nil {
		t.Fatalf("parked: %v, want sequence 5", r.parked["orders"])
	}
	e, ok := sb.take()
	if !ok || e.Sequence != 3 || e.After == nil || *e.After != `{"id":3,"status":"PLACED"}` {
		t.Fatalf("delivered %+v, want the decoded entry 3", e)
	}
	if _, ok := sb.take(); ok {
		t.Fatal("more than entry 3 delivered")
	}
}

// BenchmarkHubDispatchUnwatched is the hub's cost per consumed event of a
// product no subscription covers (a catch-up, placeOrder without
// subscribers).
func BenchmarkHubDispatchUnwatched(b *testing.B) {
	m := openMesh(b, sqliteBackend(b))
	h := &Hub{Stores: m.Stores, Codec: testCodec}
	h.init()
	d := m.Store("orders").Product
	msgs := make([]*sarama.ConsumerMessage, 1000)
	for i := range msgs {
		msgs[i] = consumed(b, d, int64(i+1), false)
	}
	r := newReorder()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(msgs) == 0 {
			h.last["orders"] = 0
		}
		h.dispatch(ctx, msgs[i%len(msgs)], r)
	}
}
