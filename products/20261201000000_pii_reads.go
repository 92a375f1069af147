package products

import (
	"context"

	"github.com/uptrace/bun"
)

// The read-access audit: one row per request and product that returned
// personal data unmasked (see PIIRead), positioned by its own counter.
func init() {
	frameworkMigrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		if _, err := db.NewCreateTable().Model((*PIIRead)(nil)).IfNotExists().Exec(ctx); err != nil {
			return err
		}
		if _, err := db.NewCreateIndex().Model((*PIIRead)(nil)).IfNotExists().
			Index("mg_pii_reads_subject").Column("subject", "sequence").Exec(ctx); err != nil {
			return err
		}
		_, err := db.NewCreateTable().Model((*piiReadSeq)(nil)).IfNotExists().Exec(ctx)
		return err
	}, nil)
}
