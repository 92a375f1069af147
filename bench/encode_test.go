package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/meshgate/meshgate/graph"
	"github.com/meshgate/meshgate/graph/model"
	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/resolvers"
)

const (
	encodeRows   = 10000
	encodeRounds = 15
	encodeQuery  = `{ customers(first: 10000) { nodes { id name email phone country segment createdAt updatedAt } } }`
)

// rowsRoot is meshgate's resolver root whose Query.customers answers rows
// held in memory, so that only the executor and the response writing are
// measured.
type rowsRoot struct {
	*resolvers.Resolver
	conn *model.CustomerConnection
}

func (r rowsRoot) Query() graph.QueryResolver { return rowsQuery{r.Resolver.Query(), r.conn} }

type rowsQuery struct {
	graph.QueryResolver
	conn *model.CustomerConnection
}

func (q rowsQuery) Customers(context.Context, *int, *string, *int, *string, map[string]any, []map[string]any) (*model.CustomerConnection, error) {
	return q.conn, nil
}

// dataPOST is gqlgen's POST transport writing a response of data alone
// as the gateway's transport does (web/protocol.go, writeResponse): the
// executor's JSON as it is, not validated and copied by json.Marshal.
type dataPOST struct{ transport.POST }

func (dataPOST) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	var params graphql.RawParams
	if err := json.NewDecoder(r.Body).Decode(&params); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	params.ReadTime = graphql.TraceTiming{Start: graphql.Now(), End: graphql.Now()}
	w.Header().Set("Content-Type", "application/json")
	rc, errs := exec.CreateOperationContext(r.Context(), &params)
	if errs != nil {
		w.WriteHeader(http.StatusUnprocessableEntity)
		json.NewEncoder(w).Encode(exec.DispatchError(graphql.WithOperationContext(r.Context(), rc), errs))
		return
	}
	responses, ctx := exec.DispatchOperation(r.Context(), rc)
	resp := responses(ctx)
	if len(resp.Errors) == 0 && len(resp.Extensions) == 0 && len(resp.Data) > 0 {
		w.Write([]byte(`{"data":`))
		w.Write(resp.Data)
		w.Write([]byte(`}`))
		return
	}
	json.NewEncoder(w).Encode(resp)
}

// encodeCustomers returns n customers as the store returns them.
func encodeCustomers(n int) []*customers.Customer {
	at := time.Date(2026, 11, 1, 12, 0, 0, 123456000, time.UTC)
	rows := make([]*customers.Customer, n)
	for i := range rows {
		var phone *string
		if i%3 != 0 {
			p := fmt.Sprintf("+49 30 %07d", i)
			phone = &p
		}
		rows[i] = &customers.Customer{
			ID: int64(i + 1), Name: fmt.Sprintf("Customer %d", i+1), Email: fmt.Sprintf("customer-%d@example.org", i+1),
			Phone: phone, Country: []string{"DE", "FR", "IT", "GB"}[i%4], Segment: customers.SegmentConsumer,
			CreatedAt: at.Add(time.Duration(i) * time.Minute), UpdatedAt: at.Add(time.Duration(i) * time.Hour),
		}
	}
	return rows
}

