package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// logLines returns the gateway's JSON log records that pass keep.
func (g *gateway) logLines(t testing.TB, keep func(map[string]any) bool) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(g.logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		if keep(rec) {
			out = append(out, rec)
		}
	}
	return out
}

// TestOperationMetricsAndLogs checks what an operator sees of requests:
// operations counted by name (capped: beyond --metrics-max-operations,
// "other") and outcome with their latency and SQL statements, websocket
// connections and subscriptions, pools, relay backlog and publish
// latency; and JSON request log lines with the request id, operation and
// caller.
func TestOperationMetricsAndLogs(t *testing.T) {
	g := startGateway(t, "--log-format", "json", "--log-level", "debug", "--metrics-max-operations", "3")
	for i := 1; i <= 5; i++ {
		g.gql(t, fmt.Sprintf(`query Q%d { customers(first: 2) { totalCount } }`, i), nil).must(t)
	}
	g.gql(t, `query Q1 { customers(first: 2) { totalCount } }`, nil).must(t)
	if r := g.gql(t, `{ customers(`, nil); len(r.Errors) == 0 {
		t.Fatal("a broken document was accepted")
	}
	g.gql(t, `mutation { updateCustomer(id: 3, input: {name: "Metrics"}) { id } }`, nil).must(t)

	ws := dialWS(t, g, "graphql-transport-ws", true, 0)
	ws.subscribe("1", `subscription Watch { changes(products: ["customers"]) { sequence } }`, nil)

	var m map[string]float64
	eventually(t, 30*time.Second, "the figures", func() bool {
		m = g.scrape(t)
		return m["meshgate_websocket_connections"] == 1 && m["meshgate_subscriptions_active"] == 1 &&
			m[`meshgate_relay_publish_latency_seconds_count{product="customers"}`] > 0 &&
			m[`meshgate_relay_backlog{product="customers"}`] == 0
	})
	for name, want := range map[string]float64{
		`meshgate_graphql_operations_total{operation="Q1",outcome="ok",type="query"}`:                          2,
		`meshgate_graphql_operations_total{operation="Q3",outcome="ok",type="query"}`:                          1,
		`meshgate_graphql_operations_total{operation="other",outcome="ok",type="query"}`:                       2,
		`meshgate_graphql_operations_total{operation="anonymous",outcome="ok",type="mutation"}`:                1,
		`meshgate_graphql_operations_total{operation="invalid",outcome="GRAPHQL_PARSE_FAILED",type="unknown"}`: 1,
		`meshgate_graphql_operation_duration_seconds_count{operation="Q1",type="query"}`:                       2,
		`meshgate_graphql_sql_statements_count{type="query"}`:                                                  6,
	} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
	if _, ok := m[`meshgate_graphql_operations_total{operation="Q4",outcome="ok",type="query"}`]; ok {
		t.Error("a fourth operation name got a label of its own beyond --metrics-max-operations 3")
	}
	if m[`meshgate_graphql_sql_statements_sum{type="query"}`] < 6 {
		t.Errorf("6 queries issued %v SQL statements, want at least one each", m[`meshgate_graphql_sql_statements_sum{type="query"}`])
	}
	if m[`meshgate_store_connections_max{product="orders"}`] <= 0 || m[`meshgate_store_connections_open{product="customers"}`] <= 0 {
		t.Errorf("pool figures missing: max %v open %v", m[`meshgate_store_connections_max{product="orders"}`], m[`meshgate_store_connections_open{product="customers"}`])
	}
	ws.c.Close()
	eventually(t, 30*time.Second, "the websocket and its subscription to be gone", func() bool {
		m = g.scrape(t)
		return m["meshgate_websocket_connections"] == 0 && m["meshgate_subscriptions_active"] == 0
	})

	// A request's log line names it, its operation and its caller.
	body := `{"query": "query Named { customers(first: 1) { totalCount } }"}`
	req, _ := http.NewRequest(http.MethodPost, g.base+"/graphql", bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", "obs-test-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	eventually(t, 10*time.Second, "the request's log line", func() bool {
		return len(g.logLines(t, func(r map[string]any) bool { return r["request_id"] == "obs-test-1" && r["msg"] == "request" })) > 0
	})
	rec := g.logLines(t, func(r map[string]any) bool { return r["request_id"] == "obs-test-1" && r["msg"] == "request" })[0]
	if rec["operation"] != "Named" || rec["subject"] != "dev" || rec["path"] != "/graphql" {
		t.Errorf("request log line %v, want operation Named and subject dev", rec)
	}
}

// TestPprofListensWhenTheBannerIsOut: once the gateway says it serves,
// --pprof-addr answers too (bench/compare asks for a profile as soon as it
// reads the banner; the listener used to open after it).
func TestPprofListensWhenTheBannerIsOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	startGateway(t, "--pprof-addr", addr)
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatalf("pprof right after the banner: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pprof index: %s", resp.Status)
	}
}
