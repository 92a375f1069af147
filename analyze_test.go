package main

import (
	"database/sql"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/pgtest"
)

// TestSeededStoresGetPlannerStatistics: a gateway that seeds its
// PostgreSQL stores analyzes what it wrote by itself (the CI machines run
// PostgreSQL with autovacuum off, where nothing else would): the seeded
// orders table gets statistics. PostgreSQL publishes the seed's row
// counts about a second after its commit, so the test waits, bounded, for
// a turn of the upkeep (every 200 ms here) that saw them.
func TestSeededStoresGetPlannerStatistics(t *testing.T) {
	pg := pgtest.New(t)
	args := []string{"--analyze-interval", "200ms"}
	for _, d := range demo.Products {
		args = append(args, "--store", d.Name+"="+pg.DSN(d.Name))
	}
	startGateway(t, args...)
	db, err := sql.Open("pgx", pgtest.Base(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM pg_stats WHERE schemaname = $1 AND tablename = 'orders'", pg.Schema("orders")).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the seeded orders table has no planner statistics 20 s after the start")
		}
	}
}
