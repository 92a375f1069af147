package main

// Authorization through the real server (run: flags, stores, Kafka, hub,
// websockets), on SQLite and PostgreSQL: the role matrix of every entry
// point, PII masked everywhere, the read-access audit, row policies giving
// the same rows through every path, the aggregate group limit and the
// actor of reactions.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/gorilla/websocket"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/web/auth"
)

// jwtFor signs a token for sub with roles and further claims.
func jwtFor(sub string, roles []string, extra map[string]any) string {
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	c := map[string]any{"sub": sub, "iss": edgeIssuer, "aud": edgeAudience, "exp": time.Now().Add(time.Hour).Unix(),
		"iat": time.Now().Unix(), "roles": roles}
	for k, v := range extra {
		c[k] = v
	}
	in := enc(map[string]any{"alg": "HS256", "typ": "JWT"}) + "." + enc(c)
	mac := hmac.New(sha256.New, []byte(edgeSecret))
	mac.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// jwtFlags turn authentication on with HS256 JWTs (and the extra flags),
// without a rate limit (the tests poll).
func jwtFlags(extra ...string) []string {
	return append([]string{"--jwt-hs256-secret", edgeSecret, "--jwt-issuer", edgeIssuer, "--jwt-audience", edgeAudience,
		"--rate-limit", "0"}, extra...)
}

// authResponse is a GraphQL response with its errors' paths.
type authResponse struct {
	Data      map[string]any `json:"data"`
	Errors    []authError    `json:"errors"`
	RequestID string         `json:"-"`
}

type authError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

func (e authError) path() string {
	parts := make([]string, len(e.Path))
	for i, p := range e.Path {
		parts[i] = fmt.Sprint(p)
	}
	return strings.Join(parts, ".")
}

// as posts a query with the token as bearer.
func (g *gateway) as(t testing.TB, token, query string, vars map[string]any) authResponse {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, g.base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /graphql: %v", err)
	}
	defer resp.Body.Close()
	var out authResponse
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("HTTP %d, not GraphQL: %s", resp.StatusCode, raw)
	}
	out.RequestID = resp.Header.Get("X-Request-Id")
	return out
}

// ok fails on any error and returns the data.
func (r authResponse) ok(t testing.TB) map[string]any {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("unexpected errors: %+v", r.Errors)
	}
	return r.Data
}

// forbidden checks that the errors are exactly FORBIDDEN ones at the paths
// (in any order) and returns the (partial) data.
func (r authResponse) forbidden(t testing.TB, paths ...string) map[string]any {
	t.Helper()
	var got []string
	for _, e := range r.Errors {
		if e.Extensions["code"] != "FORBIDDEN" {
			t.Fatalf("error %q with code %v, want FORBIDDEN", e.Message, e.Extensions["code"])
		}
		got = append(got, e.path())
	}
	sort.Strings(got)
	want := slices.Clone(paths)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("FORBIDDEN at %v, want at %v (%+v)", got, want, r.Errors)
	}
	return r.Data
}

// dialAs opens a graphql-transport-ws socket authenticated with token.
func dialAs(t testing.TB, g *gateway, token string) *wsClient {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial("ws"+strings.TrimPrefix(g.base, "http")+"/graphql", nil)
	if err != nil {
		t.Fatalf("dial websocket: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	w := &wsClient{t: t, c: c, proto: "graphql-transport-ws", msgs: make(chan wsMessage, 4096)}
	if err := c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + token}}); err != nil {
		t.Fatal(err)
	}
	var ack wsMessage
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("connection_ack: %v %+v", err, ack)
	}
	c.SetReadDeadline(time.Time{})
	go func() {
		defer close(w.msgs)
		for {
			var m wsMessage
			if err := c.ReadJSON(&m); err != nil {
				return
			}
			switch m.Type {
			case "ping":
				c.WriteJSON(map[string]any{"type": "pong"})
			case "pong":
			default:
				w.msgs <- m
			}
		}
	}()
	return w
}

// refused subscribes and expects the subscription to be refused with
// FORBIDDEN (the socket stays open).
func (w *wsClient) refused(id, query string, vars map[string]any) {
	w.t.Helper()
	w.subscribe(id, query, vars)
	for {
		m, ok := w.next(10 * time.Second)
		if !ok {
			w.t.Fatalf("subscription %s: no answer", id)
		}
		if m.ID != id {
			continue
		}
		// Refused by its resolver: one result with the error (and no
		// data), then complete.
		if m.Type != "next" || !strings.Contains(string(m.Payload), `"code":"FORBIDDEN"`) || !strings.Contains(string(m.Payload), `"data":null`) {
			w.t.Fatalf("subscription %s: %s %s, want a result with the error FORBIDDEN", id, m.Type, m.Payload)
		}
		if m, ok := w.next(10 * time.Second); !ok || m.ID != id || m.Type != "complete" {
			w.t.Fatalf("subscription %s: %s %s after the refusal, want complete", id, m.Type, m.Payload)
		}
		return
	}
}

// firstOf is firstEvent for subscription id on a socket carrying several.
func (w *wsClient) firstOf(id, field string, mutate func(i int)) map[string]any {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		mutate(i)
		for {
			m, ok := w.next(200 * time.Millisecond)
			if !ok {
				break
			}
			if m.ID != id {
				continue
			}
			if m.Type != "next" {
				w.t.Fatalf("subscription %s: %s %s", id, m.Type, m.Payload)
			}
			var e event
			if err := json.Unmarshal(m.Payload, &e); err != nil || len(e.Errors) > 0 {
				w.t.Fatalf("event: %v %+v", err, e.Errors)
			}
			return e.Data[field]
		}
	}
	w.t.Fatalf("subscription %s never delivered", id)
	return nil
}

