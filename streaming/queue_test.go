package streaming

import (
	"testing"

	"github.com/meshgate/meshgate/products"
)

// A subscription's queue keeps the entries in order, holds at most its
// limit (the slow-consumer bound), signals ready while entries wait, and
// holds no slots once a burst has been taken.
func TestSubscriptionQueue(t *testing.T) {
	const limit = 100
	sb := &sub{limit: limit, ready: make(chan struct{}, 1)}
	entries := make([]products.AuditEntry, 3*limit)
	for i := range entries {
		entries[i].Sequence = int64(i + 1)
	}
	if _, ok := sb.take(); ok {
		t.Fatal("an empty queue gave an entry")
	}
	// take drains ready as the stream does: one token per entry taken.
	take := func() *products.AuditEntry {
		t.Helper()
		select {
		case <-sb.ready:
		default:
			t.Fatal("entries wait but ready holds no token")
		}
		e, ok := sb.take()
		if !ok {
			t.Fatal("ready, but no entry waits")
		}
		return e
	}
	// A burst up to the limit, then one too many.
	for i := range limit {
		if !sb.offer(&entries[i]) {
			t.Fatalf("entry %d of %d refused", i+1, limit)
		}
	}
	if sb.offer(&entries[limit]) {
		t.Fatalf("entry %d accepted beyond the limit of %d", limit+1, limit)
	}
	for i := range limit {
		if e := take(); e.Sequence != int64(i+1) {
			t.Fatalf("took sequence %d, want %d", e.Sequence, i+1)
		}
	}
	if len(sb.ready) != 0 {
		t.Fatal("ready holds a token while nothing waits")
	}
	if sb.queue != nil {
		t.Fatalf("after the burst the queue still holds %d slots", cap(sb.queue))
	}
	// Offered and taken interleaved (7 in, 5 out: the queue grows while
	// slots taken are reused), then all taken: in order.
	next, want := 0, int64(1)
	for want <= int64(len(entries)) {
		for n := 0; n < 7 && next < len(entries); n++ {
			if !sb.offer(&entries[next]) {
				t.Fatalf("entry %d refused with %d waiting", next+1, len(sb.queue)-sb.head)
			}
			next++
		}
		for n := 0; n < 5 || (next == len(entries) && want <= int64(next)); n++ {
			if e := take(); e.Sequence != want {
				t.Fatalf("took sequence %d, want %d", e.Sequence, want)
			}
			want++
		}
	}
	if _, ok := sb.take(); ok || len(sb.ready) != 0 {
		t.Fatal("entries left after all were taken")
	}
	// One entry at a time reuses a few slots.
	for i := range 10 {
		sb.offer(&entries[i])
		take()
	}
	if cap(sb.queue) > keptSlots {
		t.Fatalf("a queue taking one entry at a time holds %d slots", cap(sb.queue))
	}
}
