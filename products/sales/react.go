package sales

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
)

func init() {
	Product.Reaction = &products.Reaction{
		Inputs: []products.Input{
			{Product: "orders", Entity: "Order", Description: "Derives daily revenue, customer value and item sales from placed and cancelled orders."},
			{Product: "customers", Entity: "Customer", Description: "Keeps each customer's country and segment for slicing customer value."},
		},
		NewBatch: func() products.Batch { return NewBatch() },
	}
	Product.Reset = Reset
}

// Batch applies a batch of orders and customers change events to the sales
// store: Apply records what changed, Flush recomputes each touched day,
// customer and item once, from sales' own copy of the orders. Recomputing
// (rather than adding deltas) makes the figures exact whatever the order of
// events and however often a batch is retried.
type Batch struct {
	days, customers, items map[int64]bool
}

// NewBatch starts a batch.
func NewBatch() *Batch {
	return &Batch{days: map[int64]bool{}, customers: map[int64]bool{}, items: map[int64]bool{}}
}

type customerEvent struct {
	ID      int64  `json:"id"`
	Country string `json:"country"`
	Segment string `json:"segment"`
}

type orderEvent struct {
	ID         int64            `json:"id"`
	CustomerID int64            `json:"customerId"`
	Status     string           `json:"status"`
	Total      products.Decimal `json:"total"`
	PlacedAt   time.Time        `json:"placedAt"`
	Lines      []struct {
		ItemID   int64            `json:"itemId"`
		Quantity int              `json:"quantity"`
		Amount   products.Decimal `json:"amount"`
	} `json:"lines"`
}

// Apply applies one change of a customer or an order. Changes of one key
// may arrive out of order (a broker that lost its log and got it again):
// each is applied only as far as it is not older than what was applied
// for the key before (see products.Tx.Newest), so the result is the same
// in any order.
func (b *Batch) Apply(ctx context.Context, tx *products.Tx, e *products.AuditEntry) error {
	if e.After == nil {
		return nil
	}
	switch {
	case e.Product == "customers" && e.Entity == "Customer":
		var c customerEvent
		if err := json.Unmarshal([]byte(*e.After), &c); err != nil {
			return fmt.Errorf("decode customer %d: %w", e.Key, err)
		}
		newest, err := tx.Newest(ctx, e.Product, e.Entity, e.Key, e.Sequence)
		if err != nil || !newest {
			return err
		}
		return b.customer(ctx, tx, &c)
	case e.Product == "orders" && e.Entity == "Order":
		var o orderEvent
		if err := json.Unmarshal([]byte(*e.After), &o); err != nil {
			return fmt.Errorf("decode order %d: %w", e.Key, err)
		}
		newest, err := tx.Newest(ctx, e.Product, e.Entity, e.Key, e.Sequence)
		if err != nil {
			return err
		}
		return b.order(ctx, tx, &o, newest)
	}
	return nil
}

func (b *Batch) customer(ctx context.Context, tx *products.Tx, c *customerEvent) error {
	before, err := products.Get[CustomerValue](ctx, tx, CustomerValueEntity, c.ID)
	switch {
	case products.ErrorCode(err) == products.NotFound:
		v := &CustomerValue{ID: c.ID, Country: c.Country, Segment: c.Segment}
		if _, err := tx.NewInsert().Model(v).Exec(ctx); err != nil {
			return fmt.Errorf("insert customer value: %w", err)
		}
		return tx.Created(CustomerValueEntity, v.ID, v)
	case err != nil:
		return err
	case before.Country == c.Country && before.Segment == c.Segment:
		return nil
	}
	v := *before
	v.Country, v.Segment = c.Country, c.Segment
	if _, err := tx.NewUpdate().Model(&v).Column("country", "segment").WherePK().Exec(ctx); err != nil {
		return fmt.Errorf("update customer value: %w", err)
	}
	return tx.Updated(CustomerValueEntity, v.ID, before, &v)
}

