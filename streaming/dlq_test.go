package streaming

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/inventory"
	"github.com/meshgate/meshgate/products/orders"
	"github.com/meshgate/meshgate/products/pgtest"
)

// pickyReaction counts the units of every order line into a row of the
// engagement store, like unitsReaction, but rejects (a validation error,
// BAD_USER_INPUT) the lines whose quantity test_rejected lists: a
// deterministic failure on those events that an operator can fix (delete
// the row) before retrying them.
func pickyReaction(t testing.TB, m *products.Mesh, rejected ...int) *products.Reaction {
	t.Helper()
	r := unitsReaction(t, m)
	ctx := context.Background()
	if _, err := m.Store("engagement").DB.ExecContext(ctx, "CREATE TABLE test_rejected (quantity BIGINT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	for _, q := range rejected {
		if _, err := m.Store("engagement").DB.ExecContext(ctx, "INSERT INTO test_rejected (quantity) VALUES (?)", q); err != nil {
			t.Fatal(err)
		}
	}
	units := r.NewBatch
	r.NewBatch = func() products.Batch {
		next := units()
		return products.Each(func(ctx context.Context, tx *products.Tx, e *products.AuditEntry) error {
			var l orders.Line
			if err := json.Unmarshal([]byte(*e.After), &l); err != nil {
				return err
			}
			n, err := tx.NewSelect().Table("test_rejected").Where("quantity = ?", l.Quantity).Count(ctx)
			if err != nil {
				return err
			}
			if n > 0 {
				return products.Invalid("quantity", "%d units cannot be counted", l.Quantity)
			}
			return next.Apply(ctx, tx, e)
		})
	}
	return r
}

