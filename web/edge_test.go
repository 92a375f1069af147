package web_test

// The HTTP edge under misuse: protocol errors (405, 415, 400, 413, 408),
// CORS, rate limits, and every limit on GraphQL operations, each refused
// with LIMIT_EXCEEDED and the limit's name and value.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/web"
)

// syncBuffer is a log sink that tests read.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// raw sends a request and returns status, headers and body.
func raw(t *testing.T, method, u, contentType string, body io.Reader, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// oneError decodes a body that must hold exactly one error with code.
func oneError(t *testing.T, b []byte, code string) gqlError {
	t.Helper()
	var r gqlResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("not GraphQL JSON: %v\n%s", err, b)
	}
	if len(r.Errors) != 1 || r.Errors[0].code() != code {
		t.Fatalf("errors %s, want one with code %s", b, code)
	}
	return r.Errors[0]
}

func TestHTTPProtocol(t *testing.T) {
	t.Parallel()
	g := sharedGateway(t, sqliteBackend)
	logs := &syncBuffer{}
	srv := edgeServer(t, g.mesh, web.Config{BodyReadTimeout: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	gql := srv.URL + "/graphql"
	const secret = "SECRET-MARKER-42"

	t.Run("405 for a mutation over GET", func(t *testing.T) {
		status, h, b := raw(t, "GET", gql+"?query="+url.QueryEscape(`mutation { deleteCustomer(id: 1) { id } }`), "", nil, nil)
		if status != 405 || h.Get("Allow") != "POST" {
			t.Fatalf("HTTP %d Allow %q", status, h.Get("Allow"))
		}
		oneError(t, b, "BAD_REQUEST")
		var n int
		g.mesh.Store("customers").DB.QueryRowContext(t.Context(), "SELECT count(*) FROM customers WHERE id = 1").Scan(&n)
		if n != 1 {
			t.Fatal("the mutation ran")
		}
	})
	t.Run("400 for a subscription over a plain POST", func(t *testing.T) {
		status, _, b := raw(t, "POST", gql, "application/json", strings.NewReader(`{"query": "subscription { changes(products: [\"customers\"]) { key } }"}`), nil)
		if status != 400 {
			t.Fatalf("HTTP %d %s", status, b)
		}
		oneError(t, b, "BAD_REQUEST")
	})
	t.Run("405 for other methods", func(t *testing.T) {
		for _, m := range []string{"PUT", "DELETE", "PATCH"} {
			status, h, b := raw(t, m, gql, "application/json", strings.NewReader(`{"query":"{ __typename }"}`), nil)
			if status != 405 || !strings.Contains(h.Get("Allow"), "POST") {
				t.Errorf("%s: HTTP %d", m, status)
			}
			oneError(t, b, "BAD_REQUEST")
		}
	})
	t.Run("415 for other content types", func(t *testing.T) {
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "application/graphql"} {
			status, _, b := raw(t, "POST", gql, ct, strings.NewReader(`{"query":"{ __typename }"}`), nil)
			if status != 415 {
				t.Errorf("%q: HTTP %d", ct, status)
				continue
			}
			oneError(t, b, "BAD_REQUEST")
		}
	})
	t.Run("400 for bodies that are not one GraphQL request", func(t *testing.T) {
		for name, body := range map[string]string{
			"malformed JSON":      `{"query": "{ __typename }", "x": "` + secret,
			"batch":               `[{"query": "{ __typename }"}, {"query": "{ __typename }"}]`,
			"not an object":       `"{ __typename }"`,
			"number query":        `{"query": 1}`,
			"object query":        `{"query": {"` + secret + `": 1}}`,
			"string variables":    `{"query": "{ __typename }", "variables": "` + secret + `"}`,
			"array extensions":    `{"query": "{ __typename }", "extensions": []}`,
			"number operation":    `{"query": "{ __typename }", "operationName": 5}`,
			"two objects":         `{"query": "{ __typename }"} {"query": "{ __typename }"}`,
			"trailing garbage":    `{"query": "{ __typename }"}` + secret,
			"empty body":          ``,
			"missing query":       `{"variables": {}}`,
			"invalid UTF-8 token": "{\"query\": \"\xff\xfe\"",
		} {
			t.Run(name, func(t *testing.T) {
				status, _, b := raw(t, "POST", gql, "application/json", strings.NewReader(body), nil)
				if status != 400 {
					t.Fatalf("HTTP %d %s", status, b)
				}
				e := oneError(t, b, "BAD_REQUEST")
				if strings.Contains(e.Message, secret) {
					t.Errorf("the body is echoed: %q", e.Message)
				}
			})
		}
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a request body reached the logs:\n%s", logs.String())
		}
	})
	t.Run("413 for a 10 MB body", func(t *testing.T) {
		big := `{"query": "{ __typename }", "variables": {"x": "` + strings.Repeat("a", 10<<20) + `"}}`
		status, h, b := raw(t, "POST", gql, "application/json", strings.NewReader(big), nil)
		if status != 413 {
			t.Fatalf("HTTP %d", status)
		}
		e := oneError(t, b, "LIMIT_EXCEEDED")
		if e.Extensions["limit"] != "bodyBytes" || e.Extensions["value"] != float64(1<<20) || h.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Errorf("error %+v, content type %q", e, h.Get("Content-Type"))
		}
		// Without a Content-Length (chunked), the limit holds as the body is read.
		pr, pw := io.Pipe()
		go func() {
			chunk := bytes.Repeat([]byte("a"), 64<<10)
			pw.Write([]byte(`{"query": "{ __typename }", "variables": {"x": "`))
			for range 40 {
				if _, err := pw.Write(chunk); err != nil {
					return
				}
			}
			pw.Close()
		}()
		status, _, b = raw(t, "POST", gql, "application/json", pr, nil)
		pr.Close()
		if status != 413 {
			t.Fatalf("chunked: HTTP %d %s", status, b)
		}
	})
	t.Run("408 for a body sent byte by byte", func(t *testing.T) {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
		// The client sends nothing more; the server must not wait for it.
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer to a stalled body: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 408 {
			t.Fatalf("HTTP %d %s", resp.StatusCode, b)
		}
		if e := oneError(t, b, "BAD_REQUEST"); e.Extensions["limit"] != "bodyReadTimeout" {
			t.Errorf("error %+v", e)
		}
		// And the connection is closed (not left waiting for the rest of
		// the body).
		if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("the connection stays open: %v", err)
		}
	})
	t.Run("GET queries work; bad GET parameters are 400", func(t *testing.T) {
		status, _, b := raw(t, "GET", gql+"?query="+url.QueryEscape(`query($n: Int) { customers(first: $n) { nodes { id } } }`)+"&variables="+url.QueryEscape(`{"n": 2}`), "", nil, nil)
		if status != 200 || !bytes.Contains(b, []byte(`"nodes":[{"id"`)) {
			t.Fatalf("HTTP %d %s", status, b)
		}
		for _, q := range []string{"?query=%7B__typename%7D&variables=nope", "?query=%7B__typename%7D&extensions=%5B%5D", "", "?query=%zz"} {
			status, _, b := raw(t, "GET", gql+q, "", nil, nil)
			if status != 400 {
				t.Errorf("%s: HTTP %d %s", q, status, b)
			}
		}
	})
	t.Run("timeout", func(t *testing.T) {
		srv := edgeServer(t, g.mesh, web.Config{QueryTimeout: time.Nanosecond})
		status, _, r := call(t, srv, "", `{ customers(first: 5) { nodes { id orders { nodes { id } } } } }`, nil)
		if status != 200 || len(r.Errors) == 0 || r.Errors[0].code() != "LIMIT_EXCEEDED" || r.Errors[0].Extensions["limit"] != "queryTimeout" {
			t.Fatalf("HTTP %d %v", status, r.Errors)
		}
	})
}

