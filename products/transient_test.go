package products

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/meshgate/meshgate/products/pgtest"
)

// TestTransient classifies failures the drivers really return: those of
// the store (unreachable, a lock timeout, a busy database) are transient,
// those of the work (a violated constraint, an error raised by the
// database, bad input, a plain error) are not.
func TestTransient(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"plain error", errors.New("boom"), false},
		{"bad input", Invalid("quantity", "too many"), false},
		{"unavailable", Errorf(Unavailable, "down"), true},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), true},
		{"sql.ErrNoRows", sql.ErrNoRows, false},
	} {
		if got := Transient(c.err); got != c.want {
			t.Errorf("%s: Transient = %v, want %v", c.name, got, c.want)
		}
	}

	t.Run("sqlite", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "t.db")
		s := openTestStore(t, "sqlite:"+file)
		err := addWidget(ctx, s, &widget{Code: "a"})
		if err != nil {
			t.Fatal(err)
		}
		if err := addWidget(ctx, s, &widget{Code: "a"}); err == nil || Transient(err) {
			t.Errorf("unique violation: %v, Transient %v", err, Transient(err))
		}
		if _, err := s.DB.ExecContext(ctx, "SELECT RAISE(ABORT, 'refused') FROM widgets"); err == nil || Transient(err) {
			t.Errorf("RAISE: %v, Transient %v", err, Transient(err))
		}
		// A second handle with a short busy timeout meets the first's
		// write lock.
		other, err := sql.Open(sqliteshim.ShimName, "file:"+file+"?_pragma=busy_timeout(10)&_txlock=immediate")
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		tx, err := s.DB.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, "UPDATE widgets SET code = 'b'"); err != nil {
			t.Fatal(err)
		}
		_, err = other.ExecContext(ctx, "UPDATE widgets SET code = 'c'")
		if err == nil || !Transient(err) {
			t.Errorf("busy database: %v, Transient %v", err, Transient(err))
		}
	})

	t.Run("postgres", func(t *testing.T) {
		pg := pgtest.New(t)
		s := openTestStore(t, pg.DSN(testProduct.Name))
		if err := addWidget(ctx, s, &widget{Code: "a"}); err != nil {
			t.Fatal(err)
		}
		if err := addWidget(ctx, s, &widget{Code: "a"}); err == nil || Transient(err) {
			t.Errorf("unique violation: %v, Transient %v", err, Transient(err))
		}
		if _, err := s.DB.ExecContext(ctx, "DO $$ BEGIN RAISE EXCEPTION 'refused'; END $$"); err == nil || Transient(err) {
			t.Errorf("RAISE: %v, Transient %v", err, Transient(err))
		}
		// A lock held by one transaction times another out.
		tx, err := s.DB.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, "SELECT * FROM widgets FOR UPDATE"); err != nil {
			t.Fatal(err)
		}
		tx2, err := s.DB.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx2.Rollback()
		if _, err := tx2.ExecContext(ctx, "SET LOCAL lock_timeout = '20ms'"); err != nil {
			t.Fatal(err)
		}
		if _, err := tx2.ExecContext(ctx, "SELECT * FROM widgets FOR UPDATE"); err == nil || !Transient(err) {
			t.Errorf("lock timeout: %v, Transient %v", err, Transient(err))
		}
		// A server that does not answer.
		db, _, err := openPostgres("storetest", "postgres://postgres@127.0.0.1:1/test?connect_timeout=2")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.PingContext(ctx); err == nil || !Transient(err) {
			t.Errorf("unreachable server: %v, Transient %v", err, Transient(err))
		}
	})
}
