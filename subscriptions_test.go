package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/meshgate/meshgate/streaming"
)

// wsClient speaks graphql-transport-ws or the legacy graphql-ws.
type wsClient struct {
	t     testing.TB
	c     *websocket.Conn
	proto string
	msgs  chan wsMessage
}

type wsMessage struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// dialWS connects and completes connection_init. With read false nothing
// reads the socket (a stalled client); rcvBuf, if set, shrinks the client's
// receive buffer so that a stalled client pushes back sooner.
func dialWS(t testing.TB, g *gateway, proto string, read bool, rcvBuf int) *wsClient {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: 5 * time.Second}
	if rcvBuf > 0 {
		d.NetDial = func(network, addr string) (net.Conn, error) {
			nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				var serr error
				rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBuf) })
				return serr
			}}
			return nd.Dial(network, addr)
		}
	}
	c, _, err := d.Dial("ws"+strings.TrimPrefix(g.base, "http")+"/graphql", nil)
	if err != nil {
		t.Fatalf("dial websocket: %v", err)
	}
	if c.Subprotocol() != proto {
		t.Fatalf("negotiated %q, want %q", c.Subprotocol(), proto)
	}
	w := &wsClient{t: t, c: c, proto: proto, msgs: make(chan wsMessage, 4096)}
	t.Cleanup(func() { c.Close() })
	if err := c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	var ack wsMessage
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("connection_ack: %v %+v", err, ack)
	}
	c.SetReadDeadline(time.Time{})
	if read {
		go func() {
			defer close(w.msgs)
			for {
				var m wsMessage
				if err := c.ReadJSON(&m); err != nil {
					return
				}
				switch m.Type {
				case "ka", "pong":
				case "ping":
					c.WriteJSON(map[string]any{"type": "pong"})
				default:
					w.msgs <- m
				}
			}
		}()
	}
	return w
}

func (w *wsClient) subscribe(id, query string, vars map[string]any) {
	w.t.Helper()
	typ := "subscribe"
	if w.proto == "graphql-ws" {
		typ = "start"
	}
	if err := w.c.WriteJSON(map[string]any{"id": id, "type": typ, "payload": map[string]any{"query": query, "variables": vars}}); err != nil {
		w.t.Fatal(err)
	}
}

// next returns the next message (next/data/error/complete) within timeout.
func (w *wsClient) next(timeout time.Duration) (wsMessage, bool) {
	select {
	case m, ok := <-w.msgs:
		return m, ok
	case <-time.After(timeout):
		return wsMessage{}, false
	}
}

// event is the payload of a next/data message.
type event struct {
	Data   map[string]map[string]any `json:"data"`
	Errors []gqlError                `json:"errors"`
}

func (w *wsClient) event(field string, timeout time.Duration) (map[string]any, []gqlError) {
	w.t.Helper()
	for {
		m, ok := w.next(timeout)
		if !ok {
			w.t.Fatalf("no event for %s within %v", field, timeout)
		}
		switch m.Type {
		case "next", "data":
			var e event
			if err := json.Unmarshal(m.Payload, &e); err != nil {
				w.t.Fatal(err)
			}
			return e.Data[field], e.Errors
		case "error":
			w.t.Fatalf("subscription error: %s", m.Payload)
		case "complete":
			w.t.Fatalf("subscription completed early")
		}
	}
}

// firstEvent makes changes with mutate until the subscription, which is
// registered asynchronously after the subscribe message, reports one; it
// returns that event. Changes made before the registration are not
// delivered (there was no since), which is why a single change may not do.
func (w *wsClient) firstEvent(field string, mutate func(i int)) map[string]any {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		mutate(i)
		m, ok := w.next(200 * time.Millisecond)
		if !ok {
			continue
		}
		if m.Type != "next" && m.Type != "data" {
			w.t.Fatalf("unexpected %s: %s", m.Type, m.Payload)
		}
		var e event
		if err := json.Unmarshal(m.Payload, &e); err != nil || len(e.Errors) > 0 {
			w.t.Fatalf("event: %v %v", err, e.Errors)
		}
		return e.Data[field]
	}
	w.t.Fatalf("the subscription never went live")
	return nil
}