func TestCORS(t *testing.T) {
	t.Parallel()
	g := sharedGateway(t, sqliteBackend)
	none := edgeServer(t, g.mesh, web.Config{})
	some := edgeServer(t, g.mesh, web.Config{CORSOrigins: []string{"https://bi.example"}})
	preflight := func(srv string, origin string) (int, http.Header) {
		status, h, _ := raw(t, "OPTIONS", srv+"/graphql", "", nil, map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"})
		return status, h
	}
	if status, h := preflight(none.URL, "https://bi.example"); status != 403 || h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("no origins configured: preflight HTTP %d, ACAO %q", status, h.Get("Access-Control-Allow-Origin"))
	}
	status, h := preflight(some.URL, "https://bi.example")
	if status != 204 || h.Get("Access-Control-Allow-Origin") != "https://bi.example" || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") || h.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("allowed origin: preflight HTTP %d %v", status, h)
	}
	if status, h := preflight(some.URL, "https://evil.example"); status != 403 || h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin: preflight HTTP %d, ACAO %q", status, h.Get("Access-Control-Allow-Origin"))
	}
	for origin, want := range map[string]string{"https://bi.example": "https://bi.example", "https://evil.example": ""} {
		_, h, _ := raw(t, "POST", some.URL+"/graphql", "application/json", strings.NewReader(`{"query":"{ __typename }"}`), map[string]string{"Origin": origin})
		if h.Get("Access-Control-Allow-Origin") != want || !strings.Contains(h.Get("Vary"), "Origin") {
			t.Errorf("POST from %s: ACAO %q Vary %q", origin, h.Get("Access-Control-Allow-Origin"), h.Get("Vary"))
		}
	}
	// A cross-site websocket is refused before the upgrade (the upgrade
	// check of gorilla stays as a second line).
	status, _, b := raw(t, "GET", none.URL+"/graphql", "", nil, map[string]string{
		"Origin": "https://evil.example", "Connection": "Upgrade", "Upgrade": "websocket",
		"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "graphql-transport-ws"})
	if status != 403 {
		t.Errorf("cross-site websocket: HTTP %d %s", status, b)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	g := sharedGateway(t, sqliteBackend)
	srv := edgeServer(t, g.mesh, web.Config{RateLimit: 1, RateBurst: 3})
	var last int
	var hdr http.Header
	var body []byte
	for range 4 {
		last, hdr, body = raw(t, "POST", srv.URL+"/graphql", "application/json", strings.NewReader(`{"query":"{ __typename }"}`), nil)
	}
	if last != 429 {
		t.Fatalf("4th request in a burst of 3: HTTP %d", last)
	}
	if ra := hdr.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q", ra)
	}
	if e := oneError(t, body, "LIMIT_EXCEEDED"); e.Extensions["limit"] != "requestsPerSecond" || e.Extensions["value"] != 1.0 {
		t.Errorf("error %+v", e)
	}
	// Health checks are not limited.
	if status, _, _ := raw(t, "GET", srv.URL+"/healthz", "", nil, nil); status != 200 {
		t.Errorf("/healthz: HTTP %d", status)
	}
}

// limitCase is a request that must be refused by one limit.
type limitCase struct {
	name   string
	cfg    web.Limits
	query  string
	vars   map[string]any
	limit  string
	value  float64
	actual float64 // 0: not checked
}

func repeat(n int, f func(i int) string) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(f(i))
		b.WriteByte(' ')
	}
	return b.String()
}

