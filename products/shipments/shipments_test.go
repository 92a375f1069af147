package shipments_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/pgtest"
	"github.com/meshgate/meshgate/products/shipments"
)

// forEachBackend runs fn on an empty demo mesh on SQLite and on PostgreSQL
// (schemas of the test's own; see pgtest for when it skips).
func forEachBackend(t *testing.T, fn func(t *testing.T, m *products.Mesh)) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var dsn func(string) string
			switch backend {
			case "sqlite":
				dir := t.TempDir()
				dsn = func(p string) string { return "sqlite:" + filepath.Join(dir, p+".db") }
			case "postgres":
				dsn = pgtest.New(t).DSN
			}
			m, err := demo.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			fn(t, m)
		})
	}
}

// reservation is a change event of inventory's reservation of an order.
func reservation(seq int64, op products.Op, order int64, status string, quantities ...int) *products.AuditEntry {
	type line struct {
		ItemID   int64 `json:"itemId"`
		Quantity int   `json:"quantity"`
	}
	img := struct {
		ID     int64  `json:"id"`
		Status string `json:"status"`
		Lines  []line `json:"lines"`
	}{ID: order, Status: status, Lines: []line{}}
	for i, q := range quantities {
		img.Lines = append(img.Lines, line{ItemID: int64(i + 1), Quantity: q})
	}
	b, _ := json.Marshal(img)
	after := string(b)
	return &products.AuditEntry{Sequence: seq, Product: "inventory", Entity: "Reservation", Key: order, Op: op, After: &after, At: time.Now().UTC()}
}

// deliver applies events to the shipments store the way its consumer does:
// each in a transaction that records it as consumed, skipping those
// applied before.
func deliver(t *testing.T, s shipments.Store, events ...*products.AuditEntry) {
	t.Helper()
	for _, e := range events {
		_, err := s.Write(context.Background(), func(ctx context.Context, tx *products.Tx) error {
			fresh, err := tx.Consume(ctx, e.Product, e.Sequence, e.At)
			if err != nil || !fresh {
				return err
			}
			b := shipments.Product.Reaction.NewBatch()
			if err := b.Apply(ctx, tx, e); err != nil {
				return err
			}
			return b.Flush(ctx, tx)
		})
		if err != nil {
			t.Fatalf("apply %s %d: %v", e.Op, e.Sequence, err)
		}
	}
}

// shipmentOf returns the shipment of an order, or nil.
func shipmentOf(t *testing.T, s shipments.Store, order int64) *shipments.Shipment {
	t.Helper()
	rows, err := products.GetManyBy[shipments.Shipment](context.Background(), s.DB, shipments.Entity, "orderId", []int64{order})
	if err != nil {
		t.Fatal(err)
	}
	return rows[order]
}

func latest(t *testing.T, s shipments.Store) int64 {
	t.Helper()
	n, err := s.Latest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReactions: a reserved order gets a shipment to prepare, once however
// often its event is delivered; a released reservation cancels a shipment
// not yet shipped; a release seen before the reservation leaves none;
// backorders get none.
func TestReactions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, m *products.Mesh) {
		s := shipments.New(m)
		reserved := reservation(1, products.OpCreate, 10, "RESERVED", 2, 3)
		deliver(t, s, reserved)
		sh := shipmentOf(t, s, 10)
		if sh == nil || sh.Status != shipments.Preparing || sh.Units != 5 || sh.Carrier != nil || sh.ShippedAt != nil {
			t.Fatalf("shipment of a reserved order: %+v", sh)
		}
		before := latest(t, s)
		deliver(t, s, reserved, reserved)
		if again := shipmentOf(t, s, 10); again.ID != sh.ID || latest(t, s) != before {
			t.Errorf("redelivery changed something: %+v, log %d → %d", again, before, latest(t, s))
		}

		// Cancelled while being prepared.
		deliver(t, s, reservation(2, products.OpCreate, 11, "RESERVED", 1), reservation(3, products.OpUpdate, 11, "RELEASED", 1))
		if sh := shipmentOf(t, s, 11); sh == nil || sh.Status != shipments.Cancelled {
			t.Errorf("shipment of a released reservation: %+v", sh)
		}

		// Out of order: the release first, the creation late.
		deliver(t, s, reservation(5, products.OpUpdate, 12, "RELEASED", 1), reservation(4, products.OpCreate, 12, "RESERVED", 1))
		if sh := shipmentOf(t, s, 12); sh != nil {
			t.Errorf("a stale reservation prepared a shipment: %+v", sh)
		}

		// Backordered: nothing to ship.
		deliver(t, s, reservation(6, products.OpCreate, 13, "BACKORDERED", 1))
		if sh := shipmentOf(t, s, 13); sh != nil {
			t.Errorf("a backordered order got a shipment: %+v", sh)
		}

		// Other products' and entities' events are not shipments' business.
		other := reservation(7, products.OpCreate, 14, "RESERVED", 1)
		other.Entity = "Item"
		deliver(t, s, other)
		if sh := shipmentOf(t, s, 14); sh != nil {
			t.Errorf("an item event prepared a shipment: %+v", sh)
		}
	})
}

