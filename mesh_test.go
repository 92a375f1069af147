package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/demo"
)

// meshDSN returns the DSN function for the stores a gateway started with args
// uses (the --store flags, else SQLite files in dataDir).
func meshDSN(dataDir string, args []string) func(string) string {
	stores := map[string]string{}
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--store" {
			name, dsn, _ := strings.Cut(args[i+1], "=")
			stores[name] = dsn
		}
	}
	return func(p string) string {
		if d, ok := stores[p]; ok {
			return d
		}
		return "sqlite:" + filepath.Join(dataDir, p+".db")
	}
}

type figures struct {
	Orders  int
	Revenue int64
	Days    map[string]string // date → "orders/revenue"
	Custs   map[int64]string  // customer → "orders/revenue"
	Items   map[int64]string  // item → "units/revenue"
}

// cents is the identity: money is stored as whole cents.
func cents(v int64) int64 { return v }

// sourceFigures computes, with SQL over the orders store, what sales must show.
func sourceFigures(t *testing.T, ctx context.Context, m *products.Mesh) figures {
	t.Helper()
	f := figures{Days: map[string]string{}, Custs: map[int64]string{}, Items: map[int64]string{}}
	db := m.Store("orders").DB
	var rows []struct {
		Day     string `bun:"day"`
		N       int    `bun:"n"`
		Revenue int64  `bun:"revenue"` // cents
	}
	dayExpr := "substr(placed_at, 1, 10)"
	if m.Store("orders").Dialect().String() == "pg" {
		dayExpr = "to_char(placed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
	}
	if err := db.NewSelect().TableExpr("orders").ColumnExpr(dayExpr+" AS day, COUNT(*) AS n, SUM(total) AS revenue").
		Where("status <> 'CANCELLED'").GroupExpr(dayExpr).Scan(ctx, &rows); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		f.Orders += r.N
		f.Revenue += r.Revenue
		f.Days[r.Day] = fmt.Sprintf("%d/%d", r.N, cents(r.Revenue))
	}
	var cust []struct {
		ID      int64 `bun:"id"`
		N       int   `bun:"n"`
		Revenue int64 `bun:"revenue"` // cents
	}
	if err := db.NewSelect().TableExpr("orders").ColumnExpr("customer_id AS id, COUNT(*) AS n, SUM(total) AS revenue").
		Where("status <> 'CANCELLED'").GroupExpr("customer_id").Scan(ctx, &cust); err != nil {
		t.Fatal(err)
	}
	for _, r := range cust {
		f.Custs[r.ID] = fmt.Sprintf("%d/%d", r.N, cents(r.Revenue))
	}
	var items []struct {
		ID      int64 `bun:"id"`
		Units   int   `bun:"units"`
		Revenue int64 `bun:"revenue"` // cents
	}
	if err := db.NewSelect().TableExpr("order_lines AS l").Join("JOIN orders AS o ON o.id = l.order_id").
		ColumnExpr("l.item_id AS id, SUM(l.quantity) AS units, SUM(l.amount) AS revenue").
		Where("o.status <> 'CANCELLED'").GroupExpr("l.item_id").Scan(ctx, &items); err != nil {
		t.Fatal(err)
	}
	for _, r := range items {
		f.Items[r.ID] = fmt.Sprintf("%d/%d", r.Units, cents(r.Revenue))
	}
	return f
}

// salesFigures reads the same figures from the sales store.
func salesFigures(t *testing.T, ctx context.Context, m *products.Mesh) figures {
	t.Helper()
	f := figures{Days: map[string]string{}, Custs: map[int64]string{}, Items: map[int64]string{}}
	db := m.Store("sales").DB
	var days []struct {
		Date    string `bun:"date"`
		Orders  int    `bun:"orders"`
		Revenue int64  `bun:"revenue"` // cents
	}
	if err := db.NewSelect().TableExpr("daily_revenue").Column("date", "orders", "revenue").Where("orders > 0").Scan(ctx, &days); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, d := range days {
		f.Orders += d.Orders
		total += d.Revenue
		f.Days[d.Date] = fmt.Sprintf("%d/%d", d.Orders, cents(d.Revenue))
	}
	f.Revenue = total
	var cust []struct {
		ID      int64 `bun:"id"`
		Orders  int   `bun:"orders"`
		Revenue int64 `bun:"revenue"` // cents
	}
	if err := db.NewSelect().TableExpr("customer_value").Column("id", "orders", "revenue").Where("orders > 0").Scan(ctx, &cust); err != nil {
		t.Fatal(err)
	}
	for _, c := range cust {
		f.Custs[c.ID] = fmt.Sprintf("%d/%d", c.Orders, cents(c.Revenue))
	}
	var items []struct {
		ID      int64 `bun:"id"`
		Units   int   `bun:"units"`
		Revenue int64 `bun:"revenue"` // cents
	}
	if err := db.NewSelect().TableExpr("item_sales").Column("id", "units", "revenue").Where("units > 0").Scan(ctx, &items); err != nil {
		t.Fatal(err)
	}
	for _, i := range items {
		f.Items[i.ID] = fmt.Sprintf("%d/%d", i.Units, cents(i.Revenue))
	}
	return f
}

