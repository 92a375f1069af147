package shipments

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/uptrace/bun/dialect"

	"github.com/meshgate/meshgate/products"
)

func init() {
	Product.Reaction = &products.Reaction{
		Inputs: []products.Input{{Product: "inventory", Entity: "Reservation",
			Description: "Prepares a shipment for each order whose stock is reserved and cancels it when the reservation is released before the goods left."}},
		NewBatch: func() products.Batch { return products.Each(ApplyReservation) },
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
		return prepare(ctx, tx, &r)
	case "RELEASED":
		return cancel(ctx, tx, r.ID)
	}
	return nil
}

func prepare(ctx context.Context, tx *products.Tx, r *reservationEvent) error {
	if _, err := forOrder(ctx, tx, r.ID); err == nil || !errors.Is(err, sql.ErrNoRows) {
		return err // prepared already (or failed)
	}
	sh := &Shipment{OrderID: r.ID, Status: Preparing, CreatedAt: tx.Now(), UpdatedAt: tx.Now()}
	for _, l := range r.Lines {
		sh.Units += l.Quantity
	}
	if _, err := tx.NewInsert().Model(sh).Returning("id").Exec(ctx); err != nil {
		return fmt.Errorf("insert shipment of order %d: %w", r.ID, err)
	}
	return tx.Created(Entity, sh.ID, sh)
}

func cancel(ctx context.Context, tx *products.Tx, orderID int64) error {
	before, err := forOrder(ctx, tx, orderID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil || before.Status != Preparing {
		return err // the goods left already: nothing to take back
	}
	sh := *before
	sh.Status, sh.UpdatedAt = Cancelled, tx.Now()
	if _, err := tx.NewUpdate().Model(&sh).Column("status", "updated_at").WherePK().Exec(ctx); err != nil {
		return fmt.Errorf("cancel shipment %d: %w", sh.ID, err)
	}
	return tx.Updated(Entity, sh.ID, before, &sh)
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
