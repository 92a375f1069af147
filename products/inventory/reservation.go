package inventory

import (
	"context"
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
		NewBatch: func() products.Batch { return &batch{} },
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
	b := &batch{}
	if err := b.Apply(ctx, tx, e); err != nil {
		return err
	}
	return b.Flush(ctx, tx)
}
