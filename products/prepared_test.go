package products

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products/pgtest"
)

// preparedOn returns the statements prepared on conn's session.
func preparedOn(t *testing.T, conn bun.Conn) []string {
	t.Helper()
	var stmts []string
	if err := conn.NewRaw("SELECT statement FROM pg_prepared_statements ORDER BY name").Scan(context.Background(), &stmts); err != nil {
		t.Fatal(err)
	}
	return stmts
}

// TestPreparedReads: on PostgreSQL, reads by keys and a parent's
// unfiltered children run as statements prepared once per session (the
// keys an array parameter), other reads once their text repeats on the
// session, never in a transaction; they answer as before, survive a change
// of their table, and a session keeps at most maxPrepared of them.
func TestPreparedReads(t *testing.T) {
	s := openScanStores(t)["default"]
	ctx := context.Background()
	conn, err := s.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := preparedOn(t, conn); len(got) != 0 {
		t.Fatalf("prepared before any read: %q", got)
	}
	for range 3 {
		rows, err := Lookup[scanKind](ctx, conn, scanEntity, "id", []int64{2, 3, 99}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || rows[2] == nil || rows[3] == nil {
			t.Fatalf("lookup of 2, 3, 99: %v", rows)
		}
		if _, err := Get[scanKind](ctx, conn, scanEntity, 4); err != nil {
			t.Fatal(err)
		}
		if _, err := Get[scanKind](ctx, conn, scanEntity, 99); ErrorCode(err) != NotFound {
			t.Fatalf("get 99: %v, want NOT_FOUND", err)
		}
	}
	got := preparedOn(t, conn)
	if len(got) != 2 || !strings.Contains(got[0]+got[1], "= ANY ($1::bigint[])") || !strings.Contains(got[0]+got[1], `("id" = $1::bigint)`) {
		t.Fatalf("after three rounds of the same reads, prepared: %q; want the lookup and the get, once each", got)
	}

	// The session lost track of its statements (a Prepare whose context
	// ended while the server prepared it): the next read prepares again.
	if err := conn.Raw(func(dc any) error {
		clear(dc.(*readRetryConn).prepared)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if rows, err := Lookup[scanKind](ctx, conn, scanEntity, "id", []int64{2, 3, 99}, nil); err != nil || len(rows) != 2 {
		t.Fatalf("lookup after the session forgot its statements: %v %v", rows, err)
	}

	// A parent's children without filters: prepared; with a filter: not.
	children := func() map[int64]*Page[scanKind] {
		t.Helper()
		pages, err := ListFor[scanKind](ctx, conn, scanEntity, "parent", []int64{2, 3}, ListArgs{First: ptr(5)})
		if err != nil {
			t.Fatal(err)
		}
		return pages
	}
	before := children()
	if n := len(preparedOn(t, conn)); n != 3 {
		t.Fatalf("%d statements prepared after the children's read, want 3", n)
	}
	if _, err := ListFor[scanKind](ctx, conn, scanEntity, "parent", []int64{2, 3}, ListArgs{First: ptr(5), Where: map[string]any{"s": map[string]any{"eq": "a"}}}); err != nil {
		t.Fatal(err)
	}
	if n := len(preparedOn(t, conn)); n != 3 {
		t.Fatalf("%d statements prepared after a filtered read, want still 3", n)
	}

	// A read without parameters runs prepared from the second time the
	// session runs its very text; texts that do not repeat never are.
	filtered := func(v string) {
		t.Helper()
		if _, err := List[scanKind](ctx, conn, scanEntity, ListArgs{First: ptr(3), Where: map[string]any{"s": map[string]any{"eq": v}}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{"x1", "x2", "x3", "x4"} {
		filtered(v)
	}
	if n := len(preparedOn(t, conn)); n != 3 {
		t.Fatalf("%d statements prepared after four texts run once each, want still 3", n)
	}
	filtered("x2")
	if got := preparedOn(t, conn); len(got) != 4 || !strings.Contains(strings.Join(got, " "), "'x2'") {
		t.Fatalf("after a text ran twice, prepared: %q; want it too", got)
	}
	filtered("x2")
	if n := len(preparedOn(t, conn)); n != 4 {
		t.Fatalf("%d statements prepared after the same text a third time, want 4", n)
	}
	// Not in a transaction.
	if err := conn.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for range 2 {
			if _, err := List[scanKind](ctx, tx, scanEntity, ListArgs{First: ptr(7), Where: map[string]any{"id": map[string]any{"ne": int64(1)}}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := len(preparedOn(t, conn)); n != 4 {
		t.Fatalf("%d statements prepared after reads in a transaction, want still 4", n)
	}

	// A column's type changes under the prepared statements (a migration
	// would), so their results' types do: PostgreSQL refuses to run them
	// as prepared, and the reads prepare them again and answer.
	if _, err := s.DB.ExecContext(ctx, "ALTER TABLE scan_kinds ALTER COLUMN small TYPE bigint"); err != nil {
		t.Fatal(err)
	}
	after := children()
	if fmt.Sprint(len(after[2].Nodes), len(after[3].Nodes)) != fmt.Sprint(len(before[2].Nodes), len(before[3].Nodes)) {
		t.Fatalf("children after the change: %d and %d rows, before %d and %d", len(after[2].Nodes), len(after[3].Nodes), len(before[2].Nodes), len(before[3].Nodes))
	}
	if _, err := Lookup[scanKind](ctx, conn, scanEntity, "id", []int64{2}, nil); err != nil {
		t.Fatal(err)
	}

	// Many shapes (page sizes): the session keeps at most maxPrepared.
	for size := 1; size <= maxPrepared+20; size++ {
		if _, err := ListFor[scanKind](ctx, conn, scanEntity, "parent", []int64{2}, ListArgs{First: ptr(size)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(preparedOn(t, conn)); n > maxPrepared || n == 0 {
		t.Fatalf("%d statements prepared on the session, want 1 to %d", n, maxPrepared)
	}
}

// TestPreparedReadsOff: with prepared_reads=false in the DSN, nothing is
// prepared and the keys are written into the statements.
func TestPreparedReadsOff(t *testing.T) {
	if _, err := Open(context.Background(), testProduct, pgtest.New(t).DSN(testProduct.Name)+"&prepared_reads=maybe", nil); err == nil || !strings.Contains(err.Error(), "prepared_reads must be true or false") {
		t.Fatalf("prepared_reads=maybe: %v", err)
	}
	s, err := Open(context.Background(), testProduct, pgtest.New(t).DSN(testProduct.Name)+"&prepared_reads=false", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.DB.NewCreateTable().Model((*scanKind)(nil)).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := s.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	log := &statementLog{}
	db := s.DB.WithQueryHook(log)
	if _, err := Lookup[scanKind](ctx, conn, scanEntity, "id", []int64{2, 3}, nil); err != nil {
		t.Fatal(err)
	}
	if got := preparedOn(t, conn); len(got) != 0 {
		t.Fatalf("prepared with prepared_reads=false: %q", got)
	}
	if _, err := Lookup[scanKind](ctx, db, scanEntity, "id", []int64{2, 3}, nil); err != nil {
		t.Fatal(err)
	}
	if stmts := log.take(); len(stmts) != 1 || !strings.Contains(stmts[0], `("id" IN (2, 3))`) {
		t.Fatalf("statements: %q, want the keys written in", stmts)
	}
}