func TestSubscriptionsBothProtocolsWithFilter(t *testing.T) {
	backends(t, func(t *testing.T, args []string) {
		g := startGateway(t, args...)
		for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
			t.Run(proto, func(t *testing.T) {
				ws := dialWS(t, g, proto, true, 0)
				ws.subscribe("1", `subscription { customerChanged(where: {country: {eq: "SE"}}, ops: [UPDATE]) { op cursor sequence actor before { name } after { id name country } } }`, nil)
				// Customer 1 goes to DE (filtered out), customer 2 to SE.
				// The first event may come from any of the updates made
				// while the subscription went live (a late one on a busy
				// machine), not necessarily the last.
				names := map[any]bool{}
				ev := ws.firstEvent("customerChanged", func(i int) {
					name := fmt.Sprintf("Sven %s %d", proto, i)
					names[name] = true
					g.gql(t, `mutation($n: String!) { a: updateCustomer(id: 1, input: {country: "DE"}) { id } b: updateCustomer(id: 2, input: {country: "SE", name: $n}) { id } }`, map[string]any{"n": name}).must(t)
				})
				after := ev["after"].(map[string]any)
				if ev["op"] != "UPDATE" || after["country"] != "SE" || !names[after["name"]] || after["id"] != "2" {
					t.Fatalf("unexpected event %v", ev)
				}
				if c, _ := ev["cursor"].(string); !strings.HasPrefix(c, "mg1.") {
					t.Fatalf("cursor %v", ev["cursor"])
				}
			})
		}
	})
}

func TestSubscriptionResumeAfterDrop(t *testing.T) {
	backends(t, func(t *testing.T, args []string) {
		g := startGateway(t, args...)
		const q = `subscription($since: String) { changes(products: ["customers"], since: $since) { sequence cursor key op } }`
		ws := dialWS(t, g, "graphql-transport-ws", true, 0)
		ws.subscribe("1", q, nil)
		first := ws.firstEvent("changes", func(int) {
			g.gql(t, `mutation { updateCustomer(id: 3, input: {name: "First"}) { id } }`, nil).must(t)
		})
		cursor := first["cursor"].(string)
		seq := int(first["sequence"].(float64))
		ws.c.Close() // drop mid-stream

		const missed = 1000
		for i := 0; i < missed; i += 50 {
			var b strings.Builder
			b.WriteString("mutation {")
			for j := i; j < i+50; j++ {
				fmt.Fprintf(&b, " m%d: updateCustomer(id: %d, input: {name: \"N%d\"}) { id }", j, 1+j%20, j)
			}
			b.WriteString(" }")
			g.gql(t, b.String(), nil).must(t)
		}
		ws2 := dialWS(t, g, "graphql-transport-ws", true, 0)
		ws2.subscribe("2", q, map[string]any{"since": cursor})
		for i := 1; i <= missed; i++ {
			ev, errs := ws2.event("changes", 10*time.Second)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			if got := int(ev["sequence"].(float64)); got != seq+i {
				t.Fatalf("event %d: sequence %d, want %d (gap or duplicate)", i, got, seq+i)
			}
		}
		// Live again after the replay, still without a gap.
		g.gql(t, `mutation { updateCustomer(id: 3, input: {name: "After"}) { id } }`, nil).must(t)
		ev, _ := ws2.event("changes", 10*time.Second)
		if got := int(ev["sequence"].(float64)); got != seq+missed+1 {
			t.Fatalf("first live event after replay: sequence %d, want %d", got, seq+missed+1)
		}
		// A bad cursor is bad input.
		ws2.subscribe("3", q, map[string]any{"since": "garbage"})
		for {
			m, ok := ws2.next(5 * time.Second)
			if !ok {
				t.Fatal("no error for a bad cursor")
			}
			if m.ID == "3" && (m.Type == "error" || m.Type == "next") {
				if !strings.Contains(string(m.Payload), "BAD_USER_INPUT") {
					t.Fatalf("bad cursor: %s", m.Payload)
				}
				break
			}
		}
	})
}

