package products

import (
	"context"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

// frameworkMigrations create the tables every product store has: the audit
// log (which is also the outbox) and its position counter. bun names a
// migration after the file that registers it.
var frameworkMigrations = func() *migrate.Migrations {
	m := migrate.NewMigrations()
	m.MustRegister(func(ctx context.Context, db *bun.DB) error {
		if _, err := db.NewCreateTable().Model((*AuditEntry)(nil)).IfNotExists().Exec(ctx); err != nil {
			return err
		}
		if _, err := db.NewCreateIndex().Model((*AuditEntry)(nil)).IfNotExists().
			Index("mg_audit_log_entity_key").Column("entity", "key", "sequence").Exec(ctx); err != nil {
			return err
		}
		_, err := db.NewCreateTable().Model((*auditSeq)(nil)).IfNotExists().Exec(ctx)
		return err
	}, nil)
	return m
}()
