package products

import (
	"context"

	"github.com/uptrace/bun"
)

func init() {
	// State that keeps the streaming figures cheap and the reactions
	// robust: where and how far the log was published (mg_outbox), how
	// many entries the log holds per entity (mg_entity_counts, counted
	// once here for existing logs, then kept by every write), and the
	// newest position applied per source key (mg_key_positions).
	frameworkMigrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		for _, m := range []any{(*outboxState)(nil), (*entityCount)(nil), (*keyPosition)(nil)} {
			if _, err := db.NewCreateTable().Model(m).IfNotExists().Exec(ctx); err != nil {
				return err
			}
		}
		_, err := db.ExecContext(ctx, "INSERT INTO mg_entity_counts (entity, n) SELECT entity, COUNT(*) FROM mg_audit_log GROUP BY entity")
		return err
	}, nil)
}
