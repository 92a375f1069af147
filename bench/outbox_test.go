package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
)

const historySize = 100000

// BenchmarkOutboxRound measures one relay round that finds nothing to
// publish (what every commit and every poll costs) on an empty audit log
// and on one holding 100,000 published entries — with the partial index on
// the unpublished entries that the migrations create
// (mg_audit_log (sequence) WHERE published_at IS NULL), and without it
// (dropped on this benchmark's own store). Without the index the outbox
// query (WHERE published_at IS NULL ORDER BY sequence LIMIT n) scans the
// whole history, so a round costs O(history).
func BenchmarkOutboxRound(b *testing.B) {
	backends(b, func(b *testing.B, backend string) {
		ctx := context.Background()
		round := func(s *products.Store) time.Duration {
			const rounds = 20
			start := time.Now()
			for range rounds {
				// The same cluster every round: the first records it.
				if _, err := s.Outbox(ctx, 500, "bench", func(context.Context, []products.AuditEntry) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
			return time.Since(start) / rounds
		}
		results := map[bool][2]time.Duration{}
		for _, indexed := range []bool{false, true} {
			s := openStore(b, backend, &customers.Product.Descriptor, customers.Migrations)
			if !indexed {
				if _, err := s.DB.ExecContext(ctx, "DROP INDEX mg_audit_log_unpublished"); err != nil {
					b.Fatal(err)
				}
			}
			empty := round(s)
			fill := `INSERT INTO mg_audit_log (sequence, product, entity, key, op, after, actor, request_id, at, published_at)
				SELECT g, 'customers', 'Customer', g, 'CREATE', '{"id":1}', 'bench', '', now(), now() FROM generate_series(1, ?) g`
			if backend == "sqlite" {
				fill = `WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < ?)
					INSERT INTO mg_audit_log (sequence, product, entity, key, op, after, actor, request_id, at, published_at)
					SELECT x, 'customers', 'Customer', x, 'CREATE', '{"id":1}', 'bench', '', '2026-11-01 00:00:00', '2026-11-01 00:00:00' FROM g`
			}
			if _, err := s.DB.ExecContext(ctx, fill, historySize); err != nil {
				b.Fatal(err)
			}
			if _, err := s.DB.ExecContext(ctx, "UPDATE mg_audit_seq SET value = ?", historySize); err != nil {
				b.Fatal(err)
			}
			if backend == "postgres" {
				s.DB.ExecContext(ctx, "ANALYZE mg_audit_log")
			}
			results[indexed] = [2]time.Duration{empty, round(s)}
		}
		unindexed, indexed := results[false], results[true]
		b.ReportMetric(float64(indexed[1].Nanoseconds()), "ns/op")
		b.ReportMetric(ms(indexed[0]), "empty_log_ms/round")
		b.ReportMetric(ms(indexed[1]), "100k_log_ms/round")
		b.ReportMetric(ms(unindexed[1]), "100k_log_unindexed_ms/round")
		b.ReportMetric(float64(unindexed[1])/float64(indexed[1]), "ratio")
		fmt.Printf("outbox round with nothing to publish, %s: empty log %.2f ms; %d published entries %.2f ms with the partial index, %.2f ms without it (%.0fx)\n",
			backend, ms(indexed[0]), historySize, ms(indexed[1]), ms(unindexed[1]), float64(unindexed[1])/float64(indexed[1]))
	})
}
