package web_test

// Stores created by the version that kept money in floating point keep
// working: opening them converts the amounts to whole cents, once.

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/inventory"
	"github.com/meshgate/meshgate/products/orders"
	"github.com/meshgate/meshgate/products/sales"
)

// The tables as the float version created them.
type (
	floatOrder struct {
		bun.BaseModel `bun:"table:orders"`
		ID            int64     `bun:"id,pk,autoincrement"`
		CustomerID    int64     `bun:"customer_id,notnull"`
		Status        string    `bun:"status,notnull"`
		Total         float64   `bun:"total,notnull"`
		Currency      string    `bun:"currency,notnull"`
		PlacedAt      time.Time `bun:"placed_at,notnull"`
		UpdatedAt     time.Time `bun:"updated_at,notnull"`
	}
	floatLine struct {
		bun.BaseModel `bun:"table:order_lines"`
		ID            int64   `bun:"id,pk,autoincrement"`
		OrderID       int64   `bun:"order_id,notnull"`
		ItemID        int64   `bun:"item_id,notnull"`
		Quantity      int     `bun:"quantity,notnull"`
		UnitPrice     float64 `bun:"unit_price,notnull"`
		Amount        float64 `bun:"amount,notnull"`
	}
	floatItem struct {
		bun.BaseModel `bun:"table:items"`
		ID            int64     `bun:"id,pk,autoincrement"`
		SKU           string    `bun:"sku,notnull,unique"`
		Name          string    `bun:"name,notnull"`
		Category      string    `bun:"category,notnull"`
		Price         float64   `bun:"price,notnull"`
		Stock         int       `bun:"stock,notnull"`
		CreatedAt     time.Time `bun:"created_at,notnull"`
		UpdatedAt     time.Time `bun:"updated_at,notnull"`
	}
	floatDaily struct {
		bun.BaseModel `bun:"table:daily_revenue"`
		ID            int64   `bun:"id,pk"`
		Date          string  `bun:"date,notnull"`
		Orders        int     `bun:"orders,notnull"`
		Revenue       float64 `bun:"revenue,notnull"`
	}
	floatCustomerValue struct {
		bun.BaseModel `bun:"table:customer_value"`
		ID            int64      `bun:"id,pk"`
		Country       string     `bun:"country,notnull"`
		Segment       string     `bun:"segment,notnull"`
		Orders        int        `bun:"orders,notnull"`
		Revenue       float64    `bun:"revenue,notnull"`
		FirstOrderAt  *time.Time `bun:"first_order_at"`
		LastOrderAt   *time.Time `bun:"last_order_at"`
	}
	floatItemSales struct {
		bun.BaseModel `bun:"table:item_sales"`
		ID            int64   `bun:"id,pk"`
		Orders        int     `bun:"orders,notnull"`
		Units         int     `bun:"units,notnull"`
		Revenue       float64 `bun:"revenue,notnull"`
	}
	floatSalesOrder struct {
		bun.BaseModel `bun:"table:sales_orders"`
		ID            int64     `bun:"id,pk"`
		CustomerID    int64     `bun:"customer_id,notnull"`
		Day           int64     `bun:"day,notnull"`
		PlacedAt      time.Time `bun:"placed_at,notnull"`
		Total         float64   `bun:"total,notnull"`
		Counted       bool      `bun:"counted,notnull"`
	}
	floatSalesLine struct {
		bun.BaseModel `bun:"table:sales_order_lines"`
		OrderID       int64   `bun:"order_id,pk"`
		ItemID        int64   `bun:"item_id,pk"`
		Quantity      int     `bun:"quantity,notnull"`
		Amount        float64 `bun:"amount,notnull"`
	}
)

// floatAmounts are amounts as the float version stored them (rounded to
// cents in binary floating point), with their cents.
var floatAmounts = []struct {
	f     float64
	cents int64
}{{313.61, 31361}, {0.1 + 0.2, 30}, {15218.62, 1521862}, {0, 0}, {999999999.99, 99999999999}, {19.99 * 3, 5997}}