// placeLines places one order per quantity, of one line each (a new
// customer's, of a new item), and returns the sum of the quantities.
func placeLines(t testing.TB, m *products.Mesh, quantities ...int) int64 {
	t.Helper()
	ctx := products.WithActor(context.Background(), "tester")
	tag := strconv.FormatInt(time.Now().UnixNano(), 36)
	cu, err := customers.New(m).Create(ctx, customers.Input{Name: "Poison Tester", Email: tag + "@example.org", Country: "DE", Segment: customers.SegmentConsumer})
	if err != nil {
		t.Fatal(err)
	}
	it, err := inventory.New(m).Create(ctx, inventory.Input{SKU: "P-" + tag, Name: "Item", Category: "Test", Price: products.Cents(100), Stock: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, q := range quantities {
		if _, err := orders.New(m).Place(ctx, cu.ID, []orders.LineInput{{ItemID: it.ID, Quantity: q}}, "EUR"); err != nil {
			t.Fatal(err)
		}
		sum += int64(q)
	}
	return sum
}

// runConsumer runs c until the test ends or stop is called.
func runConsumer(t testing.TB, c *Consumer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx) })
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// TestPoisonEventParked: a reaction that rejects one event retries it
// alone, parks it after its attempts (the dead letter in the store, the
// event with its headers on the dead-letter topic) and applies the events
// after it in the same partition. Redelivered, the parked event is
// skipped, not tried again. Fixed and retried from two instances at once,
// it is applied exactly once and marked resolved; a second retry changes
// nothing. Every change of the source is then applied exactly once.
func TestPoisonEventParked(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		m := openMesh(t, b)
		br := startBroker(t, "127.0.0.1:0")
		// One partition: the poison event sits between the others.
		k := KafkaConfig{Brokers: br.Addrs(), Partitions: 1, ClientID: "meshgate-test"}
		pub, err := NewPublisher(k)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pub.Close() })
		startRelays(t, m.Stores, pub, nil)
		r := pickyReaction(t, m, 13)
		newConsumer := func(m *products.Mesh, group string) *Consumer {
			return &Consumer{Store: m.Store("engagement"), Reaction: r, Topics: func(in products.Input) (string, error) { return topic(m, in) },
				Codec: testCodec, Kafka: k, Group: group, MaxBackoff: 20 * time.Millisecond, Retries: 3, Batch: 50}
		}
		want := placeLines(t, m, 1, 2, 3) + placeLines(t, m, 13) - 13 + placeLines(t, m, 4, 5)
		c := newConsumer(m, "meshgate.test-poison")
		stop := runConsumer(t, c)
		eventually(t, 30*time.Second, "five lines applied and one parked", func() bool {
			return c.Applied() == 5 && c.DeadLettered()["orders"] == 1
		})
		if got := units(t, m); got != want {
			t.Fatalf("units %d, want %d (every line but the poison one)", got, want)
		}
		// The poison event's three attempts alone, after its batch's
		// failure if it came with others.
		if f := c.Failures(); f < 3 || f > 4 {
			t.Errorf("%d failed attempts, want 3 or 4", f)
		}

		letters, err := m.Store("engagement").DeadLetters(ctx, products.DeadLetterQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(letters) != 1 {
			t.Fatalf("dead letters: %+v, want one", letters)
		}
		d := letters[0]
		if d.Status != products.Parked || d.Source != "orders" || d.Entity != "OrderLine" || d.Attempts != 3 ||
			!strings.Contains(d.Reason, "13 units cannot be counted") || d.LastFailureAt.Before(d.FirstFailureAt) {
			t.Errorf("dead letter %+v", d)
		}
		eventually(t, 10*time.Second, "the dead letter published", func() bool {
			l, err := m.Store("engagement").DeadLetters(ctx, products.DeadLetterQuery{IDs: []int64{d.ID}})
			return err == nil && l[0].Published
		})
		recs, err := readTopics(br.Addrs(), []string{testCodec.DeadLetterTopic("engagement")})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 {
			t.Fatalf("dead-letter topic holds %d records, want 1", len(recs))
		}
		h := recs[0].Headers
		for k, v := range map[string]string{
			HeaderProduct: "engagement", HeaderSourceProduct: "orders", HeaderSourceTopic: d.Topic,
			HeaderSourcePartition: "0", HeaderSourceOffset: strconv.FormatInt(d.Offset, 10),
			HeaderPosition: d.Position(), HeaderAttempts: "3", HeaderID: strconv.FormatInt(d.ID, 10),
			"ce_id": "orders-" + strconv.FormatInt(d.Sequence, 10),
		} {
			if h[k] != v {
				t.Errorf("header %s = %q, want %q", k, h[k], v)
			}
		}
		if h[HeaderReason] != d.Reason || h[HeaderFirstFailure] == "" || h[HeaderLastFailure] == "" {
			t.Errorf("headers %v", h)
		}
		if recs[0].Env.Source.Sequence != d.Sequence || string(recs[0].Key) != d.MessageKey {
			t.Errorf("dead-letter record %s/%d, want the original event %s", recs[0].Env.Source.DB, recs[0].Env.Source.Sequence, d.Position())
		}
		stop()

		// Redelivered (a new group reads from the beginning): the
		// applied events are duplicates, the parked one is skipped.
		again := newConsumer(m, "meshgate.test-poison-again")
		runConsumer(t, again)
		eventually(t, 30*time.Second, "the redelivery", func() bool { return again.Duplicates() == 5 })
		if again.Failures() != 0 || len(again.DeadLettered()) != 0 || units(t, m) != want {
			t.Fatalf("redelivery: %d failures, parked %v, units %d", again.Failures(), again.DeadLettered(), units(t, m))
		}

		// A retry before the cause is fixed fails again and says why.
		got, err := c.Retry(ctx, []int64{d.ID})
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Status != products.Parked || got[0].Attempts != 4 {
			t.Fatalf("retry of an unfixed event: %+v", got[0])
		}
		if _, err := c.Retry(ctx, []int64{d.ID, 999}); products.ErrorCode(err) != products.NotFound {
			t.Fatalf("retry of an unknown dead letter: %v, want NOT_FOUND", err)
		}

		// Fixed, then retried by two instances at once: applied once.
		if _, err := m.Store("engagement").DB.ExecContext(ctx, "DELETE FROM test_rejected"); err != nil {
			t.Fatal(err)
		}
		other := openMesh(t, b)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, mesh := range []*products.Mesh{m, other} {
			wg.Go(func() {
				octx := products.WithRequestID(products.WithActor(ctx, "operator"), "retry-"+strconv.Itoa(i))
				_, errs[i] = newConsumer(mesh, "unused").Retry(octx, []int64{d.ID})
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if got := units(t, m); got != want+13 {
			t.Fatalf("units %d after the retries, want %d: the fixed event applied exactly once", got, want+13)
		}
		got, err = c.Retry(ctx, nil)
		if err != nil || len(got) != 0 {
			t.Fatalf("retry of every parked event with none left: %v %v", got, err)
		}
		got, err = c.Retry(ctx, []int64{d.ID})
		if err != nil {
			t.Fatal(err)
		}
		r0 := got[0]
		if r0.Status != products.Resolved || r0.ResolvedAt == nil || r0.ResolvedBy == nil || *r0.ResolvedBy != "operator" ||
			r0.ResolvedRequestID == nil || !strings.HasPrefix(*r0.ResolvedRequestID, "retry-") {
			t.Fatalf("resolved dead letter %+v", r0)
		}
		if units(t, m) != want+13 {
			t.Fatalf("a retry of a resolved event changed the units")
		}

		// The books: every order line of the source applied once.
		latest, err := m.Store("orders").Latest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n, _, err := m.Store("engagement").ConsumedThrough(ctx, "orders", latest)
		if err != nil {
			t.Fatal(err)
		}
		if n != 6 {
			t.Fatalf("engagement applied %d order lines, want 6", n)
		}
	})
}

// proxy forwards TCP connections to a server until cut: then it drops
// every connection and refuses (accepts and closes) new ones, as a server
// that went away would, until restored.
type proxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	down     bool
	conns    map[net.Conn]bool
}