func TestSlowConsumerIsDroppedWithCursor(t *testing.T) {
	// A queue of 128 absorbs the bursts a reading client sees (the relay
	// publishes in batches); a stalled client fills it.
	g := startGateway(t, "--subscriber-buffer", "128", "--ws-write-buffer", "4096")
	const q = `subscription($since: String) { changes(products: ["customers"], since: $since) { sequence cursor before after } }`
	slow := dialWS(t, g, "graphql-transport-ws", false, 4096)
	slow.subscribe("1", q, nil)
	fast := dialWS(t, g, "graphql-transport-ws", true, 0)
	fast.subscribe("1", q, nil)
	// Wait until both are live: the fast one (subscribed second) sees a change.
	first := fast.firstEvent("changes", func(int) {
		g.gql(t, `mutation { updateCustomer(id: 1, input: {name: "Warm Up"}) { id } }`, nil).must(t)
	})
	start := int(first["sequence"].(float64))

	long := strings.Repeat("x", 150)
	const n = 600
	for i := 0; i < n; i += 50 {
		var b strings.Builder
		b.WriteString("mutation {")
		for j := i; j < i+50; j++ {
			fmt.Fprintf(&b, " m%d: updateCustomer(id: %d, input: {name: \"%s %d\"}) { id }", j, 1+j%20, long, j)
		}
		b.WriteString(" }")
		g.gql(t, b.String(), nil).must(t)
	}
	// The fast client gets everything, in order, while the slow one stalls.
	for i := 1; i <= n; i++ {
		ev, errs := fast.event("changes", 10*time.Second)
		if len(errs) > 0 {
			t.Fatalf("fast client got errors: %v", errs)
		}
		if got := int(ev["sequence"].(float64)); got != start+i {
			t.Fatalf("fast client: sequence %d, want %d", got, start+i)
		}
	}
	// Now read the slow client: some events, then SLOW_CONSUMER with a cursor,
	// then completion.
	go func() {
		for {
			var m wsMessage
			if err := slow.c.ReadJSON(&m); err != nil {
				close(slow.msgs)
				return
			}
			if m.Type != "ka" && m.Type != "ping" && m.Type != "pong" {
				slow.msgs <- m
			}
		}
	}()
	var cursor string
	var got []int // what the slow client received before the error
	for cursor == "" {
		m, ok := slow.next(10 * time.Second)
		if !ok {
			t.Fatal("slow client was never told it is too slow")
		}
		if m.Type != "next" {
			continue
		}
		var e event
		json.Unmarshal(m.Payload, &e)
		for _, err := range e.Errors {
			if err.Extensions["code"] == "SLOW_CONSUMER" {
				cursor, _ = err.Extensions["cursor"].(string)
			}
		}
		if ev := e.Data["changes"]; ev != nil && len(e.Errors) == 0 {
			got = append(got, int(ev["sequence"].(float64)))
		}
	}
	if m, _ := slow.next(5 * time.Second); m.Type != "complete" {
		t.Fatalf("after SLOW_CONSUMER: %+v, want complete", m)
	}
	// It was cut off before the end, having received a gapless run, and
	// its cursor points at the last event it received.
	if len(got) == 0 || got[len(got)-1] >= start+n {
		t.Fatalf("the slow client received %v before SLOW_CONSUMER; want a part of the stream up to %d", got, start+n)
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("the slow client received sequence %d after %d", got[i], got[i-1])
		}
	}
	cur, err := streaming.ParseCursor(cursor)
	if err != nil {
		t.Fatal(err)
	}
	last := got[len(got)-1]
	if int(cur["customers"]) != last {
		t.Fatalf("SLOW_CONSUMER cursor at %d, want the last event received, %d", cur["customers"], last)
	}
	// Resuming from that cursor brings exactly the rest, in order.
	again := dialWS(t, g, "graphql-transport-ws", true, 0)
	again.subscribe("2", q, map[string]any{"since": cursor})
	for want := last + 1; want <= start+n; want++ {
		ev, errs := again.event("changes", 10*time.Second)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		if got := int(ev["sequence"].(float64)); got != want {
			t.Fatalf("after resuming: sequence %d, want %d", got, want)
		}
	}
}

