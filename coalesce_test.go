package main

// Coalesced websocket writes (web/wswrite.go), through the real server: the
// next messages of events that wait for a subscription together go out in
// fewer writes than messages, every one of them, in order, once; anything
// else (complete) goes out after them.

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// websocketWrites reads meshgate_websocket_messages_total and
// meshgate_websocket_writes_total.
func websocketWrites(t testing.TB, g *gateway) (messages, writes float64) {
	m := g.scrape(t)
	return m["meshgate_websocket_messages_total"], m["meshgate_websocket_writes_total"]
}

// updateCustomers makes n customer updates, 50 per mutation, with names
// long enough that a few dozen events fill a socket's buffers.
func updateCustomers(t testing.TB, g *gateway, n int) {
	t.Helper()
	long := strings.Repeat("x", 150)
	for i := 0; i < n; i += 50 {
		var b strings.Builder
		b.WriteString("mutation {")
		for j := i; j < min(i+50, n); j++ {
			fmt.Fprintf(&b, " m%d: updateCustomer(id: %d, input: {name: \"%s %d\"}) { id }", j, 1+j%20, long, j)
		}
		b.WriteString(" }")
		g.gql(t, b.String(), nil).must(t)
	}
}

// sequences reads the next messages of the subscriptions ids until each
// has n, failing on anything else, and returns their sequences by id.
func sequences(t *testing.T, ws *wsClient, n int, ids ...string) map[string][]int {
	t.Helper()
	got := map[string][]int{}
	for _, id := range ids {
		got[id] = nil
	}
	for total := 0; total < n*len(ids); total++ {
		m, ok := ws.next(20 * time.Second)
		if !ok {
			t.Fatalf("%d of %d messages, then none", total, n*len(ids))
		}
		if _, known := got[m.ID]; !known || (m.Type != "next" && m.Type != "data") {
			t.Fatalf("unexpected %s %q: %s", m.Type, m.ID, m.Payload)
		}
		var e event
		if err := json.Unmarshal(m.Payload, &e); err != nil || len(e.Errors) > 0 {
			t.Fatalf("event: %v %v", err, e.Errors)
		}
		got[m.ID] = append(got[m.ID], int(e.Data["changes"]["sequence"].(float64)))
	}
	return got
}

// gapless fails unless seqs is from+1 … from+n.
func gapless(t *testing.T, what string, seqs []int, from, n int) {
	t.Helper()
	if len(seqs) != n {
		t.Fatalf("%s: %d events, want %d", what, len(seqs), n)
	}
	for i, s := range seqs {
		if s != from+1+i {
			t.Fatalf("%s: event %d is sequence %d, want %d (out of order, lost or duplicated)", what, i, s, from+1+i)
		}
	}
}

