package products

import (
	"context"

	"github.com/uptrace/bun"
)

// The dead letters: the events a product's reaction failed on and set
// aside (see DeadLetter), one row per source change.
func init() {
	frameworkMigrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		if _, err := db.NewCreateTable().Model((*DeadLetter)(nil)).IfNotExists().Exec(ctx); err != nil {
			return err
		}
		if _, err := db.NewCreateIndex().Model((*DeadLetter)(nil)).IfNotExists().Unique().
			Index("mg_dead_letters_position").Column("source", "sequence").Exec(ctx); err != nil {
			return err
		}
		_, err := db.NewCreateIndex().Model((*DeadLetter)(nil)).IfNotExists().
			Index("mg_dead_letters_status").Column("status", "id").Exec(ctx)
		return err
	}, nil)
}
