package orders

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/meshgate/meshgate/products"
)

func init() { Product.Seed = seed }

// DemoSize is the number of demo orders at scale 1.
const DemoSize = 20000

// seed writes deterministic demo orders with one to five lines each (three
// on average) for the customers 1..n of the customers product, priced from
// the items of the inventory product, placed between the seeding's start
// and end.
func seed(ctx context.Context, m *products.Mesh, s products.Seeding) error {
	n, start, span := s.Size(DemoSize), s.Start, s.End.Sub(s.Start)
	cs, ce, err := m.Entity("customers", "Customer")
	if err != nil {
		return err
	}
	customers, err := cs.RowCount(ctx, ce)
	if err != nil {
		return err
	}
	priced, err := m.Rows(ctx, "inventory", "Item", nil, "id", "price")
	if err != nil {
		return err
	}
	if customers == 0 || len(priced) == 0 {
		return fmt.Errorf("demo orders need demo customers and items")
	}
	prices := make(map[int64]products.Decimal, len(priced))
	for _, it := range priced {
		prices[it["id"].(int64)] = it["price"].(products.Decimal)
	}
	r := rand.New(rand.NewPCG(3, 3))
	items := len(prices)
	orders := make([]*Order, n)
	lines := make([]*Line, 0, 3*n)
	statuses := []string{StatusReserved, StatusShipped, StatusCancelled, StatusBackordered, StatusPlaced}
	for i := range orders {
		placed := start.Add(time.Duration(r.Int64N(int64(span)))).UTC().Truncate(time.Second)
		o := &Order{
			ID: int64(i + 1), CustomerID: int64(1 + r.IntN(int(customers))),
			Status: statuses[products.Pick(r, 40, 45, 7, 3, 5)], Currency: "EUR",
			PlacedAt: placed, UpdatedAt: placed,
		}
		k := 1 + r.IntN(5)
		used := map[int64]bool{}
		for j := 0; j < k; j++ {
			item := int64(1 + r.IntN(items))
			if used[item] {
				continue
			}
			used[item] = true
			q := 1 + r.IntN(4)
			amount, err := prices[item].Mul(int64(q))
			if err == nil {
				o.Total, err = o.Total.Add(amount)
			}
			if err != nil {
				return fmt.Errorf("orders: seed: %w", err)
			}
			l := &Line{ID: int64(len(lines) + 1), OrderID: o.ID, ItemID: item, Quantity: q, UnitPrice: prices[item], Amount: amount}
			o.Lines = append(o.Lines, l)
			lines = append(lines, l)
		}
		orders[i] = o
	}
	store := m.Store(Product.Name)
	if err := products.Insert(ctx, store, Entity, orders, s.Progress); err != nil {
		return err
	}
	return products.Insert(ctx, store, LineEntity, lines, s.Progress)
}