// BenchmarkEncode compares meshgate answering 10,000 customers × 8 scalar
// fields held in memory (the generated executable schema behind gqlgen's
// POST transport with a parsed-query cache, loaders, access and Authorize,
// as web/graphql.go assembles it; Query.customers returns the rows, so no
// store is involved) on its fast path (resolvers.FastSchema) and with
// gqlgen's executor alone, with encoding/json marshalling the same structs.
// Each is run 15 times, interleaved; reported are the medians
// (meshgate_ms, gqlgen_ms, json_ms) and the ratios to encoding/json
// (ratio: the fast path, issue 12 target ≤ 3; gqlgen_ratio).
//
//	go test -run XXX -bench Encode -benchtime 1x ./bench/
func BenchmarkEncode(b *testing.B) {
	rows := encodeCustomers(encodeRows)
	// As web/graphql.go assembles it: loaders, the caller's access (an
	// administrator: every field, personal ones unmasked), Authorize on
	// every field gqlgen resolves, and the fast path in front of gqlgen
	// (fast) or not.
	server := func(fast bool) http.Handler {
		res := &resolvers.Resolver{Data: &products.Mesh{Products: demo.Products}, NoFastPath: !fast}
		root := rowsRoot{res, &model.CustomerConnection{Nodes: rows, TotalCount: len(rows)}}
		srv := handler.New(res.FastSchema(graph.NewExecutableSchema(graph.Config{Resolvers: root}), root))
		srv.AddTransport(dataPOST{})
		srv.SetQueryCache(lru.New[*ast.QueryDocument](100))
		srv.AroundOperations(res.WithLoaders)
		srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
			return next(products.WithIdentity(ctx, &products.Identity{Subject: "bench", Roles: []string{products.RoleAdmin}}))
		})
		srv.AroundOperations(res.WithAccess)
		srv.AroundFields(res.Authorize)
		return srv
	}
	fastSrv, gqlgenSrv := server(true), server(false)
	body, _ := json.Marshal(map[string]string{"query": encodeQuery})

	once := func(srv http.Handler) func() (time.Duration, int) {
		return func() (time.Duration, int) {
			req := httptest.NewRequest("POST", "/graphql", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			start := time.Now()
			srv.ServeHTTP(w, req)
			d := time.Since(start)
			if w.Code != http.StatusOK || bytes.Contains(w.Body.Bytes(), []byte(`"errors"`)) {
				b.Fatalf("HTTP %d: %.300s", w.Code, w.Body.Bytes())
			}
			return d, w.Body.Len()
		}
	}
	gqlOnce, gqlgenOnce := once(fastSrv), once(gqlgenSrv)
	jsonOnce := func() (time.Duration, int) {
		start := time.Now()
		out, err := json.Marshal(map[string]any{"data": map[string]any{"customers": map[string]any{"nodes": rows}}})
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		return d, len(out)
	}
	// Warm the query caches; both paths answer the same bytes.
	before := resolvers.FastPathAnswers()
	if _, a := gqlOnce(); resolvers.FastPathAnswers() == before {
		b.Fatal("the fast path did not answer")
	} else if _, g := gqlgenOnce(); a != g {
		b.Fatalf("fast path %d bytes, gqlgen %d", a, g)
	}
	var g, q, j []time.Duration
	var gBytes, jBytes int
	b.ResetTimer()
	for range encodeRounds {
		d, n := gqlOnce()
		g, gBytes = append(g, d), n
		d, _ = gqlgenOnce()
		q = append(q, d)
		d, n = jsonOnce()
		j, jBytes = append(j, d), n
	}
	b.StopTimer()
	slices.Sort(g)
	slices.Sort(q)
	slices.Sort(j)
	gm, qm, jm := g[len(g)/2], q[len(q)/2], j[len(j)/2]
	b.ReportMetric(ms(gm), "meshgate_ms")
	b.ReportMetric(ms(qm), "gqlgen_ms")
	b.ReportMetric(ms(jm), "json_ms")
	b.ReportMetric(float64(gm)/float64(jm), "ratio")
	b.ReportMetric(float64(qm)/float64(jm), "gqlgen_ratio")
	// Allocations per answer do not depend on the machine's load.
	allocs := func(f func() (time.Duration, int)) float64 { return testing.AllocsPerRun(3, func() { f() }) }
	ga, qa, ja := allocs(gqlOnce), allocs(gqlgenOnce), allocs(jsonOnce)
	b.ReportMetric(ga, "meshgate_allocs")
	b.ReportMetric(qa, "gqlgen_allocs")
	fmt.Printf("encode %d rows × 8 fields in process: meshgate (fast path) %.1f ms (%d bytes, %.0f allocs), gqlgen's executor %.1f ms (%.0f allocs), encoding/json %.1f ms (%d bytes, %.0f allocs), ratio %.2f (gqlgen's %.2f)\n",
		encodeRows, ms(gm), gBytes, ga, ms(qm), qa, ms(jm), jBytes, ja, float64(gm)/float64(jm), float64(qm)/float64(jm))
}
