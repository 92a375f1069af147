package bench

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun/migrate"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/pgtest"
)

// pgBase returns the PostgreSQL DSN of the environment or skips (see
// pgtest.Base).
func pgBase(b *testing.B) string { return pgtest.Base(b) }

// pgSchema returns a fresh schema name that is dropped when b ends, and the
// DSN selecting it.
func pgSchema(b *testing.B, name string) (schema, dsn string) {
	pg := pgtest.New(b)
	return pg.Schema(name), pg.DSN(name)
}

// openStore opens a product store on the backend ("sqlite" or "postgres").
func openStore(b *testing.B, backend string, d *products.Descriptor, m *migrate.Migrations) *products.Store {
	var dsn string
	if backend == "postgres" {
		_, dsn = pgSchema(b, d.Name)
	} else {
		dsn = "sqlite:" + filepath.Join(b.TempDir(), d.Name+".db")
	}
	s, err := products.Open(context.Background(), d, dsn, m)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// percentile returns the p-th percentile (0..100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p/100*float64(len(s)) + 0.5)
	return s[min(max(i-1, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// openLoop runs do(i) for i in 0..n-1, the i-th at start + i/rate whatever
// the others do (open loop, like clients that do not wait for each other),
// at most inFlight at once (like a server's concurrent requests), and
// returns how many started more than 1 ms late.
func openLoop(n, rate, inFlight int, do func(i int)) (late int) {
	sem := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		} else if d < -time.Millisecond {
			late++
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			do(i)
		})
	}
	wg.Wait()
	return late
}
