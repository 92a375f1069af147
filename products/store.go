package products

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/sqliteshim"
	"github.com/uptrace/bun/migrate"
)

// Store is a data product's own database. Each product opens its own; no
// query ever spans two stores.
type Store struct {
	DB      *bun.DB
	Product *Descriptor

	// writeMu serialises writers on SQLite, which allows one writer at a
	// time anyway; waiting here is fairer and cheaper than busy retries.
	writeMu  sync.Mutex
	outboxMu sync.Mutex
	sqlite   bool
	schema   string // PostgreSQL schema of the store
	hooksMu  sync.Mutex
	onCommit []func()
	onReads  []func()
	seq      *sequencer // PostgreSQL: positions the audit log's entries
}

// Dialect returns the store's SQL dialect.
func (s *Store) Dialect() dialect.Name { return s.DB.Dialect().Name() }

// OnCommit registers fn to run after every committed write of this store
// (outside the transaction, on the writer's goroutine; fn must not block).
func (s *Store) OnCommit(fn func()) {
	s.hooksMu.Lock()
	defer s.hooksMu.Unlock()
	s.onCommit = append(s.onCommit, fn)
}

// Close closes the database.
func (s *Store) Close() error { return s.DB.Close() }

// DSN forms accepted by Open.
const dsnHelp = `use "sqlite:<file>" (e.g. sqlite:./data/orders.db) or "postgres://user@host:5432/db?sslmode=disable"`

// Open opens the product's store named by dsn, creates what is missing
// (directory, PostgreSQL schema) and runs the framework's and the product's
// migrations. On PostgreSQL each product lives in a schema of its own name
// unless the DSN sets search_path. The caller closes the store.
func Open(ctx context.Context, d *Descriptor, dsn string, migrations *migrate.Migrations, hooks ...bun.QueryHook) (*Store, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	var db *bun.DB
	var isSQLite bool
	var schemaName string
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		sqldb, schema, err := openPostgres(d.Name, dsn)
		if err != nil {
			return nil, fmt.Errorf("%s store: %w; %s", d.Name, err, dsnHelp)
		}
		schemaName = schema
		db = bun.NewDB(sqldb, pgdialect.New())
		// The schema is created under the migration lock (see migrate):
		// CREATE SCHEMA IF NOT EXISTS fails when instances run it at once.
	case strings.HasPrefix(dsn, "sqlite:"), strings.HasPrefix(dsn, "file:"):
		path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "file:")
		path = strings.TrimPrefix(path, "//")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if path == "" {
			return nil, fmt.Errorf("%s store: empty SQLite path; %s", d.Name, dsnHelp)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("%s store: %w", d.Name, err)
		}
		sqldb, err := sql.Open(sqliteshim.ShimName, "file:"+path+
			"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate")
		if err != nil {
			return nil, fmt.Errorf("%s store: %w", d.Name, err)
		}
		// SQLite allows one writer at a time; a few connections serve
		// concurrent readers, and keeping them all idle spares reopening
		// (and re-running the pragmas) under load.
		sqldb.SetMaxOpenConns(8)
		sqldb.SetMaxIdleConns(8)
		db = bun.NewDB(sqldb, sqlitedialect.New())
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("%s store: open %s: %w", d.Name, path, err)
		}
		isSQLite = true
	default:
		return nil, fmt.Errorf("%s store: unsupported DSN %q; %s", d.Name, redact(dsn), dsnHelp)
	}
	for _, h := range hooks {
		db = db.WithQueryHook(h)
	}
	s := &Store{DB: db, Product: d, sqlite: isSQLite, schema: schemaName}
	s.seq = newSequencer(s)
	if err := s.migrate(ctx, migrations); err != nil {
		db.Close()
		return nil, err
	}
	if _, err := db.NewInsert().Model(&auditSeq{Product: d.Name}).On("CONFLICT (product) DO NOTHING").Exec(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s store: create audit counter: %w", d.Name, err)
	}
	if _, err := db.NewInsert().Model(&piiReadSeq{Product: d.Name}).On("CONFLICT (product) DO NOTHING").Exec(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s store: create read-audit counter: %w", d.Name, err)
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context, product *migrate.Migrations) error {
	run := func() error {
		for _, m := range []struct {
			set   *migrate.Migrations
			table string
		}{{frameworkMigrations, "mg_framework_migrations"}, {product, "mg_migrations"}} {
			if m.set == nil {
				continue
			}
			mg := migrate.NewMigrator(s.DB, m.set, migrate.WithTableName(m.table), migrate.WithLocksTableName(m.table+"_locks"))
			if err := mg.Init(ctx); err != nil {
				return fmt.Errorf("%s store: init migrations: %w", s.Product.Name, err)
			}
			if _, err := mg.Migrate(ctx); err != nil {
				return fmt.Errorf("%s store: migrate: %w", s.Product.Name, err)
			}
		}
		return nil
	}
	if s.sqlite {
		return run()
	}
	// Instances starting together must not migrate concurrently.
	conn, err := s.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("%s store: connect to PostgreSQL: %w (check the DSN and that the server runs)", s.Product.Name, err)
	}
	defer conn.Close()
	key := s.lockKey("migrate")
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", key); err != nil {
		return fmt.Errorf("%s store: connect to PostgreSQL and lock for migration: %w (check the DSN and that the server runs)", s.Product.Name, err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?)", key)
	if _, err := conn.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS ?", bun.Ident(s.schema)); err != nil {
		return fmt.Errorf("%s store: create schema %s: %w", s.Product.Name, s.schema, err)
	}
	return run()
}

// redact hides a password in a DSN for messages; a DSN too broken to
// parse loses everything between the scheme and the host.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		scheme, rest, ok := strings.Cut(dsn, "://")
		if at := strings.LastIndexByte(rest, '@'); ok && at >= 0 {
			return scheme + "://xxxxx@" + rest[at+1:]
		}
		return dsn
	}
	if u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
