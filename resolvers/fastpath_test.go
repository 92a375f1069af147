package resolvers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/meshgate/meshgate/graph"
	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/pgtest"
	"github.com/meshgate/meshgate/resolvers/scalars"
)

// fastServer serves r like the gateway (loaders, access, Authorize, a
// read log per response), on the fast path or not; reads receives the
// read log of each response.
func fastServer(r *Resolver, fast bool, id *products.Identity, reads *map[string]map[string]*entityReads) http.Handler {
	var es graphql.ExecutableSchema = graph.NewExecutableSchema(graph.Config{Resolvers: r})
	if fast {
		es = r.FastSchema(es, r)
	}
	srv := handler.New(es)
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](100))
	srv.AroundOperations(r.WithLoaders)
	srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		return next(products.WithIdentity(ctx, id))
	})
	srv.AroundOperations(r.WithAccess)
	srv.AroundFields(r.Authorize)
	srv.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		log := &readLog{}
		resp := next(context.WithValue(ctx, readLogKey{}, log))
		*reads = log.m
		return resp
	})
	return srv
}

func post(t testing.TB, h http.Handler, query string, vars map[string]any) []byte {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req := httptest.NewRequest("POST", "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Body.Bytes()
}

// queryGen writes random queries over the mesh's entities from the
// schema: field subsets, aliases, inline and named fragments,
// @skip/@include with variables, nested @lookup/@children relations, and
// now and then something the fast path leaves to gqlgen (history, edges,
// pageInfo, an id that is not one).
type queryGen struct {
	rnd       *rand.Rand
	r         *Resolver
	fragments []string
	n         int
}

func (g *queryGen) name() string { g.n++; return fmt.Sprintf("f%d", g.n) }

func (g *queryGen) directive() string {
	switch g.rnd.IntN(12) {
	case 0:
		return " @include(if: $yes)"
	case 1:
		return " @skip(if: $no)"
	case 2:
		return " @skip(if: $yes)"
	case 3:
		return " @include(if: false)"
	}
	return ""
}

func (g *queryGen) alias() string {
	if g.rnd.IntN(4) == 0 {
		return g.name() + ": "
	}
	return ""
}

// entity writes a selection set of the entity type.
func (g *queryGen) entity(typ string, depth int) string {
	def := Schema().Types[typ]
	var parts []string
	for _, f := range def.Fields {
		if g.rnd.IntN(3) == 0 {
			continue
		}
		t := f.Type
		rel := f.Directives.ForName("lookup") != nil || f.Directives.ForName("children") != nil
		switch {
		case rel:
			if depth >= 2 || g.rnd.IntN(2) == 0 {
				continue
			}
			target := t.Name()
			if t.Elem != nil {
				target = t.Elem.Name()
			}
			if strings.HasSuffix(target, "Connection") {
				args := ""
				if g.rnd.IntN(2) == 0 {
					args = fmt.Sprintf("(first: %d)", 1+g.rnd.IntN(3))
				}
				parts = append(parts, g.alias()+f.Name+args+g.directive()+" "+g.connection(target, depth+1))
				continue
			}
			parts = append(parts, g.alias()+f.Name+g.directive()+" { "+g.entity(target, depth+1)+" }")
		case f.Name == "history":
			if g.rnd.IntN(10) == 0 {
				parts = append(parts, "history(first: 1) { totalCount }")
			}
		case len(f.Arguments) == 0 && Schema().Types[t.Name()].Kind != ast.Object:
			parts = append(parts, g.alias()+f.Name+g.directive())
		}
	}
	if g.rnd.IntN(5) == 0 {
		parts = append(parts, "__typename")
	}
	parts = append(parts, "id")
	g.rnd.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
	switch g.rnd.IntN(5) {
	case 0:
		k := g.rnd.IntN(len(parts))
		return strings.Join(parts[:k], " ") + " ... on " + typ + g.directive() + " { " + strings.Join(parts[k:], " ") + " }"
	case 1:
		name := g.name()
		g.fragments = append(g.fragments, "fragment "+name+" on "+typ+" { "+strings.Join(parts, " ")+" }")
		return "id ..." + name
	}
	return strings.Join(parts, " ")
}

func (g *queryGen) connection(typ string, depth int) string {
	e := strings.TrimSuffix(typ, "Connection")
	var parts []string
	if g.rnd.IntN(4) > 0 {
		parts = append(parts, g.alias()+"nodes { "+g.entity(e, depth)+" }")
	}
	if g.rnd.IntN(3) == 0 {
		parts = append(parts, g.alias()+"totalCount")
	}
	if g.rnd.IntN(6) == 0 {
		parts = append(parts, g.alias()+"edges { "+g.alias()+"cursor node { "+g.entity(e, depth)+" } }")
	}
	if g.rnd.IntN(6) == 0 {
		parts = append(parts, "pageInfo { hasNextPage "+g.alias()+"endCursor startCursor hasPreviousPage __typename }")
	}
	if g.rnd.IntN(8) == 0 {
		parts = append(parts, "__typename")
	}
	if len(parts) == 0 {
		parts = append(parts, "totalCount")
	}
	return "{ " + strings.Join(parts, " ") + " }"
}

// query returns a query of one or two root fields.
func (g *queryGen) query() string {
	g.fragments = nil
	var ents []*products.Entity
	for _, s := range g.r.Data.Stores {
		ents = append(ents, s.Product.Entities...)
	}
	var roots []string
	for len(roots) == 0 || len(roots) < 2 && g.rnd.IntN(2) == 0 {
		e := ents[g.rnd.IntN(len(ents))]
		if e.Lookup == "" || e.Plural == "" {
			continue
		}
		if g.rnd.IntN(3) == 0 {
			id := fmt.Sprintf(`"%d"`, 1+g.rnd.IntN(30))
			if g.rnd.IntN(15) == 0 {
				id = `"abc"`
			}
			roots = append(roots, g.alias()+e.Lookup+"(id: "+id+") { "+g.entity(e.Name, 0)+" }")
			continue
		}
		args := []string{fmt.Sprintf("first: %d", 1+g.rnd.IntN(12))}
		if g.rnd.IntN(2) == 0 {
			args = append(args, "where: {id: {gt: $after}}")
		}
		if sf := Schema().Types[e.Name+"SortField"]; sf != nil && g.rnd.IntN(2) == 0 {
			args = append(args, fmt.Sprintf("orderBy: [{field: %s, direction: DESC}]", sf.EnumValues[g.rnd.IntN(len(sf.EnumValues))].Name))
		}
		roots = append(roots, g.alias()+e.Plural+"("+strings.Join(args, ", ")+")"+g.directive()+" "+g.connection(e.Name+"Connection", 0))
	}
	body := strings.Join(roots, " ")
	// Variables must be used: gqlgen refuses unused ones.
	all := body + strings.Join(g.fragments, " ")
	var vars []string
	for _, v := range []string{"$yes: Boolean!", "$no: Boolean!", "$after: ID"} {
		if strings.Contains(all, strings.Split(v, ":")[0]+")") || strings.Contains(all, strings.Split(v, ":")[0]+"}") {
			vars = append(vars, v)
		}
	}
	q := "query Q { " + body + " }"
	if len(vars) > 0 {
		q = "query Q(" + strings.Join(vars, ", ") + ") { " + body + " }"
	}
	return strings.Join(append([]string{q}, g.fragments...), "\n")
}

// TestFastPathAnswersAsGqlgen: random queries, answered by the fast path
// and by gqlgen alone, give the same bytes (data, errors, extensions) and
// record the same personal-data reads, for callers with every role, without
// pii:read, restricted by a row policy, and without some products' read
// role — on SQLite and PostgreSQL.
func TestFastPathAnswersAsGqlgen(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		mesh := openMesh(t, backend)
		var ds []*products.Descriptor
		for _, p := range mesh.Products {
			ds = append(ds, &p.Descriptor)
		}
		pol, err := products.NewPolicies(ds, []products.PolicyRule{
			{Role: "sales-de", Entity: "Customer", Where: map[string]any{"country": map[string]any{"eq": "DE"}}},
			{Role: "sales-de", Entity: "Order", Where: map[string]any{"status": map[string]any{"ne": "CANCELLED"}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		var readAll []string
		for _, p := range mesh.Products {
			readAll = append(readAll, products.ReadRole(p.Name))
		}
		ids := map[string]*products.Identity{
			"admin":    {Subject: "admin", Roles: []string{products.RoleAdmin}},
			"reader":   {Subject: "reader", Roles: readAll},
			"pii":      {Subject: "pii", Roles: append(slices.Clone(readAll), products.RolePII)},
			"sales-de": {Subject: "de", Roles: append(slices.Clone(readAll), "sales-de", products.RolePII)},
			"partial":  {Subject: "partial", Roles: []string{products.ReadRole("orders"), products.ReadRole("inventory")}},
		}
		r := testResolver(mesh)
		r.Policies = pol
		// MESHGATE_FASTPATH_QUERIES=n,seed runs n queries per caller from
		// another seed (default 150 from seed 1).
		n, seed := 150, uint64(1)
		if v := os.Getenv("MESHGATE_FASTPATH_QUERIES"); v != "" {
			fmt.Sscanf(v, "%d,%d", &n, &seed)
		}
		g := &queryGen{rnd: rand.New(rand.NewPCG(seed, uint64(len(backend)))), r: r}
		fastAnswered := 0
		for role, id := range ids {
			var slowReads, fastReads map[string]map[string]*entityReads
			slow := fastServer(r, false, id, &slowReads)
			fast := fastServer(r, true, id, &fastReads)
			for i := range n {
				q := g.query()
				vars := map[string]any{}
				if strings.Contains(q, "$yes:") {
					vars["yes"] = true
				}
				if strings.Contains(q, "$no:") {
					vars["no"] = false
				}
				if strings.Contains(q, "$after:") {
					vars["after"] = fmt.Sprint(g.rnd.IntN(40))
				}
				before := fastAnswers.Load()
				want := post(t, slow, q, vars)
				got := post(t, fast, q, vars)
				if fastAnswers.Load() > before {
					fastAnswered++
				}
				if !sameResponse(got, want) {
					t.Fatalf("%s, query %d:\n%s\nvariables %v\ngqlgen:    %s\nfast path: %s", role, i, q, vars, want, got)
				}
				if !reflect.DeepEqual(fastReads, slowReads) {
					t.Fatalf("%s, query %d: %s\nreads: gqlgen %v, fast path %v", role, i, q, slowReads, fastReads)
				}
			}
		}
		t.Logf("%d of %d queries answered on the fast path", fastAnswered, n*len(ids))
		if fastAnswered < n*len(ids)/4 {
			t.Errorf("only %d of %d queries answered on the fast path", fastAnswered, n*len(ids))
		}
	})
}

// sameResponse compares two responses byte for byte, but for the order of
// the errors, which gqlgen's concurrent root fields leave to chance.
func sameResponse(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	type resp struct {
		Errors     []json.RawMessage `json:"errors"`
		Data       json.RawMessage   `json:"data"`
		Extensions json.RawMessage   `json:"extensions"`
	}
	var ra, rb resp
	if json.Unmarshal(a, &ra) != nil || json.Unmarshal(b, &rb) != nil {
		return false
	}
	sort := func(l []json.RawMessage) []string {
		out := make([]string, len(l))
		for i, e := range l {
			out[i] = string(e)
		}
		slices.Sort(out)
		return out
	}
	return bytes.Equal(ra.Data, rb.Data) && bytes.Equal(ra.Extensions, rb.Extensions) && slices.Equal(sort(ra.Errors), sort(rb.Errors))
}

// TestFastPathLeavesErrorsToGqlgen: a refused field, a bad argument and a
// resolver's error are answered by gqlgen, as without the fast path;
// personal data is masked on the fast path as Authorize masks it, and its
// unmasked reads recorded.
func TestFastPathLeavesErrorsToGqlgen(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		mesh := openMesh(t, backend)
		r := testResolver(mesh)
		reader := &products.Identity{Subject: "reader", Roles: []string{products.ReadRole("orders"), products.ReadRole("customers")}}
		ordersOnly := &products.Identity{Subject: "orders", Roles: []string{products.ReadRole("orders")}}
		piiReader := &products.Identity{Subject: "pii", Roles: []string{products.ReadRole("orders"), products.ReadRole("customers"), products.RolePII}}
		for _, c := range []struct {
			name  string
			id    *products.Identity
			query string
			fast  bool
			want  []string // in the fast path's answer
		}{
			{"refused relation", ordersOnly, `{ orders(first: 2) { nodes { id customer { name } } } }`, false,
				[]string{`"customer":null`, `"message":"Order.customer needs the customers:read role"`}},
			{"refused root", ordersOnly, `{ customers(first: 1) { nodes { id } } }`, false,
				[]string{`"customers":null`, `needs the customers:read role`}},
			{"bad id", reader, `{ order(id: "abc") { id } }`, false, []string{`is not an id of this API`}},
			{"masked", reader, `{ customer(id: "3") { id name phone country } }`, true,
				[]string{`{"data":{"customer":{"id":"3","name":"***","phone":"***","country":`}},
			{"unmasked", piiReader, `{ orders(first: 3) { nodes { customer { name } } } }`, true, []string{`"name":"`}},
		} {
			t.Run(c.name, func(t *testing.T) {
				var slowReads, fastReads map[string]map[string]*entityReads
				before := FastPathAnswers()
				got := post(t, fastServer(r, true, c.id, &fastReads), c.query, nil)
				if answered := FastPathAnswers() > before; answered != c.fast {
					t.Errorf("answered on the fast path: %v, want %v", answered, c.fast)
				}
				want := post(t, fastServer(r, false, c.id, &slowReads), c.query, nil)
				if !sameResponse(got, want) {
					t.Errorf("fast path %s\ngqlgen    %s", got, want)
				}
				for _, w := range c.want {
					if !bytes.Contains(got, []byte(w)) {
						t.Errorf("%s: no %s", got, w)
					}
				}
				if !reflect.DeepEqual(fastReads, slowReads) {
					t.Errorf("reads: fast path %v, gqlgen %v", fastReads, slowReads)
				}
				if c.id == piiReader && len(fastReads["customers"]["Customer"].keys) == 0 {
					t.Errorf("no personal-data read recorded: %v", fastReads)
				}
			})
		}
	})
}

// BenchmarkReadPaths: the reads of bench/compare's scenarios (scale 0.01:
// 200 orders) on SQLite and PostgreSQL, answered on the fast path and by
// gqlgen's executor; allocations per answer do not depend on the
// machine's load, and neither does the gateway's CPU per answer much.
//
//	MESHGATE_TEST_POSTGRES=… go test -run XXX -bench ReadPaths -benchmem ./resolvers/
func BenchmarkReadPaths(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			if backend == "postgres" {
				pgtest.Base(b)
			}
			mesh := openMesh(b, backend)
			r := testResolver(mesh)
			admin := &products.Identity{Subject: "bench", Roles: []string{products.RoleAdmin}}
			for _, q := range []struct{ name, query string }{
				{"nested", `{ orders(first: 50, where: {status: {eq: RESERVED}}, orderBy: [{field: PLACED_AT, direction: DESC}]) { nodes { id status total placedAt customer { name country } lines { quantity item { sku price } } } } }`},
				{"large", `{ orders(first: 200, orderBy: [{field: ID, direction: ASC}]) { nodes { id customerId status total currency placedAt updatedAt } } }`},
				{"point", `{ order(id: "42") { id status total customer { name country } } }`},
			} {
				for _, fast := range []bool{true, false} {
					b.Run(fmt.Sprintf("%s/fast=%v", q.name, fast), func(b *testing.B) {
						var reads map[string]map[string]*entityReads
						h := fastServer(r, fast, admin, &reads)
						want := post(b, h, q.query, nil)
						if bytes.Contains(want, []byte(`"errors"`)) {
							b.Fatalf("%s", want)
						}
						b.ReportAllocs()
						cpu0 := cpuTime()
						for b.Loop() {
							post(b, h, q.query, nil)
						}
						b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
					})
				}
			}
		})
	}
}

