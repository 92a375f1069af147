package sales

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/dialect/pgdialect"

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
// store: Apply reads each change (and whether it is the newest of its key)
// into memory, Flush writes the batch's orders, lines and customers with a
// few multi-row statements, then updates each touched day, customer and
// item once.
//
// Days and items change by what the batch changed in sales' own copy of
// the orders: the lines it added to orders that count, and the orders
// whose status flipped between counted and cancelled (all their lines).
// That is exact whatever the order of events (the flips and additions are
// those of the stored copy, which follows each order's newest event) and
// however often a batch is retried (its transaction commits whole or not
// at all, and batches take turns: WriteExclusive). Recomputing them from
// every stored line instead, as this did before, cost each batch a scan
// of a growing share of the lines: on PostgreSQL under placeOrder at c16
// that query took 127 ms per batch, 4 of every 13 seconds the database
// worked. Customers are still recomputed from their orders (few per
// customer, and first/last order dates cannot be updated by deltas).
type Batch struct {
	days, customers, items map[int64]bool
	// dayDelta and itemDelta are what the batch adds to (subtracts
	// from) each touched day's and item's figures.
	dayDelta, itemDelta map[int64]*delta
	orders              map[int64]*pendingOrder
	orderIDs            []int64 // in the order first seen
	people              map[int64]*customerEvent
	peopleIDs           []int64
	// causes are the request ids of the people's newest changes.
	causes map[int64]string
}

// pendingOrder is what a batch's events say about one order.
type pendingOrder struct {
	row order // as its first event had it
	// counted is the status of the newest of its events, if one was
	// newest (set).
	counted, set bool
	lines        []orderLine // each item's first
	items        map[int64]bool
}

// NewBatch starts a batch.
func NewBatch() *Batch {
	return &Batch{days: map[int64]bool{}, customers: map[int64]bool{}, items: map[int64]bool{},
		dayDelta: map[int64]*delta{}, itemDelta: map[int64]*delta{},
		orders: map[int64]*pendingOrder{}, people: map[int64]*customerEvent{}, causes: map[int64]string{}}
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
		if b.people[c.ID] == nil {
			b.peopleIDs = append(b.peopleIDs, c.ID)
		}
		b.people[c.ID], b.causes[c.ID] = &c, tx.CauseID()
		return nil
	case e.Product == "orders" && e.Entity == "Order":
		var o orderEvent
		if err := json.Unmarshal([]byte(*e.After), &o); err != nil {
			return fmt.Errorf("decode order %d: %w", e.Key, err)
		}
		newest, err := tx.Newest(ctx, e.Product, e.Entity, e.Key, e.Sequence)
		if err != nil {
			return err
		}
		b.order(&o, newest)
	}
	return nil
}

// order records one change event of an order: the first event seen
// (whichever) records the order, the creation event brings its lines, and
// the status counts only from the newest event seen (newest false: a newer
// change of the order was applied before).
func (b *Batch) order(o *orderEvent, newest bool) {
	counted := o.Status != "CANCELLED"
	p := b.orders[o.ID]
	if p == nil {
		at := o.PlacedAt.UTC()
		day := int64(at.Year()*10000 + int(at.Month())*100 + at.Day())
		p = &pendingOrder{row: order{ID: o.ID, CustomerID: o.CustomerID, Day: day, PlacedAt: at, Total: o.Total, Counted: counted},
			items: map[int64]bool{}}
		b.orders[o.ID] = p
		b.orderIDs = append(b.orderIDs, o.ID)
	}
	if newest {
		p.counted, p.set = counted, true
	}
	for _, l := range o.Lines {
		if !p.items[l.ItemID] {
			p.items[l.ItemID] = true
			p.lines = append(p.lines, orderLine{OrderID: o.ID, ItemID: l.ItemID, Quantity: l.Quantity, Amount: l.Amount})
		}
	}
}

