package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
)

const (
	driverDuration = 3 * time.Second
	driverRows     = 1000
	poolDuration   = 5 * time.Second
)

// seedCustomers writes n customers through the write path and returns the
// store's customer ids.
func seedCustomers(b *testing.B, s customers.Store, n int) []int64 {
	ctx := context.Background()
	ids := make([]int64, 0, n)
	for i := range n {
		c, err := s.Create(ctx, customers.Input{Name: "Seed Customer", Email: fmt.Sprintf("seed-%d@example.org", i), Country: "DE", Segment: customers.SegmentConsumer})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	return ids
}

// runFor calls op from clients goroutines until d has passed and returns
// the completed operations per second. The first error fails b.
func runFor(b *testing.B, clients int, d time.Duration, op func(worker, i int) error) float64 {
	var done atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range clients {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				if err := op(w, i); err != nil {
					b.Error(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds()
}

// pointSelect reads one customer by primary key through bun.
func pointSelect(ctx context.Context, s customers.Store, id int64) error {
	var c customers.Customer
	return s.DB.NewSelect().Model(&c).Where("id = ?", id).Scan(ctx)
}

// BenchmarkStoreDriver measures what the PostgreSQL driver under bun costs:
// a point select by primary key and the write path's insert transaction
// (customers.Store.Create: e-mail check, entity insert, audit counter,
// audit insert), each from 1 and from 8 goroutines for 3 s. The pool is
// fixed at 8 open and 8 idle connections here, so that only the driver
// differs between runs. Reported: operations per second per case and the
// client process's CPU time per operation (driver, database/sql and bun;
// less disturbed than throughput by other load on the machine).
//
//	MESHGATE_TEST_POSTGRES=… go test -run XXX -bench StoreDriver -benchtime 1x ./bench/
func BenchmarkStoreDriver(b *testing.B) {
	pgBase(b)
	ctx := context.Background()
	store := customers.Store{Store: openStore(b, "postgres", &customers.Product.Descriptor, customers.Migrations)}
	store.DB.SetMaxOpenConns(8)
	store.DB.SetMaxIdleConns(8)
	ids := seedCustomers(b, store, driverRows)
	var inserts atomic.Int64
	cases := []struct {
		name string
		op   func(worker, i int) error
	}{
		{"point-select", func(w, i int) error { return pointSelect(ctx, store, ids[(w*7919+i)%len(ids)]) }},
		{"insert-tx", func(w, i int) error {
			_, err := store.Create(ctx, customers.Input{Name: "Bench Customer", Email: fmt.Sprintf("drv-%d@example.org", inserts.Add(1)), Country: "DE", Segment: customers.SegmentConsumer})
			return err
		}},
	}
	for _, c := range cases {
		for _, clients := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/c%d", c.name, clients), func(b *testing.B) {
				runFor(b, clients, 200*time.Millisecond, c.op) // warm the pool and plan caches
				cpu := cpuTime()
				rate := runFor(b, clients, driverDuration, c.op)
				perOp := float64(cpuTime()-cpu) / (rate * driverDuration.Seconds()) / 1e3
				b.ReportMetric(rate, "ops/s")
				b.ReportMetric(perOp, "client_cpu_us/op")
				fmt.Printf("driver %s c%d: %.0f ops/s, %.1f µs client CPU/op\n", c.name, clients, rate, perOp)
			})
		}
	}
}

// BenchmarkPoolRead measures a concurrent point-select load on a store
// with the pool exactly as products.Open configures it: 16 and 64
// goroutines for 5 s, on SQLite and PostgreSQL. Reported: reads per second
// and the database sessions the pool opened in all, seeding included (from
// database/sql's statistics: sessions still open plus those closed for
// being idle or old).
//
//	MESHGATE_TEST_POSTGRES=… go test -run XXX -bench PoolRead -benchtime 1x ./bench/
func BenchmarkPoolRead(b *testing.B) {
	ctx := context.Background()
	backends(b, func(b *testing.B, backend string) {
		for _, clients := range []int{16, 64} {
			b.Run(fmt.Sprintf("c%d", clients), func(b *testing.B) {
				store := customers.Store{Store: openStore(b, backend, &customers.Product.Descriptor, customers.Migrations)}
				ids := seedCustomers(b, store, 200)
				rate := runFor(b, clients, poolDuration, func(w, i int) error {
					return pointSelect(ctx, store, ids[(w*7919+i)%len(ids)])
				})
				sessions := opened(store.Store)
				b.ReportMetric(rate, "reads/s")
				b.ReportMetric(float64(sessions), "sessions")
				fmt.Printf("pool read %s c%d for %v: %.0f reads/s, %d sessions opened in all\n", backend, clients, poolDuration, rate, sessions)
			})
		}
	})
}

// opened is the number of sessions the store's pool has opened so far, as
// far as database/sql's statistics tell (closes for errors are not
// counted).
func opened(s *products.Store) int64 {
	st := s.DB.Stats()
	return int64(st.OpenConnections) + st.MaxIdleClosed + st.MaxIdleTimeClosed + st.MaxLifetimeClosed
}
