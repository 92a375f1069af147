package orders

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/meshgate/meshgate/products"
)

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
