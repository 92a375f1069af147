package streaming

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/meshgate/meshgate/internal/meshtest"
	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/inventory"
	"github.com/meshgate/meshgate/products/orders"
)

// instance is one gateway instance's streaming side: a relay per store and
// (once react is called) a consumer per reaction, on the brokers at addrs.
type instance struct {
	m         *products.Mesh
	addrs     []string
	relays    *relayGroup
	consumers []*Consumer
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// newInstance starts the relays of m; the test ends them.
func newInstance(t testing.TB, m *products.Mesh, addrs []string) *instance {
	t.Helper()
	in := &instance{m: m, addrs: addrs, relays: startRelays(t, m.Stores, newPublisher(t, addrs), nil)}
	in.ctx, in.cancel = context.WithCancel(context.Background())
	t.Cleanup(in.stop)
	return in
}

// startInstance starts the relays and the consumers of m.
func startInstance(t testing.TB, m *products.Mesh, addrs []string) *instance {
	in := newInstance(t, m, addrs)
	in.react()
	return in
}

// react starts the instance's consumers.
func (in *instance) react() {
	k := KafkaConfig{Brokers: in.addrs, Partitions: testPartitions, ClientID: "meshgate-test"}
	in.consumers = Consumers(in.m, testCodec, k, nil)
	for _, c := range in.consumers {
		c.MaxBackoff, c.Batch = 50*time.Millisecond, 20
		in.wg.Go(func() { c.Run(in.ctx) })
	}
}

// caughtUp tells whether the instance's consumers have applied every change
// of their sources.
func (in *instance) caughtUp(t testing.TB) bool {
	t.Helper()
	for _, c := range in.consumers {
		lags, err := c.Lag(context.Background(), in.m.Store)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lags {
			if l.Pending > 0 {
				return false
			}
		}
	}
	return true
}

func (in *instance) stop() {
	in.cancel()
	in.wg.Wait()
	in.relays.Stop()
}

// books compares what the reactions derived with what the sources hold
// and returns the differences ("" when the books are exact); see
// meshtest.Books, which the tests driving gateway processes share.
func books(t testing.TB, m *products.Mesh, initial map[int64]int) string {
	t.Helper()
	d, err := meshtest.Books(context.Background(), m, initial)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// salesBooks compares sales with SQL over the orders store ("" when equal).
func salesBooks(t testing.TB, m *products.Mesh) string {
	t.Helper()
	d, err := meshtest.SalesBooks(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// shop creates customers and items for a test's orders and returns their
// ids and the items' initial stock.
func shop(t testing.TB, m *products.Mesh, stock int) (custs, items []int64, initial map[int64]int) {
	t.Helper()
	ctx := context.Background()
	initial = map[int64]int{}
	for i := range 6 {
		c, err := customers.New(m).Create(ctx, customers.Input{Name: "Shopper", Email: fmt.Sprintf("shopper%d@example.org", i), Country: "DE", Segment: customers.SegmentConsumer})
		if err != nil {
			t.Fatal(err)
		}
		custs = append(custs, c.ID)
		it, err := inventory.New(m).Create(ctx, inventory.Input{SKU: fmt.Sprintf("BOOK-%d", i), Name: "Book", Category: "Books", Price: products.Cents(1025 + 100*int64(i)), Stock: stock})
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, it.ID)
		initial[it.ID] = stock
	}
	return custs, items, initial
}

// TestBrokerLostMidLoadBooksExact: instances place and cancel orders while
// the broker dies and comes back EMPTY (a new cluster, its log lost) on the
// same address, with the reactions behind. The relays publish the logs
// again, history before new entries, and the reactions converge to exact
// books: stock equals initial stock minus live reservations, no cancelled
// order holds stock, sales equals SQL over the orders. On PostgreSQL two
// instances share the stores and race to publish to the new broker.
func TestBrokerLostMidLoadBooksExact(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		meshes := []*products.Mesh{openMesh(t, b)}
		if b.Name == "postgres" {
			meshes = append(meshes, openMesh(t, b))
		}
		addr := freeAddr(t)
		br := startBroker(t, addr)
		var instances []*instance
		for _, m := range meshes {
			instances = append(instances, newInstance(t, m, br.Addrs()))
		}
		custs, items, initial := shop(t, meshes[0], 40)

		ctx := context.Background()
		rng := rand.New(rand.NewPCG(1, 2))
		var placed []int64
		op := func(i int) {
			m := meshes[i%len(meshes)]
			if len(placed) > 0 && rng.IntN(4) == 0 {
				id := placed[rng.IntN(len(placed))]
				if _, err := orders.New(m).Cancel(ctx, id); err != nil && products.ErrorCode(err) != products.Conflict {
					t.Fatal(err)
				}
				return
			}
			lines := []orders.LineInput{{ItemID: items[rng.IntN(len(items))], Quantity: 1 + rng.IntN(3)}}
			if j := items[rng.IntN(len(items))]; j != lines[0].ItemID {
				lines = append(lines, orders.LineInput{ItemID: j, Quantity: 1})
			}
			o, err := orders.New(m).Place(ctx, custs[rng.IntN(len(custs))], lines, "EUR")
			if err != nil {
				t.Fatal(err)
			}
			placed = append(placed, o.ID)
		}
		for i := range 60 {
			op(i)
		}
		br.Close() // mid-load: the consumers are typically still busy
		for i := range 30 {
			op(i)
		}
		startBroker(t, addr) // empty: a new cluster
		// The reactions were behind when the broker died (here: they
		// start only now), so they need the history from the new broker.
		for _, in := range instances {
			in.react()
		}
		for i := range 60 {
			op(i)
		}
		var last string
		defer func() {
			if t.Failed() {
				t.Logf("books not exact:\n%s", last)
			}
		}()
		eventually(t, 90*time.Second, "exact books", func() bool {
			last = books(t, meshes[0], initial)
			return last == "" && instances[0].caughtUp(t)
		})
	})
}

// TestReactionsToEventsOutOfOrder: a source's events for one key arrive out
// of order (as they may after a broker lost its log): an order's cancel
// before its creation, a customer's last change before an earlier one.
// The reactions end as if they had come in order: no stock reserved for
// the cancelled order, sales neither counts it nor keeps the stale
// country.
func TestReactionsToEventsOutOfOrder(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		m := openMesh(t, b)
		br := startBroker(t, "127.0.0.1:0")
		custs, items, initial := shop(t, m, 40)
		ctx := context.Background()
		kept, err := orders.New(m).Place(ctx, custs[0], []orders.LineInput{{ItemID: items[0], Quantity: 2}}, "EUR")
		if err != nil {
			t.Fatal(err)
		}
		gone, err := orders.New(m).Place(ctx, custs[1], []orders.LineInput{{ItemID: items[0], Quantity: 3}, {ItemID: items[1], Quantity: 1}}, "EUR")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := orders.New(m).Cancel(ctx, gone.ID); err != nil {
			t.Fatal(err)
		}
		for _, country := range []string{"SE", "FI"} {
			if _, err := customers.New(m).Update(ctx, custs[2], map[string]any{"country": country}); err != nil {
				t.Fatal(err)
			}
		}

		// Publish the logs with each key's changes newest first, then
		// run the reactions over them.
		pub := newPublisher(t, br.Addrs())
		cluster, err := pub.Cluster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []*products.Store{m.Store("customers"), m.Store("orders")} {
			entries, err := s.Entries(ctx, 0, 0, 10000)
			if err != nil {
				t.Fatal(err)
			}
			type key struct {
				entity string
				key    int64
			}
			var keys []key
			byKey := map[key][]products.AuditEntry{}
			for _, e := range entries {
				k := key{e.Entity, e.Key}
				if byKey[k] == nil {
					keys = append(keys, k)
				}
				byKey[k] = append([]products.AuditEntry{e}, byKey[k]...) // newest first
			}
			var msgs []*sarama.ProducerMessage
			for _, k := range keys {
				for i := range byKey[k] {
					msg, err := testCodec.Message(s.Product, &byKey[k][i])
					if err != nil {
						t.Fatal(err)
					}
					msgs = append(msgs, msg)
				}
			}
			if err := pub.Send(ctx, cluster, msgs); err != nil {
				t.Fatal(err)
			}
		}
		// The rest of the mesh's traffic goes through the relays as usual
		// (inventory's reservations, to orders); the logs of customers and
		// orders count as published.
		for _, s := range []*products.Store{m.Store("customers"), m.Store("orders")} {
			if _, err := s.Outbox(ctx, 10000, cluster, func(context.Context, []products.AuditEntry) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
		in := startInstance(t, m, br.Addrs())
		var last string
		defer func() {
			if t.Failed() {
				t.Logf("books not exact:\n%s", last)
			}
		}()
		eventually(t, 60*time.Second, "exact books", func() bool {
			last = books(t, m, initial)
			return last == "" && in.caughtUp(t)
		})
		if o, err := products.Get[orders.Order](ctx, m.Store("orders").DB, orders.Entity, kept.ID); err != nil || o.Status != orders.StatusReserved {
			t.Errorf("the kept order: %+v %v, want RESERVED", o, err)
		}
		r, err := products.Get[inventory.Reservation](ctx, m.Store("inventory").DB, inventory.ReservationEntity, gone.ID)
		if err != nil || r.Status != inventory.Released || len(r.Lines) != 0 {
			t.Errorf("the cancelled order's reservation: %+v %v, want RELEASED without lines", r, err)
		}
		var country string
		if err := m.Store("sales").DB.NewSelect().Table("customer_value").Column("country").Where("id = ?", custs[2]).Scan(ctx, &country); err != nil || country != "FI" {
			t.Errorf("sales has customer %d in %q (%v), want FI, their latest country", custs[2], country, err)
		}
	})
}
