package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"golang.org/x/sync/errgroup"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/orders"
	"github.com/meshgate/meshgate/products/pgtest"
	"github.com/meshgate/meshgate/resolvers"
	"github.com/meshgate/meshgate/streaming"
	"github.com/meshgate/meshgate/web"
)

const (
	filteredRate     = 200 // orders placed per second
	filteredDuration = 5 * time.Second
	// filteredCustomers: subscriber i watches customer 1 + i mod 100, so
	// each matches about 1% of the orders.
	filteredCustomers = 100
	filteredQuery     = `subscription { orderChanged(where: {customerId: {eq: %d}}, ops: [CREATE]) { sequence } }`
	unfilteredQuery   = `subscription { orderChanged(ops: [CREATE]) { sequence } }`
)

// statementCounter counts the SQL statements of the stores it hooks.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}
func (c *statementCounter) AfterQuery(context.Context, *bun.QueryEvent) { c.n.Add(1) }

// BenchmarkFilteredFanout measures subscriptions with a where filter:
// 1,000 websocket subscribers of orderChanged(where: {customerId: {eq: K}},
// ops: [CREATE]), K = 1…100 (each matches about 1% of the orders), while
// orders are placed at 200/s for 5 s (each writes its Order and an
// OrderLine entry: most entries of the orders log match no subscriber),
// open loop: each at its scheduled time, at most 32 in flight, the rate
// reached reported.
// The unfiltered case runs alongside for comparison: 10 subscribers of
// orderChanged(ops: [CREATE]), the same 2,000 deliveries/s.
//
// Reported per case: statements/delivery, the SQL statements the
// subscription path issued (counted with a bun query hook on the hub's own
// store handles, from the first order to the last delivery) per delivered
// event; commit_p50_ms and commit_p99_ms from an order's commit to a
// subscriber reading it; deliveries/s; missing. The gateway is wired as
// run() wires it (SQLite or PostgreSQL, embedded broker, relays, hub,
// web.NewServer) without the reactions' consumers, so that the orders log
// holds only the benchmark's orders. The subscribers live
// in a child process (TestFanoutClients), spread over 127.0.0.2–9.
//
//	go test -run XXX -bench FilteredFanout -benchtime 1x ./bench/
//
// It runs on SQLite, then (with MESHGATE_TEST_POSTGRES) on PostgreSQL.
func BenchmarkFilteredFanout(b *testing.B) {
	backends(b, func(b *testing.B, backend string) {
		var p99 [2]time.Duration
		b.Run("filtered", func(b *testing.B) {
			p99[0], _ = filteredFanout(b, backend, 1000, filteredQuery, filteredCustomers)
		})
		b.Run("unfiltered", func(b *testing.B) {
			p99[1], _ = filteredFanout(b, backend, 10, unfilteredQuery, 1)
		})
		if p99[1] > 0 {
			fmt.Printf("%s, filtered vs unfiltered: commit->client p99 %.1f ms vs %.1f ms (ratio %.2f)\n", backend, ms(p99[0]), ms(p99[1]), float64(p99[0])/float64(p99[1]))
		}
	})
}

// subscriberTarget is issue 12's target: commit → subscriber p99 with
// 1,000 subscribers at 200 mutations/s.
const subscriberTarget = 50 * time.Millisecond

// BenchmarkSubscriberLatency measures issue 12's target B on PostgreSQL:
// commit → subscriber p99 ≤ 50 ms with 1,000 websocket subscribers while
// orders are placed at 200/s for 5 s, wired as BenchmarkFilteredFanout
// (relays, embedded broker on a TCP port, hub, websockets in a child
// process). Two readings of "1,000 subscribers":
//
//   - filtered: each subscriber watches one customer's new orders
//     (orderChanged(where: {customerId: {eq: K}}), K = 1…100), so the
//     server delivers 2,000 events/s;
//   - all: each subscriber gets every new order (orderChanged(ops:
//     [CREATE])), 200,000 deliveries/s.
//
// It prints the p99 and its ratio to the target for each.
//
//	MESHGATE_TEST_POSTGRES=… go test -run XXX -bench SubscriberLatency -benchtime 1x ./bench/
func BenchmarkSubscriberLatency(b *testing.B) {
	pgBase(b)
	for _, c := range []struct {
		name, query string
		keys        int
	}{{"filtered", filteredQuery, filteredCustomers}, {"all", unfilteredQuery, 1}} {
		b.Run(c.name, func(b *testing.B) {
			p99, placed := filteredFanout(b, "postgres", 1000, c.query, c.keys)
			ratio := float64(p99) / float64(subscriberTarget)
			b.ReportMetric(ratio, "p99/target")
			fmt.Printf("issue 12 target B, postgres, 1000 subscribers (%s), %.0f of %d orders/s: commit->subscriber p99 %.1f ms, target <= %v: ratio %.2f (%s)\n",
				c.name, placed, filteredRate, ms(p99), subscriberTarget, ratio, map[bool]string{true: "met", false: "NOT met"}[ratio <= 1 && placed >= 0.98*filteredRate])
		})
	}
}

