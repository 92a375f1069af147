package web_test

// Cross-product fields are batched: a nested query issues at most one SQL
// statement per product per level of the query, whatever the number of
// rows. The proof counts the statements each product's store executes with
// a bun query hook (stmtCounter in gateway_test.go).

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/engagement"
	"github.com/meshgate/meshgate/products/inventory"
	"github.com/meshgate/meshgate/products/orders"
)

// batchWait is how long the batch loaders gather keys. The loads of one
// level are made by goroutines that gqlgen starts once the level above has
// loaded (a hundred of them for the lines of 100 orders); under -race on a
// busy two-core machine they take tens of milliseconds to all arrive, and a
// batch that closes early issues a second statement. 20ms and 50ms proved
// flaky there under load; 100ms held in repeated -race runs beside two
// CPU-bound processes. It costs 100ms per nested level, only in this test,
// which runs alone (not parallel) for the same reason.
const batchWait = 100 * time.Millisecond

const federationQuery = `query($n: Int!) {
  customers(first: $n) {
    nodes {
      id name
      orders(first: 5) {
        totalCount
        nodes { id customerId customer { id name } lines { itemId item { id name } } }
      }
      interactions(first: 3) { nodes { id customerId customer { id } } }
    }
  }
}`

type fedResult struct {
	Customers struct {
		Nodes []struct {
			ID, Name string
			Orders   struct {
				TotalCount int
				Nodes      []struct {
					ID, CustomerID string
					Customer       *struct{ ID, Name string }
					Lines          []struct {
						ItemID string
						Item   *struct{ ID, Name string }
					}
				}
			}
			Interactions struct {
				Nodes []struct {
					ID, CustomerID string
					Customer       *struct{ ID string }
				}
			}
		}
	}
}

// TestFederationBatching is not parallel: it runs alone, before the
// parallel tests, so that no other test starves the goroutines whose loads
// must meet within one batch window.
func TestFederationBatching(t *testing.T) {
	forEachBackendInTurn(t, func(t *testing.T, backend string) {
		g := newGateway(t, backend, gatewayOptions{batchWait: batchWait})
		cs := loadAll[customers.Customer](t, g.mesh.Store("customers").DB)
		os := loadAll[orders.Order](t, g.mesh.Store("orders").DB)
		ls := loadAll[orders.Line](t, g.mesh.Store("orders").DB)
		is := loadAll[inventory.Item](t, g.mesh.Store("inventory").DB)
		ns := loadAll[engagement.Interaction](t, g.mesh.Store("engagement").DB)

		// The expected counts below rely on every listed customer having
		// orders: then the customers wanted by interaction.customer are a
		// subset of those wanted by order.customer, and the per-operation
		// loader answers them from the same batch (or its cache) even if the
		// interactions arrive after that batch has left.
		ordersOf := map[int64]int{}
		for _, o := range os {
			ordersOf[o.CustomerID]++
		}
		for _, c := range cs[:20] {
			if ordersOf[c.ID] == 0 {
				t.Fatalf("test data: customer %d has no orders", c.ID)
			}
		}

		// Statements per product for the query, level by level:
		//   1 customers      customers: the page (no totalCount asked)
		//   2 orders         orders: one windowed statement for all parents
		//                    (it also yields the totalCount of each)
		//     interactions   engagement: one windowed statement
		//   3 order.customer, interaction.customer
		//                    customers: one IN (…) statement, shared loader
		//     order.lines    orders: one windowed statement
		//   4 line.item      inventory: one IN (…) statement
		want := map[string]int{"customers": 2, "orders": 2, "engagement": 1, "inventory": 1}
		for _, n := range []int{20, 1} {
			t.Run(fmt.Sprintf("%d customers", n), func(t *testing.T) {
				g.stmts.reset()
				var res fedResult
				g.query(t, federationQuery, map[string]any{"n": n}, &res)
				got := g.stmts.counts()
				if !maps.Equal(got, want) {
					t.Errorf("statements per product: %v, want %v\n%s", got, want, g.stmts.dump())
				}
				checkFederationData(t, res, cs[:n], os, ls, is, ns)
			})
		}

		t.Run("with totalCount", func(t *testing.T) {
			g.stmts.reset()
			g.query(t, `{ customers(first: 20) { totalCount nodes { orders(first: 5) { nodes { id } } } } }`, nil, nil)
			if got, want := g.stmts.counts(), map[string]int{"customers": 2, "orders": 1}; !maps.Equal(got, want) {
				t.Errorf("statements per product: %v, want %v (list + count, then one windowed orders statement)\n%s", got, want, g.stmts.dump())
			}
		})

		t.Run("same product on several levels", func(t *testing.T) {
			// 1 orders: the page; 2 order.customer (customers), order.lines
			// (orders); 3 customer.interactions (engagement), line.order
			// (orders, by id), line.item (inventory).
			g.stmts.reset()
			var res struct {
				Orders struct {
					Nodes []struct {
						ID       string
						Customer struct {
							ID           string
							Interactions struct{ Nodes []struct{ CustomerID string } }
						}
						Lines []struct {
							Order struct{ ID string }
							Item  struct{ ID string }
						}
					}
				}
			}
			g.query(t, `{ orders(first: 60) { nodes { id customer { id interactions(first: 2) { nodes { customerId } } } lines { order { id } item { id } } } } }`, nil, &res)
			if got, want := g.stmts.counts(), map[string]int{"orders": 3, "customers": 1, "engagement": 1, "inventory": 1}; !maps.Equal(got, want) {
				t.Errorf("statements per product: %v, want %v\n%s", got, want, g.stmts.dump())
			}
			if len(res.Orders.Nodes) != 60 {
				t.Fatalf("%d orders", len(res.Orders.Nodes))
			}
			for _, o := range res.Orders.Nodes {
				for _, l := range o.Lines {
					if l.Order.ID != o.ID {
						t.Errorf("line of order %s says order %s", o.ID, l.Order.ID)
					}
				}
				for _, in := range o.Customer.Interactions.Nodes {
					if in.CustomerID != o.Customer.ID {
						t.Errorf("interaction of customer %s says customer %s", o.Customer.ID, in.CustomerID)
					}
				}
			}
		})

		t.Run("different arguments batch separately", func(t *testing.T) {
			// Each distinct set of connection arguments is one statement for
			// all parents: two aliases, two statements, not 2×20.
			g.stmts.reset()
			g.query(t, `{ customers(first: 20) { nodes { a: orders(first: 1) { nodes { id } } b: orders(first: 2, orderBy: [{field: TOTAL, direction: DESC}]) { nodes { id } } c: orders(first: 1) { nodes { id } } } } }`, nil, nil)
			if got, want := g.stmts.counts(), map[string]int{"customers": 1, "orders": 2}; !maps.Equal(got, want) {
				t.Errorf("statements per product: %v, want %v\n%s", got, want, g.stmts.dump())
			}
		})
	})
}

