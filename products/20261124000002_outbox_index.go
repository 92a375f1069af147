package products

import (
	"context"

	"github.com/uptrace/bun"
)

func init() {
	// The relay looks for unpublished entries on every commit: a partial
	// index keeps that lookup independent of the size of the history.
	frameworkMigrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		_, err := db.ExecContext(ctx, "CREATE INDEX IF NOT EXISTS mg_audit_log_unpublished ON mg_audit_log (sequence) WHERE published_at IS NULL")
		return err
	}, nil)
}
