package customers

import (
	"context"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

// Migrations create and evolve the customers store. bun names each
// migration after the file that registers it.
var Migrations = migrate.NewMigrations()

func init() {
	Migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		if _, err := db.NewCreateTable().Model((*Customer)(nil)).IfNotExists().Exec(ctx); err != nil {
			return err
		}
		for _, col := range []string{"country", "segment", "created_at", "name"} {
			if _, err := db.NewCreateIndex().Model((*Customer)(nil)).IfNotExists().
				Index("customers_"+col+"_idx").Column(col, "id").Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}