func startProxy(t testing.TB, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: upstream, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *proxy) serve(c net.Conn) {
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.conns[c] = true
	p.mu.Unlock()
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[up] = true
	p.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

// cut drops every connection and refuses new ones.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

func (p *proxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// TestStoreOutageParksNothing: while the reacting product's PostgreSQL is
// unreachable its consumer fails many more times than the attempts an
// event gets before it is parked, and when its connection breaks in the
// middle of the reaction's work on an event, again and again, the
// reaction fails on that event more often than that: yet nothing is
// parked. A store outage is not a poison event. Once the store is back
// every change is applied exactly once.
func TestStoreOutageParksNothing(t *testing.T) {
	t.Parallel()
	pg := pgtest.New(t)
	ctx := context.Background()
	var px *proxy
	dsn := func(product string) string {
		d := pg.DSN(product)
		if product != "engagement" {
			return d
		}
		u, err := url.Parse(d)
		if err != nil {
			t.Fatal(err)
		}
		if px == nil {
			px = startProxy(t, u.Host)
		}
		u.Host = px.ln.Addr().String()
		q := u.Query()
		q.Set("connect_timeout", "2")
		u.RawQuery = q.Encode()
		return u.String()
	}
	m := openMesh(t, backend{Name: "postgres", DSN: dsn})
	br := startBroker(t, "127.0.0.1:0")
	startRelays(t, m.Stores, newPublisher(t, br.Addrs()), nil)
	r := pickyReaction(t, m) // rejects nothing
	// The connection breaks in the middle of the reaction's work on the
	// line of 6 units, five times over: the reaction itself meets the
	// failure, more often than the attempts an event gets.
	var mu sync.Mutex
	drops := 0
	picky := r.NewBatch
	r.NewBatch = func() products.Batch {
		next := picky()
		return products.Each(func(ctx context.Context, tx *products.Tx, e *products.AuditEntry) error {
			var l orders.Line
			if err := json.Unmarshal([]byte(*e.After), &l); err != nil {
				return err
			}
			mu.Lock()
			if l.Quantity == 6 && drops < 5 {
				drops++
				px.cut()
				px.restore()
			}
			mu.Unlock()
			return next.Apply(ctx, tx, e)
		})
	}
	k := KafkaConfig{Brokers: br.Addrs(), Partitions: testPartitions, ClientID: "meshgate-test"}
	c := &Consumer{Store: m.Store("engagement"), Reaction: r, Topics: func(in products.Input) (string, error) { return topic(m, in) },
		Codec: testCodec, Kafka: k, Group: "meshgate.test-outage", MaxBackoff: 20 * time.Millisecond, Retries: 2, LockWait: time.Second}
	runConsumer(t, c)
	want := placeLines(t, m, 1, 2)
	eventually(t, 30*time.Second, "the first lines applied", func() bool { return c.Applied() == 2 })

	px.cut()
	want += placeLines(t, m, 3, 4, 5)
	eventually(t, 60*time.Second, "the consumer to fail through its attempts many times", func() bool { return c.Failures() >= 10 })
	px.restore()
	eventually(t, 60*time.Second, "every line applied", func() bool { return c.Applied() == 5 })

	failures := c.Failures()
	want += placeLines(t, m, 6)
	eventually(t, 60*time.Second, "the line of 6 applied", func() bool { return c.Applied() == 6 })
	if c.Failures() < failures+5 {
		t.Errorf("%d failures while the connection broke 5 times", c.Failures()-failures)
	}
	if got := units(t, m); got != want {
		t.Fatalf("units %d, want %d", got, want)
	}
	letters, err := m.Store("engagement").DeadLetters(ctx, products.DeadLetterQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 0 || len(c.DeadLettered()) != 0 {
		t.Fatalf("a store outage parked %+v (%v)", letters, c.DeadLettered())
	}
}
