package products

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/driver/sqliteshim"
	"modernc.org/sqlite"

	"github.com/meshgate/meshgate/products/pgtest"
)

// These tests open real stores: a SQLite file always, and a schema of the
// PostgreSQL test database (see pgtest) when MESHGATE_TEST_POSTGRES is set.

// testProduct is a product of its own, so that these tests need none of the
// demo mesh (which imports this package).
var testProduct = &Descriptor{Name: "storetest", Entities: []*Entity{widgetEntity}}

var widgetEntity = &Entity{Name: "Widget", Table: "widgets", Fields: []*Field{
	{Name: "id", Column: "id", Type: TypeID, Sort: "ID"},
	{Name: "code", Column: "code", Type: TypeString},
}}

// widget has a system-assigned primary key, a unique column users supply
// and an optional reference to a part (a foreign key within the store).
type widget struct {
	bun.BaseModel `bun:"table:widgets"`

	ID     int64  `bun:"id,pk,autoincrement"`
	Code   string `bun:"code,notnull,unique"`
	PartID *int64 `bun:"part_id"`
}

type part struct {
	bun.BaseModel `bun:"table:parts"`

	ID int64 `bun:"id,pk"`
}

// forEachStore runs fn on a fresh test store on SQLite and on PostgreSQL.
func forEachStore(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, openTestStore(t, "sqlite:"+filepath.Join(t.TempDir(), "storetest.db")))
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, openTestStore(t, pgtest.New(t).DSN(testProduct.Name)))
	})
}

// openTestStore opens the test product's store on dsn with its two tables;
// the test closes it.
func openTestStore(t *testing.T, dsn string) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, testProduct, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.DB.NewCreateTable().Model((*part)(nil)).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB.NewCreateTable().Model((*widget)(nil)).ForeignKey(`("part_id") REFERENCES "parts" ("id")`).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// addWidget writes a widget (and its audit entry) through Store.Write.
func addWidget(ctx context.Context, s *Store, w *widget) error {
	_, err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		if _, err := tx.NewInsert().Model(w).Returning("id").Exec(ctx); err != nil {
			return fmt.Errorf("insert widget: %w", err)
		}
		return tx.Created(widgetEntity, w.ID, w)
	})
	return err
}

func countWidgets(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := s.DB.NewSelect().Model((*widget)(nil)).Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestConstraintViolationsByCode checks that Store.Write recognises
// constraint violations by the driver's code: only a unique value users
// supply becomes CONFLICT; a primary key's or a foreign key's violation,
// and an error that merely reads like a violation, stay internal. Nothing
// of a failed write remains.
func TestConstraintViolationsByCode(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		first := &widget{Code: "W-1"}
		if err := addWidget(ctx, s, first); err != nil {
			t.Fatal(err)
		}
		missing := int64(404)
		for _, c := range []struct {
			name string
			kind violation
			code Code
			run  func() error
		}{
			{"unique value", noViolation, Conflict, func() error { return addWidget(ctx, s, &widget{Code: "W-1"}) }},
			{"primary key", primaryKeyViolation, "", func() error { return addWidget(ctx, s, &widget{ID: first.ID, Code: "W-2"}) }},
			{"foreign key", foreignKeyViolation, "", func() error { return addWidget(ctx, s, &widget{Code: "W-3", PartID: &missing}) }},
			{"text that reads like a violation", noViolation, "", func() error {
				_, err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
					return errors.New(`UNIQUE constraint failed: widgets.code; ERROR: duplicate key value violates unique constraint (SQLSTATE=23505)`)
				})
				return err
			}},
		} {
			t.Run(c.name, func(t *testing.T) {
				err := c.run()
				if err == nil {
					t.Fatal("write succeeded")
				}
				// A CONFLICT replaces the driver's error; the others keep it.
				if got := violationOf(err); c.code == "" && got != c.kind {
					t.Errorf("violationOf(%v) = %d, want %d", err, got, c.kind)
				}
				if got := ErrorCode(err); got != c.code {
					t.Errorf("code of %v = %q, want %q", err, got, c.code)
				}
				if n := countWidgets(t, s); n != 1 {
					t.Errorf("%d widgets after the failed write, want 1", n)
				}
			})
		}
		latest, err := s.Latest(ctx)
		if err != nil || latest != 1 {
			t.Errorf("audit log at %d (%v) after the failed writes, want 1", latest, err)
		}
	})
}

