package web_test

// Mutations through the real HTTP handler: each succeeds, its effect is
// visible through queries, and it writes exactly one audit entry per changed
// row in the same transaction; every bad input gets the right
// extensions.code (and field) and changes nothing in any store.

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/inventory"
	"github.com/meshgate/meshgate/products/orders"
)

// mutationScale seeds 20 customers, 5 items, 200 orders and 100 interactions.
const mutationScale = 0.01

// snapshot is the full content of every table of every store: entity
// tables, the audit log and its counter.
type snapshot map[string][]string

func takeSnapshot(t *testing.T, g *gateway) snapshot {
	t.Helper()
	out := snapshot{}
	for _, s := range g.mesh.Stores {
		tables := []string{"mg_audit_log", "mg_audit_seq"}
		for _, e := range s.Product.Entities {
			tables = append(tables, e.Table)
		}
		for _, table := range tables {
			rows, err := s.DB.QueryContext(t.Context(), "SELECT * FROM "+table+" ORDER BY 1")
			if err != nil {
				t.Fatalf("snapshot %s.%s: %v", s.Product.Name, table, err)
			}
			cols, _ := rows.Columns()
			var lines []string
			for rows.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				parts := make([]string, len(vals))
				for i, v := range vals {
					parts[i] = sqlString(v)
				}
				lines = append(lines, strings.Join(parts, "|"))
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			rows.Close()
			out[s.Product.Name+"."+table] = lines
		}
	}
	return out
}

// counts returns the row count of every table.
func (s snapshot) counts() map[string]int {
	out := map[string]int{}
	for k, v := range s {
		out[k] = len(v)
	}
	return out
}

// diff describes how two snapshots differ ("" when they are equal).
func (s snapshot) diff(other snapshot) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(s)) {
		if !slices.Equal(s[k], other[k]) {
			fmt.Fprintf(&b, "%s: %d rows before, %d after\n", k, len(s[k]), len(other[k]))
			for i := range max(len(s[k]), len(other[k])) {
				var x, y string
				if i < len(s[k]) {
					x = s[k][i]
				}
				if i < len(other[k]) {
					y = other[k][i]
				}
				if x != y {
					fmt.Fprintf(&b, "  - %s\n  + %s\n", x, y)
				}
			}
		}
	}
	return b.String()
}

// auditRow is one row of a store's mg_audit_log.
type auditRow struct {
	Seq             int64
	Entity, Key, Op string
	Before, After   map[string]any
}