// order keeps sales' copy of an order in step with one of its change
// events: the first event seen (whichever) records the order, the creation
// event brings its lines, and the status counts only from the newest event
// seen (newest false: a newer change of the order was applied before).
func (b *Batch) order(ctx context.Context, tx *products.Tx, o *orderEvent, newest bool) error {
	at := o.PlacedAt.UTC()
	day := int64(at.Year()*10000 + int(at.Month())*100 + at.Day())
	counted := o.Status != "CANCELLED"
	row := &order{ID: o.ID, CustomerID: o.CustomerID, Day: day, PlacedAt: at, Total: o.Total, Counted: counted}
	res, err := tx.NewInsert().Model(row).On("CONFLICT DO NOTHING").Exec(ctx)
	if err != nil {
		return fmt.Errorf("record order %d: %w", o.ID, err)
	}
	inserted := false
	if n, _ := res.RowsAffected(); n == 1 {
		inserted = true
	} else {
		if err := tx.NewSelect().Model(row).WherePK().Scan(ctx); err != nil {
			return fmt.Errorf("load order %d: %w", o.ID, err)
		}
		if newest && row.Counted != counted {
			if _, err := tx.NewUpdate().Model(row).Set("counted = ?", counted).WherePK().Exec(ctx); err != nil {
				return fmt.Errorf("count order %d: %w", o.ID, err)
			}
			row.Counted = counted
			// Its day, customer and items change either way.
			b.days[row.Day], b.customers[row.CustomerID] = true, true
			var lines []orderLine
			if err := tx.NewSelect().Model(&lines).Where("order_id = ?", o.ID).Scan(ctx); err != nil {
				return fmt.Errorf("load order %d lines: %w", o.ID, err)
			}
			for _, l := range lines {
				b.items[l.ItemID] = true
			}
		}
	}
	if inserted && row.Counted {
		b.days[row.Day], b.customers[row.CustomerID] = true, true
	}
	for _, l := range o.Lines {
		res, err := tx.NewInsert().Model(&orderLine{OrderID: o.ID, ItemID: l.ItemID, Quantity: l.Quantity, Amount: l.Amount}).
			On("CONFLICT DO NOTHING").Exec(ctx)
		if err != nil {
			return fmt.Errorf("record order line: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 1 && row.Counted {
			b.items[l.ItemID] = true
		}
	}
	return nil
}

// Flush recomputes what the batch touched: one grouped query per kind of
// row for the whole batch, then one write per row that changed.
func (b *Batch) Flush(ctx context.Context, tx *products.Tx) error {
	if err := recomputeDays(ctx, tx, keys(b.days)); err != nil {
		return err
	}
	if err := recomputeCustomers(ctx, tx, keys(b.customers)); err != nil {
		return err
	}
	return recomputeItems(ctx, tx, keys(b.items))
}

func keys(m map[int64]bool) []int64 {
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

type totals struct {
	K     int64            `bun:"k"`
	N     int              `bun:"n"`
	Sum   products.Decimal `bun:"total"`
	Units int              `bun:"units"`
	First *time.Time       `bun:"first"`
	Last  *time.Time       `bun:"last"`
}

// grouped runs a query grouped by key k and returns its rows by key.
func grouped(ctx context.Context, q *bun.SelectQuery, what string) (map[int64]totals, error) {
	var rows []totals
	if err := q.Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("recompute %s: %w", what, err)
	}
	out := make(map[int64]totals, len(rows))
	for _, r := range rows {
		out[r.K] = r
	}
	return out, nil
}

func recomputeDays(ctx context.Context, tx *products.Tx, days []int64) error {
	if len(days) == 0 {
		return nil
	}
	sums, err := grouped(ctx, tx.NewSelect().Model((*order)(nil)).
		ColumnExpr("day AS k, COUNT(*) AS n, COALESCE(SUM(total), 0) AS total").
		Where("counted = ? AND day IN (?)", true, bun.List(days)).GroupExpr("day"), "days")
	if err != nil {
		return err
	}
	existing, err := products.GetMany[DailyRevenue](ctx, tx, DailyEntity, days)
	if err != nil {
		return err
	}
	for _, day := range days {
		t := sums[day]
		d := &DailyRevenue{ID: day, Date: fmt.Sprintf("%04d-%02d-%02d", day/10000, day/100%100, day%100), Orders: t.N, Revenue: t.Sum}
		if err := write(ctx, tx, DailyEntity, day, existing[day], d, func(a, b *DailyRevenue) bool { return *a == *b }); err != nil {
			return err
		}
	}
	return nil
}

func recomputeCustomers(ctx context.Context, tx *products.Tx, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	sums, err := grouped(ctx, tx.NewSelect().Model((*order)(nil)).
		ColumnExpr("customer_id AS k, COUNT(*) AS n, COALESCE(SUM(total), 0) AS total, MIN(placed_at) AS first, MAX(placed_at) AS last").
		Where("counted = ? AND customer_id IN (?)", true, bun.List(ids)).GroupExpr("customer_id"), "customers")
	if err != nil {
		return err
	}
	existing, err := products.GetMany[CustomerValue](ctx, tx, CustomerValueEntity, ids)
	if err != nil {
		return err
	}
	for _, id := range ids {
		t := sums[id]
		v := &CustomerValue{ID: id, Orders: t.N, Revenue: t.Sum, FirstOrderAt: utc(t.First), LastOrderAt: utc(t.Last)}
		before := existing[id]
		if before != nil {
			v.Country, v.Segment = before.Country, before.Segment
		}
		if err := write(ctx, tx, CustomerValueEntity, id, before, v, func(a, b *CustomerValue) bool {
			return a.Orders == b.Orders && a.Revenue == b.Revenue && a.Country == b.Country && a.Segment == b.Segment &&
				sameTime(a.FirstOrderAt, b.FirstOrderAt) && sameTime(a.LastOrderAt, b.LastOrderAt)
		}); err != nil {
			return err
		}
	}
	return nil
}

func recomputeItems(ctx context.Context, tx *products.Tx, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	sums, err := grouped(ctx, tx.NewSelect().TableExpr("sales_order_lines AS l").
		Join("JOIN sales_orders AS o ON o.id = l.order_id").
		ColumnExpr("l.item_id AS k, COUNT(*) AS n, COALESCE(SUM(l.amount), 0) AS total, COALESCE(SUM(l.quantity), 0) AS units").
		Where("o.counted = ? AND l.item_id IN (?)", true, bun.List(ids)).GroupExpr("l.item_id"), "items")
	if err != nil {
		return err
	}
	existing, err := products.GetMany[ItemSales](ctx, tx, ItemSalesEntity, ids)
	if err != nil {
		return err
	}
	for _, id := range ids {
		t := sums[id]
		row := &ItemSales{ID: id, Orders: t.N, Units: t.Units, Revenue: t.Sum}
		if err := write(ctx, tx, ItemSalesEntity, id, existing[id], row, func(a, b *ItemSales) bool { return *a == *b }); err != nil {
			return err
		}
	}
	return nil
}

// write stores row as the entity's row with the id, given the row as it
// was (nil: none), auditing the change; an unchanged row is left alone.
func write[T any](ctx context.Context, tx *products.Tx, e *products.Entity, id int64, before, row *T, same func(a, b *T) bool) error {
	if before == nil {
		if _, err := tx.NewInsert().Model(row).Exec(ctx); err != nil {
			return fmt.Errorf("insert %s %d: %w", e.Name, id, err)
		}
		return tx.Created(e, id, row)
	}
	if same(before, row) {
		return nil
	}
	if _, err := tx.NewUpdate().Model(row).WherePK().Exec(ctx); err != nil {
		return fmt.Errorf("update %s %d: %w", e.Name, id, err)
	}
	return tx.Updated(e, id, before, row)
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// Reset deletes everything sales derived, for a replay from the beginning.
func Reset(ctx context.Context, tx *products.Tx) error {
	for _, m := range []any{(*DailyRevenue)(nil), (*CustomerValue)(nil), (*ItemSales)(nil), (*order)(nil), (*orderLine)(nil)} {
		if _, err := tx.NewDelete().Model(m).Where("1=1").Exec(ctx); err != nil {
			return fmt.Errorf("reset sales: %w", err)
		}
	}
	return nil
}
