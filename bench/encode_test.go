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

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/meshgate/meshgate/graph"
	"github.com/meshgate/meshgate/graph/model"
	"github.com/meshgate/meshgate/products/customers"
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

// BenchmarkEncode compares meshgate's GraphQL executor answering 10,000
// customers × 8 scalar fields held in memory (the generated executable
// schema behind gqlgen's POST transport with a parsed-query cache, as
// web/graphql.go assembles it; Query.customers returns the rows, so no
// store is involved) with encoding/json marshalling the same structs.
// Each is run 15 times, interleaved; reported are the medians
// (meshgate_ms, json_ms) and their ratio (issue 12 target: ≤ 3).
//
//	go test -run XXX -bench Encode -benchtime 1x ./bench/
func BenchmarkEncode(b *testing.B) {
	rows := encodeCustomers(encodeRows)
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: rowsRoot{&resolvers.Resolver{}, &model.CustomerConnection{Nodes: rows, TotalCount: len(rows)}}}))
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](100))
	body, _ := json.Marshal(map[string]string{"query": encodeQuery})

	gqlOnce := func() (time.Duration, int) {
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
	jsonOnce := func() (time.Duration, int) {
		start := time.Now()
		out, err := json.Marshal(map[string]any{"data": map[string]any{"customers": map[string]any{"nodes": rows}}})
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		return d, len(out)
	}
	gqlOnce() // warm the query cache
	var g, j []time.Duration
	var gBytes, jBytes int
	b.ResetTimer()
	for range encodeRounds {
		d, n := gqlOnce()
		g, gBytes = append(g, d), n
		d, n = jsonOnce()
		j, jBytes = append(j, d), n
	}
	b.StopTimer()
	slices.Sort(g)
	slices.Sort(j)
	gm, jm := g[len(g)/2], j[len(j)/2]
	b.ReportMetric(ms(gm), "meshgate_ms")
	b.ReportMetric(ms(jm), "json_ms")
	b.ReportMetric(float64(gm)/float64(jm), "ratio")
	fmt.Printf("encode %d rows × 8 fields in process: meshgate executor %.1f ms (%d bytes), encoding/json %.1f ms (%d bytes), ratio %.2f\n",
		encodeRows, ms(gm), gBytes, ms(jm), jBytes, float64(gm)/float64(jm))
}
