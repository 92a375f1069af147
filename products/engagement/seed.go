package engagement

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/meshgate/meshgate/products"
)

var notes = []string{"asked about delivery times", "wants a discount", "happy with the product", "package arrived damaged", "newsletter sign-up", "question about the invoice"}

func init() { Product.Seed = seed }

// DemoSize is the number of demo interactions at scale 1.
const DemoSize = 10000

// seed writes deterministic demo interactions of the customers 1..n of the
// customers product between the seeding's start and end.
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
	if customers == 0 {
		return fmt.Errorf("demo interactions need demo customers")
	}
	r := rand.New(rand.NewPCG(4, 4))
	rows := make([]*Interaction, n)
	for i := range rows {
		it := &Interaction{
			ID:         int64(i + 1),
			CustomerID: int64(1 + r.IntN(int(customers))),
			Channel:    Channels[r.IntN(len(Channels))],
			Kind:       Kinds[r.IntN(len(Kinds))],
			Sentiment:  math.Round((r.Float64()*2-1)*100) / 100,
			OccurredAt: start.Add(time.Duration(r.Int64N(int64(span)))).UTC().Truncate(time.Second),
		}
		if r.IntN(3) == 0 {
			n := notes[r.IntN(len(notes))]
			it.Note = &n
		}
		rows[i] = it
	}
	return products.Insert(ctx, m.Store(Product.Name), Entity, rows, s.Progress)
}
