package streaming

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/inventory"
	"github.com/meshgate/meshgate/products/orders"
)

// statements counts the SQL statements of the stores it is a hook of.
type statements struct{ n atomic.Int64 }

func (s *statements) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }
func (s *statements) AfterQuery(context.Context, *bun.QueryEvent)                        { s.n.Add(1) }

// collector is a stream's subscriber: it keeps what it was given.
type collector struct {
	mu     sync.Mutex
	events []Event
	done   chan error
}

func (c *collector) got() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...)
}

// stream subscribes f on h (since may be nil) until the test ends.
func stream(t testing.TB, h *Hub, f *Filter, since Cursor) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{done: make(chan error, 1)}
	go func() {
		c.done <- h.Stream(ctx, f, since, func(e Event) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.events = append(c.events, e)
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-c.done
	})
	return c
}

// runHub runs a hub over stores until the test ends and waits until it
// consumes.
func runHub(t testing.TB, stores []*products.Store, addrs []string) *Hub {
	t.Helper()
	h := &Hub{Stores: stores, Codec: testCodec, Kafka: KafkaConfig{Brokers: addrs, Partitions: testPartitions, ClientID: "meshgate-test-hub"},
		MaxBackoff: 100 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := h.Run(ctx); err != nil {
			t.Errorf("hub: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-h.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("the hub did not start consuming")
	}
	return h
}

// awaitSubscribers waits until the hub has n subscriptions registered.
func awaitSubscribers(t testing.TB, h *Hub, n int64) {
	t.Helper()
	eventually(t, 10*time.Second, fmt.Sprintf("%d subscriptions", n), func() bool { return h.Stats().Subscribers == n })
}

// orderImage decodes an order event's row image, as the resolvers do.
var orderImage = &Decoder{Decode: func(a *products.AuditEntry) (any, error) {
	var m map[string]any
	img := a.After
	if img == nil {
		img = a.Before
	}
	err := json.Unmarshal([]byte(*img), &m)
	return m, err
}}

// customerOrders selects the order events of one customer, the way
// orderChanged(where: {customerId: {eq: id}}) does.
func customerOrders(id int64) *Filter {
	where := map[string]any{"customerId": map[string]any{"eq": id}}
	return &Filter{
		Products: map[string]bool{"orders": true}, Entities: map[string]bool{"Order": true},
		Decoder: orderImage,
		Match: func(_ *products.AuditEntry, row any) (bool, error) {
			return products.Match(orders.Entity, where, row.(map[string]any))
		},
	}
}

// TestFilteredSubscribersReadNoLog: subscriptions whose filter rejects most
// entries (entity, op and where filters) get exactly their entries, in
// order, with cursors that resume right after them, and the live path
// reads the audit log only when the hub itself finds entries out of order —
// once for all subscriptions, never per subscription and event.
func TestFilteredSubscribersReadNoLog(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		m := openMesh(t, b)
		br := startBroker(t, "127.0.0.1:0")
		startRelays(t, m.Stores, newPublisher(t, br.Addrs()), nil)
		// The hub reads through handles of its own that count statements.
		var sql statements
		hm, err := demo.Open(context.Background(), b.DSN, &sql)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hm.Close() })
		h := runHub(t, hm.Stores, br.Addrs())

		ctx := context.Background()
		var custs []int64
		for i := range 4 {
			c, err := customers.New(m).Create(ctx, customers.Input{Name: "Buyer", Email: fmt.Sprintf("buyer%d@example.org", i), Country: "DE", Segment: customers.SegmentConsumer})
			if err != nil {
				t.Fatal(err)
			}
			custs = append(custs, c.ID)
		}
		item := mutateItems(t, m, 3)
		const subscribers = 20
		subs := make([]*collector, subscribers)
		for i := range subs {
			subs[i] = stream(t, h, customerOrders(custs[i%len(custs)]), nil)
		}
		// Only an order's creation: the entries of its lines go elsewhere.
		creates := stream(t, h, &Filter{Products: map[string]bool{"orders": true}, Entities: map[string]bool{"Order": true},
			Ops: map[products.Op]bool{products.OpCreate: true}}, nil)
		awaitSubscribers(t, h, subscribers+1)
		// A subscription goes live a moment after it registers (it reads
		// its starting position): place orders until all are.
		lastWarm := map[int64]int64{}
		eventually(t, 20*time.Second, "the subscriptions to go live", func() bool {
			for _, cust := range custs {
				if _, err := orders.New(m).Place(ctx, cust, []orders.LineInput{{ItemID: item[0], Quantity: 1}}, "EUR"); err != nil {
					t.Fatal(err)
				}
				latest, err := m.Store("orders").Latest(ctx)
				if err != nil {
					t.Fatal(err)
				}
				lastWarm[cust] = latest - 1
			}
			for _, s := range subs {
				if len(s.got()) == 0 {
					return false
				}
			}
			return len(creates.got()) > 0
		})
		// Let the warm-up orders arrive everywhere.
		warm, err := m.Store("orders").Latest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "the warm-up orders", func() bool {
			for i, s := range subs {
				got := s.got()
				if got[len(got)-1].Entry.Sequence != lastWarm[custs[i%len(custs)]] {
					return false
				}
			}
			return creates.got()[len(creates.got())-1].Entry.Sequence == warm-1
		})
		skip := make([]int, len(subs))
		for i, s := range subs {
			skip[i] = len(s.got())
		}
		skipCreates := len(creates.got())
		base := sql.n.Load()
		reads := h.Stats()

		// Each order writes its Order and two OrderLine entries.
		const placed = 24
		want := map[int64][]int64{} // customer → sequences of its orders
		for i := range placed {
			cust := custs[i%len(custs)]
			if _, err := orders.New(m).Place(ctx, cust, []orders.LineInput{{ItemID: item[0], Quantity: 1}, {ItemID: item[1+i%2], Quantity: 1}}, "EUR"); err != nil {
				t.Fatal(err)
			}
			latest, err := m.Store("orders").Latest(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want[cust] = append(want[cust], latest-2) // the Order entry precedes its lines
		}
		defer func() {
			if t.Failed() {
				for i, s := range subs {
					t.Logf("subscriber %d: %d events, want %d", i, len(s.got())-skip[i], len(want[custs[i%len(custs)]]))
				}
				t.Logf("creates: %d; stats %+v", len(creates.got()), h.Stats())
			}
		}()
		eventually(t, 20*time.Second, "every subscription to get its orders", func() bool {
			for i, s := range subs {
				if len(s.got())-skip[i] < len(want[custs[i%len(custs)]]) {
					return false
				}
			}
			return len(creates.got())-skipCreates >= placed
		})
		for i, s := range subs {
			cust := custs[i%len(custs)]
			got := s.got()[skip[i]:]
			if len(got) != len(want[cust]) {
				t.Fatalf("subscriber %d got %d events, want %d", i, len(got), len(want[cust]))
			}
			for j, e := range got {
				if e.Entry.Sequence != want[cust][j] || e.Cursor["orders"] != e.Entry.Sequence {
					t.Fatalf("subscriber %d event %d: sequence %d cursor %v, want sequence %d", i, j, e.Entry.Sequence, e.Cursor, want[cust][j])
				}
			}
		}
		st := h.Stats()
		hubReads := st.HubReads - reads.HubReads
		issued := sql.n.Load() - base
		t.Logf("%d statements for %d deliveries to %d subscriptions (%d hub reads of out-of-order entries)",
			issued, st.Delivered-reads.Delivered, subscribers+1, hubReads)
		if st.SubscriberReads != reads.SubscriberReads {
			t.Errorf("subscriptions read the audit log %d times on the live path, want 0", st.SubscriberReads-reads.SubscriberReads)
		}
		if issued != hubReads || hubReads > 3*placed {
			t.Errorf("the live path issued %d statements (%d hub reads) for %d entries; want only the hub's reads, at most one per entry", issued, hubReads, 3*placed)
		}

		// A cursor of a filtered stream resumes right after its event:
		// the customer's later orders, and nothing else.
		cust := custs[0]
		mid := subs[0].got()[skip[0]+1]
		resumed := stream(t, h, customerOrders(cust), mid.Cursor)
		eventually(t, 10*time.Second, "the resumed stream", func() bool { return len(resumed.got()) >= len(want[cust])-2 })
		for j, e := range resumed.got() {
			if e.Entry.Sequence != want[cust][j+2] {
				t.Fatalf("resumed event %d: sequence %d, want %d", j, e.Entry.Sequence, want[cust][j+2])
			}
		}
	})
}

