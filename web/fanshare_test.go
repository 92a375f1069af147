package web

import (
	"fmt"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// TestShareGroupsBounded: a group keeps the responses of its last
// shareEvents events and shareBytes bytes at most, forgets each once all
// its operations had it, and is forgotten with its last operation.
func TestShareGroupsBounded(t *testing.T) {
	s := newShareGroups(nil, nil)
	a, b := s.join("k"), s.join("k")
	if a != b || s.len() != 1 {
		t.Fatalf("two operations of one key: %p %p, %d groups", a, b, s.len())
	}
	for i := range 3 * shareEvents {
		e, first := a.claim(fmt.Sprint(i))
		if !first {
			t.Fatalf("event %d claimed twice", i)
		}
		a.settle(e, []byte("x"))
	}
	kept := func() int {
		n := 0
		for _, e := range a.recent {
			if e != nil {
				n++
			}
		}
		return n
	}
	if kept() != shareEvents || len(a.byKey) != shareEvents || a.bytes != shareEvents {
		t.Errorf("%d events (%d bytes) kept, want %d", kept(), a.bytes, shareEvents)
	}
	if e, first := b.claim(fmt.Sprint(3*shareEvents - 1)); first || string(e.payload) != "x" {
		t.Errorf("the last event: first %v, payload %q", first, e.payload)
	}
	if kept() != shareEvents-1 || len(a.byKey) != shareEvents-1 || a.bytes != shareEvents-1 {
		t.Errorf("an event both operations had is still kept (%d kept)", kept())
	}
	if _, first := b.claim("0"); !first {
		t.Error("an event older than the last shareEvents is still kept")
	}

	// Beyond shareBytes a response is not shared.
	e, _ := a.claim("big")
	a.settle(e, make([]byte, shareBytes))
	if e2, first := b.claim("big"); first || e2.payload != nil {
		t.Errorf("a response beyond the group's bytes: first %v, %d bytes shared", first, len(e2.payload))
	}
	// One had by both before it was settled is shared still.
	e, _ = a.claim("both")
	e2, _ := b.claim("both")
	a.settle(e, []byte("y"))
	if string(e2.payload) != "y" {
		t.Errorf("settled after both claimed it: %q", e2.payload)
	}

	s.leave(a)
	if s.len() != 1 {
		t.Fatal("the group went with its first operation")
	}
	s.leave(b)
	if s.len() != 0 {
		t.Fatal("the group outlived its operations")
	}
	c := s.join("k")
	if c == a {
		t.Fatal("a forgotten group came back")
	}
	// Alone in its group, an operation keeps nothing.
	e, _ = c.claim("solo")
	c.settle(e, []byte("z"))
	if c.bytes != 0 || c.recent[0] != nil {
		t.Errorf("a group of one kept %d bytes", c.bytes)
	}
}

// TestShareable: responses with errors, or extensions other than the
// cost, are not shared.
func TestShareable(t *testing.T) {
	for _, c := range []struct {
		resp graphql.Response
		ok   bool
	}{
		{graphql.Response{Data: []byte(`{}`)}, true},
		{graphql.Response{Data: []byte(`{}`), Extensions: map[string]any{"cost": 1}}, true},
		{graphql.Response{Data: []byte(`{}`), Extensions: map[string]any{"cost": 1, "cursor": "x"}}, false},
		{graphql.Response{Data: []byte(`{}`), Errors: []*gqlerror.Error{{Message: "x"}}}, false},
	} {
		if got := shareable(&c.resp); got != c.ok {
			t.Errorf("%+v: shareable %v", c.resp, got)
		}
	}
}
