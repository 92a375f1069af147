package streaming

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/inventory"
	"github.com/meshgate/meshgate/products/orders"
)

// TestKcatReadsChangeEvents: kcat, a client nobody here wrote, reads the
// events a few mutations of the demo mesh produced — topic, key, Debezium
// envelope, CloudEvents headers — in order per key.
func TestKcatReadsChangeEvents(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		kcat(t)
		m := openMesh(t, b)
		br := startBroker(t, "127.0.0.1:0")
		addr := br.Addrs()[0]
		startRelays(t, m.Stores, newPublisher(t, br.Addrs()), nil)

		as := func(req string) context.Context {
			return products.WithRequestID(products.WithActor(context.Background(), "alice@example.org"), req)
		}
		kim, err := customers.New(m).Create(as("req-1"), customers.Input{Name: "Kim Lee", Email: "kim@example.org", Country: "DE", Segment: customers.SegmentConsumer})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := customers.New(m).Update(as("req-2"), kim.ID, map[string]any{"segment": customers.SegmentEnterprise}); err != nil {
			t.Fatal(err)
		}
		ola, err := customers.New(m).Create(as("req-3"), customers.Input{Name: "Ola Nordmann", Email: "ola@example.org", Country: "NO", Segment: customers.SegmentSmallBusiness})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := customers.New(m).Delete(as("req-4"), ola.ID); err != nil {
			t.Fatal(err)
		}
		mug, err := inventory.New(m).Create(as("req-5"), inventory.Input{SKU: "MUG-1", Name: "Mug", Category: "Kitchen", Price: products.Cents(950), Stock: 10})
		if err != nil {
			t.Fatal(err)
		}
		order, err := orders.New(m).Place(as("req-6"), kim.ID, []orders.LineInput{{ItemID: mug.ID, Quantity: 2}}, "EUR")
		if err != nil {
			t.Fatal(err)
		}
		// No actor, no request id: "anonymous" and "".
		if _, err := customers.New(m).Update(context.Background(), kim.ID, map[string]any{"name": "Kim Lee-Park"}); err != nil {
			t.Fatal(err)
		}

		log := auditLog(t, m.Stores)
		if got := len(log["customers"]) + len(log["inventory"]) + len(log["orders"]); got != 8 {
			t.Fatalf("audit log holds %d entries, want 8: %+v", got, log)
		}
		recs := kcatAtLeast(t, addr, m.Stores, 8, 15*time.Second)
		checkExactlyOnce(t, recs, log)
		checkOrderPerKey(t, recs)

		byID := map[id]record{}
		for _, r := range recs {
			byID[r.ID()] = r
		}
		for product, es := range log {
			d := storeOf(m.Stores, product).Product
			for _, e := range es {
				r, ok := byID[id{product, e.Sequence}]
				if !ok {
					continue // reported by checkExactlyOnce
				}
				t.Run(fmt.Sprintf("%s-%d", product, e.Sequence), func(t *testing.T) {
					checkRecord(t, r, d, e)
				})
			}
		}

		// The expected story, spelled out.
		want := []struct {
			topic    string
			key      int64
			op, req  string
			sequence int64
		}{
			{"meshgate.customers.customers", kim.ID, "c", "req-1", 1},
			{"meshgate.customers.customers", kim.ID, "u", "req-2", 2},
			{"meshgate.customers.customers", ola.ID, "c", "req-3", 3},
			{"meshgate.customers.customers", ola.ID, "d", "req-4", 4},
			{"meshgate.inventory.items", mug.ID, "c", "req-5", 1},
			{"meshgate.orders.orders", order.ID, "c", "req-6", 1},
			{"meshgate.orders.order_lines", 0, "c", "req-6", 2},
			{"meshgate.customers.customers", kim.ID, "u", "", 5},
		}
		for _, w := range want {
			product := map[string]string{"meshgate.customers.customers": "customers", "meshgate.inventory.items": "inventory",
				"meshgate.orders.orders": "orders", "meshgate.orders.order_lines": "orders"}[w.topic]
			r, ok := byID[id{product, w.sequence}]
			if !ok {
				t.Errorf("no record for %s sequence %d", product, w.sequence)
				continue
			}
			if r.Topic != w.topic || r.Env.Op != w.op || r.Env.RequestID != w.req {
				t.Errorf("%s %d: topic %s op %s requestId %q, want %s %s %q", product, w.sequence, r.Topic, r.Env.Op, r.Env.RequestID, w.topic, w.op, w.req)
			}
			if w.key != 0 && string(r.Key) != fmt.Sprintf(`{"id":%d}`, w.key) {
				t.Errorf("%s %d: key %s, want {\"id\":%d}", product, w.sequence, r.Key, w.key)
			}
		}
		upd := byID[id{"customers", 2}]
		var before, after map[string]any
		json.Unmarshal(upd.Env.Before, &before)
		json.Unmarshal(upd.Env.After, &after)
		if before["segment"] != "CONSUMER" || after["segment"] != "ENTERPRISE" || after["email"] != "kim@example.org" {
			t.Errorf("update event: before %v after %v", before, after)
		}
		if anon := byID[id{"customers", 5}]; anon.Env.Actor != products.Anonymous {
			t.Errorf("actor of a change without identity: %q, want %q", anon.Env.Actor, products.Anonymous)
		}
	})
}

