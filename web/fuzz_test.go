package web_test

// Fuzz tests of request decoding: whatever a client sends as the body of a
// POST /graphql, or as a query with variables, the gateway answers with
// JSON and a status below 500, and does not panic. The seed corpus is in
// testdata/fuzz; `go test` runs it, `go test -fuzz FuzzRequestBody` explores.

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgate/meshgate/resolvers"
	"github.com/meshgate/meshgate/web"
)

var (
	fuzzOnce    sync.Once
	fuzzHandler http.Handler
)

// fuzzServer is the handler of a gateway over the shared SQLite mesh, called
// in-process (no sockets) so that the fuzzer runs many inputs per second.
// Query timeout and limits are the defaults.
func fuzzServer(t *testing.T) http.Handler {
	g := sharedGateway(t, sqliteBackend)
	fuzzOnce.Do(func() {
		fuzzHandler = web.NewServer(web.Config{
			Resolver:     &resolvers.Resolver{Data: g.mesh, Version: "fuzz", BatchWait: time.Millisecond},
			QueryTimeout: 5 * time.Second,
		})
	})
	return fuzzHandler
}

// checkAnswer serves req and checks the answer's shape.
func checkAnswer(t *testing.T, h http.Handler, req *http.Request) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("HTTP %d %.300s", rec.Code, rec.Body.String())
	}
	var out struct {
		Errors []gqlError `json:"errors"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("HTTP %d: not JSON (%v): %.300s", rec.Code, err, rec.Body.String())
	}
	if rec.Code >= 400 && (len(out.Errors) == 0 || out.Errors[0].code() == "") {
		t.Fatalf("HTTP %d without an error code: %.300s", rec.Code, rec.Body.String())
	}
}

func FuzzRequestBody(f *testing.F) {
	for _, s := range []string{
		`{"query": "{ __typename }"}`,
		`{"query": "query($n: Int) { customers(first: $n) { nodes { id } } }", "variables": {"n": 3}}`,
		`[{"query": "{ __typename }"}]`,
		`{"query": "{ customers(where: {name: {contains: \"a\"}}) { totalCount } }"}`,
		`{"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "abc"}}}`,
		`{"query": 1}`,
		`{"query": "{ __typename }"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		h := fuzzServer(t)
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		checkAnswer(t, h, req)
	})
}

func FuzzOperation(f *testing.F) {
	for _, s := range [][2]string{
		{`{ customers(first: 2) { nodes { id name orders(first: 1) { nodes { total } } } } }`, `{}`},
		{`query($w: OrderWhere) { orders(where: $w) { totalCount } }`, `{"w": {"and": [{"total": {"gt": 1}}, {"not": {"status": {"eq": "PLACED"}}}]}}`},
		{`{ ...F } fragment F on Query { mesh { products } }`, `null`},
		{`{ __schema { types { name fields { name } } } }`, `{}`},
		{`mutation { deleteCustomer(id: "x") { id } }`, `{}`},
		{`{ a: __typename @include(if: $x) }`, `{"x": true}`},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, query, variables string) {
		h := fuzzServer(t)
		q, _ := json.Marshal(query)
		vars := variables
		if !json.Valid([]byte(vars)) {
			vars = "null"
		}
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query": `+string(q)+`, "variables": `+vars+`}`))
		req.Header.Set("Content-Type", "application/json")
		checkAnswer(t, h, req)
	})
}
