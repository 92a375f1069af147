package resolvers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/99designs/gqlgen/client"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/graph"
	"github.com/meshgate/meshgate/products"
)

// perRequest counts the SQL statements of each GraphQL operation: the
// operation's context carries its log, the stores' query hook appends to
// it.
type perRequest struct{}

type requestLog struct {
	mu      sync.Mutex
	queries []string
}

type requestLogKey struct{}

func (perRequest) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (perRequest) AfterQuery(ctx context.Context, e *bun.QueryEvent) {
	if l, ok := ctx.Value(requestLogKey{}).(*requestLog); ok {
		l.mu.Lock()
		l.queries = append(l.queries, e.Query)
		l.mu.Unlock()
	}
}

// on returns how many of the request's statements read the table.
func (l *requestLog) on(table string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, q := range l.queries {
		if strings.Contains(q, `"`+table+`"`) {
			n++
		}
	}
	return n
}

// countingClient is newClient whose operations each log their statements
// into the log that fresh returns for the request.
func countingClient(r *Resolver, logs chan *requestLog) *client.Client {
	srv := handler.New(r.FastSchema(graph.NewExecutableSchema(graph.Config{Resolvers: r}), r))
	srv.AddTransport(transport.POST{})
	srv.AroundOperations(r.WithLoaders)
	srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		l := &requestLog{}
		logs <- l
		ctx = context.WithValue(ctx, requestLogKey{}, l)
		return next(products.WithIdentity(ctx, &products.Identity{Subject: "test", Roles: []string{products.RoleAdmin}}))
	})
	srv.AroundOperations(r.WithAccess)
	srv.AroundFields(r.Authorize)
	return client.New(srv)
}

// TestStatementsPerLevel: a nested read issues one statement per product
// and level — orders, then customers and order lines, then items — however
// many rows a level has, on the fast path and through gqlgen's executor:
// the look-ahead announces a level whole, nothing waits to gather it. A
// lookup by id with its customer is one statement per product too.
func TestStatementsPerLevel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		mesh := openMesh(t, backend, perRequest{})
		for _, fast := range []bool{true, false} {
			t.Run(fmt.Sprint("fast path ", fast), func(t *testing.T) {
				r := testResolver(mesh)
				r.NoFastPath = !fast
				answered := FastPathAnswers()
				logs := make(chan *requestLog, 64)
				c := countingClient(r, logs)
				var wg sync.WaitGroup
				for _, n := range []int{1, 7, 50, 200} {
					for range 4 { // concurrent requests, each with its own loaders
						wg.Add(1)
						go func() {
							defer wg.Done()
							var resp struct {
								Orders struct {
									Nodes []struct {
										ID       string
										Customer struct{ Name string }
										Lines    []struct {
											Quantity int
											Item     struct{ Sku string }
										}
									}
								}
							}
							q := fmt.Sprintf(`{ orders(first: %d, orderBy: [{field: PLACED_AT, direction: DESC}]) { nodes { id customer { name } lines { quantity item { sku } } } } }`, n)
							if err := c.Post(q, &resp); err != nil {
								t.Errorf("first %d: %v", n, err)
								return
							}
							if len(resp.Orders.Nodes) != n {
								t.Errorf("first %d: %d orders", n, len(resp.Orders.Nodes))
							}
							for _, o := range resp.Orders.Nodes {
								if o.Customer.Name == "" || len(o.Lines) == 0 || o.Lines[0].Item.Sku == "" {
									t.Errorf("first %d: order %s incomplete: %+v", n, o.ID, o)
									return
								}
							}
						}()
					}
				}
				wg.Wait()
				close(logs)
				if fast && FastPathAnswers() == answered {
					t.Error("the fast path answered none of the reads")
				}
				requests := 0
				for l := range logs {
					requests++
					for _, table := range []string{"orders", "customers", "order_lines", "items"} {
						if got := l.on(table); got != 1 {
							t.Errorf("%d statements on %s in one request, want 1: %q", got, table, l.queries)
						}
					}
					if len(l.queries) != 4 {
						t.Errorf("%d statements in one request, want 4: %q", len(l.queries), l.queries)
					}
				}
				if requests != 16 {
					t.Errorf("%d requests logged, want 16", requests)
				}

				logs = make(chan *requestLog, 1)
				c = countingClient(r, logs)
				var one struct {
					Order struct {
						ID       string
						Customer struct{ Name, Country string }
					}
				}
				if err := c.Post(`{ order(id: 42) { id customer { name country } } }`, &one); err != nil {
					t.Fatal(err)
				}
				if one.Order.ID != "42" || one.Order.Customer.Name == "" {
					t.Fatalf("order 42: %+v", one)
				}
				l := <-logs
				if l.on("orders") != 1 || l.on("customers") != 1 || len(l.queries) != 2 {
					t.Errorf("order(id:) with customer: %q, want one statement on orders and one on customers", l.queries)
				}
			})
		}
	})
}
