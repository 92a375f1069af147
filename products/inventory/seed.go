package inventory

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

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

// Seed writes n deterministic demo items (ids 1..n) and returns their prices by id.
func Seed(ctx context.Context, s Store, n int, at time.Time, progress products.Progress) (map[int64]products.Decimal, error) {
	r := rand.New(rand.NewPCG(2, 2))
	rows := make([]*Item, n)
	prices := make(map[int64]products.Decimal, n)
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
		prices[int64(i+1)] = price
	}
	return prices, products.Insert(ctx, s.Store, Entity, rows, progress)
}
