package streaming

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
)

// TestWatchIdleHoldsNoGoroutine: idle watched streams run no goroutine;
// an event starts one that delivers it and exits; Drain ends every stream
// with SHUTTING_DOWN and the cursor of its last event; a cancelled
// context ends a stream with nil.
func TestWatchIdleHoldsNoGoroutine(t *testing.T) {
	b := sqliteBackend(t)
	m := openMesh(t, b)
	br := startBroker(t, "127.0.0.1:0")
	startRelays(t, m.Stores, newPublisher(t, br.Addrs()), nil)
	h := runHub(t, m.Stores, br.Addrs())

	const n = 200
	type watcher struct {
		mu     sync.Mutex
		events []Event
		done   chan error
	}
	f := &Filter{Products: map[string]bool{"customers": true}}
	// The streams start at the log's current end, given as their cursor:
	// without one a stream starts where the log ends when it reads its
	// position, which may already be after the change below.
	latest, err := m.Store("customers").Latest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	since := Cursor{"customers": latest}
	g0 := runtime.NumGoroutine()
	ws := make([]*watcher, n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range ws {
		w := &watcher{done: make(chan error, 1)}
		ws[i] = w
		wctx, stop := ctx, context.CancelFunc(func() {})
		if i == 0 {
			// The first one is cancelled once it has its event.
			wctx, stop = context.WithCancel(ctx)
			defer stop()
		}
		h.Watch(wctx, f, since, func(e Event) error {
			w.mu.Lock()
			w.events = append(w.events, e)
			w.mu.Unlock()
			stop()
			return nil
		}, func(err error) { w.done <- err })
	}
	awaitSubscribers(t, h, n)
	// The goroutines that registered the streams exit once they have
	// replayed from their cursor.
	eventually(t, 10*time.Second, "no goroutine per idle stream", func() bool { return runtime.NumGoroutine()-g0 <= 5 })
	if _, err := customers.New(m).Create(context.Background(), customers.Input{Name: "Kim", Email: "kim@example.org", Country: "DE", Segment: customers.SegmentConsumer}); err != nil {
		t.Fatal(err)
	}
	counts := func() map[int]int {
		c := map[int]int{}
		for _, w := range ws {
			w.mu.Lock()
			c[len(w.events)]++
			w.mu.Unlock()
		}
		return c
	}
	eventually(t, 10*time.Second, "every stream's event", func() bool { return counts()[1] == n })
	select {
	case err := <-ws[0].done:
		if err != nil {
			t.Fatalf("the cancelled stream ended with %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled stream did not end")
	}
	awaitSubscribers(t, h, n-1)
	h.Drain()
	for _, w := range ws[1:] {
		select {
		case err := <-w.done:
			var pe *products.Error
			if !errors.As(err, &pe) || pe.Extensions["reason"] != "SHUTTING_DOWN" {
				t.Fatalf("a drained stream ended with %v, want SHUTTING_DOWN", err)
			}
			if want := w.events[0].Cursor.String(); pe.Extensions["cursor"] != want {
				t.Fatalf("drained with cursor %v, want %s", pe.Extensions["cursor"], want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a stream did not end on Drain")
		}
	}
	awaitSubscribers(t, h, 0)
}