// TestSubscriptionWritesCoalesce: a socket with two subscriptions replaying
// the same 300 events (since one cursor) gets all 600 messages, each
// subscription's in order, in far fewer writes than messages; so does a
// socket whose client stops reading while events come and then reads
// again. Both subprotocols.
func TestSubscriptionWritesCoalesce(t *testing.T) {
	backends(t, func(t *testing.T, args []string) {
		// Small socket buffers: a client that does not read holds up the
		// writes after a few events.
		g := startGateway(t, append(args, "--ws-write-buffer", "4096")...)
		const q = `subscription($since: String) { changes(products: ["customers"], since: $since) { sequence cursor after } }`
		probe := dialWS(t, g, "graphql-transport-ws", true, 0)
		probe.subscribe("p", q, nil)
		first := probe.firstEvent("changes", func(int) {
			g.gql(t, `mutation { updateCustomer(id: 3, input: {name: "First"}) { id } }`, nil).must(t)
		})
		cursor := first["cursor"].(string)
		seq := int(first["sequence"].(float64))
		// Events of the probe's retries after the first.
		for {
			m, ok := probe.next(500 * time.Millisecond)
			if !ok {
				break
			}
			var e event
			json.Unmarshal(m.Payload, &e)
			seq = int(e.Data["changes"]["sequence"].(float64))
			cursor = e.Data["changes"]["cursor"].(string)
		}
		const n = 300
		updateCustomers(t, g, n)
		gapless(t, "probe", sequences(t, probe, n, "p")["p"], seq, n)

		for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
			t.Run("replay/"+proto, func(t *testing.T) {
				ws := dialWS(t, g, proto, true, 0)
				messages0, writes0 := websocketWrites(t, g)
				ws.subscribe("a", q, map[string]any{"since": cursor})
				ws.subscribe("b", q, map[string]any{"since": cursor})
				got := sequences(t, ws, n, "a", "b")
				gapless(t, "a", got["a"], seq, n)
				gapless(t, "b", got["b"], seq, n)
				messages, writes := websocketWrites(t, g)
				messages -= messages0
				writes -= writes0
				t.Logf("%s: %v messages in %v writes", proto, messages, writes)
				if messages != 2*n || writes*10 > messages {
					t.Fatalf("%v messages in %v writes, want %d in at most a tenth as many", messages, writes, 2*n)
				}
			})
		}

		t.Run("stalled reader", func(t *testing.T) {
			slow := dialWS(t, g, "graphql-transport-ws", false, 4096)
			slow.subscribe("s", q, nil)
			// Live once an event reaches the probe's subscription made
			// after it? Registration is asynchronous: wait for the hub.
			eventually(t, 30*time.Second, "the subscription", func() bool {
				return g.scrape(t)["meshgate_subscriptions_active"] == 2
			})
			last := seq + n
			updateCustomers(t, g, n)
			// The probe's events are the slow socket's too (the same
			// hub entries): once the probe has them all, the slow
			// socket's writes are blocked (its buffers hold a few dozen
			// events) and the rest wait. From now on only the slow
			// socket writes.
			gapless(t, "probe", sequences(t, probe, n, "p")["p"], last, n)
			messages0, writes0 := websocketWrites(t, g)
			go func() {
				defer close(slow.msgs)
				for {
					var m wsMessage
					if err := slow.c.ReadJSON(&m); err != nil {
						return
					}
					if m.Type != "ka" && m.Type != "ping" && m.Type != "pong" {
						slow.msgs <- m
					}
				}
			}()
			gapless(t, "stalled reader", sequences(t, slow, n, "s")["s"], last, n)
			messages, writes := websocketWrites(t, g)
			messages -= messages0
			writes -= writes0
			t.Logf("after the stall: %v messages in %v writes", messages, writes)
			if messages == 0 || writes*4 > messages {
				t.Fatalf("after the stall: %v messages in %v writes, want some in at most a quarter as many", messages, writes)
			}
		})
	})
}

// TestCompleteAfterHeldEvents: a subscription replaying many events when
// the gateway shuts down gets every event it was sent in order, the last
// message with its cursor, then complete, then the close (1001): what the
// socket held went out before them.
func TestCompleteAfterHeldEvents(t *testing.T) {
	g := startGateway(t)
	const q = `subscription($since: String) { changes(products: ["customers"], since: $since) { sequence cursor after } }`
	probe := dialWS(t, g, "graphql-transport-ws", true, 0)
	probe.subscribe("p", q, nil)
	first := probe.firstEvent("changes", func(int) {
		g.gql(t, `mutation { updateCustomer(id: 3, input: {name: "First"}) { id } }`, nil).must(t)
	})
	updateCustomers(t, g, 500)
	for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
		w := dialWS(t, g, proto, false, 0)
		end := &shutdownEnd{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			readUntilClosed(w.c, "changes", end)
		}()
		w.subscribe("1", q, map[string]any{"since": first["cursor"]})
		eventually(t, 30*time.Second, proto+": the replay", func() bool { return end.received() > 0 })
		defer func() {
			<-done
			end.mu.Lock()
			defer end.mu.Unlock()
			if end.err != nil {
				t.Errorf("%s: %v", proto, end.err)
			}
			if !end.completed || end.cursor == "" || end.closeCode != 1001 {
				t.Errorf("%s: completed %v, cursor %q, close %d; want a cursor, complete and 1001", proto, end.completed, end.cursor, end.closeCode)
			}
			from := int(first["sequence"].(float64))
			for i, s := range end.sequences {
				if s != from+1+i {
					t.Fatalf("%s: event %d is sequence %d, want %d", proto, i, s, from+1+i)
				}
			}
			t.Logf("%s: %d events, then the cursor, complete and the close", proto, len(end.sequences))
		}()
	}
	g.cancel()
	select {
	case err := <-g.done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the shutdown did not end")
	}
	g.once.Do(func() {}) // stopped here
}