// cpuTime is the CPU time this process has used (user and system): the
// gateway's and the client's, not the database server's.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestFastPathScalars: strings, floats and times are written as gqlgen's
// marshallers write them, for values the demo data does not hold.
func TestFastPathScalars(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		b := make([]byte, rnd.IntN(12))
		for j := range b {
			b[j] = byte(rnd.IntN(256))
			if rnd.IntN(3) == 0 {
				const special = "\"\\\n\t\r\x00\x1f<>&é"
				b[j] = special[rnd.IntN(len(special))]
			}
		}
		s := string(b)
		if i == 0 {
			s = "Müller \"quoted\" \\ \u2028 \U0001F600"
		}
		var want bytes.Buffer
		graphql.MarshalString(s).MarshalGQL(&want)
		if got := appendQuoted(nil, s); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("%q: %s, gqlgen %s", s, got, want.Bytes())
		}
	}
	w := &fastWriter{}
	floatType := &ast.Type{NamedType: "Float", NonNull: true}
	for _, f := range []float64{0, math.Copysign(0, -1), 1, 0.1, 302.65, 1e21, 1e-7, 123456789.123, -3.4e38, 5e-324} {
		w.buf = w.buf[:0]
		if err := w.scalar(floatType, reflect.ValueOf(f)); err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		graphql.MarshalFloatContext(f).MarshalGQLContext(context.Background(), &want)
		if !bytes.Equal(w.buf, want.Bytes()) {
			t.Errorf("%v: %s, gqlgen %s", f, w.buf, want.Bytes())
		}
	}
	timeType := &ast.Type{NamedType: "Time", NonNull: true}
	for _, tm := range []time.Time{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.FixedZone("x", 3600)), {}} {
		w.buf = w.buf[:0]
		if err := w.scalar(timeType, reflect.ValueOf(tm)); err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		scalars.MarshalTime(tm).MarshalGQL(&want)
		if !bytes.Equal(w.buf, want.Bytes()) {
			t.Errorf("%v: %s, gqlgen %s", tm, w.buf, want.Bytes())
		}
	}
}
