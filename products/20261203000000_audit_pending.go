package products

import (
	"context"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Positions without a counter row locked by every writer (see AuditEntry):
// on PostgreSQL writers append to mg_audit_pending and sequencing rounds
// move the entries into the log, recording where each came from (origin).
// The published entries are the prefix 1…mg_outbox.through, so entries are
// no longer marked one by one and the index of unmarked entries goes. The
// positions of existing entries stay as they are.
func init() {
	frameworkMigrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		if _, err := db.ExecContext(ctx, "SELECT origin FROM mg_audit_log WHERE 1 = 0"); err != nil {
			if _, err := db.ExecContext(ctx, "ALTER TABLE mg_audit_log ADD COLUMN origin BIGINT"); err != nil {
				return err
			}
		}
		if _, err := db.ExecContext(ctx, "DROP INDEX IF EXISTS mg_audit_log_unpublished"); err != nil {
			return err
		}
		if db.Dialect().Name() != dialect.PG {
			return nil
		}
		_, err := db.NewCreateTable().Model((*pendingEntry)(nil)).IfNotExists().Exec(ctx)
		return err
	}, nil)
}