// TestSQLiteDriverIsModernc pins what violationOf relies on: sqliteshim
// registers modernc.org/sqlite here, whose errors carry extended result
// codes.
func TestSQLiteDriverIsModernc(t *testing.T) {
	db, err := sql.Open(sqliteshim.ShimName, "file:"+filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, ok := db.Driver().(*sqlite.Driver); !ok {
		t.Fatalf("sqliteshim uses %T, not modernc.org/sqlite: teach violationOf its error codes", db.Driver())
	}
}

// TestNULIsBadInput checks that a NUL character in a mutation's text is
// the client's mistake (BAD_USER_INPUT) and never reaches the store, which
// would fail with an internal error: the validators run before any write.
func TestNULIsBadInput(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		// What the store alone would do: an error without a code.
		if err := addWidget(ctx, s, &widget{Code: "W\x00-1"}); err == nil || ErrorCode(err) != "" {
			t.Errorf("a NUL written to the store: %v; want an internal error (what the validators prevent)", err)
		}
		for name, check := range map[string]func() error{
			"Text":  func() error { _, err := Text("input.code", "W\x00-1", 1, 20); return err },
			"Email": func() error { _, err := Email("input.email", "ada\x00@example.com"); return err },
		} {
			err := check()
			var e *Error
			if !errors.As(err, &e) || e.Code != BadUserInput || !strings.Contains(e.Message, "NUL") {
				t.Errorf("%s with a NUL: %v, want BAD_USER_INPUT naming NUL", name, err)
			}
		}
		if n := countWidgets(t, s); n != 0 {
			t.Errorf("%d widgets, want 0", n)
		}
	})
}

