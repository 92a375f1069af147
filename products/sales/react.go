package sales

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/meshgate/meshgate/products"
)

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
	ID         int64     `json:"id"`
	CustomerID int64     `json:"customerId"`
	Status     string    `json:"status"`
	Total      float64   `json:"total"`
	PlacedAt   time.Time `json:"placedAt"`
	Lines      []struct {
		ItemID   int64   `json:"itemId"`
		Quantity int     `json:"quantity"`
		Amount   float64 `json:"amount"`
	} `json:"lines"`
}

// Apply applies one change of a customer or an order.
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
		return b.customer(ctx, tx, &c)
	case e.Product == "orders" && e.Entity == "Order":
		var o orderEvent
		if err := json.Unmarshal([]byte(*e.After), &o); err != nil {
			return fmt.Errorf("decode order %d: %w", e.Key, err)
		}
		if e.Op == products.OpCreate {
			return b.placed(ctx, tx, &o)
		}
		if o.Status == "CANCELLED" {
			return b.cancelled(ctx, tx, o.ID)
		}
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

func (b *Batch) placed(ctx context.Context, tx *products.Tx, o *orderEvent) error {
	at := o.PlacedAt.UTC()
	day := int64(at.Year()*10000 + int(at.Month())*100 + at.Day())
	row := &order{ID: o.ID, CustomerID: o.CustomerID, Day: day, PlacedAt: at, Total: o.Total, Counted: o.Status != "CANCELLED"}
	res, err := tx.NewInsert().Model(row).On("CONFLICT DO NOTHING").Exec(ctx)
	if err != nil {
		return fmt.Errorf("record order %d: %w", o.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	for _, l := range o.Lines {
		if _, err := tx.NewInsert().Model(&orderLine{OrderID: o.ID, ItemID: l.ItemID, Quantity: l.Quantity, Amount: l.Amount}).
			On("CONFLICT DO NOTHING").Exec(ctx); err != nil {
			return fmt.Errorf("record order line: %w", err)
		}
	}
	if row.Counted {
		b.touch(row, o)
	}
	return nil
}

func (b *Batch) cancelled(ctx context.Context, tx *products.Tx, id int64) error {
	var row order
	err := tx.NewSelect().Model(&row).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !row.Counted) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load order %d: %w", id, err)
	}
	if _, err := tx.NewUpdate().Model(&row).Set("counted = ?", false).WherePK().Exec(ctx); err != nil {
		return fmt.Errorf("uncount order %d: %w", id, err)
	}
	var lines []orderLine
	if err := tx.NewSelect().Model(&lines).Where("order_id = ?", id).Scan(ctx); err != nil {
		return fmt.Errorf("load order %d lines: %w", id, err)
	}
	b.days[row.Day], b.customers[row.CustomerID] = true, true
	for _, l := range lines {
		b.items[l.ItemID] = true
	}
	return nil
}

func (b *Batch) touch(row *order, o *orderEvent) {
	b.days[row.Day], b.customers[row.CustomerID] = true, true
	for _, l := range o.Lines {
		b.items[l.ItemID] = true
	}
}

// Flush recomputes what the batch touched.
func (b *Batch) Flush(ctx context.Context, tx *products.Tx) error {
	for day := range b.days {
		if err := recomputeDay(ctx, tx, day); err != nil {
			return err
		}
	}
	for c := range b.customers {
		if err := recomputeCustomer(ctx, tx, c); err != nil {
			return err
		}
	}
	for it := range b.items {
		if err := recomputeItem(ctx, tx, it); err != nil {
			return err
		}
	}
	return nil
}

type totals struct {
	N     int        `bun:"n"`
	Sum   float64    `bun:"total"`
	Units int        `bun:"units"`
	First *time.Time `bun:"first"`
	Last  *time.Time `bun:"last"`
}

func recomputeDay(ctx context.Context, tx *products.Tx, day int64) error {
	var t totals
	if err := tx.NewSelect().Model((*order)(nil)).
		ColumnExpr("COUNT(*) AS n, COALESCE(SUM(total), 0.0) AS total").
		Where("day = ? AND counted = ?", day, true).Scan(ctx, &t); err != nil {
		return fmt.Errorf("recompute day %d: %w", day, err)
	}
	d := &DailyRevenue{ID: day, Date: fmt.Sprintf("%04d-%02d-%02d", day/10000, day/100%100, day%100), Orders: t.N, Revenue: products.Money(t.Sum)}
	return upsert(ctx, tx, DailyEntity, day, d, func(a, b *DailyRevenue) bool { return *a == *b })
}

func recomputeCustomer(ctx context.Context, tx *products.Tx, id int64) error {
	var t totals
	if err := tx.NewSelect().Model((*order)(nil)).
		ColumnExpr("COUNT(*) AS n, COALESCE(SUM(total), 0.0) AS total, MIN(placed_at) AS first, MAX(placed_at) AS last").
		Where("customer_id = ? AND counted = ?", id, true).Scan(ctx, &t); err != nil {
		return fmt.Errorf("recompute customer %d: %w", id, err)
	}
	v := &CustomerValue{ID: id, Orders: t.N, Revenue: products.Money(t.Sum), FirstOrderAt: utc(t.First), LastOrderAt: utc(t.Last)}
	before, err := products.Get[CustomerValue](ctx, tx, CustomerValueEntity, id)
	if err == nil {
		v.Country, v.Segment = before.Country, before.Segment
	}
	return upsert(ctx, tx, CustomerValueEntity, id, v, func(a, b *CustomerValue) bool {
		return a.Orders == b.Orders && a.Revenue == b.Revenue && a.Country == b.Country && a.Segment == b.Segment &&
			sameTime(a.FirstOrderAt, b.FirstOrderAt) && sameTime(a.LastOrderAt, b.LastOrderAt)
	})
}

func recomputeItem(ctx context.Context, tx *products.Tx, id int64) error {
	var t totals
	if err := tx.NewSelect().TableExpr("sales_order_lines AS l").
		Join("JOIN sales_orders AS o ON o.id = l.order_id").
		ColumnExpr("COUNT(*) AS n, COALESCE(SUM(l.amount), 0.0) AS total, COALESCE(SUM(l.quantity), 0) AS units").
		Where("l.item_id = ? AND o.counted = ?", id, true).Scan(ctx, &t); err != nil {
		return fmt.Errorf("recompute item %d: %w", id, err)
	}
	s := &ItemSales{ID: id, Orders: t.N, Units: t.Units, Revenue: products.Money(t.Sum)}
	return upsert(ctx, tx, ItemSalesEntity, id, s, func(a, b *ItemSales) bool { return *a == *b })
}

// upsert writes row as the entity's row with the id, auditing the change;
// an unchanged row is left alone.
func upsert[T any](ctx context.Context, tx *products.Tx, e *products.Entity, id int64, row *T, same func(a, b *T) bool) error {
	before, err := products.Get[T](ctx, tx, e, id)
	if products.ErrorCode(err) == products.NotFound {
		if _, err := tx.NewInsert().Model(row).Exec(ctx); err != nil {
			return fmt.Errorf("insert %s %d: %w", e.Name, id, err)
		}
		return tx.Created(e, id, row)
	}
	if err != nil {
		return err
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
