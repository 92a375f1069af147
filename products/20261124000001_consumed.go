package products

import (
	"context"

	"github.com/uptrace/bun"
)

func init() {
	frameworkMigrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		if _, err := db.NewCreateTable().Model((*consumedEvent)(nil)).IfNotExists().Exec(ctx); err != nil {
			return err
		}
		_, err := db.NewCreateTable().Model((*SourcePosition)(nil)).IfNotExists().Exec(ctx)
		return err
	}, nil)
}
