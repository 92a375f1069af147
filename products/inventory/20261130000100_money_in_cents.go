package inventory

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
		return products.ConvertToCents(ctx, db, (*Item)(nil), "price")
	}, nil)
}
