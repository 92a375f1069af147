// Package pgtest gives tests PostgreSQL schemas of their own in the database
// named by MESHGATE_TEST_POSTGRES. Only tests import it.
//
// Without MESHGATE_TEST_POSTGRES a PostgreSQL test is skipped, except when
// the environment variable CI is set (CI runs must not skip PostgreSQL):
// then it fails.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// Env names the environment variable holding the PostgreSQL DSN of the
// tests, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const Env = "MESHGATE_TEST_POSTGRES"

// Base returns the DSN in MESHGATE_TEST_POSTGRES. When it is empty, Base
// skips t, or fails t if CI is set; it then does not return.
func Base(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(Env)
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is empty while CI is set: PostgreSQL tests must run in CI, set %s=postgres://…", Env, Env)
		}
		t.Skipf("PostgreSQL: set %s=postgres://… to run", Env)
	}
	return dsn
}

// Schemas is a set of schemas of one test, all named <prefix>_<name> with a
// random prefix; nothing exists until a store is opened on one of them.
type Schemas struct {
	base   string
	prefix string
}

// New returns fresh schema names on the database of MESHGATE_TEST_POSTGRES
// (see Base for when it skips or fails) and drops every schema of the set
// when t ends.
func New(t testing.TB) *Schemas {
	t.Helper()
	s := NewSet(Base(t))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Drop(ctx); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// NewSet returns fresh schema names on the database of base, for sets that
// outlive one test (e.g. shared by a package's tests); the caller drops
// them with Drop.
func NewSet(base string) *Schemas {
	var rnd [6]byte
	rand.Read(rnd[:])
	return &Schemas{base: base, prefix: "mgt_" + hex.EncodeToString(rnd[:])}
}

// Schema returns the name of the set's schema for name (e.g. a product).
func (s *Schemas) Schema(name string) string { return s.prefix + "_" + name }

// MaxConns is the pool size of the stores tests open (pool_max_conns),
// unless the base DSN sets one: tests share one server with each other
// (and max_connections is 100 by default), and a small pool also shows
// code that needs two sessions of one store at once.
const MaxConns = 4

// DSN returns the base DSN with search_path set to Schema(name) (a
// product store opened on it lives in that schema) and pool_max_conns set
// to MaxConns unless the base sets it. It panics if the base DSN is not a
// URL.
func (s *Schemas) DSN(name string) string {
	u, err := url.Parse(s.base)
	if err != nil {
		panic(fmt.Sprintf("pgtest: %s is not a postgres:// URL: %v", Env, err))
	}
	q := u.Query()
	q.Set("search_path", s.Schema(name))
	if !q.Has("pool_max_conns") {
		q.Set("pool_max_conns", strconv.Itoa(MaxConns))
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Drop drops every schema of the set (those that exist) with everything in
// them.
func (s *Schemas) Drop(ctx context.Context) error {
	db, err := sql.Open("pgx", s.base)
	if err != nil {
		return fmt.Errorf("drop schemas %s_*: %w", s.prefix, err)
	}
	defer db.Close()
	// The prefix is [a-z0-9_]; "_" is a LIKE wildcard, hence the escape.
	rows, err := db.QueryContext(ctx, `SELECT nspname FROM pg_namespace WHERE nspname LIKE $1`,
		strings.ReplaceAll(s.prefix, "_", `\_`)+`\_%`)
	if err != nil {
		return fmt.Errorf("list schemas %s_*: %w", s.prefix, err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return fmt.Errorf("list schemas %s_*: %w", s.prefix, err)
		}
		names = append(names, n)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("list schemas %s_*: %w", s.prefix, err)
	}
	for _, n := range names {
		if _, err := db.ExecContext(ctx, `DROP SCHEMA IF EXISTS "`+n+`" CASCADE`); err != nil {
			return fmt.Errorf("drop schema %s: %w", n, err)
		}
	}
	return nil
}