// mutateItems creates n items and returns their ids.
func mutateItems(t testing.TB, m *products.Mesh, n int) []int64 {
	t.Helper()
	var ids []int64
	for i := range n {
		it, err := inventory.New(m).Create(context.Background(), inventoryInput(i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, it.ID)
	}
	return ids
}

func inventoryInput(i int) inventory.Input {
	return inventory.Input{SKU: fmt.Sprintf("HUB-%d", i), Name: "Hub item", Category: "Test", Price: products.Cents(250), Stock: 1000}
}

// TestFilterErrorEndsStream: a filter that fails on a live entry ends that
// stream with the error; other streams go on.
func TestFilterErrorEndsStream(t *testing.T) {
	t.Parallel()
	b := sqliteBackend(t)
	m := openMesh(t, b)
	br := startBroker(t, "127.0.0.1:0")
	startRelays(t, m.Stores, newPublisher(t, br.Addrs()), nil)
	h := runHub(t, m.Stores, br.Addrs())
	boom := errors.New("filter failed")
	bad := stream(t, h, &Filter{Products: map[string]bool{"customers": true},
		Match: func(*products.AuditEntry, any) (bool, error) { return false, boom }}, nil)
	good := stream(t, h, &Filter{Products: map[string]bool{"customers": true}}, nil)
	awaitSubscribers(t, h, 2)
	if _, err := customers.New(m).Create(context.Background(), customers.Input{Name: "Kim", Email: "kim@example.org", Country: "DE", Segment: customers.SegmentConsumer}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-bad.done:
		bad.done <- err // for the cleanup
		if !errors.Is(err, boom) {
			t.Fatalf("the stream ended with %v, want the filter's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream with the failing filter did not end")
	}
	eventually(t, 10*time.Second, "the other stream's event", func() bool { return len(good.got()) == 1 })
}

// TestHubResumesAfterBrokerRestart: a subscription is live, the broker
// stops, changes are committed, the broker comes back — with its log (data
// directory) or empty (a new cluster). Every change reaches the subscriber,
// in order, without a later change to surface it, also from partitions that
// had delivered nothing to the hub before.
func TestHubResumesAfterBrokerRestart(t *testing.T) {
	t.Parallel()
	for _, keep := range []bool{true, false} {
		name := map[bool]string{true: "broker keeps its log", false: "broker restarts empty"}[keep]
		t.Run(name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, b backend) {
				m := openMesh(t, b)
				addr := freeAddr(t)
				dir := ""
				if keep {
					dir = filepath.Join(t.TempDir(), "kafka")
				}
				start := func() *Embedded {
					e, err := StartEmbedded(addr, testPartitions, dir)
					if err != nil {
						t.Fatal(err)
					}
					return e
				}
				br := start()
				// The relays retry quickly, the hub slowly: the backlog is
				// on the broker before the hub reconnects.
				startRelays(t, m.Stores, newPublisher(t, br.Addrs()), nil)
				h := &Hub{Stores: m.Stores, Codec: testCodec, Kafka: KafkaConfig{Brokers: br.Addrs(), Partitions: testPartitions, ClientID: "meshgate-test-hub"},
					MaxBackoff: 2 * time.Second}
				ctx, cancel := context.WithCancel(context.Background())
				hubDone := make(chan struct{})
				go func() { defer close(hubDone); h.Run(ctx) }()
				defer func() { cancel(); <-hubDone }()
				<-h.Ready()
				sub := stream(t, h, &Filter{Products: map[string]bool{"customers": true}}, nil)
				awaitSubscribers(t, h, 1)
				first, err := m.Store("customers").Latest(context.Background())
				if err != nil {
					t.Fatal(err)
				}

				br.Close()
				var ids []int64
				for i := range 12 {
					c, err := customers.New(m).Create(context.Background(), customers.Input{Name: "Offline", Email: fmt.Sprintf("offline%d@example.org", i), Country: "SE", Segment: customers.SegmentConsumer})
					if err != nil {
						t.Fatal(err)
					}
					ids = append(ids, c.ID)
				}
				br = start()
				defer br.Close()
				eventually(t, 30*time.Second, "the 12 changes made while the broker was down", func() bool { return len(sub.got()) >= 12 })
				got := sub.got()
				var seqs []string
				for i, e := range got {
					seqs = append(seqs, fmt.Sprint(e.Entry.Sequence))
					if e.Entry.Sequence != first+int64(i)+1 || e.Entry.Key != ids[i] {
						t.Errorf("event %d: sequence %d key %d, want %d and %d", i, e.Entry.Sequence, e.Entry.Key, first+int64(i)+1, ids[i])
					}
				}
				if len(got) != 12 {
					t.Errorf("got %d events (%s), want 12", len(got), strings.Join(seqs, " "))
				}
			})
		})
	}
}

