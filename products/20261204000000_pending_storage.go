package products

import (
	"context"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// The queue of pending audit entries churns: every write appends to it and
// the sequencing rounds delete what they move, so it holds few live rows
// and many dead ones until a VACUUM. Autovacuum's default rule (dead rows
// beyond 50 + 20 % of the live ones) is met all the time, yet checked only
// once per naptime; and at the end of its vacuum it truncates the table's
// empty tail, which takes an exclusive lock the writers then wait behind.
// The stores vacuum the queue themselves (see vacuumAfter, Store.Upkeep);
// where autovacuum runs too, it vacuums the queue once 1,000 entries are
// dead whatever its size, and never truncates it.
func init() {
	frameworkMigrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		if db.Dialect().Name() != dialect.PG {
			return nil
		}
		_, err := db.ExecContext(ctx, "ALTER TABLE mg_audit_pending SET (vacuum_truncate = false, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000)")
		return err
	}, nil)
}