func auditLog(t *testing.T, g *gateway, product string) []auditRow {
	t.Helper()
	rows, err := g.store(product).DB.QueryContext(t.Context(), `SELECT sequence, entity, key, op, before, after FROM mg_audit_log ORDER BY sequence`)
	if err != nil {
		t.Fatalf("read %s audit log: %v", product, err)
	}
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var r auditRow
		var key any
		var before, after sql.NullString
		if err := rows.Scan(&r.Seq, &r.Entity, &key, &r.Op, &before, &after); err != nil {
			t.Fatal(err)
		}
		r.Key, r.Op = sqlString(key), strings.ToLower(r.Op)
		for _, img := range []struct {
			s    sql.NullString
			into *map[string]any
		}{{before, &r.Before}, {after, &r.After}} {
			if img.s.Valid {
				if err := json.Unmarshal([]byte(img.s.String), img.into); err != nil {
					t.Fatalf("audit image %q: %v", img.s.String, err)
				}
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// audited runs fn and returns the audit entries it added to product's log,
// checking that every other store's log is unchanged and that the new
// sequences are above every earlier one and strictly increasing.
func audited(t *testing.T, g *gateway, product string, fn func()) []auditRow {
	t.Helper()
	before := map[string][]auditRow{}
	for _, d := range demo.Products {
		before[d.Name] = auditLog(t, g, d.Name)
	}
	fn()
	var added []auditRow
	for _, d := range demo.Products {
		after := auditLog(t, g, d.Name)
		old := before[d.Name]
		if len(after) < len(old) || !slices.EqualFunc(old, after[:len(old)], func(a, b auditRow) bool { return a.Seq == b.Seq && a.Key == b.Key && a.Op == b.Op }) {
			t.Fatalf("%s: earlier audit entries changed", d.Name)
		}
		last := int64(0)
		if len(old) > 0 {
			last = old[len(old)-1].Seq
		}
		for _, r := range after[len(old):] {
			if r.Seq <= last {
				t.Errorf("%s: sequence %d follows %d", d.Name, r.Seq, last)
			}
			last = r.Seq
		}
		if d.Name == product {
			added = after[len(old):]
		} else if len(after) != len(old) {
			t.Errorf("%s: %d audit entries written by a mutation of %s", d.Name, len(after)-len(old), product)
		}
	}
	return added
}

// checkEntry checks one audit entry's entity, key, operation and images;
// fields maps image field names to the values the after image (or, for a
// delete, the before image) must hold; beforeFields likewise for updates.
func checkEntry(t *testing.T, r auditRow, entity, key, op string, fields, beforeFields map[string]any) {
	t.Helper()
	if r.Entity != entity || r.Key != key || r.Op != op {
		t.Errorf("audit entry %d: %s %s %s, want %s %s %s", r.Seq, r.Entity, r.Key, r.Op, entity, key, op)
	}
	switch op {
	case "create":
		if r.Before != nil || r.After == nil {
			t.Errorf("create entry %d: before %v after %v", r.Seq, r.Before, r.After)
		}
	case "update":
		if r.Before == nil || r.After == nil {
			t.Errorf("update entry %d: before %v after %v", r.Seq, r.Before, r.After)
		}
	case "delete":
		if r.Before == nil || r.After != nil {
			t.Errorf("delete entry %d: before %v after %v", r.Seq, r.Before, r.After)
		}
	}
	img := r.After
	if op == "delete" {
		img = r.Before
	}
	for k, v := range fields {
		if fmt.Sprint(img[k]) != fmt.Sprint(v) {
			t.Errorf("audit entry %d (%s %s): %s = %v, want %v", r.Seq, entity, op, k, img[k], v)
		}
	}
	for k, v := range beforeFields {
		if fmt.Sprint(r.Before[k]) != fmt.Sprint(v) {
			t.Errorf("audit entry %d (%s %s): before %s = %v, want %v", r.Seq, entity, op, k, r.Before[k], v)
		}
	}
}

func TestMutations(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		g := newGateway(t, backend, gatewayOptions{scale: mutationScale})

		t.Run("customer", func(t *testing.T) {
			type customer struct {
				ID, Name, Email, Country, Segment, CreatedAt, UpdatedAt string
				Phone                                                   *string
			}
			const fields = `id name email phone country segment createdAt updatedAt`
			var created struct{ CreateCustomer customer }
			entries := audited(t, g, "customers", func() {
				g.query(t, `mutation($in: CreateCustomerInput!) { createCustomer(input: $in) { `+fields+` } }`, map[string]any{"in": map[string]any{
					"name": "  Ada Test ", "email": " ADA.Test@Example.COM", "phone": "+49 30 1234567", "country": "DE", "segment": "ENTERPRISE",
				}}, &created)
			})
			c := created.CreateCustomer
			if c.Name != "Ada Test" || c.Email != "ada.test@example.com" || c.Phone == nil || *c.Phone != "+49301234567" ||
				c.Country != "DE" || c.Segment != "ENTERPRISE" || c.CreatedAt == "" || c.CreatedAt != c.UpdatedAt {
				t.Errorf("created %+v", c)
			}
			if len(entries) != 1 {
				t.Fatalf("%d audit entries for createCustomer", len(entries))
			}
			checkEntry(t, entries[0], "Customer", c.ID, "create", map[string]any{"id": c.ID, "name": "Ada Test", "email": "ada.test@example.com"}, nil)

			var read struct {
				Customer  customer
				Customers struct{ Nodes []struct{ ID string } }
			}
			g.query(t, `query($id: ID!) { customer(id: $id) { `+fields+` } customers(where: {email: {eq: "ada.test@example.com"}}) { nodes { id } } }`, map[string]any{"id": c.ID}, &read)
			if mustJSON(read.Customer) != mustJSON(c) || len(read.Customers.Nodes) != 1 || read.Customers.Nodes[0].ID != c.ID {
				t.Errorf("read back %+v %+v, want %+v", read.Customer, read.Customers, c)
			}

			var updated struct{ UpdateCustomer customer }
			entries = audited(t, g, "customers", func() {
				g.query(t, `mutation($id: ID!) { updateCustomer(id: $id, input: {name: "Ada Updated", phone: null, country: "FR"}) { `+fields+` } }`, map[string]any{"id": c.ID}, &updated)
			})
			u := updated.UpdateCustomer
			if u.Name != "Ada Updated" || u.Phone != nil || u.Country != "FR" || u.Email != c.Email || u.Segment != c.Segment || u.CreatedAt != c.CreatedAt || u.UpdatedAt < c.UpdatedAt {
				t.Errorf("updated %+v (was %+v)", u, c)
			}
			if len(entries) != 1 {
				t.Fatalf("%d audit entries for updateCustomer", len(entries))
			}
			checkEntry(t, entries[0], "Customer", c.ID, "update",
				map[string]any{"name": "Ada Updated", "phone": nil, "country": "FR", "email": c.Email},
				map[string]any{"name": "Ada Test", "phone": "+49301234567", "country": "DE"})
			g.query(t, `query($id: ID!) { customer(id: $id) { `+fields+` } customers(where: {email: {eq: "ada.test@example.com"}}) { nodes { id } } }`, map[string]any{"id": c.ID}, &read)
			if mustJSON(read.Customer) != mustJSON(u) {
				t.Errorf("read back %+v, want %+v", read.Customer, u)
			}

			var deleted struct{ DeleteCustomer customer }
			entries = audited(t, g, "customers", func() {
				g.query(t, `mutation($id: ID!) { deleteCustomer(id: $id) { `+fields+` } }`, map[string]any{"id": c.ID}, &deleted)
			})
			if mustJSON(deleted.DeleteCustomer) != mustJSON(u) {
				t.Errorf("deleteCustomer returned %+v, want %+v", deleted.DeleteCustomer, u)
			}
			if len(entries) != 1 {
				t.Fatalf("%d audit entries for deleteCustomer", len(entries))
			}
			checkEntry(t, entries[0], "Customer", c.ID, "delete", map[string]any{"name": "Ada Updated"}, nil)
			r := g.post(t, `query($id: ID!) { customer(id: $id) { id } }`, map[string]any{"id": c.ID})
			if len(r.Errors) > 0 || string(r.Data) != `{"customer":null}` {
				t.Errorf("deleted customer reads as %s %v", r.Data, r.Errors)
			}
		})

		t.Run("item", func(t *testing.T) {
			type item struct {
				ID, SKU, Name, Category string
				Price                   products.Decimal
				Stock                   int
			}
			const fields = `id sku name category price stock`
			var created struct{ CreateItem item }
			entries := audited(t, g, "inventory", func() {
				g.query(t, `mutation { createItem(input: {sku: " T-1 ", name: "Test Item", category: "Test", price: 12.5, stock: 7}) { `+fields+` } }`, nil, &created)
			})
			it := created.CreateItem
			if it.SKU != "T-1" || it.Name != "Test Item" || it.Category != "Test" || it.Price != products.Cents(1250) || it.Stock != 7 {
				t.Errorf("created %+v", it)
			}
			if len(entries) != 1 {
				t.Fatalf("%d audit entries", len(entries))
			}
			// Audit images (and change events) carry money as exact strings.
			checkEntry(t, entries[0], "Item", it.ID, "create", map[string]any{"sku": "T-1", "price": "12.50", "stock": 7}, nil)

			var updated struct{ UpdateItem item }
			entries = audited(t, g, "inventory", func() {
				g.query(t, `mutation($id: ID!) { updateItem(id: $id, input: {price: "20.05", stock: 0}) { `+fields+` } }`, map[string]any{"id": it.ID}, &updated)
			})
			u := updated.UpdateItem
			if u.Price != products.Cents(2005) || u.Stock != 0 || u.SKU != "T-1" || u.Name != it.Name {
				t.Errorf("updated %+v", u)
			}
			if len(entries) != 1 {
				t.Fatalf("%d audit entries", len(entries))
			}
			checkEntry(t, entries[0], "Item", it.ID, "update", map[string]any{"price": "20.05", "stock": 0}, map[string]any{"price": "12.50", "stock": 7})
			var read struct{ Item item }
			g.query(t, `query($id: ID!) { item(id: $id) { `+fields+` } }`, map[string]any{"id": it.ID}, &read)
			if read.Item != u {
				t.Errorf("read back %+v, want %+v", read.Item, u)
			}

			entries = audited(t, g, "inventory", func() {
				g.query(t, `mutation($id: ID!) { deleteItem(id: $id) { id } }`, map[string]any{"id": it.ID}, nil)
			})
			if len(entries) != 1 {
				t.Fatalf("%d audit entries", len(entries))
			}
			checkEntry(t, entries[0], "Item", it.ID, "delete", map[string]any{"sku": "T-1"}, nil)
			r := g.post(t, `query($id: ID!) { item(id: $id) { id } }`, map[string]any{"id": it.ID})
			if string(r.Data) != `{"item":null}` {
				t.Errorf("deleted item reads as %s", r.Data)
			}
		})

		t.Run("interaction", func(t *testing.T) {
			type interaction struct {
				ID, CustomerID, Channel, Kind, OccurredAt string
				Sentiment                                 float64
				Note                                      *string
				Customer                                  struct{ ID string }
			}
			const fields = `id customerId channel kind occurredAt sentiment note customer { id }`
			var created struct{ CreateInteraction interaction }
			entries := audited(t, g, "engagement", func() {
				g.query(t, `mutation { createInteraction(input: {customerId: 4, channel: CHAT, kind: FEEDBACK, sentiment: 0.5, note: " hi ", occurredAt: "2026-01-02T04:04:05.123456+01:00"}) { `+fields+` } }`, nil, &created)
			})
			in := created.CreateInteraction
			if in.CustomerID != "4" || in.Customer.ID != "4" || in.Channel != "CHAT" || in.Kind != "FEEDBACK" || in.Sentiment != 0.5 ||
				in.Note == nil || *in.Note != "hi" || in.OccurredAt != "2026-01-02T03:04:05.123456Z" {
				t.Errorf("created %+v", in)
			}
			if len(entries) != 1 {
				t.Fatalf("%d audit entries", len(entries))
			}
			checkEntry(t, entries[0], "Interaction", in.ID, "create", map[string]any{"customerId": 4, "channel": "CHAT", "note": "hi"}, nil)
			var read struct{ Interaction interaction }
			g.query(t, `query($id: ID!) { interaction(id: $id) { `+fields+` } }`, map[string]any{"id": in.ID}, &read)
			if mustJSON(read.Interaction) != mustJSON(in) {
				t.Errorf("read back %+v, want %+v", read.Interaction, in)
			}

			var updated struct{ UpdateInteraction interaction }
			entries = audited(t, g, "engagement", func() {
				g.query(t, `mutation($id: ID!) { updateInteraction(id: $id, input: {note: null, sentiment: -1, kind: COMPLAINT}) { `+fields+` } }`, map[string]any{"id": in.ID}, &updated)
			})
			u := updated.UpdateInteraction
			if u.Note != nil || u.Sentiment != -1 || u.Kind != "COMPLAINT" || u.Channel != "CHAT" || u.OccurredAt != in.OccurredAt {
				t.Errorf("updated %+v", u)
			}
			if len(entries) != 1 {
				t.Fatalf("%d audit entries", len(entries))
			}
			checkEntry(t, entries[0], "Interaction", in.ID, "update", map[string]any{"note": nil, "sentiment": -1, "kind": "COMPLAINT"}, map[string]any{"note": "hi", "sentiment": 0.5})

			entries = audited(t, g, "engagement", func() {
				g.query(t, `mutation($id: ID!) { deleteInteraction(id: $id) { id } }`, map[string]any{"id": in.ID}, nil)
			})
			if len(entries) != 1 {
				t.Fatalf("%d audit entries", len(entries))
			}
			checkEntry(t, entries[0], "Interaction", in.ID, "delete", map[string]any{"kind": "COMPLAINT"}, nil)
			r := g.post(t, `query($id: ID!) { interaction(id: $id) { id } }`, map[string]any{"id": in.ID})
			if string(r.Data) != `{"interaction":null}` {
				t.Errorf("deleted interaction reads as %s", r.Data)
			}
		})

		t.Run("order", func(t *testing.T) {
			items := loadAll[inventory.Item](t, g.mesh.Store("inventory").DB)
			p1, p3 := items[0].Price, items[2].Price
			type order struct {
				ID, CustomerID, Status, Currency, PlacedAt string
				Total                                      products.Decimal
				Customer                                   struct{ ID string }
				Lines                                      []struct {
					ID, ItemID        string
					Quantity          int
					UnitPrice, Amount products.Decimal
				}
			}
			const fields = `id customerId status currency placedAt total customer { id } lines { id itemId quantity unitPrice amount }`
			var placed struct{ PlaceOrder order }
			entries := audited(t, g, "orders", func() {
				g.query(t, `mutation { placeOrder(customerId: 2, lines: [{itemId: 1, quantity: 3}, {itemId: "3", quantity: 1}], currency: "USD") { `+fields+` } }`, nil, &placed)
			})
			o := placed.PlaceOrder
			// Exact: the decimal literals decode into cents without floats.
			a1, _ := p1.Mul(3)
			total, _ := a1.Add(p3)
			if o.CustomerID != "2" || o.Customer.ID != "2" || o.Status != "PLACED" || o.Currency != "USD" || o.Total != total || len(o.Lines) != 2 {
				t.Fatalf("placed %+v", o)
			}
			if l := o.Lines[0]; l.ItemID != "1" || l.Quantity != 3 || l.UnitPrice != p1 || l.Amount != a1 {
				t.Errorf("line 0: %+v", l)
			}
			if l := o.Lines[1]; l.ItemID != "3" || l.Quantity != 1 || l.UnitPrice != p3 || l.Amount != p3 {
				t.Errorf("line 1: %+v", l)
			}
			if len(entries) != 3 {
				t.Fatalf("%d audit entries for an order with 2 lines, want 3", len(entries))
			}
			checkEntry(t, entries[0], "Order", o.ID, "create", map[string]any{"status": "PLACED", "customerId": 2, "currency": "USD"}, nil)
			checkEntry(t, entries[1], "OrderLine", o.Lines[0].ID, "create", map[string]any{"orderId": o.ID, "itemId": 1, "quantity": 3}, nil)
			checkEntry(t, entries[2], "OrderLine", o.Lines[1].ID, "create", map[string]any{"orderId": o.ID, "itemId": 3, "quantity": 1}, nil)
			if entries[2].Seq-entries[0].Seq != 2 {
				t.Errorf("one transaction's entries are not consecutive: %d..%d", entries[0].Seq, entries[2].Seq)
			}
			var read struct {
				Order    order
				Customer struct {
					Orders struct {
						TotalCount int
						Nodes      []struct{ ID string }
					}
				}
			}
			g.query(t, `query($id: ID!) { order(id: $id) { `+fields+` } customer(id: 2) { orders(last: 1) { totalCount nodes { id } } } }`, map[string]any{"id": o.ID}, &read)
			if mustJSON(read.Order) != mustJSON(o) || len(read.Customer.Orders.Nodes) != 1 || read.Customer.Orders.Nodes[0].ID != o.ID {
				t.Errorf("read back %+v / %+v, want %+v", read.Order, read.Customer, o)
			}

			var cancelled struct{ CancelOrder order }
			entries = audited(t, g, "orders", func() {
				g.query(t, `mutation($id: ID!) { cancelOrder(id: $id) { `+fields+` } }`, map[string]any{"id": o.ID}, &cancelled)
			})
			if c := cancelled.CancelOrder; c.Status != "CANCELLED" || c.Total != o.Total || len(c.Lines) != 2 {
				t.Errorf("cancelled %+v", c)
			}
			if len(entries) != 1 {
				t.Fatalf("%d audit entries for cancelOrder", len(entries))
			}
			checkEntry(t, entries[0], "Order", o.ID, "update", map[string]any{"status": "CANCELLED"}, map[string]any{"status": "PLACED"})
			g.query(t, `query($id: ID!) { order(id: $id) { `+fields+` } }`, map[string]any{"id": o.ID}, &read)
			if read.Order.Status != "CANCELLED" {
				t.Errorf("cancelled order reads as %s", read.Order.Status)
			}

			// Default currency.
			var eur struct{ PlaceOrder order }
			g.query(t, `mutation { placeOrder(customerId: 1, lines: [{itemId: 2, quantity: 1}]) { `+fields+` } }`, nil, &eur)
			if eur.PlaceOrder.Currency != "EUR" {
				t.Errorf("default currency %q", eur.PlaceOrder.Currency)
			}
		})
	})
}

func TestMutationBadInput(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		// Half the mutation scale: 10 customers, 2 items, 100 orders; the
		// stores are read twice per case.
		g := newGateway(t, backend, gatewayOptions{scale: mutationScale / 2})
		cs := loadAll[customers.Customer](t, g.mesh.Store("customers").DB)
		os := loadAll[orders.Order](t, g.mesh.Store("orders").DB)
		var shipped, cancelled string
		for _, o := range os {
			switch {
			case o.Status == orders.StatusShipped && shipped == "":
				shipped = fmt.Sprint(o.ID)
			case o.Status == orders.StatusCancelled && cancelled == "":
				cancelled = fmt.Sprint(o.ID)
			}
		}
		if shipped == "" || cancelled == "" {
			t.Fatalf("test data: no shipped or no cancelled order")
		}
		taken := strings.ToUpper(cs[3].Email)
		const createCustomer = `mutation($in: CreateCustomerInput!) { createCustomer(input: $in) { id } }`
		cust := func(over map[string]any) map[string]any {
			in := map[string]any{"name": "Bea Bad", "email": "bea.bad@example.com", "country": "DE", "segment": "CONSUMER"}
			maps.Copy(in, over)
			return map[string]any{"in": in}
		}
		const createItem = `mutation($in: CreateItemInput!) { createItem(input: $in) { id } }`
		item := func(over map[string]any) map[string]any {
			in := map[string]any{"sku": "BAD-1", "name": "Bad", "category": "Test", "price": 1.5, "stock": 1}
			maps.Copy(in, over)
			return map[string]any{"in": in}
		}
		const createInteraction = `mutation($in: CreateInteractionInput!) { createInteraction(input: $in) { id } }`
		interaction := func(over map[string]any) map[string]any {
			in := map[string]any{"customerId": "1", "channel": "EMAIL", "kind": "INQUIRY", "sentiment": 0}
			maps.Copy(in, over)
			return map[string]any{"in": in}
		}
		const placeOrder = `mutation($c: ID!, $lines: [OrderLineInput!]!, $cur: String) { placeOrder(customerId: $c, lines: $lines, currency: $cur) { id } }`
		order := func(customer any, cur any, lines ...map[string]any) map[string]any {
			v := map[string]any{"c": customer, "lines": append([]map[string]any{}, lines...)}
			if cur != nil {
				v["cur"] = cur
			}
			return v
		}
		line := func(item any, q int) map[string]any { return map[string]any{"itemId": item, "quantity": q} }
		const (
			updateCustomer    = `mutation($id: ID!, $in: UpdateCustomerInput!) { updateCustomer(id: $id, input: $in) { id } }`
			updateItem        = `mutation($id: ID!, $in: UpdateItemInput!) { updateItem(id: $id, input: $in) { id } }`
			updateInteraction = `mutation($id: ID!, $in: UpdateInteractionInput!) { updateInteraction(id: $id, input: $in) { id } }`
		)
		upd := func(id any, in map[string]any) map[string]any { return map[string]any{"id": id, "in": in} }
		id := func(v any) map[string]any { return map[string]any{"id": v} }

		cases := []struct {
			name, code, field, query string
			vars                     map[string]any
		}{
			// customers
			{"createCustomer/empty name", "BAD_USER_INPUT", "input.name", createCustomer, cust(map[string]any{"name": ""})},
			{"createCustomer/blank name", "BAD_USER_INPUT", "input.name", createCustomer, cust(map[string]any{"name": "   "})},
			{"createCustomer/long name", "BAD_USER_INPUT", "input.name", createCustomer, cust(map[string]any{"name": strings.Repeat("n", 201)})},
			{"createCustomer/bad email", "BAD_USER_INPUT", "input.email", createCustomer, cust(map[string]any{"email": "not-an-email"})},
			{"createCustomer/email without domain dot", "BAD_USER_INPUT", "input.email", createCustomer, cust(map[string]any{"email": "bea@localhost"})},
			{"createCustomer/email with name", "BAD_USER_INPUT", "input.email", createCustomer, cust(map[string]any{"email": "Bea <bea@example.com>"})},
			{"createCustomer/duplicate email", "BAD_USER_INPUT", "input.email", createCustomer, cust(map[string]any{"email": taken})},
			{"createCustomer/bad phone", "BAD_USER_INPUT", "input.phone", createCustomer, cust(map[string]any{"phone": "12345"})},
			{"createCustomer/phone with letters", "BAD_USER_INPUT", "input.phone", createCustomer, cust(map[string]any{"phone": "+49 30 CALLME"})},
			{"createCustomer/lower-case country", "BAD_USER_INPUT", "input.country", createCustomer, cust(map[string]any{"country": "de"})},
			{"createCustomer/three-letter country", "BAD_USER_INPUT", "input.country", createCustomer, cust(map[string]any{"country": "DEU"})},
			{"createCustomer/bad segment", "GRAPHQL_VALIDATION_FAILED", "", createCustomer, cust(map[string]any{"segment": "VIP"})},
			{"createCustomer/missing email", "GRAPHQL_VALIDATION_FAILED", "", `mutation { createCustomer(input: {name: "X", country: "DE", segment: CONSUMER}) { id } }`, nil},
			{"updateCustomer/unknown id", "NOT_FOUND", "", updateCustomer, upd("999999", map[string]any{"name": "X"})},
			{"updateCustomer/malformed id", "BAD_USER_INPUT", "", updateCustomer, upd("abc", map[string]any{"name": "X"})},
			{"updateCustomer/null name", "BAD_USER_INPUT", "input.name", updateCustomer, upd(cs[0].ID, map[string]any{"name": nil})},
			{"updateCustomer/empty name", "BAD_USER_INPUT", "input.name", updateCustomer, upd(cs[0].ID, map[string]any{"name": ""})},
			{"updateCustomer/duplicate email", "BAD_USER_INPUT", "input.email", updateCustomer, upd(cs[0].ID, map[string]any{"email": taken})},
			{"updateCustomer/bad email", "BAD_USER_INPUT", "input.email", updateCustomer, upd(cs[0].ID, map[string]any{"email": "x@"})},
			{"updateCustomer/bad phone", "BAD_USER_INPUT", "input.phone", updateCustomer, upd(cs[0].ID, map[string]any{"phone": "+0123"})},
			{"updateCustomer/bad country", "BAD_USER_INPUT", "input.country", updateCustomer, upd(cs[0].ID, map[string]any{"country": "Germany"})},
			{"updateCustomer/good name with bad country", "BAD_USER_INPUT", "input.country", updateCustomer, upd(cs[0].ID, map[string]any{"name": "Changed", "country": "xx"})},
			{"deleteCustomer/unknown id", "NOT_FOUND", "", `mutation($id: ID!) { deleteCustomer(id: $id) { id } }`, id(999999)},
			{"deleteCustomer/malformed id", "BAD_USER_INPUT", "", `mutation($id: ID!) { deleteCustomer(id: $id) { id } }`, id("1e3")},
			// inventory
			{"createItem/empty sku", "BAD_USER_INPUT", "input.sku", createItem, item(map[string]any{"sku": " "})},
			{"createItem/empty name", "BAD_USER_INPUT", "input.name", createItem, item(map[string]any{"name": ""})},
			{"createItem/negative price", "BAD_USER_INPUT", "input.price", createItem, item(map[string]any{"price": -0.01})},
			{"createItem/huge price", "BAD_USER_INPUT", "input.price", createItem, item(map[string]any{"price": 2e9})},
			{"createItem/negative stock", "BAD_USER_INPUT", "input.stock", createItem, item(map[string]any{"stock": -1})},
			{"createItem/duplicate sku", "BAD_USER_INPUT", "input.sku", createItem, item(map[string]any{"sku": "SKU-000002"})},
			{"createItem/price as text", "BAD_USER_INPUT", "", createItem, item(map[string]any{"price": "cheap"})},
			{"createItem/fraction of a cent", "BAD_USER_INPUT", "", createItem, item(map[string]any{"price": 1.005})},
			{"createItem/fraction of a cent as text", "BAD_USER_INPUT", "", createItem, item(map[string]any{"price": "1.005"})},
			{"createItem/NaN", "BAD_USER_INPUT", "", createItem, item(map[string]any{"price": "NaN"})},
			{"createItem/out of range", "BAD_USER_INPUT", "", createItem, item(map[string]any{"price": "1e400"})},
			{"createItem/too many digits", "BAD_USER_INPUT", "", createItem, item(map[string]any{"price": "12345678901234567"})},
			{"updateItem/unknown id", "NOT_FOUND", "", updateItem, upd(999999, map[string]any{"stock": 1})},
			{"updateItem/negative price", "BAD_USER_INPUT", "input.price", updateItem, upd(1, map[string]any{"price": -5})},
			{"updateItem/negative stock", "BAD_USER_INPUT", "input.stock", updateItem, upd(1, map[string]any{"stock": -5})},
			{"updateItem/duplicate sku", "BAD_USER_INPUT", "input.sku", updateItem, upd(1, map[string]any{"sku": "SKU-000002"})},
			{"updateItem/null sku", "BAD_USER_INPUT", "input.sku", updateItem, upd(1, map[string]any{"sku": nil})},
			{"deleteItem/unknown id", "NOT_FOUND", "", `mutation { deleteItem(id: 999999) { id } }`, nil},
			// engagement
			{"createInteraction/sentiment above 1", "BAD_USER_INPUT", "input.sentiment", createInteraction, interaction(map[string]any{"sentiment": 1.5})},
			{"createInteraction/sentiment below -1", "BAD_USER_INPUT", "input.sentiment", createInteraction, interaction(map[string]any{"sentiment": -1.01})},
			{"createInteraction/unknown customer", "NOT_FOUND", "input.customerId", createInteraction, interaction(map[string]any{"customerId": "999999"})},
			{"createInteraction/long note", "BAD_USER_INPUT", "input.note", createInteraction, interaction(map[string]any{"note": strings.Repeat("n", 2001)})},
			{"createInteraction/before 1970", "BAD_USER_INPUT", "input.occurredAt", createInteraction, interaction(map[string]any{"occurredAt": "1969-12-31T23:59:59Z"})},
			{"createInteraction/malformed time", "BAD_USER_INPUT", "", createInteraction, interaction(map[string]any{"occurredAt": "yesterday"})},
			{"createInteraction/bad channel", "GRAPHQL_VALIDATION_FAILED", "", createInteraction, interaction(map[string]any{"channel": "FAX"})},
			{"updateInteraction/unknown id", "NOT_FOUND", "", updateInteraction, upd(999999, map[string]any{"sentiment": 0})},
			{"updateInteraction/sentiment", "BAD_USER_INPUT", "input.sentiment", updateInteraction, upd(1, map[string]any{"sentiment": 2})},
			{"updateInteraction/null channel", "BAD_USER_INPUT", "input.channel", updateInteraction, upd(1, map[string]any{"channel": nil})},
			{"deleteInteraction/unknown id", "NOT_FOUND", "", `mutation { deleteInteraction(id: 999999) { id } }`, nil},
			// orders
			{"placeOrder/unknown customer", "NOT_FOUND", "customerId", placeOrder, order("999999", nil, line(1, 1))},
			{"placeOrder/unknown item", "NOT_FOUND", "lines[1].itemId", placeOrder, order(1, nil, line(1, 1), line(999999, 1))},
			{"placeOrder/empty lines", "BAD_USER_INPUT", "lines", placeOrder, order(1, nil)},
			{"placeOrder/quantity 0", "BAD_USER_INPUT", "lines[0].quantity", placeOrder, order(1, nil, line(1, 0))},
			{"placeOrder/negative quantity", "BAD_USER_INPUT", "lines[1].quantity", placeOrder, order(1, nil, line(1, 1), line(2, -3))},
			{"placeOrder/quantity too large", "BAD_USER_INPUT", "lines[0].quantity", placeOrder, order(1, nil, line(1, 10001))},
			{"placeOrder/duplicate item lines", "BAD_USER_INPUT", "lines[1].itemId", placeOrder, order(1, nil, line(2, 1), line("2", 4))},
			{"placeOrder/lower-case currency", "BAD_USER_INPUT", "currency", placeOrder, order(1, "eur", line(1, 1))},
			{"placeOrder/long currency", "BAD_USER_INPUT", "currency", placeOrder, order(1, "EURO", line(1, 1))},
			{"placeOrder/too many lines", "BAD_USER_INPUT", "lines", placeOrder, order(1, nil, manyLines(orders.MaxLines+1)...)},
			{"cancelOrder/unknown id", "NOT_FOUND", "", `mutation { cancelOrder(id: 999999) { id } }`, nil},
			{"cancelOrder/cancelled", "CONFLICT", "id", `mutation($id: ID!) { cancelOrder(id: $id) { id } }`, id(cancelled)},
			{"cancelOrder/shipped", "CONFLICT", "id", `mutation($id: ID!) { cancelOrder(id: $id) { id } }`, id(shipped)},
		}
		// The cases run one after the other on one gateway: each compares
		// the stores after it with the stores after the case before.
		before := takeSnapshot(t, g)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e := g.fail(t, c.code, c.field, c.query, c.vars)
				if c.field != "" && !strings.Contains(e.Message, c.field) {
					t.Errorf("message %q does not name the field %s", e.Message, c.field)
				}
				after := takeSnapshot(t, g)
				if d := before.diff(after); d != "" {
					t.Errorf("a rejected mutation changed the stores:\n%s", d)
				}
				if !maps.Equal(before.counts(), after.counts()) {
					t.Errorf("row counts changed: %v → %v", before.counts(), after.counts())
				}
				before = after
			})
		}

		t.Run("cancel twice", func(t *testing.T) {
			var placed struct{ PlaceOrder struct{ ID string } }
			g.query(t, `mutation { placeOrder(customerId: 3, lines: [{itemId: 1, quantity: 1}]) { id } }`, nil, &placed)
			oid := placed.PlaceOrder.ID
			g.query(t, `mutation($id: ID!) { cancelOrder(id: $id) { status } }`, id(oid), nil)
			before := takeSnapshot(t, g)
			g.fail(t, "CONFLICT", "id", `mutation($id: ID!) { cancelOrder(id: $id) { status } }`, id(oid))
			if d := before.diff(takeSnapshot(t, g)); d != "" {
				t.Errorf("the second cancel changed the stores:\n%s", d)
			}
		})

		t.Run("a failing mutation after a good one", func(t *testing.T) {
			// Mutations run one after the other; the first commits, the
			// second changes nothing.
			before := takeSnapshot(t, g)
			r := g.post(t, `mutation { ok: createItem(input: {sku: "SEQ-1", name: "Seq", category: "Test", price: 1, stock: 1}) { id } bad: createItem(input: {sku: "SEQ-1", name: "Seq", category: "Test", price: 1, stock: 1}) { id } }`, nil)
			if len(r.Errors) != 1 || r.Errors[0].code() != "BAD_USER_INPUT" || r.Errors[0].field() != "input.sku" {
				t.Fatalf("errors %s", mustJSON(r.Errors))
			}
			after := takeSnapshot(t, g).counts()
			want := before.counts()
			want["inventory.items"]++
			want["inventory.mg_audit_log"]++
			if !maps.Equal(after, want) {
				t.Errorf("row counts %v, want %v", after, want)
			}
		})
	})
}