func storeOf(stores []*products.Store, product string) *products.Store {
	for _, s := range stores {
		if s.Product.Name == product {
			return s
		}
	}
	return nil
}

// checkRecord compares what kcat read with the audit entry it stands for,
// field by field, reading the value as plain JSON (not through Envelope).
func checkRecord(t *testing.T, r record, d *products.Descriptor, e products.AuditEntry) {
	ent := d.Entity(e.Entity)
	if want := "meshgate." + d.Name + "." + ent.Table; r.Topic != want {
		t.Errorf("topic %s, want %s", r.Topic, want)
	}
	if want := fmt.Sprintf(`{"id":%d}`, e.Key); string(r.Key) != want {
		t.Errorf("key %s, want %s", r.Key, want)
	}
	var v map[string]json.RawMessage
	if err := json.Unmarshal(r.Value, &v); err != nil {
		t.Fatalf("value: %v", err)
	}
	str := func(raw json.RawMessage) string {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Errorf("%s is not a string", raw)
		}
		return s
	}
	num := func(raw json.RawMessage) int64 {
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			t.Errorf("%s is not an integer", raw)
		}
		return n
	}
	sameJSON := func(field string, raw json.RawMessage, want *string) {
		if want == nil {
			if string(raw) != "null" {
				t.Errorf("%s: %s, want null", field, raw)
			}
			return
		}
		var got, exp any
		json.Unmarshal(raw, &got)
		json.Unmarshal([]byte(*want), &exp)
		if got == nil || !reflect.DeepEqual(got, exp) {
			t.Errorf("%s: %s, want the audit image %s", field, raw, *want)
		}
	}
	for _, f := range []string{"before", "after", "source", "op", "ts_ms", "actor", "requestId"} {
		if _, ok := v[f]; !ok {
			t.Errorf("envelope lacks %q: %s", f, r.Value)
		}
	}
	wantOp := map[products.Op]string{products.OpCreate: "c", products.OpUpdate: "u", products.OpDelete: "d"}[e.Op]
	if op := str(v["op"]); op != wantOp {
		t.Errorf("op %q, want %q", op, wantOp)
	}
	sameJSON("before", v["before"], e.Before)
	sameJSON("after", v["after"], e.After)
	switch e.Op {
	case products.OpCreate:
		if e.Before != nil || e.After == nil {
			t.Errorf("create entry: before %v after %v", e.Before, e.After)
		}
	case products.OpDelete:
		if e.Before == nil || e.After != nil {
			t.Errorf("delete entry: before %v after %v", e.Before, e.After)
		}
	case products.OpUpdate:
		if e.Before == nil || e.After == nil {
			t.Errorf("update entry: before %v after %v", e.Before, e.After)
		}
	}
	if ts := num(v["ts_ms"]); ts != e.At.UnixMilli() {
		t.Errorf("ts_ms %d, want %d", ts, e.At.UnixMilli())
	}
	if a := str(v["actor"]); a != e.Actor {
		t.Errorf("actor %q, want %q", a, e.Actor)
	}
	if rid := str(v["requestId"]); rid != e.RequestID {
		t.Errorf("requestId %q, want %q", rid, e.RequestID)
	}
	var src map[string]json.RawMessage
	if err := json.Unmarshal(v["source"], &src); err != nil {
		t.Fatalf("source: %v", err)
	}
	for f, want := range map[string]string{"connector": "meshgate", "version": "test", "name": "meshgate", "db": d.Name, "table": ent.Table} {
		if got := str(src[f]); got != want {
			t.Errorf("source.%s %q, want %q", f, got, want)
		}
	}
	if s := num(src["sequence"]); s != e.Sequence {
		t.Errorf("source.sequence %d, want %d", s, e.Sequence)
	}
	if ts := num(src["ts_ms"]); ts != e.At.UnixMilli() {
		t.Errorf("source.ts_ms %d, want %d", ts, e.At.UnixMilli())
	}
	verb := map[products.Op]string{products.OpCreate: "created", products.OpUpdate: "updated", products.OpDelete: "deleted"}[e.Op]
	for h, want := range map[string]string{
		"ce_id":          fmt.Sprintf("%s-%d", d.Name, e.Sequence),
		"ce_source":      "/meshgate/" + d.Name,
		"ce_type":        "meshgate." + d.Name + "." + e.Entity + "." + verb,
		"ce_specversion": "1.0",
		"content-type":   "application/json",
	} {
		if got, ok := r.Headers[h]; !ok || got != want {
			t.Errorf("header %s = %q (present %v), want %q", h, got, ok, want)
		}
	}
	if ct, err := time.Parse(time.RFC3339Nano, r.Headers["ce_time"]); err != nil || !ct.Equal(e.At) {
		t.Errorf("header ce_time %q (%v), want %s", r.Headers["ce_time"], err, e.At.Format(time.RFC3339Nano))
	}
	if r.Timestamp.UnixMilli() != e.At.UnixMilli() {
		t.Errorf("record timestamp %d, want the commit time %d", r.Timestamp.UnixMilli(), e.At.UnixMilli())
	}
}