// TestSubscriptionAcrossInstances: changes made through instance A reach a
// subscriber on instance B (through Kafka), exactly the changes of the
// row and in order; B's cursor resumes on A with exactly the changes
// made in between, then live, without a gap or a duplicate.
func TestSubscriptionAcrossInstances(t *testing.T) {
	stores := postgresStores(t)
	a := startGateway(t, stores...)
	b := startGateway(t, append(stores, "--kafka-brokers", a.kafka)...)
	// A row of its own: no order touches it, so only our renames change it.
	item := a.gql(t, `mutation { createItem(input: {sku: "ACROSS-1", name: "Across", category: "Test", price: 1.5, stock: 1}) { id } }`, nil).must(t)
	id := item["createItem"].(map[string]any)["id"].(string)
	rename := func(g *gateway, name string) {
		g.gql(t, `mutation($id: ID!, $n: String!) { updateItem(id: $id, input: {name: $n}) { id } }`, map[string]any{"id": id, "n": name}).must(t)
	}
	// history returns the sequences of the item's changes after seq.
	history := func(after int) []int {
		r := a.gql(t, `query($id: ID!) { item(id: $id) { history(last: 100) { nodes { sequence } } } }`, map[string]any{"id": id}).must(t)
		var out []int
		for _, n := range r["item"].(map[string]any)["history"].(map[string]any)["nodes"].([]any) {
			if s := int(n.(map[string]any)["sequence"].(float64)); s > after {
				out = append(out, s)
			}
		}
		return out
	}
	const q = `subscription($sku: String!, $since: String) { itemChanged(where: {sku: {eq: $sku}}, since: $since) { op sequence cursor after { name } } }`
	vars := map[string]any{"sku": "ACROSS-1"}
	ws := dialWS(t, b, "graphql-transport-ws", true, 0)
	ws.subscribe("1", q, vars)
	first := ws.firstEvent("itemChanged", func(i int) { rename(a, fmt.Sprintf("Warm-up %d", i)) })
	seq := int(first["sequence"].(float64))
	// expect reads len(names) events (any names if nil) and checks them
	// against the item's history after sequence after; it returns the
	// last event's sequence and cursor.
	expect := func(w *wsClient, names []string, after int) (int, string) {
		t.Helper()
		want := history(after)
		if names == nil {
			names = make([]string, len(want))
		}
		if len(want) != len(names) {
			t.Fatalf("the item's history after %d holds %d changes, want %d", after, len(want), len(names))
		}
		cursor := ""
		for i, name := range names {
			ev, errs := w.event("itemChanged", 10*time.Second)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			got := int(ev["sequence"].(float64))
			if got != want[i] || (name != "" && ev["after"].(map[string]any)["name"] != name) {
				t.Fatalf("event %d: sequence %d, %v; want sequence %d, name %q (history after %d: %v)", i, got, ev["after"], want[i], name, after, want)
			}
			cursor = ev["cursor"].(string)
		}
		return want[len(want)-1], cursor
	}
	// The warm-up renames made after the first event, then ours.
	mark := seq
	if len(history(seq)) > 0 {
		mark, _ = expect(ws, nil, seq)
	}
	var names []string
	for i := range 10 {
		names = append(names, fmt.Sprintf("Made on A %d", i))
		rename(a, names[i])
	}
	mark, cursor := expect(ws, names, mark)
	ws.c.Close()

	// Offline: five more renames. Resume on A with B's cursor.
	var missed []string
	for i := range 5 {
		missed = append(missed, fmt.Sprintf("While away %d", i))
		rename(a, missed[i])
	}
	ws2 := dialWS(t, a, "graphql-transport-ws", true, 0)
	ws2.subscribe("2", q, map[string]any{"sku": "ACROSS-1", "since": cursor})
	mark, _ = expect(ws2, missed, mark)
	// Then live, still exact.
	rename(b, "Made on B")
	expect(ws2, []string{"Made on B"}, mark)
	if m, ok := ws2.next(300 * time.Millisecond); ok {
		t.Fatalf("unexpected message after the last change: %s %s", m.Type, m.Payload)
	}
}

