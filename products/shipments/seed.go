package shipments

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/meshgate/meshgate/products"
)

func init() { Product.Seed = seed }

var carriers = []string{"DHL", "UPS", "DPD", "GLS", "PostNL", "FedEx"}

// seed writes a deterministic shipment for every demo order of the orders
// product that is SHIPPED: shipped with a carrier one to three days after
// the order was placed.
func seed(ctx context.Context, m *products.Mesh, s products.Seeding) error {
	shipped, err := m.Rows(ctx, "orders", "Order", map[string]any{"status": map[string]any{"eq": Shipped}}, "id", "placedAt")
	if err != nil {
		return err
	}
	lines, err := m.Rows(ctx, "orders", "OrderLine", nil, "orderId", "quantity")
	if err != nil {
		return err
	}
	units := map[int64]int{}
	for _, l := range lines {
		units[l["orderId"].(int64)] += l["quantity"].(int)
	}
	r := rand.New(rand.NewPCG(5, 5))
	rows := make([]*Shipment, len(shipped))
	for i, o := range shipped {
		placed := o["placedAt"].(time.Time)
		left := placed.Add(time.Duration(24+r.IntN(48)) * time.Hour)
		carrier := carriers[r.IntN(len(carriers))]
		rows[i] = &Shipment{
			ID: int64(i + 1), OrderID: o["id"].(int64), Status: Shipped, Carrier: &carrier,
			Units: units[o["id"].(int64)], CreatedAt: placed, ShippedAt: &left, UpdatedAt: left,
		}
	}
	return products.Insert(ctx, m.Store(Product.Name), Entity, rows, s.Progress)
}
