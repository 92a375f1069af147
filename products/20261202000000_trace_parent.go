package products

import (
	"context"

	"github.com/uptrace/bun"
)

// Audit entries carry the W3C traceparent of the request that made them
// (empty when it was not traced), so that the events they become on Kafka
// link back to it. Logs created before have no such column; logs created
// since get it from the model.
func init() {
	frameworkMigrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		if _, err := db.ExecContext(ctx, "SELECT traceparent FROM mg_audit_log WHERE 1 = 0"); err == nil {
			return nil
		}
		_, err := db.ExecContext(ctx, "ALTER TABLE mg_audit_log ADD COLUMN traceparent TEXT")
		return err
	}, nil)
}
