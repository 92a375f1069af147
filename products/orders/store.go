package orders

import (
	"context"
	"fmt"
	"strings"

	"github.com/uptrace/bun/dialect"

	"github.com/meshgate/meshgate/products"
)

// Customers tells whether a customer exists; the customers product answers.
type Customers interface {
	Exists(ctx context.Context, id int64) (bool, error)
}

// Inventory prices items; the inventory product answers.
type Inventory interface {
	Prices(ctx context.Context, ids []int64) (map[int64]products.Decimal, error)
}

// Store is the orders product's store and API. Customers and Inventory are
// the other products it checks orders against; it never reads their tables.
type Store struct {
	*products.Store
	Customers Customers
	Inventory Inventory
}

// New returns the orders product's API on an opened mesh: customers and
// prices come from the customers and inventory products through the mesh,
// by entity and field names.
func New(m *products.Mesh) Store {
	return Store{Store: m.Store(Product.Name), Customers: meshCustomers{m}, Inventory: meshInventory{m}}
}

type meshCustomers struct{ m *products.Mesh }

func (c meshCustomers) Exists(ctx context.Context, id int64) (bool, error) {
	return c.m.Exists(ctx, "customers", "Customer", id)
}

type meshInventory struct{ m *products.Mesh }

func (i meshInventory) Prices(ctx context.Context, ids []int64) (map[int64]products.Decimal, error) {
	rows, err := i.m.Rows(ctx, "inventory", "Item", map[string]any{"id": map[string]any{"in": ids}}, "id", "price")
	if err != nil {
		return nil, err
	}
	out := make(map[int64]products.Decimal, len(rows))
	for _, r := range rows {
		out[r["id"].(int64)] = r["price"].(products.Decimal)
	}
	return out, nil
}

// LineInput is one line of a new order (GraphQL OrderLineInput).
type LineInput struct {
	ItemID   int64 `json:"itemId"`
	Quantity int   `json:"quantity"`
}

// MaxLines bounds the lines of one order.
const MaxLines = 500

