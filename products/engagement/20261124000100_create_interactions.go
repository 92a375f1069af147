package engagement

import (
	"context"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

// Migrations create and evolve the engagement store. bun names each
// migration after the file that registers it.
var Migrations = migrate.NewMigrations()

func init() {
	Migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		if _, err := db.NewCreateTable().Model((*Interaction)(nil)).IfNotExists().Exec(ctx); err != nil {
			return err
		}
		for _, col := range []string{"customer_id", "occurred_at", "channel"} {
			if _, err := db.NewCreateIndex().Model((*Interaction)(nil)).IfNotExists().
				Index("interactions_"+col+"_idx").Column(col, "id").Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}
