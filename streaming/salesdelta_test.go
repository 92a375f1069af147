package streaming

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/orders"
	"github.com/meshgate/meshgate/products/sales"
)

// TestSalesFiguresExactInAnyBatching: sales keeps days and items by the
// deltas of each batch (see sales.Batch). Fed the orders' and customers'
// changes in random batches, each key's changes in any order and some
// delivered twice, and then everything once more, its figures equal SQL
// over the orders store.
func TestSalesFiguresExactInAnyBatching(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		m := openMesh(t, b)
		ctx := context.Background()
		custs, items, _ := shop(t, m, 1000)
		rnd := rand.New(rand.NewPCG(7, uint64(len(b.Name))))
		var placed []int64
		for i := range 30 {
			var lines []orders.LineInput
			first := rnd.IntN(len(items))
			for j := range 1 + rnd.IntN(3) {
				lines = append(lines, orders.LineInput{ItemID: items[(first+j)%len(items)], Quantity: 1 + rnd.IntN(3)})
			}
			o, err := orders.New(m).Place(ctx, custs[i%len(custs)], lines, "EUR")
			if err != nil {
				t.Fatal(err)
			}
			placed = append(placed, o.ID)
		}
		for _, id := range placed[:10] {
			if _, err := orders.New(m).Cancel(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		var entries []products.AuditEntry
		for _, s := range []*products.Store{m.Store("customers"), m.Store("orders")} {
			es, err := s.Entries(ctx, 0, 0, 10000)
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, es...)
		}
		// Every change once, shuffled (a key's changes in any order),
		// a quarter of them twice, in batches of 1 to 8.
		var feed []products.AuditEntry
		for _, i := range rnd.Perm(len(entries)) {
			feed = append(feed, entries[i])
			if rnd.IntN(4) == 0 {
				feed = append(feed, entries[i])
			}
		}
		apply := func(batch []products.AuditEntry) {
			t.Helper()
			_, err := m.Store("sales").WriteExclusive(ctx, "react", 0, func(ctx context.Context, tx *products.Tx) error {
				sb := sales.NewBatch()
				for i := range batch {
					if err := sb.Apply(ctx, tx, &batch[i]); err != nil {
						return err
					}
				}
				if err := sb.Flush(ctx, tx); err != nil {
					return err
				}
				return tx.SaveNewest(ctx)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		for len(feed) > 0 {
			n := min(1+rnd.IntN(8), len(feed))
			apply(feed[:n])
			feed = feed[n:]
		}
		if d := salesBooks(t, m); d != "" {
			t.Fatalf("sales after random batches:\n%s", d)
		}
		// Everything again, in one batch: nothing changes.
		apply(entries)
		if d := salesBooks(t, m); d != "" {
			t.Fatalf("sales after every change again:\n%s", d)
		}
	})
}
