package orders

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
)

func init() {
	Product.Reaction = &products.Reaction{
		Inputs: []products.Input{
			{Product: "inventory", Entity: "Reservation", Description: "Takes a reservation's outcome as the order's status: RESERVED or BACKORDERED."},
			{Product: "shipments", Entity: "Shipment", Description: "Takes a shipment's progress as the order's status: SHIPPED, then DELIVERED."},
		},
		NewBatch: func() products.Batch { return &batch{} },
	}
}

// batch applies a batch of reservation and shipment events: Apply reads
// each into the status it asks of its order, Flush loads (and locks) the
// batch's orders with one statement, moves each order through its
// events' statuses in the batch's order, auditing every step, and writes
// the orders that changed with one statement per status. Each change is
// recorded with the request id of the event that caused it.
type batch struct {
	steps []step
}

// step is one event's wish for an order's status.
type step struct {
	order  int64
	status string
	// shipment: a shipment's progress (only ever forward) rather than a
	// reservation's outcome (only for a PLACED order).
	shipment bool
	cause    string // the event's request id
}

func (b *batch) Apply(ctx context.Context, tx *products.Tx, e *products.AuditEntry) error {
	if e.Entity == "Shipment" {
		return b.shipment(ctx, tx, e)
	}
	return b.reservation(ctx, tx, e)
}

func (b *batch) Flush(ctx context.Context, tx *products.Tx) error {
	if len(b.steps) == 0 {
		return nil
	}
	seen := map[int64]bool{}
	var ids []int64
	for _, s := range b.steps {
		if !seen[s.order] {
			seen[s.order] = true
			ids = append(ids, s.order)
		}
	}
	rows, err := products.GetManyForUpdate[Order](ctx, tx, Entity, ids)
	if err != nil {
		return err
	}
	shared := tx.CauseID()
	defer tx.Cause(shared)
	changed := map[int64]bool{}
	for _, s := range b.steps {
		before := rows[s.order]
		if before == nil {
			continue
		}
		if s.shipment {
			if now, ok := progress[before.Status]; !ok || now >= progress[s.status] {
				continue
			}
		} else if before.Status != StatusPlaced {
			continue
		}
		o := *before
		o.Status, o.UpdatedAt = s.status, tx.Now()
		tx.Cause(s.cause)
		if err := tx.Updated(Entity, o.ID, before, &o); err != nil {
			return err
		}
		rows[s.order], changed[s.order] = &o, true
	}
	byStatus := map[string][]int64{}
	var statuses []string
	for _, id := range ids {
		if !changed[id] {
			continue
		}
		st := rows[id].Status
		if byStatus[st] == nil {
			statuses = append(statuses, st)
		}
		byStatus[st] = append(byStatus[st], id)
	}
	for _, st := range statuses {
		if _, err := tx.NewUpdate().Model((*Order)(nil)).Set("status = ?", st).Set("updated_at = ?", tx.Now()).
			Where("id IN (?)", bun.List(byStatus[st])).Exec(ctx); err != nil {
			return fmt.Errorf("set %d orders %s: %w", len(byStatus[st]), st, err)
		}
	}
	return nil
}

// each applies one event in its own batch.
func each(ctx context.Context, tx *products.Tx, e *products.AuditEntry, apply func(*batch, context.Context, *products.Tx, *products.AuditEntry) error) error {
	b := &batch{}
	if err := apply(b, ctx, tx, e); err != nil {
		return err
	}
	return b.Flush(ctx, tx)
}

// reservationEvent is what orders reads of inventory's reservation events.
type reservationEvent struct {
	ID     int64  `json:"id"`
	Status string `json:"status"`
}

// ApplyReservation reacts to inventory's reservation of a placed order: the
// order becomes RESERVED or BACKORDERED (unless it moved on meanwhile, e.g.
// was cancelled). It runs in tx, a transaction of the orders store. A
// reservation's creation that arrives after a newer change of the same
// reservation (events out of order) is stale and changes nothing.
func ApplyReservation(ctx context.Context, tx *products.Tx, e *products.AuditEntry) error {
	return each(ctx, tx, e, (*batch).reservation)
}

func (b *batch) reservation(ctx context.Context, tx *products.Tx, e *products.AuditEntry) error {
	if e.Entity != "Reservation" || e.After == nil {
		return nil
	}
	newest, err := tx.Newest(ctx, e.Product, e.Entity, e.Key, e.Sequence)
	if err != nil || !newest || e.Op != products.OpCreate {
		return err
	}
	var r reservationEvent
	if err := json.Unmarshal([]byte(*e.After), &r); err != nil {
		return fmt.Errorf("decode reservation %d: %w", e.Key, err)
	}
	status := map[string]string{"RESERVED": StatusReserved, "BACKORDERED": StatusBackordered}[r.Status]
	if status == "" {
		return nil
	}
	b.steps = append(b.steps, step{order: r.ID, status: status, cause: tx.CauseID()})
	return nil
}

// shipmentEvent is what orders reads of shipments' change events.
type shipmentEvent struct {
	OrderID int64  `json:"orderId"`
	Status  string `json:"status"`
}

// progress ranks the states an order moves through once placed; a
// shipment's events only ever move an order forward.
var progress = map[string]int{StatusPlaced: 0, StatusReserved: 0, StatusBackordered: 0, StatusShipped: 1, StatusDelivered: 2}

// ApplyShipment reacts to the progress of an order's shipment: the order
// becomes SHIPPED when its goods leave, DELIVERED when they arrive. A
// cancelled order stays cancelled, and an order never moves back: a
// shipment event older than one already applied for the same shipment
// (events out of order) changes nothing, and a delivery seen before the
// shipping makes the order DELIVERED at once. It runs in tx, a transaction
// of the orders store.
func ApplyShipment(ctx context.Context, tx *products.Tx, e *products.AuditEntry) error {
	return each(ctx, tx, e, (*batch).shipment)
}

func (b *batch) shipment(ctx context.Context, tx *products.Tx, e *products.AuditEntry) error {
	if e.Product != "shipments" || e.Entity != "Shipment" || e.After == nil {
		return nil
	}
	newest, err := tx.Newest(ctx, e.Product, e.Entity, e.Key, e.Sequence)
	if err != nil || !newest {
		return err
	}
	var sh shipmentEvent
	if err := json.Unmarshal([]byte(*e.After), &sh); err != nil {
		return fmt.Errorf("decode shipment %d: %w", e.Key, err)
	}
	status := map[string]string{"SHIPPED": StatusShipped, "DELIVERED": StatusDelivered}[sh.Status]
	if status == "" {
		return nil
	}
	b.steps = append(b.steps, step{order: sh.OrderID, status: status, shipment: true, cause: tx.CauseID()})
	return nil
}