// chunk bounds the rows of one multi-row statement (SQLite allows 32,766
// parameters).
const chunk = 500

// pgChunk bounds the rows of one statement on PostgreSQL, where bun
// writes the values into the statement's text (no bind-parameter limit)
// and new orders and lines are inserted from arrays (unnest): a batch's
// rows of a kind go in one or two statements rather than one per 500.
const pgChunk = 10000

func chunkOf(tx *products.Tx) int {
	if tx.Dialect().Name() == dialect.PG {
		return pgChunk
	}
	return chunk
}

// insertOrders inserts the orders not stored yet and marks them in
// inserted.
func insertOrders(ctx context.Context, tx *products.Tx, rows []order, inserted map[int64]bool) error {
	var ids []int64
	if tx.Dialect().Name() == dialect.PG {
		id, customer, day, total := make([]int64, len(rows)), make([]int64, len(rows)), make([]int64, len(rows)), make([]int64, len(rows))
		placed, counted := make([]time.Time, len(rows)), make([]bool, len(rows))
		for i, r := range rows {
			c, err := cents(r.Total)
			if err != nil {
				return err
			}
			id[i], customer[i], day[i], placed[i], total[i], counted[i] = r.ID, r.CustomerID, r.Day, r.PlacedAt, c, r.Counted
		}
		if err := tx.NewRaw(`INSERT INTO sales_orders (id, customer_id, day, placed_at, total, counted)
SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::bigint[], ?::timestamptz[], ?::bigint[], ?::boolean[])
ON CONFLICT DO NOTHING RETURNING id`, pgdialect.Array(id), pgdialect.Array(customer), pgdialect.Array(day),
			pgdialect.Array(placed), pgdialect.Array(total), pgdialect.Array(counted)).Scan(ctx, &ids); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	} else if err := tx.NewInsert().Model(&rows).On("CONFLICT DO NOTHING").Returning("id").Scan(ctx, &ids); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	for _, id := range ids {
		inserted[id] = true
	}
	return nil
}

// insertLines inserts the order lines not stored yet and returns them
// (order and item).
func insertLines(ctx context.Context, tx *products.Tx, rows []orderLine) ([]orderLine, error) {
	var added []orderLine
	if tx.Dialect().Name() == dialect.PG {
		orderID, item, qty, amount := make([]int64, len(rows)), make([]int64, len(rows)), make([]int64, len(rows)), make([]int64, len(rows))
		for i, l := range rows {
			c, err := cents(l.Amount)
			if err != nil {
				return nil, err
			}
			orderID[i], item[i], qty[i], amount[i] = l.OrderID, l.ItemID, int64(l.Quantity), c
		}
		if err := tx.NewRaw(`INSERT INTO sales_order_lines (order_id, item_id, quantity, amount)
SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[])
ON CONFLICT DO NOTHING RETURNING order_id, item_id`, pgdialect.Array(orderID), pgdialect.Array(item), pgdialect.Array(qty),
			pgdialect.Array(amount)).Scan(ctx, &added); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
		return added, nil
	}
	if err := tx.NewInsert().Model(&rows).On("CONFLICT DO NOTHING").Returning("order_id, item_id").
		Scan(ctx, &added); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	return added, nil
}

// cents is an amount as stored (see products.Decimal.Value).
func cents(d products.Decimal) (int64, error) {
	c, ok := d.Cents()
	if !ok {
		return 0, fmt.Errorf("%s is not a whole number of cents", d)
	}
	return c, nil
}

