package orders_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/orders"
)

// TestApplyShipment: a shipment's events move its order forward only, once,
// whatever order they arrive in; a cancelled order stays cancelled.
func TestApplyShipment(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m, err := demo.Open(ctx, func(p string) string { return "sqlite:" + filepath.Join(dir, p+".db") })
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s := orders.New(m)
	if _, err := m.Seed(ctx, 0.01, nil); err != nil {
		t.Fatal(err)
	}
	// Three orders placed and reserved.
	var ids []int64
	for i := range 3 {
		o, err := s.Place(ctx, int64(i+1), []orders.LineInput{{ItemID: 1, Quantity: 1}}, "EUR")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, o.ID)
		if _, err := s.Write(ctx, func(ctx context.Context, tx *products.Tx) error {
			return orders.ApplyReservation(ctx, tx, event("inventory", "Reservation", int64(100+i), o.ID, products.OpCreate, map[string]any{"id": o.ID, "status": "RESERVED"}))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Cancel(ctx, ids[2]); err != nil {
		t.Fatal(err)
	}
	shipment := func(seq, shipmentID, order int64, status string) *products.AuditEntry {
		return event("shipments", "Shipment", seq, shipmentID, products.OpUpdate, map[string]any{"id": shipmentID, "orderId": order, "status": status})
	}
	apply := func(events ...*products.AuditEntry) {
		t.Helper()
		for _, e := range events {
			if _, err := s.Write(ctx, func(ctx context.Context, tx *products.Tx) error {
				b := orders.Product.Reaction.NewBatch()
				if err := b.Apply(ctx, tx, e); err != nil {
					return err
				}
				return b.Flush(ctx, tx)
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	status := func(id int64) string {
		o, err := products.Get[orders.Order](ctx, s.DB, orders.Entity, id)
		if err != nil {
			t.Fatal(err)
		}
		return o.Status
	}

	apply(shipment(1, 1, ids[0], "PREPARING"), shipment(2, 1, ids[0], "SHIPPED"))
	if got := status(ids[0]); got != orders.StatusShipped {
		t.Errorf("shipped: order %s", got)
	}
	apply(shipment(3, 1, ids[0], "DELIVERED"))
	if got := status(ids[0]); got != orders.StatusDelivered {
		t.Errorf("delivered: order %s", got)
	}

	// Out of order: delivered first, the stale shipping after it.
	apply(shipment(11, 2, ids[1], "DELIVERED"), shipment(10, 2, ids[1], "SHIPPED"))
	if got := status(ids[1]); got != orders.StatusDelivered {
		t.Errorf("delivery before shipping: order %s, want DELIVERED", got)
	}

	// A cancelled order stays cancelled.
	apply(shipment(20, 3, ids[2], "SHIPPED"))
	if got := status(ids[2]); got != orders.StatusCancelled {
		t.Errorf("cancelled order: %s", got)
	}
	if _, err := s.Cancel(ctx, ids[0]); products.ErrorCode(err) != products.Conflict {
		t.Errorf("cancel a delivered order: %v, want CONFLICT", err)
	}
}

func event(product, entity string, seq, key int64, op products.Op, after map[string]any) *products.AuditEntry {
	b, _ := json.Marshal(after)
	a := string(b)
	return &products.AuditEntry{Product: product, Entity: entity, Sequence: seq, Key: key, Op: op, After: &a, At: time.Now().UTC()}
}