// filteredGateway is the gateway's pieces, wired as run() wires them, with
// the hub reading through store handles of its own that count statements.
type filteredGateway struct {
	url  string
	mesh *products.Mesh
	hub  *streaming.Hub
	sql  *statementCounter
}

func startFilteredGateway(b *testing.B, backend string) *filteredGateway {
	ctx := context.Background()
	dir := b.TempDir()
	dsn := func(p string) string { return "sqlite:" + filepath.Join(dir, p+".db") }
	if backend == "postgres" {
		dsn = pgMeshDSN(b)
	}
	mesh, err := demo.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { mesh.Close() })
	// 100 customers, 25 items.
	if _, err := mesh.Seed(ctx, 0.05, func(string, string, int, int) {}); err != nil {
		b.Fatal(err)
	}
	counter := &statementCounter{}
	hubMesh, err := demo.Open(ctx, dsn, counter)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { hubMesh.Close() })
	k, pub := kafkaPublisher(b)
	hub := &streaming.Hub{Stores: hubMesh.Stores, Codec: codec, Kafka: k, Buffer: 1024}
	res := &resolvers.Resolver{Data: mesh, Version: "bench", BatchWait: 2 * time.Millisecond, Hub: hub, LiveRate: 4, Codec: codec}
	srv := httptest.NewServer(web.NewServer(web.Config{
		Resolver: res, Ready: mesh.Ping,
		MaxBodyBytes: 1 << 20, ComplexityLimit: 5000, QueryTimeout: 30 * time.Second,
		PingInterval: 15 * time.Second, WSWriteBuffer: 64 << 10,
	}))
	gctx, cancel := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(gctx)
	g.Go(func() error { return hub.Run(gctx) })
	for _, s := range mesh.Stores {
		relay := &streaming.Relay{Store: s, Sender: pub, Codec: codec}
		g.Go(func() error { return relay.Run(gctx) })
	}
	b.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		cancel()
		if err := g.Wait(); err != nil {
			b.Errorf("gateway: %v", err)
		}
	})
	select {
	case <-hub.Ready():
	case <-time.After(30 * time.Second):
		b.Fatal("the hub did not start consuming within 30 s")
	}
	// The seed's entries reach the hub before the measurement.
	waitFor(b, 60*time.Second, "the seed to be published", func() bool {
		for _, s := range mesh.Stores {
			if p, _, err := s.Backlog(ctx); err != nil || p > 0 {
				return false
			}
		}
		return true
	})
	return &filteredGateway{url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/graphql", mesh: mesh, hub: hub, sql: counter}
}

// pgMeshDSN returns the DSNs of a demo mesh in fresh PostgreSQL schemas
// (dropped when b ends), each store's pool as large as meshgate's default
// (--pg-max-conns 8).
func pgMeshDSN(b *testing.B) func(string) string {
	pg := pgtest.New(b)
	return func(p string) string {
		return strings.Replace(pg.DSN(p), "pool_max_conns="+strconv.Itoa(pgtest.MaxConns), "pool_max_conns=8", 1)
	}
}

