package web_test

// Hostile input at the edge: every request below gets an answer with a
// client error code (no panic, no 5xx, no internal error) and changes
// nothing.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/meshgate/meshgate/web"
)

func TestHostileInput(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		g := newGateway(t, backend, gatewayOptions{scale: 0.005})
		srv := edgeServer(t, g.mesh, web.Config{})
		before := takeSnapshot(t, g)
		const list = `query($w: CustomerWhere, $n: Int) { customers(first: $n, where: $w) { nodes { id } } }`
		const orders = `query($w: OrderWhere) { orders(where: $w) { nodes { id } } }`
		const create = `mutation($in: CreateCustomerInput!) { createCustomer(input: $in) { id } }`
		type req struct {
			name  string
			body  string
			codes []string // acceptable codes of the (first) error
		}
		body := func(q string, vars map[string]any) string {
			b, _ := json.Marshal(map[string]any{"query": q, "variables": vars})
			return string(b)
		}
		rawVars := func(q, vars string) string {
			b, _ := json.Marshal(q)
			return `{"query": ` + string(b) + `, "variables": ` + vars + `}`
		}
		inputCodes := []string{"BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED"}
		var cases []req
		// Numbers that are not finite or do not fit. (Float filters still
		// take "NaN" and "Infinity" as strings, and 1e400 as +Inf: gqlgen's
		// Float scalar does; finite-only Floats are item 8 of issue 11 for
		// the filter owners. Here: no internal error, nothing written.)
		for _, n := range []string{`"NaN"`, `"Infinity"`, `"-Infinity"`, `1e400`, `-1e400`, `1e-400`, `123456789012345678901234567890`, `"1e309"`} {
			cases = append(cases,
				req{"float " + n, rawVars(orders, `{"w": {"total": {"gt": `+n+`}}}`), nil},
				req{"float in list " + n, rawVars(orders, `{"w": {"total": {"in": [1, `+n+`]}}}`), nil},
				req{"int " + n, rawVars(list, `{"n": `+n+`}`), append(inputCodes, "LIMIT_EXCEEDED")},
			)
		}
		for _, n := range []string{"NaN", "Infinity", "1e400", "-9999999999999999999999"} {
			cases = append(cases, req{"literal " + n, body(`{ orders(where: {total: {gt: `+n+`}}) { nodes { id } } }`, nil), nil})
		}
		// Control characters and odd unicode in strings.
		for _, s := range []string{"\x00", "a\x00b", "\x01\x02\x1f\x7f", "\u202e\u200b\ufeff", "\xed\xa0\x80", strings.Repeat("é", 10000)} {
			cases = append(cases,
				req{fmt.Sprintf("filter %q", trimTo(s, 12)), body(list, map[string]any{"w": map[string]any{"name": map[string]any{"eq": s}}}), nil},
				req{fmt.Sprintf("contains %q", trimTo(s, 12)), body(list, map[string]any{"w": map[string]any{"email": map[string]any{"contains": s}}}), nil},
			)
		}
		cases = append(cases, req{"create with NUL", body(create, map[string]any{"in": map[string]any{"name": "a\x00b", "email": "x@example.org", "country": "SE", "segment": "CONSUMER"}}), inputCodes})
		// Deep nesting through variables.
		cases = append(cases,
			req{"where 200 deep", body(list, map[string]any{"w": nested(200, map[string]any{"id": map[string]any{"eq": "1"}})}), []string{"LIMIT_EXCEEDED"}},
			req{"where 5,000 deep", body(list, map[string]any{"w": nested(5000, map[string]any{"id": map[string]any{"eq": "1"}})}), []string{"LIMIT_EXCEEDED", "GRAPHQL_VALIDATION_FAILED"}},
			req{"JSON 20,000 deep", rawVars(list, strings.Repeat(`{"w":`, 20000)+"1"+strings.Repeat("}", 20000)), []string{"BAD_REQUEST"}},
			req{"where with 100,000 ids", body(list, map[string]any{"w": map[string]any{"id": map[string]any{"in": make([]int, 100_000)}}}), []string{"LIMIT_EXCEEDED"}},
			req{"or of 3,000 conditions", body(list, map[string]any{"w": map[string]any{"or": orOf(3000)}}), []string{"LIMIT_EXCEEDED"}},
			req{"10 MB body", rawVars(list, `{"w": {"name": {"eq": "`+strings.Repeat("x", 10<<20)+`"}}}`), []string{"LIMIT_EXCEEDED"}},
			req{"10,000 repeated fields", body("{ customers { nodes { "+strings.Repeat("id ", 10000)+"} } }", nil), []string{"LIMIT_EXCEEDED"}},
			req{"4,000 aliases", body("{ "+repeat(1200, func(i int) string { return fmt.Sprintf("c%d: customer(id: %d) { id }", i, i) })+"}", nil), []string{"LIMIT_EXCEEDED"}},
			req{"a 1,000-deep selection", body(strings.Repeat("{ customers { nodes ", 500)+"{ id }"+strings.Repeat(" } }", 500)+"}", nil), []string{"LIMIT_EXCEEDED", "GRAPHQL_PARSE_FAILED"}},
			req{"unterminated string", `{"query": "{ customers(where: {name: {eq: \"abc}) { nodes { id } } }"}`, []string{"GRAPHQL_PARSE_FAILED"}},
			req{"a 100,000-character name", body(`{ customers(where: {name: {eq: "`+strings.Repeat("n", 100_000)+`"}}) { nodes { id } } }`, nil), nil},
			req{"mutation batch", `[` + body(create, nil) + `,` + body(create, nil) + `]`, []string{"BAD_REQUEST"}},
		)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				status, _, b := raw(t, "POST", srv.URL+"/graphql", "application/json", strings.NewReader(c.body), nil)
				if status >= 500 {
					t.Fatalf("HTTP %d %.300s", status, b)
				}
				var r gqlResponse
				if err := json.Unmarshal(b, &r); err != nil {
					t.Fatalf("HTTP %d, not JSON: %.300s", status, b)
				}
				var problems []string
				for _, e := range r.Errors {
					if e.code() == "" || e.code() == "INTERNAL_SERVER_ERROR" || strings.Contains(e.Message, "internal error") {
						problems = append(problems, fmt.Sprintf("HTTP %d: an error without a client code: %+v", status, e))
					}
				}
				if c.codes != nil && (len(r.Errors) == 0 || !contains(c.codes, r.Errors[0].code())) {
					problems = append(problems, fmt.Sprintf("HTTP %d %.300s; want one of %v", status, b, c.codes))
				}
				switch {
				case len(problems) > 0 && nulPending && (strings.Contains(c.name, `\x00`) || strings.Contains(c.name, "NUL")):
					t.Logf("known gap, owned by issue 9 item 9 (NUL bytes must be BAD_USER_INPUT): %s", problems[0])
				default:
					for _, p := range problems {
						t.Error(p)
					}
				}
			})
		}
		if after := takeSnapshot(t, g); before.diff(after) != "" {
			t.Errorf("hostile input changed the stores:\n%s", before.diff(after))
		}
	})
}