func diff(a, b figures) string {
	var out []string
	if a.Orders != b.Orders || cents(a.Revenue) != cents(b.Revenue) {
		out = append(out, fmt.Sprintf("totals %d/%d vs %d/%d cents", a.Orders, a.Revenue, b.Orders, b.Revenue))
	}
	for _, pair := range []struct {
		name string
		x, y map[string]string
	}{{"days", a.Days, b.Days}} {
		for k, v := range pair.x {
			if pair.y[k] != v {
				out = append(out, fmt.Sprintf("%s %s: %s vs %s", pair.name, k, v, pair.y[k]))
			}
		}
		if len(pair.x) != len(pair.y) {
			out = append(out, fmt.Sprintf("%s: %d vs %d keys", pair.name, len(pair.x), len(pair.y)))
		}
	}
	for _, pair := range []struct {
		name string
		x, y map[int64]string
	}{{"customers", a.Custs, b.Custs}, {"items", a.Items, b.Items}} {
		for k, v := range pair.x {
			if pair.y[k] != v {
				out = append(out, fmt.Sprintf("%s %d: %s vs %s", pair.name, k, v, pair.y[k]))
			}
		}
		if len(pair.x) != len(pair.y) {
			out = append(out, fmt.Sprintf("%s: %d vs %d keys", pair.name, len(pair.x), len(pair.y)))
		}
	}
	sort.Strings(out)
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("… and %d more", len(out)-10))
	}
	return strings.Join(out, "\n")
}

// checkStock: every item's stock is its seeded stock minus what live
// reservations hold.
func checkStock(t *testing.T, ctx context.Context, m *products.Mesh, initial map[int64]int) string {
	var items []struct {
		ID    int64 `bun:"id"`
		Stock int   `bun:"stock"`
	}
	if err := m.Store("inventory").DB.NewSelect().TableExpr("items").Column("id", "stock").Scan(ctx, &items); err != nil {
		t.Fatal(err)
	}
	var res []struct {
		Lines string `bun:"lines"`
	}
	if err := m.Store("inventory").DB.NewSelect().TableExpr("reservations").Column("lines").Where("status = 'RESERVED'").Scan(ctx, &res); err != nil {
		t.Fatal(err)
	}
	held := map[int64]int{}
	for _, r := range res {
		var lines []struct {
			ItemID   int64 `json:"itemId"`
			Quantity int   `json:"quantity"`
		}
		if err := jsonUnmarshal(r.Lines, &lines); err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			held[l.ItemID] += l.Quantity
		}
	}
	var out []string
	for _, it := range items {
		if want := initial[it.ID] - held[it.ID]; it.Stock != want {
			out = append(out, fmt.Sprintf("item %d: stock %d, want %d - %d = %d", it.ID, it.Stock, initial[it.ID], held[it.ID], want))
		}
	}
	return strings.Join(out, "\n")
}