func nested(n int, leaf any) any {
	for range n {
		leaf = map[string]any{"not": leaf}
	}
	return leaf
}

func TestLimits(t *testing.T) {
	t.Parallel()
	g := sharedGateway(t, sqliteBackend)
	ids := make([]any, 2001)
	for i := range ids {
		ids[i] = fmt.Sprint(i + 1)
	}
	cases := []limitCase{
		{name: "10,000 repeated fields", query: "{ " + repeat(10000, func(int) string { return "__typename" }) + "}", limit: "tokens", value: 5000},
		{name: "2,000 aliases", query: "{ " + repeat(2000, func(i int) string { return fmt.Sprintf("a%d: __typename", i) }) + "}", limit: "tokens", value: 5000},
		{name: "1,500 aliases", query: "{ " + repeat(1500, func(i int) string { return fmt.Sprintf("a%d: __typename", i) }) + "}", limit: "aliases", value: 100, actual: 1500},
		{name: "repeated fields", query: "{ " + repeat(21, func(int) string { return "__typename" }) + "}", limit: "repeatedFields", value: 20},
		{name: "repeated fields through fragments", query: `{ customers(first: 1) { nodes { ...A ...B } } }
			fragment A on CustomerConnection { id ...C ...C ...C ...C ...C } fragment B on CustomerConnection { ...C ...C ...C ...C ...C ...C }
			fragment C on CustomerConnection { id id }`, limit: "repeatedFields", value: 20},
		{name: "fragment bomb", query: `{ ...F1 } ` + repeat(15, func(i int) string {
			return fmt.Sprintf("fragment F%d on Query { ...F%d ...F%d }", i+1, i+2, i+2)
		}) + " fragment F16 on Query { mesh { products } }", limit: "repeatedFields", value: 20},
		{name: "fields", cfg: web.Limits{Fields: 10}, query: `{ customers(first: 1) { nodes { id name email country segment createdAt updatedAt phone } totalCount } }`, limit: "fields", value: 10},
		{name: "root fields", cfg: web.Limits{RootFields: 3}, query: `{ a: mesh { products } b: mesh { products } c: mesh { products } d: mesh { products } }`, limit: "rootFields", value: 3, actual: 4},
		{name: "directives", query: "{ " + repeat(60, func(i int) string { return fmt.Sprintf("a%d: __typename @include(if: true)", i) }) + "}", limit: "directives", value: 50, actual: 60},
		{name: "depth", query: `{ customers(first: 1) { nodes { orders(first: 1) { nodes { customer { orders(first: 1) { nodes { customer { orders(first: 1) { nodes { customer { orders(first: 1) { nodes { id } } } } } } } } } } } } } }`, limit: "depth", value: 12, actual: 13},
		{name: "introspection depth", query: `{ __schema { types { fields { type { fields { type { fields { type { fields { type { name } } } } } } } } } } }`, limit: "introspectionDepth", value: 3, actual: 4},
		{name: "cost: the amplification of issue 11", query: `{ customers(first: 1000) { nodes { orders(first: 1000) { nodes { id total } } } } }`, limit: "cost", value: 50000, actual: 2_002_002},
		{name: "cost through variables", query: `query($n: Int) { customers(first: $n) { nodes { id orders(last: $n) { nodes { id } } } } }`, vars: map[string]any{"n": 1000}, limit: "cost", value: 50000, actual: 1_003_002},
		{name: "cost of three levels", query: `{ customers(first: 100) { nodes { orders(first: 100) { nodes { lines { item { sku } } } } } } }`, limit: "cost", value: 50000},
		{name: "cost of default pages", cfg: web.Limits{Cost: 5000}, query: `{ customers { nodes { id orders { nodes { id } } } } }`, limit: "cost", value: 5000, actual: 10_302},
		{name: "where depth", query: `query($w: CustomerWhere) { customers(where: $w) { nodes { id } } }`, vars: map[string]any{"w": nested(11, map[string]any{"name": map[string]any{"eq": "x"}})}, limit: "whereDepth", value: 10, actual: 13},
		{name: "where depth in a literal", query: `{ customers(where: {not: {not: {not: {not: {not: {not: {not: {not: {not: {not: {id: {eq: 1}}}}}}}}}}}}) { nodes { id } } }`, limit: "whereDepth", value: 10, actual: 12},
		{name: "input depth before validation", query: `{ customers(where: ` + strings.Repeat("{not: ", 30) + `{id: {eq: 1}}` + strings.Repeat("}", 30) + `) { nodes { id } } }`, limit: "inputDepth", value: 22},
		{name: "input depth of a list", query: `{ customers(orderBy: ` + strings.Repeat("[", 23) + strings.Repeat("]", 23) + `) { nodes { id } } }`, limit: "inputDepth", value: 22},
		{name: "where size", query: `query($w: CustomerWhere) { customers(where: $w) { nodes { id } } }`, vars: map[string]any{"w": map[string]any{"id": map[string]any{"in": ids}}}, limit: "whereNodes", value: 2000, actual: 2004},
		{name: "having size", cfg: web.Limits{WhereNodes: 5}, query: `{ ordersAggregate(groupBy: [STATUS], having: {count: {gt: 1}, sum: {total: {gt: 5}}}) { count } }`, limit: "whereNodes", value: 5},
	}
	servers := map[web.Limits]string{}
	for _, c := range cases {
		if _, ok := servers[c.cfg]; !ok {
			servers[c.cfg] = edgeServer(t, g.mesh, web.Config{Limits: c.cfg}).URL
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"query": c.query, "variables": c.vars})
			status, _, b := raw(t, "POST", servers[c.cfg]+"/graphql", "application/json", bytes.NewReader(body), nil)
			var r struct {
				Data       json.RawMessage
				Errors     []gqlError
				Extensions map[string]any
			}
			if err := json.Unmarshal(b, &r); err != nil || status != 200 || len(r.Errors) != 1 {
				t.Fatalf("HTTP %d %.600s", status, b)
			}
			e := r.Errors[0]
			if e.code() != "LIMIT_EXCEEDED" || e.Extensions["limit"] != c.limit || e.Extensions["value"] != c.value {
				t.Fatalf("error %+v, want limit %s value %v", e, c.limit, c.value)
			}
			if c.actual != 0 && e.Extensions["actual"] != c.actual {
				t.Errorf("actual %v, want %v", e.Extensions["actual"], c.actual)
			}
			if r.Data != nil && string(r.Data) != "null" {
				t.Errorf("data: %s", r.Data)
			}
			if _, ok := r.Extensions["cost"]; !ok {
				t.Errorf("no cost in the extensions: %s", b)
			}
		})
	}
	t.Run("refused before validation", func(t *testing.T) {
		// The same document with a field that does not exist: the limit
		// answers, validation never ran.
		r := g.post(t, "{ "+repeat(30, func(int) string { return "noSuchField" })+"}", nil)
		if len(r.Errors) != 1 || r.Errors[0].Extensions["limit"] != "repeatedFields" {
			t.Errorf("errors %v", r.Errors)
		}
	})
}