func TestNoLeaksOverConnectCycles(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	g := startGateway(t)
	cycle := func(i int) {
		d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}}
		c, _, err := d.Dial("ws"+strings.TrimPrefix(g.base, "http")+"/graphql", nil)
		if err != nil {
			t.Fatal(err)
		}
		c.WriteJSON(map[string]any{"type": "connection_init"})
		var ack wsMessage
		if err := c.ReadJSON(&ack); err != nil {
			t.Fatal(err)
		}
		c.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": `subscription { changes { sequence } }`}})
		if i%2 == 0 {
			c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		}
		// Half the cycles just drop the TCP connection: no close frame.
		c.NetConn().Close()
	}
	// settle waits until the goroutine count holds still for 40 polls in a
	// row (the gateway's consumers may still be joining their groups on a
	// busy machine: one unchanged poll is not enough).
	settle := func() (int, uint64) {
		var goroutines, same int
		eventually(t, 30*time.Second, "goroutines to settle", func() bool {
			runtime.GC()
			n := runtime.NumGoroutine()
			if n == goroutines {
				same++
			} else {
				same = 0
			}
			goroutines = n
			return same >= 40
		})
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return goroutines, ms.HeapAlloc
	}
	for i := 0; i < 200; i++ {
		cycle(i)
	}
	g0, h0 := settle()
	for i := 0; i < 2000; i++ {
		cycle(i)
	}
	g1, h1 := settle()
	t.Logf("after 200 cycles: %d goroutines, %d KiB heap; after 2,200: %d goroutines, %d KiB heap", g0, h0>>10, g1, h1>>10)
	// The gateway's own background work (Kafka fetchers, consumer groups,
	// relays) moves the count by a few dozen; a leak of even one goroutine
	// per cycle would add 2,000 (a subscription holds five).
	if g1 > g0+50 {
		t.Errorf("goroutines grew from %d to %d over 2,000 connect/disconnect cycles", g0, g1)
	}
	if h1 > h0+4<<20 {
		t.Errorf("heap grew from %d KiB to %d KiB over 2,000 cycles", h0>>10, h1>>10)
	}
}

// TestIdleSubscriptionsHoldNoGoroutine: an idle websocket holds one
// goroutine, its read loop, however many subscriptions on the hub it
// carries, on both subprotocols; events still reach every subscription, and
// once they are delivered the goroutines that delivered them are gone
// again. Counted from the goroutines' stacks, so the gateway's background
// work (consumers, relays) does not blur the count.
func TestIdleSubscriptionsHoldNoGoroutine(t *testing.T) {
	backends(t, func(t *testing.T, args []string) {
		g := startGateway(t, args...)
		const perSocket = 20
		var sockets []*wsClient
		for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
			ws := dialWS(t, g, proto, true, 0)
			for i := range perSocket {
				ws.subscribe(fmt.Sprint("s", i), `subscription { changes(products: ["customers"]) { sequence } }`, nil)
			}
			sockets = append(sockets, ws)
		}
		// stacks counts the goroutines whose stack mentions each name.
		stacks := func(names ...string) map[string]int {
			buf := make([]byte, 1<<20)
			for {
				n := runtime.Stack(buf, true)
				if n < len(buf) {
					buf = buf[:n]
					break
				}
				buf = make([]byte, 2*len(buf))
			}
			count := map[string]int{}
			for _, st := range strings.Split(string(buf), "\n\n") {
				for _, name := range names {
					if strings.Contains(st, name) {
						count[name]++
					}
				}
			}
			return count
		}
		const (
			reader    = "web.(*wsConn).run"
			operation = "web.(*wsOperation)"
			watch     = "streaming.(*watch)"
			stream    = "graphql.ResolveFieldStream"
		)
		idle := func(what string) {
			t.Helper()
			var last map[string]int
			eventually(t, 30*time.Second, what, func() bool {
				last = stacks(reader, operation, watch, stream)
				return last[operation] == 0 && last[watch] == 0 && last[stream] == 0
			})
			if last[reader] != len(sockets) {
				t.Fatalf("%s: %d read loops for %d sockets", what, last[reader], len(sockets))
			}
		}
		eventually(t, 30*time.Second, "the subscriptions in the hub", func() bool {
			return metricValue(t, g, "meshgate_subscriptions_active") >= 2*perSocket
		})
		idle("idle subscriptions")
		// One change reaches all of them, and leaves nothing behind.
		g.gql(t, `mutation { updateCustomer(id: 1, input: {name: "Idle"}) { id } }`, nil).must(t)
		for _, ws := range sockets {
			for range perSocket {
				ev, errs := ws.event("changes", 20*time.Second)
				if len(errs) > 0 || ev["sequence"] == nil {
					t.Fatalf("event %v %v", ev, errs)
				}
			}
		}
		idle("subscriptions after an event")
	})
}

// metricValue reads one unlabelled metric from the gateway's /metrics.
func metricValue(t testing.TB, g *gateway, name string) float64 {
	t.Helper()
	resp, err := http.Get(g.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}