// nulPending lets NUL bytes still end in an internal error: turning them
// into BAD_USER_INPUT is issue 9 item 9, owned by the store's validation.
// Set it to false once that has landed.
const nulPending = false

func orOf(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"id": map[string]any{"eq": fmt.Sprint(i)}}
	}
	return out
}

func trimTo(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestHostileConcurrency: many expensive refusals at once do not hold each
// other up or take the process down.
func TestHostileConcurrency(t *testing.T) {
	t.Parallel()
	g := sharedGateway(t, sqliteBackend)
	srv := edgeServer(t, g.mesh, web.Config{})
	bodies := []string{
		`{"query": "{ ` + strings.Repeat("__typename ", 4900) + `}"}`,
		`{"query": "{ ` + repeat(1600, func(i int) string { return fmt.Sprintf("a%d: __typename", i) }) + `}"}`,
		`{"query": "{ customers(first: 1000) { nodes { orders(first: 1000) { nodes { id } } } } }"}`,
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := range 48 {
		wg.Go(func() {
			req := bodies[i%len(bodies)]
			status, _, b := raw(t, "POST", srv.URL+"/graphql", "application/json", bytes.NewReader([]byte(req)), nil)
			if status != 200 || !bytes.Contains(b, []byte("LIMIT_EXCEEDED")) {
				errs <- fmt.Sprintf("HTTP %d %.200s", status, b)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