// readmeQueries are the examples of the README: the default limits must
// let every one through.
var readmeQueries = []string{
	`{
  orders(first: 2, where: {status: {in: [PLACED, RESERVED]}, total: {gte: 100}},
         orderBy: [{field: PLACED_AT, direction: DESC}]) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id total status customer { name country } lines { quantity item { sku price } } }
  }
}`,
	`{
  ordersAggregate(where: {status: {ne: CANCELLED}}, groupBy: [PLACED_DATE],
                  having: {sum: {total: {gt: 5000}}}) {
    group { placedDate } count sum { total } avg { total }
  }
}`,
	`{
  customer(id: 5) { name history { nodes { sequence op actor at before after } } }
  auditLog(product: "orders", entity: "Order", op: UPDATE, since: "2026-11-01T00:00:00Z", first: 10) {
    nodes { sequence key op after }
  }
}`,
	`{
  order(id: 20001) {
    status
    reservation { status lines { quantity short item { sku stock } } }
    customer { value { orders revenue lastOrderAt } }
  }
}`,
	`{ consumerLag { product source appliedSequence appliedAt latestSequence lag } }`,
	`{
  catalog(pii: true) {
    name owner domain kind
    entities { name topic fields { name type sqlType classification pii description } rowCount }
    consumers { consumer topic } inputs { producer entity topic }
    freshness { sequence lastChangedAt }
  }
}`,
	`{ customers(first: 1000) { totalCount nodes { id name email country segment createdAt orders(first: 5) { nodes { id total status } } } } }`,
	introspectionQuery,
}

