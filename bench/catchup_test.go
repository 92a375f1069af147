package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"golang.org/x/sync/errgroup"

	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/streaming"
)

const (
	// catchUpScaleEnv sets BenchmarkCatchUp's demo scale (default 1:
	// 20,000 orders).
	catchUpScaleEnv = "MESHGATE_CATCHUP_SCALE"
	// catchUpTarget is issue 12's target: every reaction applies at least
	// this many events per second catching up on PostgreSQL.
	catchUpTarget = 5000
)

// catchUpOrder is the order in which BenchmarkCatchUp lets the reactions
// catch up: each after the ones whose changes it consumes (inventory
// reserves the seeded orders, shipments prepares the reserved ones, orders
// takes reservations and shipments as statuses, sales derives from orders
// and customers).
var catchUpOrder = []string{"inventory", "shipments", "orders", "sales"}

// storeCounter counts SQL statements, and the time until their results
// came back, by the store (bun.DB) issuing them.
type storeCounter struct{ n sync.Map } // *bun.DB → *storeCount

type storeCount struct{ n, ns atomic.Int64 }

func (c *storeCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

func (c *storeCounter) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	n := c.of(e.DB)
	n.n.Add(1)
	n.ns.Add(int64(time.Since(e.StartTime)))
}

func (c *storeCounter) of(db *bun.DB) *storeCount {
	n, _ := c.n.LoadOrStore(db, &storeCount{})
	return n.(*storeCount)
}

// BenchmarkCatchUp measures each reaction catching up alone on a backlog:
// the demo mesh is seeded on PostgreSQL (fresh schemas) and published to
// the embedded broker by the relays; then the reactions' consumers run one
// at a time (inventory, shipments, orders, sales), each started when
// everything it consumes is on Kafka and stopped once it has applied all
// of it. Reported per reaction: the events it applied (source changes,
// redeliveries skipped), in how many batches, the time from its first
// committed batch to the last (the group join before it is left out, and
// so is the first batch's events), events/s and the ratio to issue 12's
// 5,000/s (and events per second of applying, Consumer.Busy, which counts
// the first batch too: the figure for a reaction with few batches), and,
// independent of the machine's load, SQL statements per batch on its store
// and the changes it wrote (its audit log's growth) per event.
//
//	MESHGATE_TEST_POSTGRES=… go test -run XXX -bench CatchUp -benchtime 1x ./bench/
//	MESHGATE_CATCHUP_SCALE=5 …    (100,000 orders)
func BenchmarkCatchUp(b *testing.B) {
	pgBase(b)
	scale := 1.0
	if s := os.Getenv(catchUpScaleEnv); s != "" {
		var err error
		if scale, err = strconv.ParseFloat(s, 64); err != nil || scale <= 0 {
			b.Fatalf("%s=%q: want a demo scale > 0", catchUpScaleEnv, s)
		}
	}
	ctx := context.Background()
	counter := &storeCounter{}
	mesh, err := demo.Open(ctx, pgMeshDSN(b), counter)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { mesh.Close() })
	if _, err := mesh.Seed(ctx, scale, func(string, string, int, int) {}); err != nil {
		b.Fatal(err)
	}
	k, pub := kafkaPublisher(b)
	rctx, stopRelays := context.WithCancel(ctx)
	var relays errgroup.Group
	for _, s := range mesh.Stores {
		relay := &streaming.Relay{Store: s, Sender: pub, Codec: codec}
		relays.Go(func() error { return relay.Run(rctx) })
	}
	b.Cleanup(func() { stopRelays(); relays.Wait() })
	published := func() bool {
		for _, s := range mesh.Stores {
			if p, _, err := s.Backlog(ctx); err != nil || p > 0 {
				return false
			}
		}
		return true
	}

	byName := map[string]*streaming.Consumer{}
	for _, c := range streaming.Consumers(mesh, codec, k, nil) {
		byName[c.Store.Product.Name] = c
	}
	b.ResetTimer()
	var summary []string
	for _, name := range catchUpOrder {
		c := byName[name]
		if c == nil {
			b.Fatalf("no consumer for %s", name)
		}
		waitFor(b, 5*time.Minute, "the relays to publish everything", published)
		var mu sync.Mutex
		var firstAt, lastAt time.Time
		var firstApplied int64
		c.OnApplied = func() {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if firstAt.IsZero() {
				firstAt, firstApplied = now, c.Applied()
			}
			lastAt = now
		}
		cctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		// Only this consumer writes now: it has caught up once it applied
		// what its sources' logs hold beyond its position.
		pending := int64(0)
		lags, err := c.Lag(ctx, mesh.Store)
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range lags {
			pending += l.Pending
		}
		log0, err := c.Store.Latest(ctx)
		if err != nil {
			b.Fatal(err)
		}
		sql0, sqlNs0 := counter.of(c.Store.DB).n.Load(), counter.of(c.Store.DB).ns.Load()
		started := time.Now()
		go func() { done <- c.Run(cctx) }()
		waitFor(b, 10*time.Minute, name+" to catch up", func() bool { return c.Applied() >= pending })
		statements, sqlTime := counter.of(c.Store.DB).n.Load()-sql0, time.Duration(counter.of(c.Store.DB).ns.Load()-sqlNs0)
		stop()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		log1, err := c.Store.Latest(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if lags, err := c.Lag(ctx, mesh.Store); err != nil {
			b.Fatal(err)
		} else {
			for _, l := range lags {
				if l.Pending > 0 {
					b.Fatalf("%s still %d changes behind %s", name, l.Pending, l.Source)
				}
			}
		}
		mu.Lock()
		events := c.Applied()
		timed := float64(events - firstApplied)
		took := lastAt.Sub(firstAt)
		mu.Unlock()
		rate := 0.0
		if took > 0 {
			rate = timed / took.Seconds()
		}
		busy := c.Busy()
		perBatch := float64(statements) / float64(max(c.Batches(), 1))
		b.ReportMetric(rate, name+"_events/s")
		line := fmt.Sprintf("catch-up, postgres, scale %g: %s applied %d events (%v) in %d batches; from its first batch to its last %v: %.0f events/s, target >= %d/s: ratio %.2f (%s) (applying %v: %.0f events/s); %.1f SQL statements per batch (%.1f ms SQL per batch); %.2f changes of its own per event (its audit log grew by %d); joined and first batch after %v",
			scale, name, events, c.AppliedBySource(), c.Batches(), took.Round(time.Millisecond), rate, catchUpTarget, rate/catchUpTarget,
			map[bool]string{true: "met", false: "NOT met"}[rate >= catchUpTarget], busy.Round(time.Millisecond), float64(events)/busy.Seconds(), perBatch, ms(sqlTime)/float64(max(c.Batches(), 1)), float64(log1-log0)/float64(max(events, 1)), log1-log0, firstAt.Sub(started).Round(time.Millisecond))
		fmt.Println(line)
		summary = append(summary, fmt.Sprintf("%s %.0f/s (%.2f)", name, rate, rate/catchUpTarget))
	}
	b.StopTimer()
	fmt.Printf("issue 12 target C, postgres, each reaction catching up alone, events/s (ratio to %d/s): %s\n", catchUpTarget, strings.Join(summary, ", "))
}
