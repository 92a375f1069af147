package sales

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
)

// Stores created before money was exact hold amounts as floating point;
// this turns them into whole cents (BIGINT). New stores already have
// BIGINT columns and are left as they are.
func init() {
	Migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		for _, m := range []struct {
			model any
			cols  []string
		}{
			{(*DailyRevenue)(nil), []string{"revenue"}},
			{(*CustomerValue)(nil), []string{"revenue"}},
			{(*ItemSales)(nil), []string{"revenue"}},
			{(*order)(nil), []string{"total"}},
			{(*orderLine)(nil), []string{"amount"}},
		} {
			if err := products.ConvertToCents(ctx, db, m.model, m.cols...); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}