// introspectionQuery is graphql-js's getIntrospectionQuery(), as GraphiQL
// and code generators send it.
const introspectionQuery = `query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
}`

func TestDefaultLimitsLetTheExamplesThrough(t *testing.T) {
	t.Parallel()
	g := sharedGateway(t, sqliteBackend)
	srv := edgeServer(t, g.mesh, web.Config{})
	for i, q := range readmeQueries {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"query": q})
			status, _, b := raw(t, "POST", srv.URL+"/graphql", "application/json", bytes.NewReader(body), nil)
			var r struct {
				Errors     []gqlError
				Extensions struct {
					Cost struct{ Requested, Limit int }
				}
			}
			json.Unmarshal(b, &r)
			if status != 200 || len(r.Errors) > 0 {
				t.Fatalf("HTTP %d %v", status, r.Errors)
			}
			if r.Extensions.Cost.Limit != 50000 || r.Extensions.Cost.Requested <= 0 || r.Extensions.Cost.Requested > 50000 {
				t.Errorf("cost %+v", r.Extensions.Cost)
			}
			t.Logf("cost %d", r.Extensions.Cost.Requested)
		})
	}
	t.Run("cost of a simple page", func(t *testing.T) {
		status, _, b := raw(t, "POST", srv.URL+"/graphql", "application/json", strings.NewReader(`{"query": "{ customers(first: 3) { totalCount nodes { id name } } }"}`), nil)
		if status != 200 || !bytes.Contains(b, []byte(`"extensions":{"cost":{"limit":50000,"requested":9}}`)) {
			t.Errorf("HTTP %d %s", status, b)
		}
	})
}