// writeOrders stores the batch's orders and lines (new ones inserted, the
// status of known ones set from their newest event) and marks the days,
// customers and items whose figures they change.
func (b *Batch) writeOrders(ctx context.Context, tx *products.Tx) error {
	if len(b.orderIDs) == 0 {
		return nil
	}
	rows := make([]order, len(b.orderIDs))
	for i, id := range b.orderIDs {
		p := b.orders[id]
		rows[i] = p.row
		if p.set {
			rows[i].Counted = p.counted
		}
	}
	inserted := map[int64]bool{}
	for i, n := 0, chunkOf(tx); i < len(rows); i += n {
		part := rows[i:min(i+n, len(rows))]
		if err := insertOrders(ctx, tx, part, inserted); err != nil {
			return fmt.Errorf("record %d orders: %w", len(part), err)
		}
	}
	// counts tells whether an order counts once the batch is applied (or
	// counted in it at some point: its customer's figures are recomputed
	// then); after, whether it counts once the batch is applied.
	counts, after := map[int64]bool{}, map[int64]bool{}
	var known []int64
	for i, id := range b.orderIDs {
		p := b.orders[id]
		if inserted[id] {
			counts[id] = rows[i].Counted || p.row.Counted
			after[id] = rows[i].Counted
			if counts[id] {
				b.days[p.row.Day], b.customers[p.row.CustomerID] = true, true
			}
			if after[id] {
				if err := b.dayFigures(p.row.Day).add(1, 0, p.row.Total); err != nil {
					return err
				}
			}
			continue
		}
		known = append(known, id)
	}
	// Known orders: their status follows their newest event.
	var changed []int64
	set := map[bool][]int64{}
	for i, n := 0, chunkOf(tx); i < len(known); i += n {
		var stored []order
		if err := tx.NewSelect().Model(&stored).Where("id IN (?)", bun.List(known[i:min(i+n, len(known))])).Scan(ctx); err != nil {
			return fmt.Errorf("load %d orders: %w", min(n, len(known)-i), err)
		}
		for _, r := range stored {
			p := b.orders[r.ID]
			counts[r.ID], after[r.ID] = r.Counted, r.Counted
			if p.set && p.counted != r.Counted {
				counts[r.ID], after[r.ID] = true, p.counted
				set[p.counted] = append(set[p.counted], r.ID)
				changed = append(changed, r.ID)
				// Its day, customer and items change either way.
				b.days[r.Day], b.customers[r.CustomerID] = true, true
				if err := b.dayFigures(r.Day).add(sign(p.counted), 0, r.Total); err != nil {
					return err
				}
			}
		}
	}
	for _, counted := range []bool{false, true} {
		ids := set[counted]
		for i, n := 0, chunkOf(tx); i < len(ids); i += n {
			if _, err := tx.NewUpdate().Model((*order)(nil)).Set("counted = ?", counted).
				Where("id IN (?)", bun.List(ids[i:min(i+n, len(ids))])).Exec(ctx); err != nil {
				return fmt.Errorf("count %d orders: %w", len(ids), err)
			}
		}
	}
	// The lines stored before this batch of the orders that flipped: all
	// of them start or stop counting.
	for i, n := 0, chunkOf(tx); i < len(changed); i += n {
		var lines []orderLine
		if err := tx.NewSelect().Model(&lines).
			Where("order_id IN (?)", bun.List(changed[i:min(i+n, len(changed))])).Scan(ctx); err != nil {
			return fmt.Errorf("load lines of %d orders: %w", len(changed), err)
		}
		for _, l := range lines {
			b.items[l.ItemID] = true
			if err := b.itemFigures(l.ItemID).add(sign(after[l.OrderID]), l.Quantity, l.Amount); err != nil {
				return err
			}
		}
	}
	var lines []orderLine
	for _, id := range b.orderIDs {
		lines = append(lines, b.orders[id].lines...)
	}
	type lineKey struct{ order, item int64 }
	byKey := make(map[lineKey]*orderLine, len(lines))
	for i := range lines {
		byKey[lineKey{lines[i].OrderID, lines[i].ItemID}] = &lines[i]
	}
	for i, n := 0, chunkOf(tx); i < len(lines); i += n {
		part := lines[i:min(i+n, len(lines))]
		added, err := insertLines(ctx, tx, part)
		if err != nil {
			return fmt.Errorf("record %d order lines: %w", len(part), err)
		}
		for _, a := range added {
			if counts[a.OrderID] {
				b.items[a.ItemID] = true
			}
			if l := byKey[lineKey{a.OrderID, a.ItemID}]; l != nil && after[a.OrderID] {
				if err := b.itemFigures(a.ItemID).add(1, l.Quantity, l.Amount); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// delta is what a batch adds to a day's or an item's figures: orders,
// units and revenue in cents.
type delta struct {
	orders, units int
	cents         int64
}

// add adds (sign +1) or subtracts (sign -1) one order with units and
// revenue.
func (d *delta) add(sign, units int, revenue products.Decimal) error {
	c, err := cents(revenue)
	if err != nil {
		return err
	}
	d.orders += sign
	d.units += sign * units
	d.cents += int64(sign) * c
	return nil
}

func sign(counted bool) int {
	if counted {
		return 1
	}
	return -1
}

func (b *Batch) dayFigures(day int64) *delta   { return figures(b.dayDelta, day) }
func (b *Batch) itemFigures(item int64) *delta { return figures(b.itemDelta, item) }

func figures(m map[int64]*delta, k int64) *delta {
	d := m[k]
	if d == nil {
		d = &delta{}
		m[k] = d
	}
	return d
}

// Flush writes the batch's orders and customers, then updates what the
// batch touched (days and items by their deltas, customers recomputed by
// one grouped query for the whole batch), with one multi-row write per
// kind of the rows that changed.
func (b *Batch) Flush(ctx context.Context, tx *products.Tx) error {
	if err := b.writeOrders(ctx, tx); err != nil {
		return err
	}
	if err := b.updateDays(ctx, tx); err != nil {
		return err
	}
	if err := b.recomputeCustomers(ctx, tx); err != nil {
		return err
	}
	return b.updateItems(ctx, tx)
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

// updateDays adds the batch's deltas to the days it touched.
func (b *Batch) updateDays(ctx context.Context, tx *products.Tx) error {
	return updateRows(ctx, tx, DailyEntity, keys(b.days), b.dayDelta,
		func(day int64) *DailyRevenue {
			return &DailyRevenue{ID: day, Date: fmt.Sprintf("%04d-%02d-%02d", day/10000, day/100%100, day%100)}
		},
		func(d *DailyRevenue, f *delta) (err error) {
			d.Orders += f.orders
			d.Revenue, err = d.Revenue.Add(products.Cents(f.cents))
			return err
		},
		func(a, b *DailyRevenue) bool { return *a == *b })
}

// updateRows adds a batch's deltas to the rows of ids: each row as stored
// (fresh(id) when there is none yet), changed by apply with its delta if
// it has one, and written (and audited) if it changed.
func updateRows[T any](ctx context.Context, tx *products.Tx, entity *products.Entity, ids []int64, deltas map[int64]*delta,
	fresh func(id int64) *T, apply func(row *T, d *delta) error, same func(a, b *T) bool) error {
	if len(ids) == 0 {
		return nil
	}
	existing, err := products.GetMany[T](ctx, tx, entity, ids)
	if err != nil {
		return err
	}
	w := writer[T]{entity: entity, same: same}
	for _, id := range ids {
		row := fresh(id)
		if e := existing[id]; e != nil {
			*row = *e
		}
		if d := deltas[id]; d != nil {
			if err := apply(row, d); err != nil {
				return fmt.Errorf("%s %d: %w", entity.Name, id, err)
			}
		}
		if err := w.add(tx, id, existing[id], row); err != nil {
			return err
		}
	}
	return w.flush(ctx, tx)
}

// recomputeCustomers writes the value of each customer the batch touched:
// country and segment from the newest change of the customer, the figures
// recomputed from the orders if orders of the customer changed.
func (b *Batch) recomputeCustomers(ctx context.Context, tx *products.Tx) error {
	ids := keys(b.customers)
	for _, id := range b.peopleIDs {
		if !b.customers[id] {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var sums map[int64]totals
	if touched := keys(b.customers); len(touched) > 0 {
		var err error
		sums, err = grouped(ctx, tx.NewSelect().Model((*order)(nil)).
			ColumnExpr("customer_id AS k, COUNT(*) AS n, COALESCE(SUM(total), 0) AS total, MIN(placed_at) AS first, MAX(placed_at) AS last").
			Where("counted = ? AND customer_id IN (?)", true, bun.List(touched)).GroupExpr("customer_id"), "customers")
		if err != nil {
			return err
		}
	}
	existing, err := products.GetMany[CustomerValue](ctx, tx, CustomerValueEntity, ids)
	if err != nil {
		return err
	}
	shared := tx.CauseID()
	w := writer[CustomerValue]{entity: CustomerValueEntity, same: func(a, b *CustomerValue) bool {
		return a.Orders == b.Orders && a.Revenue == b.Revenue && a.Country == b.Country && a.Segment == b.Segment &&
			sameTime(a.FirstOrderAt, b.FirstOrderAt) && sameTime(a.LastOrderAt, b.LastOrderAt)
	}}
	for _, id := range ids {
		before := existing[id]
		v := &CustomerValue{ID: id}
		if before != nil {
			*v = *before
		}
		if b.customers[id] {
			t := sums[id]
			v.Orders, v.Revenue, v.FirstOrderAt, v.LastOrderAt = t.N, t.Sum, utc(t.First), utc(t.Last)
		}
		if c := b.people[id]; c != nil {
			v.Country, v.Segment = c.Country, c.Segment
		}
		// A change of the customer alone is recorded with its cause.
		tx.Cause(shared)
		if !b.customers[id] {
			tx.Cause(b.causes[id])
		}
		if err := w.add(tx, id, before, v); err != nil {
			return err
		}
	}
	tx.Cause(shared)
	return w.flush(ctx, tx)
}

// updateItems adds the batch's deltas to the items it touched.
func (b *Batch) updateItems(ctx context.Context, tx *products.Tx) error {
	return updateRows(ctx, tx, ItemSalesEntity, keys(b.items), b.itemDelta,
		func(id int64) *ItemSales { return &ItemSales{ID: id} },
		func(row *ItemSales, f *delta) (err error) {
			row.Orders += f.orders
			row.Units += f.units
			row.Revenue, err = row.Revenue.Add(products.Cents(f.cents))
			return err
		},
		func(a, b *ItemSales) bool { return *a == *b })
}

// writer gathers the rows of an entity a batch changed, auditing each
// change, and stores them all with one multi-row upsert per 500 rows
// (PostgreSQL: pgChunk); an
// unchanged row is left alone.
type writer[T any] struct {
	entity *products.Entity
	same   func(a, b *T) bool
	rows   []T
}

// add records row as the entity's row with the id, given the row as it
// was (nil: none).
func (w *writer[T]) add(tx *products.Tx, id int64, before, row *T) error {
	if before == nil {
		w.rows = append(w.rows, *row)
		return tx.Created(w.entity, id, row)
	}
	if w.same(before, row) {
		return nil
	}
	w.rows = append(w.rows, *row)
	return tx.Updated(w.entity, id, before, row)
}

func (w *writer[T]) flush(ctx context.Context, tx *products.Tx) error {
	for i, n := 0, chunkOf(tx); i < len(w.rows); i += n {
		part := w.rows[i:min(i+n, len(w.rows))]
		if _, err := tx.NewInsert().Model(&part).On("CONFLICT (id) DO UPDATE").Exec(ctx); err != nil {
			return fmt.Errorf("write %d %s rows: %w", len(part), w.entity.Name, err)
		}
	}
	return nil
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
