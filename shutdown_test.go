package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/streaming"
)

// shutdownEnd is how a subscription on a gateway that shuts down ended.
type shutdownEnd struct {
	mu        sync.Mutex
	sequences []int  // events received, in order
	cursor    string // extensions.cursor of the last message
	code      string // extensions.code of the last message
	completed bool   // the subscription was completed after it
	closeCode int    // the websocket's close code
	err       error  // what went wrong instead
}

func (e *shutdownEnd) received() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.sequences)
}

// readUntilClosed reads a subscription's messages into end until the
// socket closes.
func readUntilClosed(c *websocket.Conn, field string, end *shutdownEnd) {
	for {
		var m wsMessage
		err := c.ReadJSON(&m)
		end.mu.Lock()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			end.closeCode = ce.Code
			end.mu.Unlock()
			return
		}
		if err != nil {
			end.err = fmt.Errorf("reading the subscription: %w (want a close frame)", err)
			end.mu.Unlock()
			return
		}
		switch m.Type {
		case "ka", "pong":
		case "ping":
			c.WriteJSON(map[string]any{"type": "pong"})
		case "next", "data":
			var e event
			if err := json.Unmarshal(m.Payload, &e); err != nil {
				end.err = err
			}
			switch {
			case end.completed || end.cursor != "":
				end.err = fmt.Errorf("a message after the last one: %s", m.Payload)
			case len(e.Errors) > 0:
				end.code, _ = e.Errors[0].Extensions["code"].(string)
				end.cursor, _ = e.Errors[0].Extensions["cursor"].(string)
			default:
				end.sequences = append(end.sequences, int(e.Data[field]["sequence"].(float64)))
			}
		case "complete":
			end.completed = true
		default:
			end.err = fmt.Errorf("unexpected %s: %s", m.Type, m.Payload)
		}
		end.mu.Unlock()
	}
}

// TestGracefulShutdownHandsSubscribersOver: two gateways share the
// PostgreSQL stores and a Kafka broker that outlives them. Clients on A,
// one per websocket subprotocol, follow an item that is renamed
// continuously through both gateways. A is shut down (as by SIGTERM): each
// client gets a last message with its cursor (UNAVAILABLE,
// extensions.cursor), the complete, and the close 1001; it resumes on B
// with the cursor and gets every later change exactly once: the events of
// both instances together are the item's history, without gap or
// duplicate. A's requests in flight finish; after both gateways stopped
// gracefully nothing committed is left unpublished, and a third instance
// started afterwards is redelivered nothing its consumer groups applied
// (the offsets were committed).
func TestGracefulShutdownHandsSubscribersOver(t *testing.T) {
	stores := postgresStores(t)
	broker, err := streaming.StartEmbedded("127.0.0.1:0", 3, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close) // after the gateways' cleanups: it outlives them
	kafka := strings.Join(broker.Addrs(), ",")
	args := append(stores, "--kafka-brokers", kafka, "--shutdown-timeout", "30s")
	a := startGateway(t, args...)
	b := startGateway(t, args...)

	item := b.gql(t, `mutation { createItem(input: {sku: "SHUTDOWN-1", name: "Shutdown", category: "Test", price: 2.5, stock: 1}) { id } }`, nil).must(t)
	id := item["createItem"].(map[string]any)["id"].(string)
	var renames atomic.Int64
	rename := func(g *gateway) error {
		body := fmt.Sprintf(`{"query": "mutation($id: ID!, $n: String!) { updateItem(id: $id, input: {name: $n}) { id } }", "variables": {"id": %q, "n": "Name %d"}}`, id, renames.Add(1))
		resp, err := http.Post(g.base+"/graphql", "application/json", strings.NewReader(body))
		if err != nil {
			return err // A stopped accepting
		}
		defer resp.Body.Close()
		var r gqlResponse
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return err
		}
		if len(r.Errors) > 0 {
			return fmt.Errorf("%+v", r.Errors)
		}
		return nil
	}
	history := func() []int {
		r := b.gql(t, `query($id: ID!) { item(id: $id) { history(last: 1000) { nodes { sequence } } } }`, map[string]any{"id": id}).must(t)
		var out []int
		for _, n := range r["item"].(map[string]any)["history"].(map[string]any)["nodes"].([]any) {
			out = append(out, int(n.(map[string]any)["sequence"].(float64)))
		}
		return out
	}

	const q = `subscription($sku: String!, $since: String) { itemChanged(where: {sku: {eq: $sku}}, since: $since) { sequence cursor } }`
	protos := []string{"graphql-transport-ws", "graphql-ws"}
	ends := map[string]*shutdownEnd{}
	var readers sync.WaitGroup
	for _, proto := range protos {
		w := dialWS(t, a, proto, false, 0)
		w.subscribe("1", q, map[string]any{"sku": "SHUTDOWN-1"})
		end := &shutdownEnd{}
		ends[proto] = end
		readers.Go(func() { readUntilClosed(w.c, "itemChanged", end) })
		// The subscription registers asynchronously: rename until it
		// reports a change.
		eventually(t, 30*time.Second, proto+" subscription to go live", func() bool {
			if err := rename(a); err != nil {
				t.Fatal(err)
			}
			return end.received() > 0
		})
	}
	firstSeq := map[string]int{}
	for _, proto := range protos {
		ends[proto].mu.Lock()
		firstSeq[proto] = ends[proto].sequences[0]
		ends[proto].mu.Unlock()
	}

	// Renames through both gateways, continuously, until told to stop.
	stop := make(chan struct{})
	var mutators sync.WaitGroup
	var onA, onB atomic.Int64
	for _, g := range []*gateway{a, b} {
		mutators.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := rename(g); err != nil {
					if g == a {
						return // A is gone: its requests in flight finished
					}
					t.Error(err)
					return
				}
				if g == a {
					onA.Add(1)
				} else {
					onB.Add(1)
				}
			}
		})
	}
	eventually(t, 30*time.Second, "renames through both gateways", func() bool { return onA.Load() >= 5 && onB.Load() >= 5 })
	began := time.Now()
	a.stop(t) // graceful: returns when A's shutdown is over
	t.Logf("A shut down in %v (2 subscribers, renames in flight)", time.Since(began).Round(time.Millisecond))
	readers.Wait()
	// Renames go on through B while the clients are away.
	mark := onB.Load()
	eventually(t, 30*time.Second, "renames while the clients are away", func() bool { return onB.Load() >= mark+5 })

	resumed := map[string]*wsClient{}
	for _, proto := range protos {
		end := ends[proto]
		if end.err != nil {
			t.Fatalf("%s: %v", proto, end.err)
		}
		if end.code != "UNAVAILABLE" || end.cursor == "" || !end.completed || end.closeCode != websocket.CloseGoingAway {
			t.Fatalf("%s: the subscription ended with code %q, cursor %q, completed %v, close %d; want UNAVAILABLE, a cursor, complete, 1001",
				proto, end.code, end.cursor, end.completed, end.closeCode)
		}
		resumed[proto] = dialWS(t, b, proto, true, 0)
		resumed[proto].subscribe("2", q, map[string]any{"sku": "SHUTDOWN-1", "since": end.cursor})
	}
	mark = onB.Load()
	eventually(t, 30*time.Second, "renames after the resume", func() bool { return onB.Load() >= mark+5 })
	close(stop)
	mutators.Wait()
	all := history()
	last := all[len(all)-1]
	for _, proto := range protos {
		got := append([]int(nil), ends[proto].sequences...)
		for {
			ev, errs := resumed[proto].event("itemChanged", 20*time.Second)
			if len(errs) > 0 {
				t.Fatalf("%s: %v", proto, errs)
			}
			got = append(got, int(ev["sequence"].(float64)))
			if got[len(got)-1] >= last {
				break
			}
		}
		var want []int
		for _, s := range all {
			if s >= firstSeq[proto] {
				want = append(want, s)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: events on A then B %v\nwant the item's history %v", proto, got, want)
		}
		t.Logf("%s: %d events on A, %d after resuming on B", proto, len(ends[proto].sequences), len(got)-len(ends[proto].sequences))
		if m, ok := resumed[proto].next(300 * time.Millisecond); ok {
			t.Fatalf("%s: unexpected message after the last change: %s %s", proto, m.Type, m.Payload)
		}
	}

	// After a graceful stop of every instance nothing committed is left
	// unpublished.
	b.stop(t)
	m, err := demo.Open(context.Background(), meshDSN(t.TempDir(), stores))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !settled(t, m) {
		t.Fatal("changes committed but not published after a graceful shutdown")
	}
	// A third instance: the consumer groups resume from committed offsets.
	c := startGateway(t, args...)
	eventually(t, 60*time.Second, "the third instance's consumers to catch up", func() bool { return c.lagZero(t) })
	for name, v := range c.scrape(t) {
		if strings.HasPrefix(name, "meshgate_consumer_duplicates_total") && v != 0 {
			t.Errorf("%s = %v: offsets of applied changes were not committed at shutdown", name, v)
		}
	}
}