// TestSharedFilterEvaluatedOnce: subscriptions whose filters share a Key
// get their entries from one evaluation per entry.
func TestSharedFilterEvaluatedOnce(t *testing.T) {
	t.Parallel()
	m := openMesh(t, sqliteBackend(t))
	br := startBroker(t, "127.0.0.1:0")
	startRelays(t, m.Stores, newPublisher(t, br.Addrs()), nil)
	h := runHub(t, m.Stores, br.Addrs())
	var calls atomic.Int64
	filter := func() *Filter {
		return &Filter{Products: map[string]bool{"customers": true}, Key: "every customer in SE",
			Match: func(a *products.AuditEntry, _ any) (bool, error) {
				calls.Add(1)
				return strings.Contains(*a.After, `"country":"SE"`), nil
			}}
	}
	for range 10 {
		stream(t, h, filter(), nil)
	}
	awaitSubscribers(t, h, 10)
	before := h.Stats().Delivered
	for i, country := range []string{"SE", "NO", "SE"} {
		if _, err := customers.New(m).Create(context.Background(), customers.Input{Name: "Lin", Email: fmt.Sprintf("lin%d@example.org", i), Country: country, Segment: customers.SegmentConsumer}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "two customers queued for every subscription", func() bool {
		return h.Stats().Delivered-before == 20
	})
	if n := calls.Load(); n != 3 {
		t.Errorf("the shared filter ran %d times for 3 entries and 10 subscriptions, want 3", n)
	}
}
