package streaming

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/orders"
)

// TestEntryFastAgreesWithEncodingJSON: whatever the fast path decodes,
// encoding/json decodes the same; what it refuses falls to encoding/json.
func TestEntryFastAgreesWithEncodingJSON(t *testing.T) {
	str := func(s string) *string { return &s }
	at := time.Date(2026, 12, 1, 3, 4, 5, 123456000, time.UTC)
	d := &orders.Product.Descriptor
	var values [][2][]byte
	for _, e := range []*products.AuditEntry{
		{Sequence: 1, Product: d.Name, Entity: "Order", Key: 7, Op: products.OpCreate, After: str(`{"id":7,"lines":[{"q":1.5e3,"n":null,"b":true,"c":false}],"e":[],"o":{}}`), Actor: "user:a", RequestID: "r1", At: at},
		{Sequence: 2, Product: d.Name, Entity: "Order", Key: -3, Op: products.OpUpdate, Before: str(`{"note":"<a & b>","u":"\u00e9\u2028 \" \\ \/ \n"}`), After: str(`{"note":"日本語","x":-0.5E-2}`), Actor: "reaction:inventory", At: at},
		{Sequence: 3, Product: d.Name, Entity: "Order", Key: 9, Op: products.OpDelete, Before: str(`{"id":9}`), Actor: "ünïcode", RequestID: `quo"te`, At: at},
	} {
		m, err := testCodec.Message(d, e)
		if err != nil {
			t.Fatal(err)
		}
		k, _ := m.Key.Encode()
		v, _ := m.Value.Encode()
		values = append(values, [2][]byte{k, v})
		got, ok := entryFast(k, v)
		want, err := entryJSON(k, v)
		if err != nil {
			t.Fatal(err)
		}
		plain := !strings.ContainsAny(e.Actor+e.RequestID, "\"\\ü")
		if ok != plain {
			t.Errorf("entry %d: fast path taken %v, want %v", e.Sequence, ok, plain)
		}
		if ok && !reflect.DeepEqual(got, want) {
			t.Errorf("entry %d: fast %+v, encoding/json %+v", e.Sequence, got, want)
		}
		if full, err := testCodec.Entry(k, v); err != nil || !reflect.DeepEqual(full, want) {
			t.Errorf("entry %d: Entry %+v (%v), want %+v", e.Sequence, full, err, want)
		}
	}
	// Variations: each either taken by the fast path with encoding/json's
	// result, or refused.
	k, v := values[0][0], string(values[0][1])
	variants := []string{
		" " + v + " \n", v + "x", v[:len(v)-1], strings.Replace(v, `"op":"c"`, `"Op":"c"`, 1),
		strings.Replace(v, `"op":"c"`, `"op":null`, 1), strings.Replace(v, `"sequence":1`, `"sequence":1.0`, 1),
		strings.Replace(v, `"sequence":1`, `"sequence":01`, 1), strings.Replace(v, `"sequence":1`, `"sequence":99999999999999999999`, 1),
		strings.Replace(v, `"sequence":1`, `"sequence":1,"sequence":4`, 1), strings.Replace(v, `"b":true`, `"b":tru`, 1),
		strings.Replace(v, `"q":1.5e3`, `"q":1.`, 1), strings.Replace(v, `"q":1.5e3`, `"q":-`, 1), strings.Replace(v, `"e":[]`, `"e":[1,]`, 1),
		strings.Replace(v, `"o":{}`, `"o":{"a"}`, 1), strings.Replace(v, `"lines"`, "\"li\x01nes\"", 1), strings.Replace(v, `"lines"`, `"li\qnes"`, 1),
		strings.Replace(v, `"lines"`, `"li\u00zznes"`, 1), strings.Replace(v, `"lines"`, "\"li\xffnes\"", 1),
		strings.Replace(v, `"after":`, `"after": `, 1), strings.Replace(v, `"before":null`, `"before":{"a":1}`, 1),
		strings.Replace(v, `"ts_us":`, `"extra":1,"ts_us":`, 1), strings.Replace(v, `"source":{`, `"source":{"snapshot":"false",`, 1),
		"{}", "[]", "null", "", `{"op":"c"}`,
	}
	for _, val := range variants {
		got, ok := entryFast(k, []byte(val))
		want, err := entryJSON(k, []byte(val))
		if ok && (err != nil || !reflect.DeepEqual(got, want)) {
			t.Errorf("%q: fast %+v, encoding/json %+v (%v)", val, got, want, err)
		}
	}
	for _, key := range []string{`{"id": 7}`, `{"id":7.0}`, `{"ID":7}`, `{"id":"7"}`, `{"id":07}`, `{}`, ``} {
		got, ok := entryFast([]byte(key), values[0][1])
		want, err := entryJSON([]byte(key), values[0][1])
		if ok && (err != nil || !reflect.DeepEqual(got, want)) {
			t.Errorf("key %q: fast %+v, encoding/json %+v (%v)", key, got, want, err)
		}
	}
}

// BenchmarkEntry decodes a placed order's change event.
func BenchmarkEntry(b *testing.B) {
	after := `{"id":12345,"customerId":678,"status":"PLACED","total":"123.45","placedAt":"2026-12-01T03:04:05.123456Z","updatedAt":"2026-12-01T03:04:05.123456Z","lines":[{"itemId":1,"quantity":2,"amount":"20.00"},{"itemId":17,"quantity":1,"amount":"103.45"}]}`
	m, err := testCodec.Message(&orders.Product.Descriptor, &products.AuditEntry{Sequence: 99999, Product: "orders", Entity: "Order", Key: 12345,
		Op: products.OpCreate, After: &after, Actor: "user:alice", RequestID: "0123456789abcdef", At: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	k, _ := m.Key.Encode()
	v, _ := m.Value.Encode()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := testCodec.Entry(k, v); err != nil {
			b.Fatal(err)
		}
	}
}