// Place validates and places an order: the customer and the items must
// exist; prices come from inventory; line amounts (quantity × unit price)
// and the total (their sum) are exact. Order and lines are written in one transaction.
func (s Store) Place(ctx context.Context, customerID int64, lines []LineInput, currency string) (*Order, error) {
	if len(lines) == 0 {
		return nil, products.Invalid("lines", "an order needs at least one line")
	}
	if len(lines) > MaxLines {
		return nil, products.Invalid("lines", "an order has at most %d lines", MaxLines)
	}
	cur, err := products.Currency("currency", currency)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(lines))
	seen := map[int64]bool{}
	for i, l := range lines {
		if l.Quantity < 1 || l.Quantity > 10000 {
			return nil, products.Invalid(fmt.Sprintf("lines[%d].quantity", i), "must be between 1 and 10000")
		}
		if seen[l.ItemID] {
			return nil, products.Invalid(fmt.Sprintf("lines[%d].itemId", i), "item %d is on two lines; put the quantities on one", l.ItemID)
		}
		seen[l.ItemID] = true
		ids = append(ids, l.ItemID)
	}
	ok, err := s.Customers.Exists(ctx, customerID)
	if err != nil {
		return nil, fmt.Errorf("orders: check customer: %w", err)
	}
	if !ok {
		return nil, &products.Error{Code: products.NotFound, Field: "customerId", Message: fmt.Sprintf("customer %d does not exist", customerID)}
	}
	prices, err := s.Inventory.Prices(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("orders: price items: %w", err)
	}
	o := &Order{CustomerID: customerID, Status: StatusPlaced, Currency: cur}
	rows := make([]*Line, len(lines))
	for i, l := range lines {
		p, ok := prices[l.ItemID]
		if !ok {
			return nil, &products.Error{Code: products.NotFound, Field: fmt.Sprintf("lines[%d].itemId", i), Message: fmt.Sprintf("item %d does not exist", l.ItemID)}
		}
		amount, err := p.Mul(int64(l.Quantity))
		if err == nil {
			o.Total, err = o.Total.Add(amount)
		}
		if err != nil {
			return nil, products.Invalid(fmt.Sprintf("lines[%d].quantity", i), "the order's amount is too large")
		}
		rows[i] = &Line{ItemID: l.ItemID, Quantity: l.Quantity, UnitPrice: p, Amount: amount}
	}
	_, err = s.Write(ctx, func(ctx context.Context, tx *products.Tx) error {
		o.PlacedAt, o.UpdatedAt = tx.Now(), tx.Now()
		if s.Dialect() == dialect.PG {
			if err := insertOrder(ctx, tx, o, rows); err != nil {
				return err
			}
		} else {
			if _, err := tx.NewInsert().Model(o).Returning("id").Exec(ctx); err != nil {
				return fmt.Errorf("insert order: %w", err)
			}
			for _, l := range rows {
				l.OrderID = o.ID
			}
			if _, err := tx.NewInsert().Model(&rows).Returning("id").Exec(ctx); err != nil {
				return fmt.Errorf("insert order lines: %w", err)
			}
		}
		o.Lines = rows
		if err := tx.Created(Entity, o.ID, o); err != nil {
			return err
		}
		for _, l := range rows {
			if err := tx.Created(LineEntity, l.ID, l); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("orders: place: %w", err)
	}
	return o, nil
}

// insertOrder inserts the order and its lines with one statement (one
// round trip; PostgreSQL) and sets their ids. Lines are told apart by item:
// an order has at most one line per item.
func insertOrder(ctx context.Context, tx *products.Tx, o *Order, lines []*Line) error {
	var q strings.Builder
	args := []any{o.CustomerID, o.Status, o.Total, o.Currency, o.PlacedAt, o.UpdatedAt}
	q.WriteString(`WITH o AS (INSERT INTO orders (customer_id, status, total, currency, placed_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id),
l AS (INSERT INTO order_lines (order_id, item_id, quantity, unit_price, amount)
	SELECT o.id, v.item_id, v.quantity, v.unit_price, v.amount FROM o, (VALUES `)
	for i, l := range lines {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?::bigint, ?::integer, ?::bigint, ?::bigint, ?::integer)")
		args = append(args, l.ItemID, l.Quantity, l.UnitPrice, l.Amount, i)
	}
	q.WriteString(`) AS v (item_id, quantity, unit_price, amount, n) ORDER BY v.n RETURNING id, item_id)
SELECT o.id AS order_id, l.id, l.item_id FROM o, l`)
	var ids []struct {
		OrderID int64 `bun:"order_id"`
		ID      int64 `bun:"id"`
		ItemID  int64 `bun:"item_id"`
	}
	if err := tx.NewRaw(q.String(), args...).Scan(ctx, &ids); err != nil {
		return fmt.Errorf("insert order and lines: %w", err)
	}
	if len(ids) != len(lines) {
		return fmt.Errorf("insert order and lines: %d lines inserted of %d", len(ids), len(lines))
	}
	byItem := make(map[int64]int64, len(ids))
	for _, r := range ids {
		o.ID = r.OrderID
		byItem[r.ItemID] = r.ID
	}
	for _, l := range lines {
		l.OrderID, l.ID = o.ID, byItem[l.ItemID]
	}
	return nil
}

// Cancel cancels an order that is neither shipped, delivered nor cancelled.
func (s Store) Cancel(ctx context.Context, id int64) (*Order, error) {
	return products.UpdateRow(ctx, s.Store, Entity, id, func(ctx context.Context, tx *products.Tx, before, o *Order) error {
		switch before.Status {
		case StatusCancelled:
			return &products.Error{Code: products.Conflict, Field: "id", Message: fmt.Sprintf("order %d is already cancelled", id)}
		case StatusShipped, StatusDelivered:
			return &products.Error{Code: products.Conflict, Field: "id", Message: fmt.Sprintf("order %d is %s and can no longer be cancelled", id, strings.ToLower(before.Status))}
		}
		o.Status, o.UpdatedAt = StatusCancelled, tx.Now()
		return nil
	})
}