// filteredFanout runs one case: n subscribers of query (%d replaced by
// 1 + i mod keys) while orders are placed; it returns the p99 latency.
func filteredFanout(b *testing.B, backend string, n int, query string, keys int) (p99 time.Duration, placed float64) {
	ctx := context.Background()
	g := startFilteredGateway(b, backend)
	clients := startClients(b, g.url, n, fanoutSources, childQueryEnv+"="+query, childKeysEnv+"="+fmt.Sprint(keys))
	connected := clients.line(90*time.Second, "its subscriptions")
	waitFor(b, 60*time.Second, fmt.Sprintf("%d subscriptions in the hub", n), func() bool {
		return g.hub.Stats().Subscribers >= int64(n)
	})

	// The orders: 200/s for 5 s, open loop (see above), each commit time
	// kept by order id. Nothing else writes orders.
	store := orders.New(g.mesh)
	base, err := store.Latest(ctx)
	if err != nil {
		b.Fatal(err)
	}
	m := int(filteredRate * filteredDuration.Seconds())
	want := 0
	for i := range m {
		if keys == 1 {
			want += n
		} else {
			// Subscribers of customer c: those i with i mod keys = c-1.
			c := i % filteredCustomers
			want += n / keys
			if c < n%keys {
				want++
			}
		}
	}
	b.ResetTimer()
	sql0, stats0 := g.sql.n.Load(), g.hub.Stats()
	// Open loop: order i is placed at start + i/rate whatever the others
	// do, at most latencyInFlight at once (like a server's concurrent
	// requests); its commit time is kept by order id.
	var commitMu sync.Mutex
	commitByID := map[int64]int64{}
	start := time.Now()
	late := openLoop(m, filteredRate, latencyInFlight, func(i int) {
		customer := int64(1 + i%filteredCustomers)
		o, err := store.Place(ctx, customer, []orders.LineInput{{ItemID: int64(1 + i%25), Quantity: 1}}, "EUR")
		now := time.Now().UnixNano()
		if err != nil {
			b.Error(err)
			return
		}
		commitMu.Lock()
		commitByID[o.ID] = now
		commitMu.Unlock()
	})
	placed = float64(m) / time.Since(start).Seconds()
	if b.Failed() {
		b.FailNow()
	}
	if last, err := store.Latest(ctx); err != nil || last != base+2*int64(m) {
		b.Fatalf("orders log at %d (%v), want %d: another writer?", last, err, base+2*int64(m))
	}
	// The orders' entries: sequence → commit time of its order.
	entries, err := g.mesh.Store("orders").Entries(ctx, base, base+2*int64(m), 2*m)
	if err != nil {
		b.Fatal(err)
	}
	commitBySeq := map[int64]int64{}
	for _, e := range entries {
		if e.Entity == orders.Entity.Name {
			commitBySeq[e.Sequence] = commitByID[e.Key]
		}
	}
	fmt.Fprintf(clients.stdin, "expect-total %d\n", want)
	done, raw := clients.finish()
	statements := g.sql.n.Load() - sql0
	stats := g.hub.Stats()
	b.StopTimer()

	lat := make([]time.Duration, 0, len(raw)/16)
	var lastRecv, firstCommit int64
	for _, c := range commitByID {
		if firstCommit == 0 || c < firstCommit {
			firstCommit = c
		}
	}
	stray := 0
	for i := 0; i+16 <= len(raw); i += 16 {
		seq := int64(binary.LittleEndian.Uint64(raw[i:]))
		at := int64(binary.LittleEndian.Uint64(raw[i+8:]))
		c, ok := commitBySeq[seq]
		if !ok || c == 0 {
			stray++
			continue
		}
		lat = append(lat, time.Duration(at-c))
		lastRecv = max(lastRecv, at)
	}
	if stray > 0 {
		b.Errorf("%d deliveries of sequences that are not the benchmark's orders", stray)
	}
	slices.Sort(lat)
	at := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(max(int(p/100*float64(len(lat))+0.5)-1, 0), len(lat)-1)]
	}
	missing := want - len(lat)
	rate := 0.0
	if lastRecv > firstCommit {
		rate = float64(len(lat)) / (float64(lastRecv-firstCommit) / 1e9)
	}
	perDelivery := float64(statements) / float64(max(len(lat), 1))
	b.ReportMetric(perDelivery, "statements/delivery")
	b.ReportMetric(ms(at(50)), "commit_p50_ms")
	b.ReportMetric(ms(at(99)), "commit_p99_ms")
	b.ReportMetric(rate, "deliveries/s")
	b.ReportMetric(float64(missing), "missing")
	b.ReportMetric(placed, "orders/s")
	fmt.Printf("%s: orderChanged fan-out, %d subscribers (%s) of %q, %d orders at %d/s (reached %.0f/s, %d started >1ms late): %d of %d deliveries (%s), %.0f deliveries/s; "+
		"commit->client p50 %.1f ms p99 %.1f ms max %.1f ms; %d SQL statements on the subscription path (%.4f per delivery; hub log reads %d, subscriber log reads %d)\n",
		backend, n, connected, query, m, filteredRate, placed, late, len(lat), want, done, rate,
		ms(at(50)), ms(at(99)), ms(at(100)), statements, perDelivery,
		stats.HubReads-stats0.HubReads, stats.SubscriberReads-stats0.SubscriberReads)
	if missing > 0 {
		b.Errorf("%d of %d deliveries missing", missing, want)
	}
	return at(99), placed
}
