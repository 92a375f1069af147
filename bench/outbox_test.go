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
// and on one holding 100,000 published entries. The published entries are
// the prefix of the log up to mg_outbox.through, so such a round is one
// statement comparing two counters, whatever the size of the history (the
// partial index on unmarked entries it needed before is gone).
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
		s := openStore(b, backend, &customers.Product.Descriptor, customers.Migrations)
		empty := round(s)
		fill := `INSERT INTO mg_audit_log (sequence, product, entity, key, op, after, actor, request_id, at)
			SELECT g, 'customers', 'Customer', g, 'CREATE', '{"id":1}', 'bench', '', now() FROM generate_series(1, ?) g`
		if backend == "sqlite" {
			fill = `WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < ?)
				INSERT INTO mg_audit_log (sequence, product, entity, key, op, after, actor, request_id, at)
				SELECT x, 'customers', 'Customer', x, 'CREATE', '{"id":1}', 'bench', '', '2026-11-01 00:00:00' FROM g`
		}
		for _, q := range []string{fill, "UPDATE mg_audit_seq SET value = ?", "UPDATE mg_outbox SET through = ?"} {
			if _, err := s.DB.ExecContext(ctx, q, historySize); err != nil {
				b.Fatal(err)
			}
		}
		if backend == "postgres" {
			s.DB.ExecContext(ctx, "ANALYZE mg_audit_log")
		}
		full := round(s)
		b.ReportMetric(float64(full.Nanoseconds()), "ns/op")
		b.ReportMetric(ms(empty), "empty_log_ms/round")
		b.ReportMetric(ms(full), "100k_log_ms/round")
		fmt.Printf("outbox round with nothing to publish, %s: empty log %.3f ms; %d published entries %.3f ms\n",
			backend, ms(empty), historySize, ms(full))
	})
}
