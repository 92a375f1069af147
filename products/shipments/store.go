package shipments

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/meshgate/meshgate/products"
)

// Store is the shipments product's store and API.
type Store struct{ *products.Store }

// New returns the shipments product's API on an opened mesh.
func New(m *products.Mesh) Store { return Store{Store: m.Store(Product.Name)} }

// Ship records that the shipment of an order left with a carrier. The
// order must have a shipment being prepared: NOT_FOUND if it has none (its
// stock is not reserved), CONFLICT if it left already or was cancelled.
func (s Store) Ship(ctx context.Context, orderID int64, carrier string) (*Shipment, error) {
	c, err := products.Text("carrier", carrier, 1, 100)
	if err != nil {
		return nil, err
	}
	var after *Shipment
	_, err = s.Write(ctx, func(ctx context.Context, tx *products.Tx) error {
		before, err := forOrder(ctx, tx, orderID)
		if errors.Is(err, sql.ErrNoRows) {
			return &products.Error{Code: products.NotFound, Field: "orderId",
				Message: fmt.Sprintf("order %d has no shipment: an order is shipped once inventory has reserved its stock", orderID)}
		}
		if err != nil {
			return err
		}
		switch before.Status {
		case Shipped, Delivered:
			return &products.Error{Code: products.Conflict, Field: "orderId", Message: fmt.Sprintf("order %d is %s already", orderID, before.Status)}
		case Cancelled:
			return &products.Error{Code: products.Conflict, Field: "orderId", Message: fmt.Sprintf("order %d was cancelled; its shipment is cancelled", orderID)}
		}
		sh := *before
		now := tx.Now()
		sh.Status, sh.Carrier, sh.ShippedAt, sh.UpdatedAt = Shipped, &c, &now, now
		if _, err := tx.NewUpdate().Model(&sh).WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("ship shipment %d: %w", sh.ID, err)
		}
		after = &sh
		return tx.Updated(Entity, sh.ID, before, &sh)
	})
	if err != nil {
		return nil, fmt.Errorf("shipments: ship order %d: %w", orderID, err)
	}
	return after, nil
}

// Deliver records that a shipped shipment arrived: NOT_FOUND for an
// unknown shipment, CONFLICT unless it is SHIPPED.
func (s Store) Deliver(ctx context.Context, id int64) (*Shipment, error) {
	return products.UpdateRow(ctx, s.Store, Entity, id, func(ctx context.Context, tx *products.Tx, before, sh *Shipment) error {
		switch before.Status {
		case Preparing:
			return &products.Error{Code: products.Conflict, Field: "shipmentId", Message: fmt.Sprintf("shipment %d has not left yet: ship it first", id)}
		case Delivered:
			return &products.Error{Code: products.Conflict, Field: "shipmentId", Message: fmt.Sprintf("shipment %d is delivered already", id)}
		case Cancelled:
			return &products.Error{Code: products.Conflict, Field: "shipmentId", Message: fmt.Sprintf("shipment %d was cancelled", id)}
		}
		now := tx.Now()
		sh.Status, sh.DeliveredAt, sh.UpdatedAt = Delivered, &now, now
		return nil
	})
}
