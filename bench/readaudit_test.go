package bench

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/pgtest"
	"github.com/meshgate/meshgate/resolvers"
	"github.com/meshgate/meshgate/web"
)

// BenchmarkReadAudit measures what the read-access audit (issue 11, item 5)
// costs a list read that returns personal data unmasked: the same query,
// 100 customers with name, e-mail and phone, sent to two handlers over the
// same stores, one with --pii-read-audit (one read record written per
// request, after the response is computed) and one without, in alternating
// rounds of the same run. One client, in-process (no network), on SQLite
// and (with MESHGATE_TEST_POSTGRES) PostgreSQL; it reports the latency of
// both and their ratio.
//
//	go test -run XXX -bench ReadAudit -benchtime 1x ./bench/
func BenchmarkReadAudit(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			dir := b.TempDir()
			dsn := func(product string) string { return "sqlite:" + dir + "/" + product + ".db" }
			if backend == "postgres" {
				pgBase(b)
				dsn = pgtest.New(b).DSN
			}
			mesh, err := demo.Open(b.Context(), dsn)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { mesh.Close() })
			if _, err := mesh.Seed(b.Context(), 0.05, nil); err != nil {
				b.Fatal(err)
			}
			handler := func(audit bool) http.Handler {
				return web.NewServer(web.Config{Resolver: &resolvers.Resolver{Data: mesh, Version: "bench",
					BatchWait: time.Millisecond, ReadAudit: audit}})
			}
			off, on := handler(false), handler(true)
			const body = `{"query": "query List { customers(first: 100) { nodes { id name email phone country segment } } }"}`
			send := func(h http.Handler) time.Duration {
				req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				start := time.Now()
				h.ServeHTTP(rec, req)
				d := time.Since(start)
				if rec.Code != 200 || !strings.Contains(rec.Body.String(), "@") || strings.Contains(rec.Body.String(), `"errors"`) {
					b.Fatalf("HTTP %d %.200s", rec.Code, rec.Body.String())
				}
				return d
			}
			for range 50 { // warm up: connections, statement caches
				send(off)
				send(on)
			}
			before, err := mesh.Store("customers").LatestRead(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			const rounds, perRound = 40, 25
			var withOut, with []time.Duration
			for range rounds {
				for range perRound {
					withOut = append(withOut, send(off))
				}
				for range perRound {
					with = append(with, send(on))
				}
			}
			after, err := mesh.Store("customers").LatestRead(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			if n := after - before; n != rounds*perRound {
				b.Fatalf("%d read records for %d audited requests", n, rounds*perRound)
			}
			mean := func(ds []time.Duration) time.Duration {
				var s time.Duration
				for _, d := range ds {
					s += d
				}
				return s / time.Duration(len(ds))
			}
			ratio := float64(mean(with)) / float64(mean(withOut))
			b.ReportMetric(ms(mean(withOut)), "off-ms/req")
			b.ReportMetric(ms(mean(with)), "on-ms/req")
			b.ReportMetric(ratio, "on/off")
			b.Logf("%s, %d requests each: read audit off %s mean (p50 %s, p99 %s); on %s mean (p50 %s, p99 %s); ratio %.2f",
				backend, len(with), fmtMS(mean(withOut)), fmtMS(percentile(withOut, 50)), fmtMS(percentile(withOut, 99)),
				fmtMS(mean(with)), fmtMS(percentile(with, 50)), fmtMS(percentile(with, 99)), ratio)
		})
	}
}

func fmtMS(d time.Duration) string { return fmt.Sprintf("%.2f ms", ms(d)) }
