package streaming

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestCursorStringAsEncodingJSON: String writes the bytes encoding/json
// writes (sorted keys, escapes, nil and empty cursors), and ParseCursor
// reads them back.
func TestCursorStringAsEncodingJSON(t *testing.T) {
	cases := []Cursor{
		nil, {}, {"orders": 0}, {"orders": 1, "customers": 42}, {"z": math.MaxInt64, "a": 7, "m_n": 3},
		{`q"uote`: 1}, {`back\slash`: 2}, {"<html>&": 3}, {"ünïcode": 4}, {"tab\t": 5}, {"del\x7f": 6}, {"": 7},
	}
	r := rand.New(rand.NewPCG(1, 2))
	names := []string{"customers", "orders", "inventory", "sales", "shipments", "engagement", "a", "zz"}
	for range 200 {
		c := Cursor{}
		for range r.IntN(len(names) + 1) {
			c[names[r.IntN(len(names))]] = r.Int64()
		}
		cases = append(cases, c)
	}
	for _, c := range cases {
		got, want := c.String(), cursorJSON(c)
		if got != want {
			t.Fatalf("%v: String %q, encoding/json %q", c, got, want)
		}
		if len(c) == 0 {
			continue
		}
		back, err := ParseCursor(got)
		if err != nil || len(back) != len(c) {
			t.Fatalf("%v: read back %v, %v", c, back, err)
		}
		for k, v := range c {
			if back[k] != v {
				t.Fatalf("%v: read back %v", c, back)
			}
		}
	}
}

func BenchmarkCursorString(b *testing.B) {
	c := Cursor{"orders": 123456, "customers": 7890}
	b.ReportAllocs()
	for b.Loop() {
		_ = c.String()
	}
}

func BenchmarkCursorStringEncodingJSON(b *testing.B) {
	c := Cursor{"orders": 123456, "customers": 7890}
	b.ReportAllocs()
	for b.Loop() {
		_ = cursorJSON(c)
	}
}
