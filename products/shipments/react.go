package shipments

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/meshgate/meshgate/products"
)

func init() {
	Product.Reaction = &products.Reaction{
		Inputs: []products.Input{{Product: "inventory", Entity: "Reservation",
			Description: "Prepares a shipment for each order whose stock is reserved and cancels it when the reservation is released before the goods left."}},
		NewBatch: func() products.Batch { return &batch{} },
	}
}

// reservationEvent is what shipments reads of inventory's reservation events.
type reservationEvent struct {
	ID     int64  `json:"id"` // the order's id
	Status string `json:"status"`
	Lines  []struct {
		Quantity int `json:"quantity"`
	} `json:"lines"`
}

// ApplyReservation reacts to a change of inventory's reservation of an
// order: a RESERVED order gets a shipment to prepare; a RELEASED
// reservation (the order was cancelled) cancels a shipment still being
// prepared. It runs in tx, a transaction of the shipments store.
//
// A redelivered event never gets here (Tx.Consume skips it), and an event
// older than one already applied for the same reservation is skipped
// (Tx.Newest): a release seen before the reservation's creation leaves no
// shipment, and the late creation prepares none.
func ApplyReservation(ctx context.Context, tx *products.Tx, e *products.AuditEntry) error {
	b := &batch{}
	if err := b.Apply(ctx, tx, e); err != nil {
		return err
	}
	return b.Flush(ctx, tx)
}

// batch applies a batch of reservation events (see ApplyReservation):
// Apply reads each, Flush loads (and locks) the shipments of the batch's
// orders with one statement, inserts the new ones with one statement per
// 500, cancels with one, and audits every step in the batch's order, with
// the request id of the event that caused it.
type batch struct {
	steps []reservationStep
}

type reservationStep struct {
	r       *reservationEvent
	release bool
	cause   string // the event's request id
}

func (b *batch) Apply(ctx context.Context, tx *products.Tx, e *products.AuditEntry) error {
	if e.Product != "inventory" || e.Entity != "Reservation" || e.After == nil {
		return nil
	}
	newest, err := tx.Newest(ctx, e.Product, e.Entity, e.Key, e.Sequence)
	if err != nil || !newest {
		return err
	}
	var r reservationEvent
	if err := json.Unmarshal([]byte(*e.After), &r); err != nil {
		return fmt.Errorf("decode reservation %d: %w", e.Key, err)
	}
	switch r.Status {
	case "RESERVED":
		b.steps = append(b.steps, reservationStep{r: &r, cause: tx.CauseID()})
	case "RELEASED":
		b.steps = append(b.steps, reservationStep{r: &r, release: true, cause: tx.CauseID()})
	}
	return nil
}

// action is what one step did: prepared a shipment, or cancelled one
// (before: the shipment as it was); cause is the step's request id.
type action struct {
	sh     *Shipment
	before *Shipment
	cause  string
}

func (b *batch) Flush(ctx context.Context, tx *products.Tx) error {
	if len(b.steps) == 0 {
		return nil
	}
	var orders []int64
	seen := map[int64]bool{}
	for _, s := range b.steps {
		if !seen[s.r.ID] {
			seen[s.r.ID] = true
			orders = append(orders, s.r.ID)
		}
	}
	cur, err := forOrders(ctx, tx, orders)
	if err != nil {
		return err
	}
	var actions []action
	var fresh []*Shipment
	var cancelled []*Shipment
	for _, s := range b.steps {
		sh := cur[s.r.ID]
		switch {
		case !s.release && sh == nil:
			sh = &Shipment{OrderID: s.r.ID, Status: Preparing, CreatedAt: tx.Now(), UpdatedAt: tx.Now()}
			for _, l := range s.r.Lines {
				sh.Units += l.Quantity
			}
			cur[s.r.ID] = sh
			fresh = append(fresh, sh)
			actions = append(actions, action{sh: sh, cause: s.cause})
		case s.release && sh != nil && sh.Status == Preparing:
			// The goods have not left: the shipment is cancelled (else
			// there is nothing to take back).
			before := *sh
			sh.Status, sh.UpdatedAt = Cancelled, tx.Now()
			actions = append(actions, action{sh: sh, before: &before, cause: s.cause})
			cancelled = append(cancelled, sh)
		}
	}
	// New shipments are inserted as prepared; the ids they get are
	// matched back by order (an order has at most one shipment).
	for i := 0; i < len(fresh); i += 500 {
		part := fresh[i:min(i+500, len(fresh))]
		rows := make([]Shipment, len(part))
		for j, sh := range part {
			rows[j] = *sh
			rows[j].Status, rows[j].UpdatedAt = Preparing, tx.Now()
		}
		var ids []struct {
			ID      int64 `bun:"id"`
			OrderID int64 `bun:"order_id"`
		}
		if _, err := tx.NewInsert().Model(&rows).Returning("id, order_id").Exec(ctx, &ids); err != nil {
			return fmt.Errorf("insert %d shipments: %w", len(rows), err)
		}
		for _, r := range ids {
			cur[r.OrderID].ID = r.ID
		}
	}
	shared := tx.CauseID()
	defer tx.Cause(shared)
	for _, a := range actions {
		tx.Cause(a.cause)
		if a.before == nil {
			created := *a.sh
			created.Status, created.UpdatedAt = Preparing, tx.Now()
			if err := tx.Created(Entity, created.ID, &created); err != nil {
				return err
			}
			continue
		}
		before, after := *a.before, *a.before
		before.ID, after.ID = a.sh.ID, a.sh.ID
		after.Status, after.UpdatedAt = Cancelled, tx.Now()
		if err := tx.Updated(Entity, after.ID, &before, &after); err != nil {
			return err
		}
	}
	var ids []int64
	for _, sh := range cancelled {
		ids = append(ids, sh.ID)
	}
	for i := 0; i < len(ids); i += 500 {
		if _, err := tx.NewUpdate().Model((*Shipment)(nil)).Set("status = ?", Cancelled).Set("updated_at = ?", tx.Now()).
			Where("id IN (?)", bun.List(ids[i:min(i+500, len(ids))])).Exec(ctx); err != nil {
			return fmt.Errorf("cancel %d shipments: %w", len(ids), err)
		}
	}
	return nil
}

// forOrders returns the shipments of the orders by order, locked until tx
// ends on PostgreSQL (in id order, so that writers never deadlock).
func forOrders(ctx context.Context, tx *products.Tx, orders []int64) (map[int64]*Shipment, error) {
	out := make(map[int64]*Shipment, len(orders))
	for i := 0; i < len(orders); i += 500 {
		var rows []*Shipment
		q := tx.NewSelect().Model(&rows).Where("order_id IN (?)", bun.List(orders[i:min(i+500, len(orders))])).Order("id")
		if tx.Dialect().Name() == dialect.PG {
			q = q.For("UPDATE")
		}
		if err := q.Scan(ctx); err != nil {
			return nil, fmt.Errorf("shipments of %d orders: %w", len(orders), err)
		}
		for _, sh := range rows {
			out[sh.OrderID] = sh
		}
	}
	return out, nil
}

// forOrder returns the shipment of an order, locked until tx ends on
// PostgreSQL, or sql.ErrNoRows.
func forOrder(ctx context.Context, tx *products.Tx, orderID int64) (*Shipment, error) {
	sh := new(Shipment)
	q := tx.NewSelect().Model(sh).Where("order_id = ?", orderID)
	if tx.Dialect().Name() == dialect.PG {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
		return nil, fmt.Errorf("shipment of order %d: %w", orderID, err)
	}
	return sh, nil
}