// TestPoolBoundsSessions runs 32 concurrent readers, 100 reads each, on a
// PostgreSQL store whose DSN sets pool_max_conns=4: the pool never opens
// more than 4 sessions (database/sql's statistics: sessions open plus
// those it closed), however often they are idle in between. Without the
// sizing, database/sql keeps 2 idle sessions and opens new ones under load.
func TestPoolBoundsSessions(t *testing.T) {
	pg := pgtest.New(t)
	s := openTestStore(t, withPool(t, pg.DSN(testProduct.Name), "4"))
	ctx := context.Background()
	if err := addWidget(ctx, s, &widget{Code: "W-1"}); err != nil {
		t.Fatal(err)
	}
	opened := func() int64 {
		st := s.DB.Stats()
		return int64(st.OpenConnections) + st.MaxIdleClosed + st.MaxIdleTimeClosed + st.MaxLifetimeClosed
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			for range 100 {
				var w widget
				if err := s.DB.NewSelect().Model(&w).Where("code = ?", "W-1").Scan(ctx); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := s.DB.Stats()
	if st.MaxOpenConnections != 4 {
		t.Errorf("MaxOpenConnections = %d, want 4", st.MaxOpenConnections)
	}
	if n := opened(); n > 4 || st.MaxIdleClosed > 0 {
		t.Errorf("the pool opened %d sessions (%d closed for being idle), want at most 4", n, st.MaxIdleClosed)
	}
	if st.WaitCount == 0 {
		t.Errorf("no reader waited for a session: the load did not exceed the pool")
	}

	// Without pool parameters the default applies.
	d := openTestStore(t, withPool(t, pg.DSN("storetest2"), ""))
	if got := d.DB.Stats().MaxOpenConnections; got != DefaultMaxConns {
		t.Errorf("default MaxOpenConnections = %d, want %d", got, DefaultMaxConns)
	}
}

// withPool returns dsn with pool_max_conns=n, or without it for "".
func withPool(t *testing.T, dsn, n string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Del("pool_max_conns")
	if n != "" {
		q.Set("pool_max_conns", n)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// TestCancelledLockWait checks that a context bounds a wait on PostgreSQL
// (here for an advisory lock another session holds): the wait returns when
// the context ends, the server stops waiting too (no session is left in
// the lock's queue), and the store keeps working.
func TestCancelledLockWait(t *testing.T) {
	s := openTestStore(t, pgtest.New(t).DSN(testProduct.Name))
	ctx := context.Background()
	key := s.lockKey("cancel test")
	holder, err := s.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(ctx, "SELECT pg_advisory_lock(?)", key); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.DB.ExecContext(short, "SELECT pg_advisory_lock(?)", key)
	if err == nil {
		t.Fatal("got the lock another session holds")
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("the wait lasted %v after a 300ms deadline", waited)
	}
	var waiting int
	if err := holder.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
		AND ((classid::bigint << 32) | objid::bigint) = ?`, key).Scan(&waiting); err != nil {
		t.Fatal(err)
	}
	if waiting != 0 {
		t.Errorf("%d sessions still wait for the lock on the server after the context ended", waiting)
	}
	if _, err := holder.ExecContext(ctx, "SELECT pg_advisory_unlock(?)", key); err != nil {
		t.Fatal(err)
	}
	if n := countWidgets(t, s); n != 0 {
		t.Errorf("%d widgets", n)
	}
}

// TestPostgresDSN checks the DSN handling: the product's schema becomes
// the sessions' search_path (a startup parameter), an explicit search_path
// wins, bad pool parameters are refused, and no message shows a password.
func TestPostgresDSN(t *testing.T) {
	pg := pgtest.New(t)
	ctx := context.Background()
	s := openTestStore(t, pg.DSN(testProduct.Name))
	var path string
	if err := s.DB.QueryRowContext(ctx, "SHOW search_path").Scan(&path); err != nil {
		t.Fatal(err)
	}
	if path != pg.Schema(testProduct.Name) {
		t.Errorf("search_path = %q, want %q", path, pg.Schema(testProduct.Name))
	}
	if s.schema != pg.Schema(testProduct.Name) {
		t.Errorf("store schema = %q", s.schema)
	}

	// Without search_path in the DSN the schema is the product's name (a
	// product named like one of the set's schemas, so that it is dropped).
	named := &Descriptor{Name: pg.Schema("named")}
	u, err := url.Parse(pg.DSN("unused"))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Del("search_path")
	u.RawQuery = q.Encode()
	d, err := Open(ctx, named, u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var current string
	if err := d.DB.QueryRowContext(ctx, "SELECT current_schema()").Scan(&current); err != nil || current != named.Name || d.schema != named.Name {
		t.Errorf("current_schema() = %q (%v), store schema %q; want %q", current, err, d.schema, named.Name)
	}

	for _, c := range []struct{ dsn, want string }{
		{"postgres://meshgate:s3cret@127.0.0.1:1/test?sslmode=disable&connect_timeout=2", "connect to PostgreSQL"},
		{"postgres://meshgate:s3cret@127.0.0.1:5432/test?pool_max_conns=1", "pool_max_conns must be"},
		{"postgres://meshgate:s3cret@127.0.0.1:5432/test?pool_max_conn_lifetime=soon", "pool_max_conn_lifetime must be"},
		{"postgres://meshgate:s3cret@127.0.0.1:port/test", "bad DSN"},
		{"postgres://meshgate:s3cret@127.0.0.1:5432/test?sslmode=sometimes", "bad DSN"},
	} {
		_, err := Open(ctx, testProduct, c.dsn, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%s): %v, want %q", c.dsn, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%s) shows the password: %v", c.dsn, err)
		}
	}
}
