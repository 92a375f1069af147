package web_test

// Data written through the API survives closing the mesh and opening it
// again on the same SQLite directory or PostgreSQL schemas; the demo seed
// runs only into empty stores; the audit sequence and the ids continue.

import (
	"fmt"
	"testing"

	"github.com/meshgate/meshgate/products/orders"
)

func TestRestart(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		stores := newStoreSet(t, backend)
		g1 := newGatewayOn(t, stores, gatewayOptions{scale: mutationScale})
		if !g1.seeded {
			t.Fatal("the first start did not seed the empty stores")
		}

		var open int64
		for _, o := range loadAll[orders.Order](t, g1.mesh.Store("orders").DB) {
			if o.Status != orders.StatusShipped && o.Status != orders.StatusCancelled {
				open = o.ID
				break
			}
		}
		var w struct {
			C struct{ ID string }
			I struct{ ID string }
			O struct {
				ID    string
				Total float64
			}
			X struct{ ID string }
		}
		g1.query(t, `mutation {
  c: createCustomer(input: {name: "Rita Restart", email: "rita@example.com", phone: "+4930999999", country: "IT", segment: SMALL_BUSINESS}) { id }
  i: createItem(input: {sku: "RST-1", name: "Restart Lamp", category: "Office", price: 19.99, stock: 3}) { id }
}`, nil, &w)
		g1.query(t, fmt.Sprintf(`mutation {
  o: placeOrder(customerId: %s, lines: [{itemId: %s, quantity: 2}, {itemId: 1, quantity: 1}]) { id total }
  u: updateCustomer(id: 1, input: {name: "Renamed Before Restart"}) { id }
  d: deleteInteraction(id: 1) { id }
  k: cancelOrder(id: %d) { id }
  x: createCustomer(input: {name: "Gone Soon", email: "gone@example.com", country: "IT", segment: CONSUMER}) { id }
}`, w.C.ID, w.I.ID, open), nil, &w)
		g1.query(t, `mutation($id: ID!) { deleteCustomer(id: $id) { id } }`, map[string]any{"id": w.X.ID}, nil)
		// A no-op request that fails must not matter either.
		g1.fail(t, "CONFLICT", "id", `mutation($id: ID!) { cancelOrder(id: $id) { id } }`, map[string]any{"id": open})

		before := takeSnapshot(t, g1)
		lastSeq := map[string]int64{}
		for _, s := range g1.mesh.Stores {
			log := auditLog(t, g1, s.Product.Name)
			if len(log) > 0 {
				lastSeq[s.Product.Name] = log[len(log)-1].Seq
			}
		}
		g1.closeFn()

		g2 := newGatewayOn(t, stores, gatewayOptions{scale: mutationScale})
		if g2.seeded {
			t.Fatal("the seed ran again on stores that hold data")
		}
		if d := before.diff(takeSnapshot(t, g2)); d != "" {
			t.Fatalf("the stores differ after the restart:\n%s", d)
		}

		var r struct {
			Customer struct {
				Name, Email, Country, Segment string
				Phone                         *string
				Orders                        struct {
					TotalCount int
					Nodes      []struct {
						ID     string
						Total  float64
						Status string
						Lines  []struct {
							Quantity int
							Item     struct{ Name string }
						}
					}
				}
			}
			Renamed   struct{ Name string }
			Gone      *struct{ ID string }
			Deleted   *struct{ ID string }
			Cancelled struct{ Status string }
			Item      struct {
				SKU   string
				Stock int
			}
		}
		g2.query(t, `query($c: ID!, $i: ID!, $x: ID!, $o: ID!) {
  customer(id: $c) { name email phone country segment orders { totalCount nodes { id total status lines { quantity item { name } } } } }
  renamed: customer(id: 1) { name }
  gone: customer(id: $x) { id }
  deleted: interaction(id: 1) { id }
  cancelled: order(id: $o) { status }
  item(id: $i) { sku stock }
}`, map[string]any{"c": w.C.ID, "i": w.I.ID, "x": w.X.ID, "o": open}, &r)
		c := r.Customer
		if c.Name != "Rita Restart" || c.Email != "rita@example.com" || c.Phone == nil || *c.Phone != "+4930999999" || c.Country != "IT" || c.Segment != "SMALL_BUSINESS" {
			t.Errorf("customer after restart: %+v", c)
		}
		if c.Orders.TotalCount != 1 || len(c.Orders.Nodes) != 1 || c.Orders.Nodes[0].ID != w.O.ID || c.Orders.Nodes[0].Total != w.O.Total ||
			c.Orders.Nodes[0].Status != "PLACED" || len(c.Orders.Nodes[0].Lines) != 2 ||
			c.Orders.Nodes[0].Lines[0].Item.Name != "Restart Lamp" || c.Orders.Nodes[0].Lines[0].Quantity != 2 {
			t.Errorf("orders after restart: %+v", c.Orders)
		}
		if r.Renamed.Name != "Renamed Before Restart" || r.Gone != nil || r.Deleted != nil || r.Cancelled.Status != "CANCELLED" || r.Item.SKU != "RST-1" || r.Item.Stock != 3 {
			t.Errorf("after restart: renamed %q, deleted customer %v, deleted interaction %v, cancelled order %q, item %+v",
				r.Renamed.Name, r.Gone, r.Deleted, r.Cancelled.Status, r.Item)
		}

		// Writing goes on where it stopped: the audit sequence continues and
		// ids are not reused, not even the deleted newest one.
		var n struct{ CreateCustomer struct{ ID string } }
		entries := audited(t, g2, "customers", func() {
			g2.query(t, `mutation { createCustomer(input: {name: "After Restart", email: "after@example.com", country: "SE", segment: CONSUMER}) { id } }`, nil, &n)
		})
		if len(entries) != 1 || entries[0].Seq != lastSeq["customers"]+1 {
			t.Errorf("audit after restart: %+v, want one entry with sequence %d", entries, lastSeq["customers"]+1)
		}
		if atoi(t, n.CreateCustomer.ID) <= atoi(t, w.X.ID) {
			t.Errorf("new customer id %s reuses ids up to the deleted %s", n.CreateCustomer.ID, w.X.ID)
		}
		var o struct{ PlaceOrder struct{ ID string } }
		g2.query(t, `mutation { placeOrder(customerId: 2, lines: [{itemId: 2, quantity: 1}]) { id } }`, nil, &o)
		if atoi(t, o.PlaceOrder.ID) <= atoi(t, w.O.ID) {
			t.Errorf("new order id %s after %s", o.PlaceOrder.ID, w.O.ID)
		}
	})
}
