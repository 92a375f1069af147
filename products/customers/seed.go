package customers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/meshgate/meshgate/products"
)

var (
	firstNames = []string{"Ada", "Ben", "Chloé", "Dmitri", "Elif", "Farah", "Gustav", "Hana", "Ivan", "Jonas", "Keiko", "Lena", "Mateo", "Nia", "Omar", "Paula", "Quentin", "Rosa", "Sven", "Tariq", "Ulla", "Vera", "Wei", "Ximena", "Yusuf", "Zoe"}
	lastNames  = []string{"Andersen", "Becker", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Hoffmann", "Ivanova", "Jansen", "Kowalski", "Larsen", "Müller", "Novak", "Okafor", "Petrov", "Quinn", "Rossi", "Schmidt", "Tanaka", "Usman", "Virtanen", "Weber", "Xu", "Yilmaz", "Zimmermann"}
	countries  = []string{"DE", "FR", "NL", "SE", "ES", "IT", "PL", "GB", "US", "JP"}
)

func init() { Product.Seed = seed }

// DemoSize is the number of demo customers at scale 1.
const DemoSize = 2000

// seed writes deterministic demo customers (ids 1..n) created between the
// seeding's start and end.
func seed(ctx context.Context, m *products.Mesh, s products.Seeding) error {
	n, start, span := s.Size(DemoSize), s.Start, s.End.Sub(s.Start)
	r := rand.New(rand.NewPCG(1, 1))
	rows := make([]*Customer, n)
	for i := range rows {
		first, last := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
		created := start.Add(time.Duration(r.Int64N(int64(span)))).UTC().Truncate(time.Second)
		c := &Customer{
			ID:        int64(i + 1),
			Name:      first + " " + last,
			Email:     fmt.Sprintf("%s.%s.%d@example.com", asciiLower(first), asciiLower(last), i+1),
			Country:   countries[r.IntN(len(countries))],
			Segment:   segments[products.Pick(r, 70, 22, 8)],
			CreatedAt: created,
			UpdatedAt: created,
		}
		if r.IntN(4) > 0 {
			p := fmt.Sprintf("+49%09d", r.IntN(1_000_000_000))
			c.Phone = &p
		}
		rows[i] = c
	}
	return products.Insert(ctx, m.Store(Product.Name), Entity, rows, s.Progress)
}

func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
			return r | 0x20
		case r == 'é':
			return 'e'
		case r == 'í':
			return 'i'
		case r == 'ü':
			return 'u'
		}
		return -1
	}, s)
}
