package pgtest

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestBaseWithoutDatabase runs TestBaseChild in a child process without
// MESHGATE_TEST_POSTGRES: it must fail when CI is set and skip otherwise.
func TestBaseWithoutDatabase(t *testing.T) {
	for _, c := range []struct {
		ci       string
		fails    bool
		wantText string
	}{
		{"true", true, "PostgreSQL tests must run in CI"},
		{"", false, "--- SKIP: TestBaseChild"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestBaseChild$", "-test.v")
		cmd.Env = append(os.Environ(), "PGTEST_CHILD=1", Env+"=", "CI="+c.ci)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != c.fails {
			t.Errorf("CI=%q: child failed=%v (%v), want %v\n%s", c.ci, failed, err, c.fails, out)
		}
		if !strings.Contains(string(out), c.wantText) {
			t.Errorf("CI=%q: output lacks %q:\n%s", c.ci, c.wantText, out)
		}
	}
}

// TestBaseChild is TestBaseWithoutDatabase's child; on its own it does
// nothing.
func TestBaseChild(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") == "" {
		return
	}
	Base(t)
	t.Log("Base returned")
}

// TestDrop checks that a set's DSNs select its schemas and that Drop
// removes every schema of the set, and only those.
func TestDrop(t *testing.T) {
	base := Base(t)
	ctx := context.Background()
	s, other := NewSet(base), New(t)
	u, err := url.Parse(s.DSN("orders"))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("pool_max_conns") != strconv.Itoa(MaxConns) {
		t.Errorf("DSN %s lacks pool_max_conns=%d", u, MaxConns)
	}
	q.Del("pool_max_conns") // products.Open's parameter, not pgx's
	u.RawQuery = q.Encode()
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, name := range []string{s.Schema("orders"), s.Schema("sales"), other.Schema("orders")} {
		if _, err := db.ExecContext(ctx, `CREATE SCHEMA "`+name+`"`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id int)"); err != nil {
		t.Fatal(err)
	}
	var where string
	if err := db.QueryRowContext(ctx, "SELECT table_schema FROM information_schema.tables WHERE table_name = 't' AND table_schema LIKE 'mgt\\_%'").Scan(&where); err != nil || where != s.Schema("orders") {
		t.Fatalf("table created in %q (%v), want %q", where, err, s.Schema("orders"))
	}
	if err := s.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	count := func(prefix string) int {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_namespace WHERE starts_with(nspname, $1)", prefix).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(s.prefix + "_"); n != 0 {
		t.Errorf("%d schemas of the set left after Drop", n)
	}
	if n := count(other.prefix + "_"); n != 1 {
		t.Errorf("the other set has %d schemas, want 1 (Drop must not touch it)", n)
	}
}