// checkFederationData checks the nested answer against the stores' rows.
func checkFederationData(t *testing.T, res fedResult, cs []*customers.Customer, os []*orders.Order, ls []*orders.Line, is []*inventory.Item, ns []*engagement.Interaction) {
	t.Helper()
	itemName := map[string]string{}
	for _, it := range is {
		itemName[fmt.Sprint(it.ID)] = it.Name
	}
	linesOf := map[string][]string{}
	for _, l := range ls {
		k := fmt.Sprint(l.OrderID)
		linesOf[k] = append(linesOf[k], fmt.Sprint(l.ItemID))
	}
	if len(res.Customers.Nodes) != len(cs) {
		t.Fatalf("%d customers, want %d", len(res.Customers.Nodes), len(cs))
	}
	for i, c := range res.Customers.Nodes {
		want := cs[i]
		if c.ID != fmt.Sprint(want.ID) || c.Name != want.Name {
			t.Errorf("customer %d: %s %q, want %d %q", i, c.ID, c.Name, want.ID, want.Name)
		}
		var wantOrders []string
		for _, o := range os {
			if o.CustomerID == want.ID {
				wantOrders = append(wantOrders, fmt.Sprint(o.ID))
			}
		}
		var gotOrders []string
		for _, o := range c.Orders.Nodes {
			gotOrders = append(gotOrders, o.ID)
			if o.CustomerID != c.ID || o.Customer == nil || o.Customer.ID != c.ID || o.Customer.Name != c.Name {
				t.Errorf("order %s of customer %s: customer %+v", o.ID, c.ID, o.Customer)
			}
			var items []string
			for _, l := range o.Lines {
				items = append(items, l.ItemID)
				if l.Item == nil || l.Item.ID != l.ItemID || l.Item.Name != itemName[l.ItemID] {
					t.Errorf("order %s: line item %s resolved to %+v", o.ID, l.ItemID, l.Item)
				}
			}
			if !slices.Equal(items, linesOf[o.ID]) {
				t.Errorf("order %s: lines of items %v, want %v", o.ID, items, linesOf[o.ID])
			}
		}
		if c.Orders.TotalCount != len(wantOrders) || !slices.Equal(gotOrders, wantOrders[:min(5, len(wantOrders))]) {
			t.Errorf("customer %s: orders %v of %d, want %v of %d", c.ID, gotOrders, c.Orders.TotalCount, wantOrders[:min(5, len(wantOrders))], len(wantOrders))
		}
		var wantIn, gotIn []string
		for _, n := range ns {
			if n.CustomerID == want.ID && len(wantIn) < 3 {
				wantIn = append(wantIn, fmt.Sprint(n.ID))
			}
		}
		for _, n := range c.Interactions.Nodes {
			gotIn = append(gotIn, n.ID)
			if n.CustomerID != c.ID || n.Customer == nil || n.Customer.ID != c.ID {
				t.Errorf("interaction %s of customer %s: customer %+v", n.ID, c.ID, n.Customer)
			}
		}
		if !slices.Equal(gotIn, wantIn) {
			t.Errorf("customer %s: interactions %v, want %v", c.ID, gotIn, wantIn)
		}
	}
}