// deadlineHook records, for every SQL statement, how far its context's
// deadline was.
type deadlineHook struct {
	mu   sync.Mutex
	left []time.Duration // -1: no deadline
}

func (h *deadlineHook) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d, ok := ctx.Deadline(); ok {
		h.left = append(h.left, time.Until(d))
	} else {
		h.left = append(h.left, -1)
	}
	return ctx
}

func (h *deadlineHook) AfterQuery(context.Context, *bun.QueryEvent) {}

// TestQueryDeadlineReachesSQL: every statement a query runs — lists,
// batched lookups, nested connections, aggregates — carries the query's
// deadline in its context.
func TestQueryDeadlineReachesSQL(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		stores := newStoreSet(t, backend)
		hook := &deadlineHook{}
		mesh, err := demo.Open(t.Context(), stores.dsn, hook)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { mesh.Close() })
		if _, err := mesh.Seed(t.Context(), 0.005, nil); err != nil {
			t.Fatal(err)
		}
		srv := edgeServer(t, mesh, web.Config{QueryTimeout: 7 * time.Second})
		hook.mu.Lock()
		hook.left = nil
		hook.mu.Unlock()
		status, _, r := call(t, srv, "", `{
  customers(first: 5) { totalCount nodes { id orders(first: 3) { nodes { id lines { quantity item { sku sales { units } } } customer { name } } } interactions(first: 2) { nodes { id } } value { revenue } history { nodes { sequence } } } }
  ordersAggregate(groupBy: [STATUS]) { count }
  auditLog(product: "orders", first: 2) { nodes { sequence } }
}`, nil)
		if status != 200 || len(r.Errors) > 0 {
			t.Fatalf("HTTP %d %v", status, r.Errors)
		}
		hook.mu.Lock()
		defer hook.mu.Unlock()
		if len(hook.left) < 5 {
			t.Fatalf("only %d statements", len(hook.left))
		}
		for i, d := range hook.left {
			if d < 0 || d > 7*time.Second {
				t.Errorf("statement %d: deadline in %v, want within the 7s query timeout", i, d)
			}
		}
	})
}