// TestShipAndDeliver: the mutations' rules, and bad input that changes
// nothing.
func TestShipAndDeliver(t *testing.T) {
	forEachBackend(t, func(t *testing.T, m *products.Mesh) {
		ctx := context.Background()
		s := shipments.New(m)
		deliver(t, s, reservation(1, products.OpCreate, 20, "RESERVED", 1),
			reservation(2, products.OpCreate, 21, "RESERVED", 1), reservation(3, products.OpUpdate, 21, "RELEASED", 1))

		mustFail := func(what string, code products.Code, field string, err error) {
			t.Helper()
			var pe *products.Error
			if !errors.As(err, &pe) || pe.Code != code {
				t.Errorf("%s: %v, want %s", what, err, code)
			} else if pe.Field != field {
				t.Errorf("%s: field %q, want %q", what, pe.Field, field)
			}
		}
		before := latest(t, s)
		_, err := s.Ship(ctx, 20, "  ")
		mustFail("empty carrier", products.BadUserInput, "carrier", err)
		_, err = s.Ship(ctx, 999, "DHL")
		mustFail("order without shipment", products.NotFound, "orderId", err)
		_, err = s.Ship(ctx, 21, "DHL")
		mustFail("cancelled shipment", products.Conflict, "orderId", err)
		prepared := shipmentOf(t, s, 20)
		_, err = s.Deliver(ctx, prepared.ID)
		mustFail("deliver before shipping", products.Conflict, "shipmentId", err)
		_, err = s.Deliver(ctx, 999)
		mustFail("unknown shipment", products.NotFound, "", err)
		if latest(t, s) != before {
			t.Fatalf("refused mutations wrote to the log: %d → %d", before, latest(t, s))
		}

		sh, err := s.Ship(ctx, 20, " DHL ")
		if err != nil {
			t.Fatal(err)
		}
		if sh.Status != shipments.Shipped || sh.Carrier == nil || *sh.Carrier != "DHL" || sh.ShippedAt == nil || sh.DeliveredAt != nil {
			t.Fatalf("shipped: %+v", sh)
		}
		_, err = s.Ship(ctx, 20, "UPS")
		mustFail("ship twice", products.Conflict, "orderId", err)
		sh, err = s.Deliver(ctx, sh.ID)
		if err != nil {
			t.Fatal(err)
		}
		if sh.Status != shipments.Delivered || sh.DeliveredAt == nil || *sh.Carrier != "DHL" {
			t.Fatalf("delivered: %+v", sh)
		}
		_, err = s.Deliver(ctx, sh.ID)
		mustFail("deliver twice", products.Conflict, "shipmentId", err)

		// A release after the goods left takes nothing back.
		deliver(t, s, reservation(4, products.OpUpdate, 20, "RELEASED", 1))
		if got := shipmentOf(t, s, 20); got.Status != shipments.Delivered {
			t.Errorf("a release undid a delivery: %+v", got)
		}

		// The audit log holds every change with its before and after.
		var entries []products.AuditEntry
		if err := s.DB.NewSelect().Model(&entries).Where("entity = 'Shipment' AND key = ?", sh.ID).Order("sequence").Scan(ctx); err != nil {
			t.Fatal(err)
		}
		var ops []string
		for _, e := range entries {
			var img struct{ Status string }
			json.Unmarshal([]byte(*e.After), &img)
			ops = append(ops, string(e.Op)+" "+img.Status)
		}
		if got, want := ops, []string{"CREATE PREPARING", "UPDATE SHIPPED", "UPDATE DELIVERED"}; !slices.Equal(got, want) {
			t.Errorf("audit log of the shipment: %q, want %q", got, want)
		}
	})
}
