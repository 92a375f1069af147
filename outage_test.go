package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/pgtest"
	"github.com/meshgate/meshgate/streaming"
)

// post sends a GraphQL request and returns the status, the Retry-After
// header and the decoded body.
func (g *gateway) post(t testing.TB, query string) (int, string, gqlResponse) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	resp, err := http.Post(g.base+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST /graphql: %v", err)
	}
	defer resp.Body.Close()
	var out gqlResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), out
}

// readyz returns /readyz's status and the parts it reports down.
func (g *gateway) readyz(t testing.TB) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get(g.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body struct {
		Status string            `json:"status"`
		Down   map[string]string `json:"down"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("/readyz body %q: %v", b, err)
	}
	return resp.StatusCode, body.Down
}

func code(e gqlError) string { s, _ := e.Extensions["code"].(string); return s }

// TestStoreAndKafkaOutages cuts the customers store off (a TCP proxy
// between the gateway and PostgreSQL) under a live subscription and
// queries: requests touching it fail with UNAVAILABLE (503 and Retry-After
// when nothing else was answered, the code in the errors of a partial
// response), /readyz names the store (and its relay) while it lasts, a
// subscription started meanwhile waits for the store instead of failing,
// and once the store is back both subscriptions go on with nothing missed.
// Then the Kafka broker is stopped and started again on the same address:
// /readyz reports it down and ready again after.
func TestStoreAndKafkaOutages(t *testing.T) {
	pg := pgtest.New(t)
	customers := pgtest.NewProxy(t) // the customers store's way to the server
	others := pgtest.NewProxy(t)    // every other store's
	var args []string
	for _, d := range demo.Products {
		p := others
		if d.Name == "customers" {
			p = customers
		}
		args = append(args, "--store", d.Name+"="+p.DSN(pg.DSN(d.Name)))
	}
	broker, err := streaming.StartEmbedded("127.0.0.1:0", 3, "")
	if err != nil {
		t.Fatal(err)
	}
	addr := broker.Addrs()[0]
	defer func() { broker.Close() }()
	g := startGateway(t, append(args, "--kafka-brokers", addr, "--subscription-outage-grace", "2m", "--log-format", "json")...)
	eventually(t, 30*time.Second, "ready", func() bool { s, _ := g.readyz(t); return s == 200 })

	const q = `subscription($since: String) { changes(products: ["customers"], since: $since) { sequence cursor } }`
	live := dialWS(t, g, "graphql-transport-ws", true, 0)
	live.subscribe("1", q, nil)
	first := live.firstEvent("changes", func(i int) {
		g.gql(t, fmt.Sprintf(`mutation { updateCustomer(id: 3, input: {name: "F%d"}) { id } }`, i), nil).must(t)
	})
	cursor, seq := first["cursor"].(string), int(first["sequence"].(float64))
	const before = 20
	for i := range before {
		g.gql(t, fmt.Sprintf(`mutation { updateCustomer(id: %d, input: {name: "B%d"}) { id } }`, 1+i%5, i), nil).must(t)
	}
	expect := func(ws *wsClient, from, n int) {
		t.Helper()
		for i := 1; i <= n; i++ {
			ev, errs := ws.event("changes", 30*time.Second)
			if len(errs) > 0 {
				t.Fatalf("subscription error: %+v", errs)
			}
			if got := int(ev["sequence"].(float64)); got != from+i {
				t.Fatalf("sequence %d, want %d (gap or duplicate)", got, from+i)
			}
		}
	}
	expect(live, seq, before)

	customers.Cut()
	status, retry, resp := g.post(t, `query CutQuery { customers(first: 1) { totalCount } }`)
	if status != http.StatusServiceUnavailable || retry == "" || len(resp.Errors) == 0 || code(resp.Errors[0]) != "UNAVAILABLE" {
		t.Fatalf("query of the cut store: %d Retry-After %q %+v, want 503, Retry-After and UNAVAILABLE", status, retry, resp)
	}
	// Its log line says which request of whom met the outage.
	warned := g.logLines(t, func(r map[string]any) bool { return r["msg"] == "store unreachable" && r["operation"] == "CutQuery" })
	if len(warned) == 0 || warned[0]["subject"] != "dev" || warned[0]["request_id"] == nil || warned[0]["level"] != "WARN" {
		t.Errorf("log lines of the failed query: %v, want a warning with request_id, operation and subject", warned)
	}
	status, _, resp = g.post(t, `mutation { updateCustomer(id: 3, input: {name: "Cut"}) { id } }`)
	if status != http.StatusServiceUnavailable || len(resp.Errors) == 0 || code(resp.Errors[0]) != "UNAVAILABLE" {
		t.Fatalf("mutation of the cut store: %d %+v, want 503 and UNAVAILABLE", status, resp)
	}
	status, _, resp = g.post(t, `{ customers(first: 1) { totalCount } orders(first: 1) { totalCount } }`)
	if status != http.StatusOK || resp.Data["orders"] == nil || len(resp.Errors) != 1 || code(resp.Errors[0]) != "UNAVAILABLE" {
		t.Fatalf("partial response: %d %+v, want 200, the orders and one UNAVAILABLE error", status, resp)
	}
	status, down := g.readyz(t)
	if status != http.StatusServiceUnavailable || down["store customers"] == "" {
		t.Fatalf("/readyz with the customers store cut: %d %v", status, down)
	}
	if _, ok := down["store orders"]; ok {
		t.Errorf("/readyz reports the orders store down: %v", down)
	}
	// A subscription from a cursor needs the store's log: it waits.
	resumed := dialWS(t, g, "graphql-transport-ws", true, 0)
	resumed.subscribe("2", q, map[string]any{"since": cursor})
	eventually(t, 30*time.Second, "the resumed subscription to retry its read", func() bool {
		return g.scrape(t)["meshgate_subscription_store_retries_total"] > 0
	})

	customers.Restore()
	eventually(t, 30*time.Second, "ready again", func() bool { s, _ := g.readyz(t); return s == 200 })
	expect(resumed, seq, before)
	const after = 10
	for i := range after {
		g.gql(t, fmt.Sprintf(`mutation { updateCustomer(id: %d, input: {name: "A%d"}) { id } }`, 1+i%5, i), nil).must(t)
	}
	expect(live, seq+before, after)
	expect(resumed, seq+before, after)

	broker.Close()
	eventually(t, 30*time.Second, "/readyz to report Kafka down", func() bool {
		s, down := g.readyz(t)
		return s == http.StatusServiceUnavailable && down["kafka"] != ""
	})
	// A change while the broker is away: its relay cannot publish.
	g.gql(t, `mutation { updateCustomer(id: 4, input: {name: "NoKafka"}) { id } }`, nil).must(t)
	eventually(t, 30*time.Second, "/readyz to report the relay failing", func() bool {
		_, down := g.readyz(t)
		return down["relay customers"] != ""
	})
	if broker, err = streaming.StartEmbedded(addr, 3, ""); err != nil {
		t.Fatalf("restart the broker on %s: %v", addr, err)
	}
	eventually(t, 60*time.Second, "ready after the broker is back", func() bool { s, _ := g.readyz(t); return s == 200 })
	if m := g.scrape(t); m[`meshgate_relay_backlog{product="customers"}`] != 0 {
		t.Errorf("customers backlog %v after the broker came back", m[`meshgate_relay_backlog{product="customers"}`])
	}
}

// TestSubscriptionEndsResumablyWhenTheStoreStaysDown: a subscription
// whose store stays unreachable longer than --subscription-outage-grace
// ends with UNAVAILABLE and the cursor to resume from; resumed with it
// once the store is back, it misses nothing.
func TestSubscriptionEndsResumablyWhenTheStoreStaysDown(t *testing.T) {
	pg := pgtest.New(t)
	proxy := pgtest.NewProxy(t)
	var args []string
	for _, d := range demo.Products {
		args = append(args, "--store", d.Name+"="+proxy.DSN(pg.DSN(d.Name)))
	}
	g := startGateway(t, append(args, "--subscription-outage-grace", "300ms")...)
	const q = `subscription($since: String) { changes(products: ["customers"], since: $since) { sequence cursor } }`
	live := dialWS(t, g, "graphql-transport-ws", true, 0)
	live.subscribe("1", q, nil)
	first := live.firstEvent("changes", func(i int) {
		g.gql(t, fmt.Sprintf(`mutation { updateCustomer(id: 3, input: {name: "F%d"}) { id } }`, i), nil).must(t)
	})
	cursor, seq := first["cursor"].(string), int(first["sequence"].(float64))
	g.gql(t, `mutation { updateCustomer(id: 4, input: {name: "Missed"}) { id } }`, nil).must(t)

	proxy.Cut()
	ws := dialWS(t, g, "graphql-transport-ws", true, 0)
	ws.subscribe("2", q, map[string]any{"since": cursor})
	m, ok := ws.next(30 * time.Second)
	if !ok {
		t.Fatal("the subscription neither failed nor delivered")
	}
	var payload []gqlError
	if m.Type == "next" {
		var e event
		json.Unmarshal(m.Payload, &e)
		payload = e.Errors
	} else {
		json.Unmarshal(m.Payload, &payload)
	}
	if len(payload) == 0 || code(payload[0]) != "UNAVAILABLE" || payload[0].Extensions["cursor"] != cursor {
		t.Fatalf("%s %s: want UNAVAILABLE with the cursor %s", m.Type, m.Payload, cursor)
	}

	proxy.Restore()
	ws.subscribe("3", q, map[string]any{"since": payload[0].Extensions["cursor"]})
	for {
		m, ok := ws.next(30 * time.Second)
		if !ok {
			t.Fatal("the resumed subscription delivered nothing")
		}
		if m.ID != "3" {
			continue
		}
		var e event
		if err := json.Unmarshal(m.Payload, &e); err != nil || len(e.Errors) > 0 {
			t.Fatalf("resumed: %s", m.Payload)
		}
		if got := int(e.Data["changes"]["sequence"].(float64)); got != seq+1 {
			t.Fatalf("resumed at sequence %d, want %d", got, seq+1)
		}
		break
	}
}