func manyLines(n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = map[string]any{"itemId": i + 1, "quantity": 1}
	}
	return out
}

// TestConcurrentMutations checks the audit sequence under concurrent
// writers: one entry per change, sequences unique and in commit order.
func TestConcurrentMutations(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		g := newGateway(t, backend, gatewayOptions{scale: mutationScale})
		const writers, each = 6, 4
		seeded := len(auditLog(t, g, "customers")) // the seed's own entries
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					body, _ := json.Marshal(map[string]any{
						"query":     `mutation($in: CreateCustomerInput!) { createCustomer(input: $in) { id } }`,
						"variables": map[string]any{"in": map[string]any{"name": "Par", "email": fmt.Sprintf("par.%d.%d@example.com", w, i), "country": "SE", "segment": "CONSUMER"}},
					})
					resp, err := g.srv.Client().Post(g.srv.URL+"/graphql", "application/json", strings.NewReader(string(body)))
					if err != nil {
						errs <- err
						continue
					}
					var r gqlResponse
					err = json.NewDecoder(resp.Body).Decode(&r)
					resp.Body.Close()
					if err != nil || len(r.Errors) > 0 || resp.StatusCode != http.StatusOK {
						errs <- fmt.Errorf("HTTP %d %v %v", resp.StatusCode, err, r.Errors)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		log := auditLog(t, g, "customers")[seeded:]
		if len(log) != writers*each {
			t.Fatalf("%d audit entries, want %d", len(log), writers*each)
		}
		keys := map[string]bool{}
		for i, r := range log {
			if i > 0 && r.Seq <= log[i-1].Seq {
				t.Errorf("sequence %d follows %d", r.Seq, log[i-1].Seq)
			}
			if r.Op != "create" || keys[r.Key] {
				t.Errorf("entry %d: %s of %s", r.Seq, r.Op, r.Key)
			}
			keys[r.Key] = true
		}
		if first, last := log[0].Seq, log[len(log)-1].Seq; last-first != int64(len(log)-1) {
			t.Errorf("sequences %d..%d have gaps for %d entries", first, last, len(log))
		}
	})
}
