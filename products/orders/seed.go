package orders

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/meshgate/meshgate/products"
)

// Seed writes n deterministic demo orders with one to five lines each (three
// on average) for customers 1..customers, priced from prices (item id →
// unit price), placed between start and start+span.
func Seed(ctx context.Context, s Store, n, customers int, prices map[int64]products.Decimal, start time.Time, span time.Duration, progress products.Progress) error {
	r := rand.New(rand.NewPCG(3, 3))
	items := len(prices)
	orders := make([]*Order, n)
	lines := make([]*Line, 0, 3*n)
	statuses := []string{StatusReserved, StatusShipped, StatusCancelled, StatusBackordered, StatusPlaced}
	for i := range orders {
		placed := start.Add(time.Duration(r.Int64N(int64(span)))).UTC().Truncate(time.Second)
		o := &Order{
			ID: int64(i + 1), CustomerID: int64(1 + r.IntN(customers)),
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
	if err := products.Insert(ctx, s.Store, Entity, orders, progress); err != nil {
		return err
	}
	return products.Insert(ctx, s.Store, LineEntity, lines, progress)
}