// download GETs a path with the token and returns the status.
func (g *gateway) download(t testing.TB, token, path string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func TestRoleMatrix(t *testing.T) {
	backends(t, func(t *testing.T, args []string) {
		g := startGateway(t, append(jwtFlags(), args...)...)
		var (
			admin    = jwtFor("admin", []string{"admin"}, nil)
			reader   = jwtFor("reader", []string{"customers:read", "orders:read"}, nil)
			orders   = jwtFor("orders-only", []string{"orders:read"}, nil)
			writer   = jwtFor("writer", []string{"customers:write"}, nil)
			auditor  = jwtFor("auditor", []string{"customers:read", "audit:read"}, nil)
			catalog  = jwtFor("steward", []string{"catalog:read"}, nil)
			nobody   = jwtFor("nobody", nil, nil)
			customer = `{ customers(first: 1) { nodes { id } } }`
		)
		t.Run("queries", func(t *testing.T) {
			g.as(t, reader, customer, nil).ok(t)
			g.as(t, admin, customer, nil).ok(t)
			g.as(t, orders, customer, nil).forbidden(t, "customers")
			g.as(t, nobody, customer, nil).forbidden(t, "customers")
			g.as(t, nobody, `{ mesh { version } }`, nil).ok(t)
			// Partial data: the orders, without their customers.
			d := g.as(t, orders, `{ customers(first: 1) { nodes { id } } orders(first: 2) { nodes { id customer { id } } } }`, nil).
				forbidden(t, "customers", "orders.nodes.0.customer", "orders.nodes.1.customer")
			if d["customers"] != nil || dig(d, "orders", "nodes", 1, "id") == nil || dig(d, "orders", "nodes", 0, "customer") != nil {
				t.Fatalf("partial data %v", d)
			}
			g.as(t, reader, `{ orders(first: 2) { nodes { id customer { id } } } }`, nil).ok(t)
			// A nested connection of another product.
			g.as(t, auditor, `{ customer(id: 1) { id orders(first: 1) { totalCount } } }`, nil).forbidden(t, "customer.orders")
		})
		t.Run("mutations", func(t *testing.T) {
			const m = `mutation { updateCustomer(id: 1, input: {segment: CONSUMER}) { id } }`
			g.as(t, writer, m, nil).ok(t)
			g.as(t, reader, m, nil).forbidden(t, "updateCustomer")
			g.as(t, writer, `mutation { cancelOrder(id: 1) { id } }`, nil).forbidden(t, "cancelOrder")
		})
		t.Run("federation", func(t *testing.T) {
			const q = `query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id } ... on Order { id } } }`
			reps := map[string]any{"r": []any{map[string]any{"__typename": "Customer", "id": "1"}, map[string]any{"__typename": "Order", "id": "1"}}}
			d := g.as(t, orders, q, reps).forbidden(t, "_entities")
			if dig(d, "_entities", 0) != nil || dig(d, "_entities", 1, "id") != "1" {
				t.Fatalf("_entities %v", d)
			}
			if d := g.as(t, reader, q, reps).ok(t); dig(d, "_entities", 0, "id") != "1" {
				t.Fatalf("_entities %v", d)
			}
			g.as(t, catalog, `{ _service { sdl } }`, nil).ok(t)
			g.as(t, reader, `{ _service { sdl } }`, nil).forbidden(t, "_service")
		})
		t.Run("audit", func(t *testing.T) {
			g.as(t, auditor, `{ auditLog(product: "customers", first: 1) { nodes { sequence } } }`, nil).ok(t)
			g.as(t, reader, `{ auditLog(product: "customers", first: 1) { nodes { sequence } } }`, nil).forbidden(t, "auditLog")
			g.as(t, auditor, `{ auditLog(product: "orders", first: 1) { nodes { sequence } } }`, nil).forbidden(t, "auditLog")
			g.as(t, auditor, `{ customer(id: 1) { id history(first: 1) { nodes { op } } } }`, nil).ok(t)
			if d := g.as(t, reader, `{ customer(id: 1) { id history(first: 1) { nodes { op } } } }`, nil).forbidden(t, "customer.history"); dig(d, "customer", "id") != "1" {
				t.Fatalf("partial data %v", d)
			}
			g.as(t, auditor, `{ piiReads(product: "customers") { totalCount } }`, nil).ok(t)
			g.as(t, reader, `{ piiReads(product: "customers") { totalCount } }`, nil).forbidden(t, "piiReads")
			g.as(t, auditor, `{ piiReads(product: "orders") { totalCount } }`, nil).forbidden(t, "piiReads")
		})
		t.Run("catalog and introspection", func(t *testing.T) {
			g.as(t, catalog, `{ catalog { name } }`, nil).ok(t)
			g.as(t, reader, `{ catalog { name } }`, nil).forbidden(t, "catalog")
			g.as(t, catalog, `{ __schema { queryType { name } } }`, nil).ok(t)
			g.as(t, catalog, `{ __type(name: "Customer") { name } }`, nil).ok(t)
			g.as(t, reader, `{ __schema { queryType { name } } }`, nil).forbidden(t, "__schema")
			g.as(t, reader, `{ __type(name: "Customer") { name } }`, nil).forbidden(t, "__type")
			for _, p := range []string{"/catalog/", "/catalog/customers.graphql", "/catalog/customers/odps.yaml", "/catalog/customers/odcs.yaml"} {
				if s := g.download(t, catalog, p); s != 200 {
					t.Errorf("%s as a catalog reader: HTTP %d", p, s)
				}
				if s := g.download(t, reader, p); s != 403 {
					t.Errorf("%s without catalog:read: HTTP %d, want 403", p, s)
				}
			}
		})
		t.Run("subscriptions", func(t *testing.T) {
			mutate := func(int) {
				g.as(t, admin, `mutation { updateCustomer(id: 2, input: {segment: ENTERPRISE}) { id } }`, nil).ok(t)
				g.as(t, admin, `mutation { placeOrder(customerId: 2, lines: [{itemId: 1, quantity: 1}]) { id } }`, nil).ok(t)
			}
			ws := dialAs(t, g, orders)
			ws.refused("1", `subscription { customerChanged { op } }`, nil)
			ws.refused("2", `subscription { changes(products: ["customers"]) { key } }`, nil)
			ws.refused("3", `subscription { changes(entities: ["Customer"]) { key } }`, nil)
			ws.refused("4", `subscription { auditEntries(product: "orders") { key } }`, nil)
			ws.refused("5", `subscription { piiReads { sequence } }`, nil)
			// Without products: the products it may read, orders only.
			ws.subscribe("6", `subscription { changes { product key } }`, nil)
			if ev := ws.firstOf("6", "changes", mutate); ev["product"] != "orders" {
				t.Fatalf("an orders:read caller got %v", ev)
			}
			ws.subscribe("7", `subscription { orderChanged { op } }`, nil)
			ws.firstOf("7", "orderChanged", mutate)

			wa := dialAs(t, g, auditor)
			wa.subscribe("1", `subscription { auditEntries { product key } }`, nil)
			if ev := wa.firstOf("1", "auditEntries", mutate); ev["product"] != "customers" {
				t.Fatalf("a customers:read auditor got %v", ev)
			}
			wr := dialAs(t, g, reader)
			wr.refused("1", `subscription { auditEntries(product: "customers") { key } }`, nil)
		})
	})
}

func TestPIIMaskedEverywhere(t *testing.T) {
	backends(t, func(t *testing.T, args []string) {
		g := startGateway(t, append(jwtFlags(), args...)...)
		roles := []string{"customers:read", "orders:read", "engagement:read", "audit:read"}
		masked := jwtFor("masked", roles, nil)
		clear := jwtFor("clear", append(roles, "pii:read"), nil)
		admin := jwtFor("admin", []string{"admin"}, nil)
		isMasked := func(v any) bool { return v == "***" || v == nil }
		isEmail := func(v any) bool { s, _ := v.(string); return strings.Contains(s, "@") }

		queries := []struct {
			name, q string
			email   func(d map[string]any) []any
		}{
			{"query", `{ customers(first: 3) { nodes { name email phone } } }`, func(d map[string]any) []any {
				var out []any
				for _, n := range dig(d, "customers", "nodes").([]any) {
					out = append(out, dig(n, "email"))
				}
				return out
			}},
			{"nested", `{ orders(first: 3) { nodes { customer { email } } } }`, func(d map[string]any) []any {
				var out []any
				for _, n := range dig(d, "orders", "nodes").([]any) {
					out = append(out, dig(n, "customer", "email"))
				}
				return out
			}},
			{"federation", `{ _entities(representations: [{__typename: "Customer", id: "1"}]) { ... on Customer { email } } }`, func(d map[string]any) []any {
				return []any{dig(d, "_entities", 0, "email")}
			}},
			{"audit log", `{ auditLog(product: "customers", entity: "Customer", first: 3) { nodes { after } } }`, func(d map[string]any) []any {
				var out []any
				for _, n := range dig(d, "auditLog", "nodes").([]any) {
					out = append(out, dig(n, "after", "email"))
				}
				return out
			}},
			{"history", `{ customer(id: 1) { history { nodes { after } } } }`, func(d map[string]any) []any {
				return []any{dig(d, "customer", "history", "nodes", 0, "after", "email")}
			}},
		}
		for _, c := range queries {
			for _, v := range c.email(g.as(t, masked, c.q, nil).ok(t)) {
				if v != "***" {
					t.Errorf("%s without pii:read: e-mail %v, want ***", c.name, v)
				}
			}
			for _, v := range c.email(g.as(t, clear, c.q, nil).ok(t)) {
				if !isEmail(v) {
					t.Errorf("%s with pii:read: e-mail %v", c.name, v)
				}
			}
		}
		d := g.as(t, masked, `{ customers(first: 20) { nodes { name phone country } } }`, nil).ok(t)
		for _, n := range dig(d, "customers", "nodes").([]any) {
			if dig(n, "name") != "***" || !isMasked(dig(n, "phone")) || dig(n, "country") == "***" {
				t.Fatalf("masked customer %v", n)
			}
		}

		t.Run("subscriptions", func(t *testing.T) {
			for _, c := range []struct {
				token string
				check func(any) bool
			}{{masked, func(v any) bool { return v == "***" }}, {clear, isEmail}} {
				ws := dialAs(t, g, c.token)
				ws.subscribe("typed", `subscription { customerChanged { after { email } before { email } } }`, nil)
				ws.subscribe("json", `subscription { changes(products: ["customers"]) { after before } }`, nil)
				ws.subscribe("audit", `subscription { auditEntries(product: "customers") { after } }`, nil)
				mutate := func(i int) {
					g.as(t, admin, `mutation($n: String!) { updateCustomer(id: 3, input: {name: $n}) { id } }`, map[string]any{"n": fmt.Sprint("Pat ", i)}).ok(t)
				}
				for id, path := range map[string][]any{"typed": {"after", "email"}, "json": {"after", "email"}, "audit": {"after", "email"}} {
					if ev := ws.firstOf(id, map[string]string{"typed": "customerChanged", "json": "changes", "audit": "auditEntries"}[id], mutate); !c.check(dig(ev, path...)) {
						t.Errorf("%s event %v", id, ev)
					}
				}
			}
		})

		t.Run("filtering, sorting, grouping refused", func(t *testing.T) {
			for q, field := range map[string]string{
				`{ customers(where: {email: {eq: "x@example.org"}}) { totalCount } }`:                                  "where.email",
				`{ customers(where: {or: [{country: {eq: "SE"}}, {not: {name: {startsWith: "A"}}}]}) { totalCount } }`: "where.or[1].not.name",
				`{ customers(orderBy: [{field: COUNTRY}, {field: EMAIL}]) { totalCount } }`:                            "orderBy[1].field",
				`{ customer(id: 1) { interactions(where: {note: {contains: "a"}}) { totalCount } } }`:                  "where.note",
			} {
				r := g.as(t, masked, q, nil)
				if len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != "FORBIDDEN" || r.Errors[0].Extensions["field"] != field {
					t.Errorf("%s: %+v, want FORBIDDEN field %s", q, r.Errors, field)
				}
				g.as(t, clear, q, nil).ok(t)
			}
			ws := dialAs(t, g, masked)
			ws.refused("1", `subscription { customerChanged(where: {email: {eq: "x"}}) { op } }`, nil)
		})
	})
}

// TestKafkaMaskPII: with --kafka-mask-pii the change events on Kafka carry
// masked personal data; the store (and so the audit log) keeps the values.
func TestKafkaMaskPII(t *testing.T) {
	for _, mask := range []bool{false, true} {
		t.Run(fmt.Sprint("mask=", mask), func(t *testing.T) {
			g := startGateway(t, "--kafka-mask-pii="+strconv.FormatBool(mask))
			d := g.gql(t, `mutation { createCustomer(input: {name: "Kay Fka", email: "kay@example.org", phone: "+4915112345678", country: "DE", segment: CONSUMER}) { id } }`, nil).must(t)
			key := fmt.Sprintf(`{"id":%v}`, dig(d, "createCustomer", "id"))
			after := readEvent(t, g.kafka, "meshgate.customers.customers", key)
			want := map[string]any{"name": "Kay Fka", "email": "kay@example.org", "phone": "+4915112345678", "country": "DE"}
			if mask {
				want = map[string]any{"name": "***", "email": "***", "phone": "***", "country": "DE"}
			}
			for k, v := range want {
				if after[k] != v {
					t.Errorf("%s on Kafka: %v, want %v", k, after[k], v)
				}
			}
			log := g.gql(t, `{ auditLog(product: "customers", key: `+fmt.Sprint(dig(d, "createCustomer", "id"))+`) { nodes { after } } }`, nil).must(t)
			if e := dig(log, "auditLog", "nodes", 0, "after", "email"); e != "kay@example.org" {
				t.Errorf("the audit log keeps %v", e)
			}
		})
	}
}

// readEvent reads the after image of the change event with the key.
func readEvent(t *testing.T, broker, topic, key string) map[string]any {
	t.Helper()
	consumer, err := sarama.NewConsumer([]string{broker}, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var after map[string]any
	eventually(t, 30*time.Second, "the change event on Kafka", func() bool {
		parts, err := consumer.Partitions(topic)
		if err != nil {
			return false
		}
		for _, p := range parts {
			pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
			if err != nil {
				return false
			}
			hw := pc.HighWaterMarkOffset()
		read:
			for hw > 0 {
				select {
				case m := <-pc.Messages():
					if string(m.Key) == key {
						var env struct{ After map[string]any }
						json.Unmarshal(m.Value, &env)
						after = env.After
					}
					if m.Offset >= hw-1 {
						break read
					}
				case <-time.After(2 * time.Second):
					break read
				}
			}
			pc.Close()
		}
		return after != nil
	})
	return after
}

// piiReadsOf returns the read records of a request.
func piiReadsOf(t *testing.T, g *gateway, token, product, requestID string) []any {
	t.Helper()
	d := g.as(t, token, `query($p: String!, $r: String) { piiReads(product: $p, requestId: $r) { nodes { subject keyName operation requestId at reads { entity fields keys } } } }`,
		map[string]any{"p": product, "r": requestID}).ok(t)
	return dig(d, "piiReads", "nodes").([]any)
}

func TestReadAudit(t *testing.T) {
	backends(t, func(t *testing.T, args []string) {
		key, hash := auth.NewKey()
		g := startGateway(t, append(jwtFlags("--api-key", "etl="+hash+"=customers:read,engagement:read,pii:read"), args...)...)
		roles := []string{"customers:read", "engagement:read", "audit:read"}
		masked := jwtFor("masked", roles, nil)
		clear := jwtFor("clara", append(roles, "pii:read"), nil)
		auditor := jwtFor("auditor", []string{"customers:read", "engagement:read", "audit:read"}, nil)

		// A live follower of the read audit, started before the reads.
		ws := dialAs(t, g, auditor)
		ws.subscribe("reads", `subscription { piiReads { product subject operation requestId reads { entity fields keys } cursor } }`, nil)
		var live map[string]any
		ws.firstOf("reads", "piiReads", func(i int) {
			g.as(t, clear, `{ customers(first: 1) { nodes { email } } }`, nil).ok(t)
		})

		r := g.as(t, clear, `query Contacts { customers(first: 3) { nodes { id email phone country } } }`, nil)
		d := r.ok(t)
		var ids []string
		for _, n := range dig(d, "customers", "nodes").([]any) {
			ids = append(ids, dig(n, "id").(string))
		}
		recs := piiReadsOf(t, g, auditor, "customers", r.RequestID)
		if len(recs) != 1 {
			t.Fatalf("records of the request: %v", recs)
		}
		rec := recs[0].(map[string]any)
		reads := dig(rec, "reads").([]any)
		if rec["subject"] != "clara" || rec["keyName"] != nil || rec["operation"] != "Contacts" || rec["requestId"] != r.RequestID || len(reads) != 1 {
			t.Fatalf("record %v", rec)
		}
		fields := fmt.Sprint(dig(reads, 0, "fields"))
		if dig(reads, 0, "entity") != "Customer" || !strings.HasPrefix(fields, "[email") || fmt.Sprint(dig(reads, 0, "keys")) != fmt.Sprint(ids) {
			t.Fatalf("reads %v (ids %v)", reads, ids)
		}
		// The same record, live.
		for {
			ev, errs := ws.event("piiReads", 10*time.Second)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			if ev["requestId"] == r.RequestID {
				live = ev
				break
			}
		}
		if fmt.Sprint(live["reads"]) != fmt.Sprint(reads) || live["subject"] != "clara" {
			t.Fatalf("live record %v, queried %v", live, rec)
		}

		// Two products read in one request: one record each.
		r = g.as(t, clear, `{ customer(id: 1) { name interactions(first: 50) { nodes { id note } } } }`, nil)
		r.ok(t)
		if recs := piiReadsOf(t, g, auditor, "customers", r.RequestID); len(recs) != 1 {
			t.Fatalf("customers records %v", recs)
		}
		eng := piiReadsOf(t, g, auditor, "engagement", r.RequestID)
		withNote := 0
		for _, n := range dig(r.Data, "customer", "interactions", "nodes").([]any) {
			if dig(n, "note") != nil {
				withNote++
			}
		}
		if withNote > 0 && (len(eng) != 1 || len(dig(eng, 0, "reads", 0, "keys").([]any)) != withNote) {
			t.Fatalf("engagement records %v, %d notes returned", eng, withNote)
		}
		if withNote == 0 && len(eng) != 0 {
			t.Fatalf("engagement records %v, no note returned", eng)
		}

		// Nothing for masked reads, nor for reads without personal fields.
		for _, c := range []struct{ token, q string }{
			{masked, `{ customers(first: 3) { nodes { email name } } }`},
			{masked, `{ auditLog(product: "customers", first: 3) { nodes { after } } }`},
			{clear, `{ customers(first: 3) { nodes { id country segment } } }`},
		} {
			r := g.as(t, c.token, c.q, nil)
			r.ok(t)
			if recs := piiReadsOf(t, g, auditor, "customers", r.RequestID); len(recs) != 0 {
				t.Errorf("%s: records %v", c.q, recs)
			}
		}
		// Audit images count as reads; API keys are named.
		r = g.as(t, key, `{ customers(first: 2) { nodes { email } } }`, nil)
		r.ok(t)
		if recs := piiReadsOf(t, g, auditor, "customers", r.RequestID); len(recs) != 1 || dig(recs, 0, "subject") != "apikey:etl" || dig(recs, 0, "keyName") != "etl" {
			t.Fatalf("API key records %v", recs)
		}
		r = g.as(t, clear, `{ auditLog(product: "customers", entity: "Customer", first: 2) { nodes { key after } } }`, nil)
		r.ok(t)
		if recs := piiReadsOf(t, g, auditor, "customers", r.RequestID); len(recs) != 1 || !strings.Contains(fmt.Sprint(dig(recs, 0, "reads")), "email") {
			t.Fatalf("audit log records %v", recs)
		}

		// A subscription's events: recorded (gathered, written within a
		// second) for the reader of unmasked data only.
		admin := jwtFor("admin", []string{"admin"}, nil)
		for _, c := range []struct {
			token, op string
			want      bool
		}{{masked, "WatchMasked", false}, {clear, "WatchClear", true}} {
			w := dialAs(t, g, c.token)
			w.subscribe("w", `subscription `+c.op+` { customerChanged(where: {id: {eq: 4}}) { after { email } } }`, nil)
			w.firstOf("w", "customerChanged", func(i int) {
				g.as(t, admin, `mutation($n: String!) { updateCustomer(id: 4, input: {name: $n}) { id } }`, map[string]any{"n": fmt.Sprint("Wat ", i)}).ok(t)
			})
			const q = `{ piiReads(product: "customers", last: 50) { nodes { operation reads { keys } } } }`
			found := func() bool {
				for _, n := range dig(g.as(t, auditor, q, nil).ok(t), "piiReads", "nodes").([]any) {
					if dig(n, "operation") == c.op && fmt.Sprint(dig(n, "reads", 0, "keys")) == "[4]" {
						return true
					}
				}
				return false
			}
			if c.want {
				eventually(t, 10*time.Second, "the subscription's read record", found)
			} else if found() {
				t.Errorf("%s: a masked subscription was recorded", c.op)
			}
		}
	})
}

// TestReadAuditAcrossInstances: a read on one instance reaches the piiReads
// subscribers of another on the same stores.
func TestReadAuditAcrossInstances(t *testing.T) {
	stores := postgresStores(t)
	a := startGateway(t, append(jwtFlags(), stores...)...)
	b := startGateway(t, append(jwtFlags(), stores...)...)
	auditor := jwtFor("auditor", []string{"customers:read", "audit:read"}, nil)
	clear := jwtFor("clara", []string{"customers:read", "pii:read"}, nil)
	ws := dialAs(t, b, auditor)
	ws.subscribe("1", `subscription { piiReads(product: "customers") { requestId subject } }`, nil)
	sent := map[string]bool{}
	ev := ws.firstOf("1", "piiReads", func(int) {
		sent[a.as(t, clear, `{ customer(id: 1) { email } }`, nil).RequestID] = true
	})
	if ev["subject"] != "clara" || !sent[ev["requestId"].(string)] {
		t.Fatalf("record %v, requests %v", ev, sent)
	}
}

// TestReadAuditOff: --pii-read-audit=false records nothing.
func TestReadAuditOff(t *testing.T) {
	g := startGateway(t, "--pii-read-audit=false")
	r := g.gql(t, `{ customers(first: 3) { nodes { email } } }`, nil)
	r.must(t)
	d := g.gql(t, `{ piiReads(product: "customers") { totalCount } }`, nil).must(t)
	if n := dig(d, "piiReads", "totalCount"); n != 0.0 {
		t.Fatalf("%v records with the read audit off", n)
	}
}

func TestRowPolicies(t *testing.T) {
	backends(t, func(t *testing.T, args []string) {
		key, hash := auth.NewKey()
		g := startGateway(t, append(jwtFlags(
			"--seed-scale", "0.03",
			"--api-key", "nocountry="+hash+"=sales-de,customers:read",
			"--policies", `{"role": "sales-de", "entity": "Customer", "where": {"country": {"eq": "$claims.country"}}}`,
			"--policies", `[{"role": "sales-de", "entity": "Interaction", "where": {"channel": {"in": ["EMAIL", "PHONE"]}}}]`,
		), args...)...)
		admin := jwtFor("admin", []string{"admin"}, nil)
		roles := []string{"sales-de", "customers:read", "orders:read", "engagement:read", "audit:read", "pii:read"}

		// The truth, read by an administrator; the country with most
		// customers but not all is the caller's.
		all := dig(g.as(t, admin, `{ customers(first: 1000) { nodes { id country } } }`, nil).ok(t), "customers", "nodes").([]any)
		byCountry := map[string][]string{}
		countryOf := map[string]string{}
		for _, n := range all {
			c, id := dig(n, "country").(string), dig(n, "id").(string)
			byCountry[c] = append(byCountry[c], id)
			countryOf[id] = c
		}
		country := ""
		for c, ids := range byCountry {
			if len(ids) > len(byCountry[country]) && len(ids) < len(all) {
				country = c
			}
		}
		want := byCountry[country]
		sort.Strings(want)
		tok := jwtFor("dora", roles, map[string]any{"country": country})
		in := func(id any) bool { return countryOf[fmt.Sprint(id)] == country }
		ids := func(nodes any, path ...any) []string {
			var out []string
			for _, n := range nodes.([]any) {
				if v := dig(n, path...); v != nil {
					out = append(out, fmt.Sprint(v))
				}
			}
			sort.Strings(out)
			return slices.Compact(out)
		}
		same := func(what string, got []string) {
			t.Helper()
			if !slices.Equal(got, want) {
				t.Errorf("%s: %v, want the %s customers %v", what, got, country, want)
			}
		}

		t.Run("list", func(t *testing.T) {
			d := g.as(t, tok, `{ customers(first: 1000) { totalCount nodes { id } } }`, nil).ok(t)
			same("customers", ids(dig(d, "customers", "nodes"), "id"))
			if n := dig(d, "customers", "totalCount"); n != float64(len(want)) {
				t.Errorf("totalCount %v, want %d", n, len(want))
			}
			d = g.as(t, tok, `{ customers(first: 1000, where: {segment: {ne: ENTERPRISE}}, orderBy: [{field: NAME}]) { nodes { id segment } } }`, nil).ok(t)
			for _, n := range dig(d, "customers", "nodes").([]any) {
				if !in(dig(n, "id")) {
					t.Errorf("filtered list has %v", n)
				}
			}
		})
		t.Run("lookup", func(t *testing.T) {
			var q strings.Builder
			q.WriteString("{")
			for _, n := range all {
				id := dig(n, "id")
				fmt.Fprintf(&q, " c%v: customer(id: %v) { id }", id, id)
			}
			q.WriteString(" }")
			d := g.as(t, tok, q.String(), nil).ok(t)
			var got []string
			for _, v := range d {
				if v != nil {
					got = append(got, fmt.Sprint(dig(v, "id")))
				}
			}
			sort.Strings(got)
			same("lookups", got)
		})
		t.Run("aggregate", func(t *testing.T) {
			d := g.as(t, tok, `{ total: customersAggregate { count } byCountry: customersAggregate(groupBy: [COUNTRY]) { count group { country } } }`, nil).ok(t)
			if n := dig(d, "total", 0, "count"); n != float64(len(want)) {
				t.Errorf("count %v, want %d", n, len(want))
			}
			if g := dig(d, "byCountry").([]any); len(g) != 1 || dig(g, 0, "group", "country") != country {
				t.Errorf("groups %v", g)
			}
		})
		t.Run("nested lookups", func(t *testing.T) {
			d := g.as(t, tok, `{ orders(first: 1000) { nodes { customerId customer { id } } } interactions(first: 1000) { nodes { customerId customer { id } } } }`, nil).ok(t)
			for _, list := range []string{"orders", "interactions"} {
				var got []string
				for _, n := range dig(d, list, "nodes").([]any) {
					if c := dig(n, "customer", "id"); c != nil {
						got = append(got, c.(string))
					} else if in(dig(n, "customerId")) {
						t.Errorf("%s: customer %v of %v not found", list, dig(n, "customerId"), n)
					}
				}
				for _, id := range got {
					if !in(id) {
						t.Errorf("%s: customer %v outside the policy", list, id)
					}
				}
			}
		})
		t.Run("nested connections", func(t *testing.T) {
			truth := dig(g.as(t, admin, `{ interactions(first: 1000) { nodes { id customerId channel } } }`, nil).ok(t), "interactions", "nodes").([]any)
			var wantInteractions []string
			for _, n := range truth {
				if in(dig(n, "customerId")) && (dig(n, "channel") == "EMAIL" || dig(n, "channel") == "PHONE") {
					wantInteractions = append(wantInteractions, dig(n, "id").(string))
				}
			}
			sort.Strings(wantInteractions)
			d := g.as(t, tok, `{ customers(first: 100) { nodes { interactions(first: 100) { nodes { id } } } } }`, nil).ok(t)
			var got []string
			for _, c := range dig(d, "customers", "nodes").([]any) {
				got = append(got, ids(dig(c, "interactions", "nodes"), "id")...)
			}
			sort.Strings(got)
			if !slices.Equal(got, wantInteractions) {
				t.Errorf("interactions of the customers: %v, want %v", got, wantInteractions)
			}
		})
		t.Run("federation", func(t *testing.T) {
			var reps []any
			for _, n := range all {
				reps = append(reps, map[string]any{"__typename": "Customer", "id": dig(n, "id")})
			}
			d := g.as(t, tok, `query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id } } }`, map[string]any{"r": reps}).ok(t)
			same("_entities", ids(dig(d, "_entities"), "id"))
		})
		t.Run("audit", func(t *testing.T) {
			d := g.as(t, tok, `{ auditLog(product: "customers", entity: "Customer", first: 1000) { totalCount nodes { key } } }`, nil).ok(t)
			same("auditLog", ids(dig(d, "auditLog", "nodes"), "key"))
			if n := dig(d, "auditLog", "totalCount"); n != float64(len(dig(d, "auditLog", "nodes").([]any))) {
				t.Errorf("auditLog totalCount %v", n)
			}
			// Paged by two, the same entries.
			var paged []string
			after := any(nil)
			for {
				d := g.as(t, tok, `query($a: String) { auditLog(product: "customers", entity: "Customer", first: 2, after: $a) { nodes { key } pageInfo { hasNextPage endCursor } } }`, map[string]any{"a": after}).ok(t)
				paged = append(paged, ids(dig(d, "auditLog", "nodes"), "key")...)
				if dig(d, "auditLog", "pageInfo", "hasNextPage") != true {
					break
				}
				after = dig(d, "auditLog", "pageInfo", "endCursor")
			}
			sort.Strings(paged)
			same("auditLog paged", paged)
			var q strings.Builder
			q.WriteString("{")
			for _, id := range want {
				fmt.Fprintf(&q, " c%s: customer(id: %s) { history { nodes { key } } }", id, id)
			}
			q.WriteString(" }")
			var got []string
			for _, v := range g.as(t, tok, q.String(), nil).ok(t) {
				got = append(got, ids(dig(v, "history", "nodes"), "key")...)
			}
			sort.Strings(got)
			same("history", got)
		})
		t.Run("subscriptions", func(t *testing.T) {
			outside := ""
			for id, c := range countryOf {
				if c != country {
					outside = id
				}
			}
			ws := dialAs(t, g, tok)
			ws.subscribe("typed", `subscription { customerChanged { after { id } } }`, nil)
			ws.subscribe("json", `subscription { changes(products: ["customers"]) { key } }`, nil)
			ws.subscribe("audit", `subscription { auditEntries(product: "customers") { key } }`, nil)
			mutate := func(i int) {
				g.as(t, admin, fmt.Sprintf(`mutation { a: updateCustomer(id: %s, input: {name: "Out %d"}) { id } b: updateCustomer(id: %s, input: {name: "In %d"}) { id } }`, outside, i, want[0], i), nil).ok(t)
			}
			for id, path := range map[string][]any{"typed": {"after", "id"}, "json": {"key"}, "audit": {"key"}} {
				field := map[string]string{"typed": "customerChanged", "json": "changes", "audit": "auditEntries"}[id]
				if ev := ws.firstOf(id, field, mutate); fmt.Sprint(dig(ev, path...)) != want[0] {
					t.Errorf("%s: first event %v, want customer %s (the update of %s is outside the policy)", id, ev, want[0], outside)
				}
			}
		})
		t.Run("missing claim and admin", func(t *testing.T) {
			d := g.as(t, key, `{ customers(first: 1000) { totalCount } customer(id: 1) { id } }`, nil).ok(t)
			if dig(d, "customers", "totalCount") != 0.0 || d["customer"] != nil {
				t.Errorf("a caller without the country claim saw %v", d)
			}
			d = g.as(t, admin, `{ customers(first: 1000) { totalCount } }`, nil).ok(t)
			if dig(d, "customers", "totalCount") != float64(len(all)) {
				t.Errorf("admin saw %v", d)
			}
		})
	})
}

func TestPolicyConfigErrors(t *testing.T) {
	for bad, msg := range map[string]string{
		`{"role": "r", "entity": "Nope", "where": {}}`:                                  "unknown entity",
		`{"role": "r", "entity": "Customer", "where": {"shoeSize": {"eq": 1}}}`:         `cannot be filtered on "shoeSize"`,
		`{"role": "r", "entity": "Customer", "where": {"country": {"like": "D%"}}}`:     `unknown operator "like"`,
		`{"role": "r", "entity": "Customer", "where": {"country": {"eq": "$claims."}}}`: "not a claim reference",
		`{"role": "r", "entity": "Customer", "where": {"id": {"eq": "DE"}}}`:            "must be an integer",
		`{"role": "r", "entity": "Customer", "where": {"segment": {"eq": "VIP"}}}`:      "must be a value of CustomerSegment",
		`{"role": "", "entity": "Customer", "where": {}}`:                               "needs a role",
		`{"role": "r", "entity": "Customer", "wher": {}}`:                               "unknown field",
	} {
		err := run(t.Context(), []string{"--policies", bad, "--data-dir", t.TempDir()}, func(string) string { return "" }, io.Discard, io.Discard)
		var ue usageError
		if err == nil || !asUsage(err, &ue) || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want a usage error saying %q", bad, err, msg)
		}
	}
}

// TestGroupLimit: more groups than --max-groups is LIMIT_EXCEEDED.
func TestGroupLimit(t *testing.T) {
	g := startGateway(t, "--max-groups", "3")
	r := g.gql(t, `{ customersAggregate(groupBy: [COUNTRY]) { count } }`, nil)
	if len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != "LIMIT_EXCEEDED" || r.Errors[0].Extensions["limit"] != "groups" || r.Errors[0].Extensions["value"] != 3.0 {
		t.Fatalf("%+v", r.Errors)
	}
	d := g.gql(t, `{ customersAggregate(groupBy: [SEGMENT]) { count } }`, nil).must(t)
	if n := len(d["customersAggregate"].([]any)); n != 3 {
		t.Fatalf("%d segments", n)
	}
}

// TestReactionActor: a reaction's changes are recorded as made by
// reaction:<product>, with the request id of the change that caused them;
// a mutation's as made by its caller.
func TestReactionActor(t *testing.T) {
	key, hash := auth.NewKey()
	adminKey, adminHash := auth.NewKey()
	g := startGateway(t, "--api-key", "shop="+hash+"=orders:write,orders:read", "--api-key", "ops="+adminHash+"=admin", "--rate-limit", "0")
	r := g.as(t, key, `mutation { placeOrder(customerId: 1, lines: [{itemId: 1, quantity: 1}]) { id } }`, nil)
	id := dig(r.ok(t), "placeOrder", "id")
	var entries []any
	eventually(t, 30*time.Second, "inventory's reservation of the order", func() bool {
		d := g.as(t, adminKey, `{ auditLog(product: "inventory", entity: "Reservation", last: 20) { nodes { actor requestId after } } }`, nil).ok(t)
		entries = nil
		for _, n := range dig(d, "auditLog", "nodes").([]any) {
			if fmt.Sprint(dig(n, "after", "id")) == fmt.Sprint(id) { // a reservation has its order's id
				entries = append(entries, n)
			}
		}
		return len(entries) > 0
	})
	if e := entries[0]; dig(e, "actor") != "reaction:inventory" || dig(e, "requestId") != r.RequestID {
		t.Fatalf("reservation entry %v, want actor reaction:inventory and request %s", e, r.RequestID)
	}
	log := `{ auditLog(product: "orders", entity: "Order", key: ` + fmt.Sprint(id) + `) { nodes { op actor requestId } } }`
	nodes := dig(g.as(t, adminKey, log, nil).ok(t), "auditLog", "nodes").([]any)
	if dig(nodes, 0, "actor") != "apikey:shop" || dig(nodes, 0, "requestId") != r.RequestID {
		t.Fatalf("order entries %v", nodes)
	}
	eventually(t, 30*time.Second, "orders' reaction to the reservation", func() bool {
		nodes = dig(g.as(t, adminKey, log, nil).ok(t), "auditLog", "nodes").([]any)
		return len(nodes) > 1
	})
	if dig(nodes, 1, "actor") != "reaction:orders" || dig(nodes, 1, "requestId") != r.RequestID {
		t.Fatalf("orders' reaction %v", nodes[1])
	}
}

// TestSubscriptionEventsLoadFresh: the batch loaders of a subscription
// are fresh for every event, so an event never shows a joined row as it was
// cached for an earlier one.
func TestSubscriptionEventsLoadFresh(t *testing.T) {
	g := startGateway(t)
	cid := dig(g.gql(t, `{ interaction(id: 1) { customerId } }`, nil).must(t), "interaction", "customerId")
	rename := func(name string) {
		g.gql(t, `mutation($id: ID!, $n: String!) { updateCustomer(id: $id, input: {name: $n}) { id } }`, map[string]any{"id": cid, "n": name}).must(t)
	}
	touch := func(i int) {
		g.gql(t, `mutation($s: Float!) { updateInteraction(id: 1, input: {sentiment: $s}) { id } }`, map[string]any{"s": float64(i%10) / 10}).must(t)
	}
	rename("Before Name")
	ws := dialWS(t, g, "graphql-transport-ws", true, 0)
	ws.subscribe("1", `subscription { interactionChanged(where: {id: {eq: 1}}) { after { customer { name } } } }`, nil)
	if n := dig(ws.firstEvent("interactionChanged", touch), "after", "customer", "name"); n != "Before Name" {
		t.Fatalf("first event: customer %v", n)
	}
	rename("After Name")
	touch(1)
	for {
		ev, errs := ws.event("interactionChanged", 10*time.Second)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		// Events of the first round may still be queued.
		if n := dig(ev, "after", "customer", "name"); n == "After Name" {
			return
		}
	}
}

// TestPoliciesFromConfigFile: policies as the README writes them in the
// config file, and as MESHGATE_POLICIES, reach the policy set.
func TestPoliciesFromConfigFile(t *testing.T) {
	file := t.TempDir() + "/meshgate.yaml"
	if err := writeFile(file, `policies:
  - {role: "sales-de", entity: "Customer", where: {country: {eq: "$claims.country"}}}
  - role: "support"
    entity: "Interaction"
    where: {or: [{channel: {in: ["EMAIL", "PHONE"]}}, {customerId: {in: "$claims.accounts"}}]}
`); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MESHGATE_POLICIES": `[{"role": "ops", "entity": "Order", "where": {"total": {"lt": "100.00"}}}]`}
	c, err := parseConfig([]string{"--config", file}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// The environment wins over the file, as for every setting.
	if rules := *c.Policies.rules; len(rules) != 1 || rules[0].Role != "ops" {
		t.Fatalf("policies %+v", rules)
	}
	c, err = parseConfig([]string{"--config", file}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rules := *c.Policies.rules
	if len(rules) != 2 || rules[0].Role != "sales-de" || rules[1].Entity != "Interaction" {
		t.Fatalf("policies %+v", rules)
	}
	var ds []*products.Descriptor
	for _, p := range demo.Products {
		ds = append(ds, &p.Descriptor)
	}
	if _, err := products.NewPolicies(ds, rules); err != nil {
		t.Fatal(err)
	}
}