// createFloatStore makes a store of product the way the float version left
// it: its tables with DOUBLE/REAL money columns holding rows, an index on
// a money column, and its migrations up to that version marked applied.
func createFloatStore(t *testing.T, ctx context.Context, d *products.Descriptor, dsn string, ms *migrate.Migrations, tables []any, fill func(db *bun.DB) error) {
	t.Helper()
	s, err := products.Open(ctx, d, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, m := range tables {
		if _, err := s.DB.NewCreateTable().Model(m).Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := fill(s.DB); err != nil {
		t.Fatal(err)
	}
	mg := migrate.NewMigrator(s.DB, ms, migrate.WithTableName("mg_migrations"), migrate.WithLocksTableName("mg_migrations_locks"))
	if err := mg.Init(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms.Sorted() {
		if m.Name < "20261130000100" {
			if err := mg.MarkApplied(ctx, &m); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestFloatStoresMigrateToCents(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := t.Context()
		stores := newStoreSet(t, backend)
		at := time.Date(2026, 11, 24, 16, 36, 29, 0, time.UTC)
		createFloatStore(t, ctx, &orders.Product.Descriptor, stores.dsn("orders"), orders.Migrations, []any{(*floatOrder)(nil), (*floatLine)(nil)}, func(db *bun.DB) error {
			for i, a := range floatAmounts {
				o := &floatOrder{ID: int64(i + 1), CustomerID: 1, Status: "PLACED", Total: a.f, Currency: "EUR", PlacedAt: at, UpdatedAt: at}
				l := &floatLine{ID: int64(i + 1), OrderID: o.ID, ItemID: int64(i + 1), Quantity: 1, UnitPrice: a.f, Amount: a.f}
				if _, err := db.NewInsert().Model(o).Exec(ctx); err != nil {
					return err
				}
				if _, err := db.NewInsert().Model(l).Exec(ctx); err != nil {
					return err
				}
			}
			_, err := db.NewCreateIndex().Model((*floatOrder)(nil)).Index("orders_total_idx").Column("total", "id").Exec(ctx)
			return err
		})
		createFloatStore(t, ctx, &inventory.Product.Descriptor, stores.dsn("inventory"), inventory.Migrations, []any{(*floatItem)(nil), (*inventory.Reservation)(nil)}, func(db *bun.DB) error {
			for i, a := range floatAmounts {
				it := &floatItem{ID: int64(i + 1), SKU: "SKU-" + string(rune('A'+i)), Name: "Item", Category: "Test", Price: a.f, Stock: 5, CreatedAt: at, UpdatedAt: at}
				if _, err := db.NewInsert().Model(it).Exec(ctx); err != nil {
					return err
				}
			}
			_, err := db.NewCreateIndex().Model((*floatItem)(nil)).Index("items_price_idx").Column("price", "id").Exec(ctx)
			return err
		})
		createFloatStore(t, ctx, &sales.Product.Descriptor, stores.dsn("sales"), sales.Migrations,
			[]any{(*floatDaily)(nil), (*floatCustomerValue)(nil), (*floatItemSales)(nil), (*floatSalesOrder)(nil), (*floatSalesLine)(nil)}, func(db *bun.DB) error {
				for i, a := range floatAmounts {
					id := int64(i + 1)
					for _, m := range []any{
						&floatDaily{ID: 20261100 + id, Date: "2026-11-01", Orders: 1, Revenue: a.f},
						&floatCustomerValue{ID: id, Country: "DE", Segment: "CONSUMER", Orders: 1, Revenue: a.f},
						&floatItemSales{ID: id, Orders: 1, Units: 1, Revenue: a.f},
						&floatSalesOrder{ID: id, CustomerID: id, Day: 20261124, PlacedAt: at, Total: a.f, Counted: true},
						&floatSalesLine{OrderID: id, ItemID: id, Quantity: 1, Amount: a.f},
					} {
						if _, err := db.NewInsert().Model(m).Exec(ctx); err != nil {
							return err
						}
					}
				}
				return nil
			})

		check := func(t *testing.T, g *gateway) {
			t.Helper()
			var want int64
			for i, a := range floatAmounts {
				want += a.cents
				id := int64(i + 1)
				o, err := products.Get[orders.Order](ctx, g.store("orders").DB, orders.Entity, id)
				if err != nil || o.Total != products.Cents(a.cents) {
					t.Errorf("order %d: total %v (%v), want %d cents", id, o, err, a.cents)
				}
				l, err := products.Get[orders.Line](ctx, g.store("orders").DB, orders.LineEntity, id)
				if err != nil || l.UnitPrice != products.Cents(a.cents) || l.Amount != products.Cents(a.cents) {
					t.Errorf("line %d: %+v (%v), want %d cents", id, l, err, a.cents)
				}
				it, err := products.Get[inventory.Item](ctx, g.store("inventory").DB, inventory.Entity, id)
				if err != nil || it.Price != products.Cents(a.cents) {
					t.Errorf("item %d: %+v (%v), want %d cents", id, it, err, a.cents)
				}
				v, err := products.Get[sales.CustomerValue](ctx, g.store("sales").DB, sales.CustomerValueEntity, id)
				if err != nil || v.Revenue != products.Cents(a.cents) {
					t.Errorf("customer value %d: %+v (%v), want %d cents", id, v, err, a.cents)
				}
			}
			for _, c := range []struct{ product, query string }{
				{"orders", "SELECT SUM(total) FROM orders"},
				{"orders", "SELECT SUM(amount) FROM order_lines"},
				{"orders", "SELECT SUM(unit_price) FROM order_lines"},
				{"inventory", "SELECT SUM(price) FROM items"},
				{"sales", "SELECT SUM(revenue) FROM daily_revenue"},
				{"sales", "SELECT SUM(revenue) FROM customer_value"},
				{"sales", "SELECT SUM(revenue) FROM item_sales"},
				{"sales", "SELECT SUM(total) FROM sales_orders"},
				{"sales", "SELECT SUM(amount) FROM sales_order_lines"},
			} {
				if got := sqlText(t, g, c.product, c.query)[0]; got != strconv.FormatInt(want, 10) {
					t.Errorf("%s: %s, want %d cents", c.query, got, want)
				}
			}
			r := g.post(t, `{ ordersAggregate { sum { total } } itemsAggregate { sum { price } } }`, nil)
			wantText := `{"ordersAggregate":[{"sum":{"total":` + products.Cents(want).String() + `}}],"itemsAggregate":[{"sum":{"price":` + products.Cents(want).String() + `}}]}`
			if len(r.Errors) > 0 || string(r.Data) != wantText {
				t.Errorf("answer %s %v, want %s", r.Data, r.Errors, wantText)
			}
			// The columns hold integers (a SQLite column declared REAL
			// would turn stored integers back into floats).
			typeQuery := "SELECT type FROM pragma_table_info('orders') WHERE name = 'total'"
			if backend == postgresBackend {
				typeQuery = "SELECT data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'orders' AND column_name = 'total'"
			}
			if typ := sqlText(t, g, "orders", typeQuery); len(typ) != 1 || strings.ToUpper(typ[0]) != "BIGINT" {
				t.Errorf("orders.total is %v", typ)
			}
			// The index on the money column survived (SQLite rebuilds the table).
			var idx []string
			q := "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'orders'"
			if backend == postgresBackend {
				q = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'orders'"
			}
			if err := g.store("orders").DB.NewRaw(q).Scan(ctx, &idx); err != nil || !strings.Contains(strings.Join(idx, ","), "orders_total_idx") {
				t.Errorf("indexes of orders: %v %v", idx, err)
			}
		}
		g := newGatewayOn(t, stores, gatewayOptions{scale: -1})
		check(t, g)
		// Writes after the conversion store cents beside the old rows.
		r := g.post(t, `mutation { updateItem(id: 1, input: {price: "313.62"}) { price } }`, nil)
		if len(r.Errors) > 0 || string(r.Data) != `{"updateItem":{"price":313.62}}` {
			t.Errorf("update: %s %v", r.Data, r.Errors)
		}
		r = g.post(t, `mutation { updateItem(id: 1, input: {price: "313.61"}) { price } }`, nil)
		if len(r.Errors) > 0 {
			t.Errorf("update back: %v", r.Errors)
		}
		g.closeFn()
		// Opening again converts nothing twice.
		check(t, newGatewayOn(t, stores, gatewayOptions{scale: -1}))
	})
}
