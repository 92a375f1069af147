package engagement

import (
	"context"
	"math"
	"math/rand/v2"
	"time"

	"github.com/meshgate/meshgate/products"
)

var notes = []string{"asked about delivery times", "wants a discount", "happy with the product", "package arrived damaged", "newsletter sign-up", "question about the invoice"}

// Seed writes n deterministic demo interactions for customers 1..customers
// between start and start+span.
func Seed(ctx context.Context, s Store, n, customers int, start time.Time, span time.Duration, progress products.Progress) error {
	r := rand.New(rand.NewPCG(4, 4))
	rows := make([]*Interaction, n)
	for i := range rows {
		it := &Interaction{
			ID:         int64(i + 1),
			CustomerID: int64(1 + r.IntN(customers)),
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
	return products.Insert(ctx, s.Store, Entity, rows, progress)
}
