package products

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products/pgtest"
)

// TestAnalyzeRefreshesStaleStatistics: a table loaded in bulk gets planner
// statistics from Store.Analyze (the server's autovacuum may be off, as on
// the CI machines), once; a table that did not change is left alone.
// PostgreSQL publishes a writer's row counts within about a second of its
// commit, so the test asks until the table shows up, within a bound.
func TestAnalyzeRefreshesStaleStatistics(t *testing.T) {
	s := openTestStore(t, pgtest.New(t).DSN(testProduct.Name))
	ctx := context.Background()
	rows := make([]*widget, 300)
	for i := range rows {
		rows[i] = &widget{ID: int64(i + 1), Code: fmt.Sprint("w", i)}
	}
	if err := Insert(ctx, s, widgetEntity, rows, nil); err != nil {
		t.Fatal(err)
	}
	var analyzed []string
	for deadline := time.Now().Add(20 * time.Second); !slices.Contains(analyzed, "widgets"); {
		if time.Now().After(deadline) {
			t.Fatalf("widgets never analyzed (last turn analyzed %v)", analyzed)
		}
		var err error
		if analyzed, err = s.Analyze(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // between polls, not a wait for success
	}
	if slices.Contains(analyzed, "parts") {
		t.Errorf("parts has no rows and no changes but was analyzed: %v", analyzed)
	}
	var cols int
	if err := s.DB.NewRaw("SELECT count(*) FROM pg_stats WHERE schemaname = ? AND tablename = 'widgets'", s.schema).Scan(ctx, &cols); err != nil {
		t.Fatal(err)
	}
	if cols == 0 {
		t.Fatal("ANALYZE left no statistics for widgets")
	}
	again, err := s.Analyze(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(again, "widgets") {
		t.Errorf("widgets analyzed again without a change: %v", again)
	}
}

// TestAnalyzeOnSQLiteDoesNothing: SQLite plans without ANALYZE's
// statistics here; Analyze and Upkeep leave it alone.
func TestAnalyzeOnSQLiteDoesNothing(t *testing.T) {
	s := openTestStore(t, "sqlite:"+t.TempDir()+"/a.db")
	got, err := s.Analyze(context.Background())
	if err != nil || got != nil {
		t.Fatalf("Analyze on SQLite: %v, %v", got, err)
	}
	s.Upkeep(context.Background(), time.Millisecond, nil) // returns at once
}

// TestUpkeepVacuumsThePendingQueue: once the sequencing rounds have moved
// vacuumAfter entries out of the pending queue, Upkeep vacuums it (even
// with statistics upkeep off), without truncating it; autovacuum is told
// to vacuum it early and never truncate it either.
func TestUpkeepVacuumsThePendingQueue(t *testing.T) {
	s := openTestStore(t, pgtest.New(t).DSN(testProduct.Name))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Upkeep(ctx, 0, slog.New(slog.DiscardHandler)) }()
	defer func() { cancel(); <-done }()
	vacuums := func() int64 {
		t.Helper()
		var n int64
		if err := s.DB.NewRaw("SELECT vacuum_count FROM pg_stat_user_tables WHERE schemaname = ? AND relname = 'mg_audit_pending'", s.schema).Scan(ctx, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	rows := make([]*widget, vacuumAfter/2)
	for i := range rows {
		rows[i] = &widget{ID: int64(i + 1), Code: fmt.Sprint("w", i)}
	}
	if err := Insert(ctx, s, widgetEntity, rows, nil); err != nil {
		t.Fatal(err)
	}
	if n := vacuums(); n != 0 {
		t.Fatalf("queue vacuumed %d times after %d entries, want none before %d", n, len(rows), vacuumAfter)
	}
	for i := range rows {
		rows[i] = &widget{ID: int64(len(rows) + i + 1), Code: fmt.Sprint("v", i)}
	}
	if err := Insert(ctx, s, widgetEntity, rows, nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); vacuums() == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the pending queue was not vacuumed after %d entries", 2*len(rows))
		}
		time.Sleep(20 * time.Millisecond) // between polls, not a wait for success
	}
	var options []string
	if err := s.DB.NewRaw("SELECT unnest(reloptions) FROM pg_class WHERE oid = ?::regclass", s.schema+".mg_audit_pending").Scan(ctx, &options); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"vacuum_truncate=false", "autovacuum_vacuum_scale_factor=0", "autovacuum_vacuum_threshold=1000"} {
		if !slices.Contains(options, want) {
			t.Errorf("mg_audit_pending's storage options %v lack %s", options, want)
		}
	}
	var pending int
	if err := s.DB.NewRaw("SELECT count(*) FROM mg_audit_pending").Scan(ctx, &pending); err != nil {
		t.Fatal(err)
	}
	if pending != 0 {
		t.Errorf("%d entries still pending", pending)
	}
}
