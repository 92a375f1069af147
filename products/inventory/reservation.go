package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
)

// Reservation states.
const (
	Reserved    = "RESERVED"
	Backordered = "BACKORDERED"
	Released    = "RELEASED"
)

// ReservationStatuses is the ReservationStatus enum.
var ReservationStatuses = &products.Enum{Name: "ReservationStatus", Description: "State of a reservation.", Values: []products.EnumValue{
	{Name: Reserved, Description: "Stock is held for every line."},
	{Name: Backordered, Description: "Some line lacked stock; nothing is held."},
	{Name: Released, Description: "The order was cancelled; the stock went back."},
}}

// Reservation is the stock inventory holds (or could not hold) for an
// order. Its id is the order's id. Orders learns from its change events
// whether an order is reserved or backordered.
type Reservation struct {
	bun.BaseModel `bun:"table:reservations" mesh:"Reservation" doc:"Stock inventory holds for an order, or the record that it was short. Its id is the order's id."`

	ID        int64             `bun:"id,pk" json:"id" doc:"The order's id."`
	Status    string            `bun:"status,notnull" json:"status" mesh:"enum=ReservationStatus,sort,group" doc:"Whether the stock is held, was short, or was given back."`
	Lines     []ReservationLine `bun:"lines,type:text,notnull" json:"lines" mesh:"object" doc:"The stock per item of the order."`
	CreatedAt time.Time         `bun:"created_at,notnull" json:"createdAt" mesh:"sort" doc:"When inventory saw the order."`
	UpdatedAt time.Time         `bun:"updated_at,notnull" json:"updatedAt" mesh:"sort" doc:"When the reservation last changed."`

	products.Window
}

// IsEntity marks Reservation as an Apollo Federation entity (keyed by id).
func (Reservation) IsEntity() {}

// ReservationLine is the stock of one item for a reservation.
type ReservationLine struct {
	ItemID   int64 `json:"itemId"`
	Quantity int   `json:"quantity"`
	// Short is set on a backordered reservation's lines lacking stock.
	Short bool `json:"short,omitempty"`
}

func init() {
	Product.Reaction = &products.Reaction{
		Inputs:   []products.Input{{Product: "orders", Entity: "Order", Description: "Reserves stock for each placed order and releases it when the order is cancelled."}},
		NewBatch: func() products.Batch { return products.Each(ApplyOrder) },
	}
}

// orderEvent is what inventory reads of an order change event.
type orderEvent struct {
	ID     int64  `json:"id"`
	Status string `json:"status"`
	Lines  []struct {
		ItemID   int64 `json:"itemId"`
		Quantity int   `json:"quantity"`
	} `json:"lines"`
}

// ApplyOrder reacts to a change of an order: a newly placed order gets its
// stock reserved (all lines, or none and a backorder); a cancelled one
// gets its reservation released and the stock back. It runs in tx, a
// transaction of the inventory store.
//
// The reservation row is the state that makes this robust to an order's
// events arriving out of order: a placed order is reserved only if it has
// no reservation yet, and a cancel seen before the order's creation leaves
// a RELEASED reservation without lines, so the late creation reserves
// nothing. Either order ends with the same stock.
func ApplyOrder(ctx context.Context, tx *products.Tx, e *products.AuditEntry) error {
	if e.Entity != "Order" || e.After == nil {
		return nil
	}
	var after orderEvent
	if err := json.Unmarshal([]byte(*e.After), &after); err != nil {
		return fmt.Errorf("decode order %d: %w", e.Key, err)
	}
	switch {
	case e.Op == products.OpCreate && after.Status == "PLACED":
		return reserve(ctx, tx, &after)
	case e.Op == products.OpUpdate && after.Status == "CANCELLED":
		return release(ctx, tx, after.ID)
	}
	return nil
}

func reserve(ctx context.Context, tx *products.Tx, o *orderEvent) error {
	exists, err := tx.NewSelect().Model((*Reservation)(nil)).Where("id = ?", o.ID).Exists(ctx)
	if err != nil || exists {
		return err
	}
	ids := make([]int64, len(o.Lines))
	for i, l := range o.Lines {
		ids[i] = l.ItemID
	}
	items, err := products.GetManyForUpdate[Item](ctx, tx, Entity, ids)
	if err != nil {
		return err
	}
	r := &Reservation{ID: o.ID, Status: Reserved, CreatedAt: tx.Now(), UpdatedAt: tx.Now()}
	for _, l := range o.Lines {
		it := items[l.ItemID]
		short := it == nil || it.Stock < l.Quantity
		if short {
			r.Status = Backordered
		}
		r.Lines = append(r.Lines, ReservationLine{ItemID: l.ItemID, Quantity: l.Quantity, Short: short})
	}
	if r.Status == Reserved {
		for _, l := range o.Lines {
			if err := adjustStock(ctx, tx, items[l.ItemID], -l.Quantity); err != nil {
				return err
			}
		}
	}
	if _, err := tx.NewInsert().Model(r).Exec(ctx); err != nil {
		return fmt.Errorf("insert reservation: %w", err)
	}
	return tx.Created(ReservationEntity, r.ID, r)
}

func release(ctx context.Context, tx *products.Tx, orderID int64) error {
	before, err := products.GetForUpdate[Reservation](ctx, tx, ReservationEntity, orderID)
	if products.ErrorCode(err) == products.NotFound {
		// Cancelled before inventory saw it placed: remember that, so
		// that its creation, if it comes late, reserves nothing.
		r := &Reservation{ID: orderID, Status: Released, Lines: []ReservationLine{}, CreatedAt: tx.Now(), UpdatedAt: tx.Now()}
		if _, err := tx.NewInsert().Model(r).Exec(ctx); err != nil {
			return fmt.Errorf("record released reservation: %w", err)
		}
		return tx.Created(ReservationEntity, r.ID, r)
	}
	if err != nil || before.Status == Released {
		return err
	}
	if before.Status == Reserved {
		ids := make([]int64, len(before.Lines))
		for i, l := range before.Lines {
			ids[i] = l.ItemID
		}
		items, err := products.GetManyForUpdate[Item](ctx, tx, Entity, ids)
		if err != nil {
			return err
		}
		for _, l := range before.Lines {
			if it := items[l.ItemID]; it != nil {
				if err := adjustStock(ctx, tx, it, l.Quantity); err != nil {
					return err
				}
			}
		}
	}
	r := *before
	r.Status, r.UpdatedAt = Released, tx.Now()
	if _, err := tx.NewUpdate().Model(&r).WherePK().Exec(ctx); err != nil {
		return fmt.Errorf("release reservation: %w", err)
	}
	return tx.Updated(ReservationEntity, r.ID, before, &r)
}

func adjustStock(ctx context.Context, tx *products.Tx, it *Item, delta int) error {
	before := *it
	it.Stock += delta
	it.UpdatedAt = tx.Now()
	if _, err := tx.NewUpdate().Model(it).Column("stock", "updated_at").WherePK().Exec(ctx); err != nil {
		return fmt.Errorf("adjust stock of item %d: %w", it.ID, err)
	}
	return tx.Updated(Entity, it.ID, &before, it)
}
