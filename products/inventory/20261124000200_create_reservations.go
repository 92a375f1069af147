package inventory

import (
	"context"

	"github.com/uptrace/bun"
)

func init() {
	Migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		_, err := db.NewCreateTable().Model((*Reservation)(nil)).IfNotExists().Exec(ctx)
		return err
	}, nil)
}
