package inventory

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/meshgate/meshgate/products"
)

var (
	categories = []string{"Books", "Electronics", "Garden", "Kitchen", "Office", "Outdoor", "Toys", "Apparel"}
	adjectives = []string{"Compact", "Deluxe", "Eco", "Classic", "Smart", "Rugged", "Mini", "Pro"}
	nouns      = map[string][]string{
		"Books": {"Novel", "Atlas", "Cookbook", "Guide"}, "Electronics": {"Headphones", "Charger", "Speaker", "Camera"},
		"Garden": {"Hose", "Shovel", "Planter", "Sprinkler"}, "Kitchen": {"Kettle", "Pan", "Knife", "Blender"},
		"Office": {"Stapler", "Lamp", "Notebook", "Chair"}, "Outdoor": {"Tent", "Lantern", "Backpack", "Bottle"},
		"Toys": {"Puzzle", "Kite", "Robot", "Blocks"}, "Apparel": {"Jacket", "Scarf", "Cap", "Gloves"},
	}
)

func init() { Product.Seed = seed }

// DemoSize is the number of demo items at scale 1.
const DemoSize = 500

// seed writes deterministic demo items (ids 1..n), created at the
// seeding's start.
func seed(ctx context.Context, m *products.Mesh, s products.Seeding) error {
	n, at := s.Size(DemoSize), s.Start
	r := rand.New(rand.NewPCG(2, 2))
	rows := make([]*Item, n)
	for i := range rows {
		cat := categories[r.IntN(len(categories))]
		noun := nouns[cat][r.IntN(len(nouns[cat]))]
		// Drawn in floating point, then turned into whole cents once: the
		// demo's prices are exact from here on.
		price := products.Cents(int64(math.Round((math.Exp(r.Float64()*6) + 1.99) * 100)))
		rows[i] = &Item{
			ID:        int64(i + 1),
			SKU:       fmt.Sprintf("SKU-%06d", i+1),
			Name:      adjectives[r.IntN(len(adjectives))] + " " + noun,
			Category:  cat,
			Price:     price,
			Stock:     100 + r.IntN(900),
			CreatedAt: at,
			UpdatedAt: at,
		}
	}
	return products.Insert(ctx, m.Store(Product.Name), Entity, rows, s.Progress)
}