// TestShutdownCutsOffWhatDoesNotFinish: a subscriber that stopped reading
// (its socket's buffers full) cannot take its last message; the shutdown
// does not wait for it beyond --shutdown-timeout: the socket is closed, the
// rest of the shutdown runs, and the gateway exits with an error saying
// what did not finish.
func TestShutdownCutsOffWhatDoesNotFinish(t *testing.T) {
	g := startGateway(t, "--ws-write-buffer", "4096", "--shutdown-timeout", "1s")
	const q = `subscription { changes(products: ["customers"]) { sequence before after } }`
	stalled := dialWS(t, g, "graphql-transport-ws", false, 4096)
	stalled.subscribe("1", q, nil)
	live := dialWS(t, g, "graphql-transport-ws", true, 0)
	live.subscribe("1", q, nil)
	live.firstEvent("changes", func(int) {
		g.gql(t, `mutation { updateCustomer(id: 1, input: {name: "Warm Up"}) { id } }`, nil).must(t)
	})
	// Far more than the stalled socket's buffers hold, far less than its
	// subscription's queue (1024): it is not dropped as slow, its writes
	// block.
	long := strings.Repeat("x", 150)
	for i := 0; i < 400; i += 50 {
		var b strings.Builder
		b.WriteString("mutation {")
		for j := i; j < i+50; j++ {
			fmt.Fprintf(&b, " m%d: updateCustomer(id: %d, input: {name: \"%s %d\"}) { id }", j, 1+j%20, long, j)
		}
		b.WriteString(" }")
		g.gql(t, b.String(), nil).must(t)
	}
	for range 400 {
		live.event("changes", 10*time.Second)
	}
	g.cancel()
	var err error
	select {
	case err = <-g.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the shutdown did not end")
	}
	g.once.Do(func() {}) // stopped here
	if err == nil || !strings.Contains(err.Error(), "graceful shutdown incomplete within --shutdown-timeout 1s") ||
		!strings.Contains(err.Error(), "websockets did not end their operations") {
		t.Fatalf("want the shutdown to report the stalled websocket, got %v", err)
	}
	// The reading client got its last message and the 1001 close.
	var last wsMessage
	for m := range live.msgs {
		last = m
	}
	if last.Type != "complete" {
		t.Errorf("the reading client's last message: %s %s", last.Type, last.Payload)
	}
}
