package orders

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/meshgate/meshgate/products"
)

func init() {
	Product.Reaction = &products.Reaction{
		Inputs: []products.Input{
			{Product: "inventory", Entity: "Reservation", Description: "Takes a reservation's outcome as the order's status: RESERVED or BACKORDERED."},
			{Product: "shipments", Entity: "Shipment", Description: "Takes a shipment's progress as the order's status: SHIPPED, then DELIVERED."},
		},
		NewBatch: func() products.Batch {
			return products.Each(func(ctx context.Context, tx *products.Tx, e *products.AuditEntry) error {
				if e.Entity == "Shipment" {
					return ApplyShipment(ctx, tx, e)
				}
				return ApplyReservation(ctx, tx, e)
			})
		},
	}
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
	before, err := products.GetForUpdate[Order](ctx, tx, Entity, r.ID)
	if products.ErrorCode(err) == products.NotFound {
		return nil
	}
	if err != nil || before.Status != StatusPlaced {
		return err
	}
	o := *before
	o.Status, o.UpdatedAt = status, tx.Now()
	if _, err := tx.NewUpdate().Model(&o).Column("status", "updated_at").WherePK().Exec(ctx); err != nil {
		return fmt.Errorf("set order %d %s: %w", o.ID, status, err)
	}
	return tx.Updated(Entity, o.ID, before, &o)
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
	before, err := products.GetForUpdate[Order](ctx, tx, Entity, sh.OrderID)
	if products.ErrorCode(err) == products.NotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if now, ok := progress[before.Status]; !ok || now >= progress[status] {
		return nil
	}
	o := *before
	o.Status, o.UpdatedAt = status, tx.Now()
	if _, err := tx.NewUpdate().Model(&o).Column("status", "updated_at").WherePK().Exec(ctx); err != nil {
		return fmt.Errorf("set order %d %s: %w", o.ID, status, err)
	}
	return tx.Updated(Entity, o.ID, before, &o)
}
