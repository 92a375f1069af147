package shipments

import (
	"context"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

// Migrations create and evolve the shipments store. bun names each
// migration after the file that registers it.
var Migrations = migrate.NewMigrations()

func init() {
	Migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		if _, err := db.NewCreateTable().Model((*Shipment)(nil)).IfNotExists().Exec(ctx); err != nil {
			return err
		}
		for _, col := range []string{"status", "created_at"} {
			if _, err := db.NewCreateIndex().Model((*Shipment)(nil)).IfNotExists().
				Index("shipments_"+col+"_idx").Column(col, "id").Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}