func TestMeshConvergesExactly(t *testing.T) {
	backends(t, func(t *testing.T, args []string) {
		ctx := context.Background()
		dataDir := t.TempDir()
		args = append(args, "--data-dir", dataDir, "--seed-scale", "0.01")
		g := startGateway(t, args...)
		m, err := demo.Open(ctx, meshDSN(dataDir, args))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		// Initial stock: as each item was created (its CREATE audit entry);
		// reactions to the seeded PLACED orders may already have taken some.
		initial := map[int64]int{}
		var created []struct {
			Key   int64  `bun:"key"`
			After string `bun:"after"`
		}
		if err := m.Store("inventory").DB.NewSelect().TableExpr("mg_audit_log").Column("key", "after").
			Where("entity = 'Item' AND op = 'CREATE'").Scan(ctx, &created); err != nil {
			t.Fatal(err)
		}
		for _, c := range created {
			var it struct {
				Stock int `json:"stock"`
			}
			if err := jsonUnmarshal(c.After, &it); err != nil {
				t.Fatal(err)
			}
			initial[c.Key] = it.Stock
		}

		// 1,000 orders placed concurrently through the API.
		const n = 1000
		ids := make([]string, n)
		var wg sync.WaitGroup
		work := make(chan int)
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					r := g.gql(t, `mutation($c: ID!, $i: ID!, $j: ID!, $q: Int!) { placeOrder(customerId: $c, lines: [{itemId: $i, quantity: $q}, {itemId: $j, quantity: 1}]) { id } }`,
						map[string]any{"c": 1 + i%20, "i": 1 + i%5, "j": 1 + (i+1)%5, "q": 1 + i%3})
					if len(r.Errors) > 0 {
						t.Errorf("placeOrder %d: %v", i, r.Errors)
						continue
					}
					ids[i] = r.Data["placeOrder"].(map[string]any)["id"].(string)
				}
			}()
		}
		for i := 0; i < n; i++ {
			work <- i
		}
		close(work)
		wg.Wait()
		// 100 of them cancelled.
		for i := 0; i < n; i += 10 {
			g.gql(t, `mutation($id: ID!) { cancelOrder(id: $id) { id } }`, map[string]any{"id": ids[i]}).must(t)
		}

		// Kill the gateway right away, typically while the consumers are still
		// working through the orders, and start it again: the work resumes
		// where the consumers committed (the embedded broker keeps its log
		// in the data directory).
		g.stop(t)
		g = startGateway(t, args...)

		// Convergence: sales equals SQL over orders; stock equals initial
		// minus live reservations; no order is left PLACED.
		var last string
		defer func() {
			if t.Failed() {
				t.Logf("last difference:\n%s", last)
			}
		}()
		eventually(t, 120*time.Second, "sales and inventory to converge", func() bool {
			last = diff(sourceFigures(t, ctx, m), salesFigures(t, ctx, m))
			if last == "" {
				last = checkStock(t, ctx, m, initial)
			}
			if last == "" {
				placed, err := m.Store("orders").DB.NewSelect().TableExpr("orders").Where("status = 'PLACED'").Count(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if placed > 0 {
					last = fmt.Sprintf("%d orders still PLACED", placed)
				}
			}
			return last == ""
		})
		if last != "" {
			t.Fatal(last)
		}
		want := salesFigures(t, ctx, m)
		// Through the API: each placed order's status is its reservation's.
		r := g.gql(t, `{ orders(first: 1000, orderBy: [{field: ID, direction: DESC}], where: {status: {in: [RESERVED, BACKORDERED]}}) { nodes { id status reservation { status lines { quantity short item { id } } } } } }`, nil).must(t)
		for _, n := range r["orders"].(map[string]any)["nodes"].([]any) {
			o := n.(map[string]any)
			res, _ := o["reservation"].(map[string]any)
			if res == nil {
				continue // a seeded order, created RESERVED: inventory never reserved it
			}
			if res["status"] != o["status"] {
				t.Fatalf("order %v is %v but its reservation is %v", o["id"], o["status"], res["status"])
			}
		}

		// Kill the gateway (consumers included) and start it again with a
		// broker that lost its log (in memory): a new cluster, so the logs
		// are published again and the consumer groups start over from the
		// oldest offset — every event is redelivered. Nothing may count
		// twice.
		g.stop(t)
		g2 := startGateway(t, append(args, "--embedded-kafka-dir", "none")...)
		eventually(t, 120*time.Second, "consumers to re-read everything", func() bool {
			r := g2.gql(t, `{ consumerLag { product source lag } }`, nil).must(t)
			for _, l := range r["consumerLag"].([]any) {
				if l.(map[string]any)["lag"].(float64) != 0 {
					return false
				}
			}
			return true
		})
		if d := diff(want, salesFigures(t, ctx, m)); d != "" {
			t.Fatalf("after redelivery the figures changed:\n%s", d)
		}
		if d := checkStock(t, ctx, m, initial); d != "" {
			t.Fatalf("after redelivery stock changed:\n%s", d)
		}
	})
}

func TestReplayEqualsIncremental(t *testing.T) {
	backends(t, func(t *testing.T, args []string) {
		ctx := context.Background()
		dataDir := t.TempDir()
		args = append(args, "--data-dir", dataDir, "--seed-scale", "0.02")
		g := startGateway(t, args...)
		for i := 0; i < 50; i++ {
			r := g.gql(t, `mutation($c: ID!) { placeOrder(customerId: $c, lines: [{itemId: 1, quantity: 1}]) { id } }`, map[string]any{"c": 1 + i%10}).must(t)
			if i%7 == 0 {
				g.gql(t, `mutation($id: ID!) { cancelOrder(id: $id) { id } }`, map[string]any{"id": r["placeOrder"].(map[string]any)["id"]}).must(t)
			}
		}
		m, err := demo.Open(ctx, meshDSN(dataDir, args))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		eventually(t, 60*time.Second, "sales to converge", func() bool {
			return diff(sourceFigures(t, ctx, m), salesFigures(t, ctx, m)) == ""
		})
		incremental := salesFigures(t, ctx, m)
		g.stop(t)

		var out strings.Builder
		err = run(ctx, append([]string{"replay", "sales"}, append(args, "--log-level", "warn")...),
			func(string) string { return "" }, &out, os.Stderr)
		if err != nil {
			t.Fatalf("replay: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "changes applied (100%)") {
			t.Fatalf("replay progress output:\n%s", out.String())
		}
		if d := diff(incremental, salesFigures(t, ctx, m)); d != "" {
			t.Fatalf("replay differs from the incremental run:\n%s", d)
		}
	})
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
