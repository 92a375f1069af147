package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
)

const (
	mutationClients  = 8
	mutationDuration = 5 * time.Second
)

// pgbenchScript is the SQL meshgate sends for customers.Store.Create (seen
// with a bun query hook): the e-mail check, the entity insert and the
// append of the unpositioned audit entry in one transaction; then, as its
// own transaction, the sequencing round that positions it (meshgate's
// writers share rounds, and send a round's lock and move in one round
// trip, so this is at least meshgate's work per write). The after image
// has the size of meshgate's.
var pgbenchScript = `\set r random(1, 9000000000000000000)
BEGIN;
SELECT count(*) FROM "customers" AS "customer" WHERE (email = 'pgb-:client_id-:r@example.org' AND id <> 0);
INSERT INTO "customers" ("id", "name", "email", "phone", "country", "segment", "created_at", "updated_at") VALUES (DEFAULT, 'Bench Customer', 'pgb-:client_id-:r@example.org', DEFAULT, 'DE', 'CONSUMER', now(), now()) RETURNING id \gset
INSERT INTO "mg_audit_pending" ("product", "entity", "key", "op", "before", "after", "actor", "request_id", "at") VALUES ('customers', 'Customer', :id, 'CREATE', DEFAULT, '{"id":' || :id || ',"name":"Bench Customer","email":"pgb-:client_id-:r@example.org","phone":null,"country":"DE","segment":"CONSUMER","createdAt":"2026-11-24T17:02:39.719417Z","updatedAt":"2026-11-24T17:02:39.719417Z"}', 'anonymous', '', now()) RETURNING id;
COMMIT;
BEGIN;
SELECT pg_advisory_xact_lock(1);
` + strings.ReplaceAll(strings.ReplaceAll(products.SequenceSQLForBench, "LIMIT ?", "LIMIT 5000"), "product = ?", "product = 'customers'") + `;
COMMIT;
`

// BenchmarkMutationVsPgbench compares the meshgate write path on PostgreSQL
// (customers.Store.Create from 8 goroutines for 5 s) with pgbench running
// the same transaction (-c 8 -j 2 -T 5) on tables of the same schema in the
// same database. Reported: meshgate_tx/s, pgbench_tx/s and their ratio.
func BenchmarkMutationVsPgbench(b *testing.B) {
	base := pgBase(b)
	pgbench, err := exec.LookPath("pgbench")
	if err != nil {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
		if len(matches) == 0 {
			b.Skip("pgbench is not installed (apt-get install postgresql-contrib or postgresql-client)")
		}
		pgbench = matches[len(matches)-1]
	}
	ctx := context.Background()

	// meshgate: the real write path, as the server opens the store.
	store := customers.Store{Store: openStore(b, "postgres", &customers.Product.Descriptor, customers.Migrations)}
	// Warm up the pool and the plan cache.
	for i := range mutationClients {
		if _, err := store.Create(ctx, customers.Input{Name: "Warm Up", Email: fmt.Sprintf("warm-%d@example.org", i), Country: "DE", Segment: customers.SegmentConsumer}); err != nil {
			b.Fatal(err)
		}
	}
	var done atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	deadline := start.Add(mutationDuration)
	for w := range mutationClients {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				_, err := store.Create(ctx, customers.Input{Name: "Bench Customer", Email: fmt.Sprintf("go-%d-%d@example.org", w, i), Country: "DE", Segment: customers.SegmentConsumer})
				if err != nil {
					b.Error(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	goTPS := float64(done.Load()) / elapsed.Seconds()

	// pgbench: the same SQL on an identical schema (made by the same
	// migrations), same database, same number of clients.
	schema, dsn := pgSchema(b, "customers")
	s2, err := products.Open(ctx, &customers.Product.Descriptor, dsn, customers.Migrations)
	if err != nil {
		b.Fatal(err)
	}
	s2.Close()
	script := filepath.Join(b.TempDir(), "mutation.sql")
	if err := os.WriteFile(script, []byte(pgbenchScript), 0o644); err != nil {
		b.Fatal(err)
	}
	pgTPS, out, err := runPgbench(pgbench, base, schema, script)
	if err != nil {
		b.Fatalf("pgbench: %v\n%s", err, out)
	}

	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(max(done.Load(), 1)), "ns/op")
	b.ReportMetric(goTPS, "meshgate_tx/s")
	b.ReportMetric(pgTPS, "pgbench_tx/s")
	b.ReportMetric(goTPS/pgTPS, "ratio")
	fmt.Printf("mutation throughput on PostgreSQL, %d clients, %v: meshgate %.0f tx/s, pgbench %.0f tx/s, ratio %.2f\n",
		mutationClients, mutationDuration, goTPS, pgTPS, goTPS/pgTPS)
}

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// runPgbench runs the script with pgbench for mutationDuration and returns
// its transactions per second.
func runPgbench(pgbench, dsn, schema, script string) (float64, []byte, error) {
	cmd := exec.Command(pgbench, "-n", "-M", "simple", "-f", script,
		"-c", strconv.Itoa(mutationClients), "-j", "2", "-T", strconv.Itoa(int(mutationDuration.Seconds())), dsn)
	cmd.Env = append(os.Environ(), "PGOPTIONS=-c search_path="+schema)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return 0, out.Bytes(), err
	}
	m := tpsLine.FindSubmatch(out.Bytes())
	if m == nil {
		return 0, out.Bytes(), fmt.Errorf("no tps line in the output")
	}
	if bytes.Contains(out.Bytes(), []byte("failed transactions: ")) && !bytes.Contains(out.Bytes(), []byte("failed transactions: 0 ")) {
		return 0, out.Bytes(), fmt.Errorf("pgbench reports failed transactions")
	}
	tps, err := strconv.ParseFloat(string(m[1]), 64)
	return tps, out.Bytes(), err
}
