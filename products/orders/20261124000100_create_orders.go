package orders

import (
	"context"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

// Migrations create and evolve the orders store. bun names each migration
// after the file that registers it.
var Migrations = migrate.NewMigrations()

func init() {
	Migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		for _, m := range []any{(*Order)(nil), (*Line)(nil)} {
			if _, err := db.NewCreateTable().Model(m).IfNotExists().Exec(ctx); err != nil {
				return err
			}
		}
		for _, col := range []string{"customer_id", "status", "placed_at", "total"} {
			if _, err := db.NewCreateIndex().Model((*Order)(nil)).IfNotExists().
				Index("orders_"+col+"_idx").Column(col, "id").Exec(ctx); err != nil {
				return err
			}
		}
		for _, col := range []string{"order_id", "item_id"} {
			if _, err := db.NewCreateIndex().Model((*Line)(nil)).IfNotExists().
				Index("order_lines_"+col+"_idx").Column(col, "id").Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}
