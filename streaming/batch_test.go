package streaming

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/orders"
)

// storeStatements counts the statements run on one store's database in a
// context marked counted.
type storeStatements struct {
	db *bun.DB
	n  atomic.Int64
}

// counted marks the context of the statements counted (not those of the
// relays, say).
type counted struct{}

func (s *storeStatements) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	if e.DB == s.db && ctx.Value(counted{}) != nil {
		s.n.Add(1)
	}
	return ctx
}

func (*storeStatements) AfterQuery(context.Context, *bun.QueryEvent) {}

// TestBatchStatementsBounded: a batch of sales' events is applied in a
// number of statements that does not grow with its events (the record of
// consumed changes, the keys' positions, sales' orders, lines and figures
// are each written set-based), and applying the same batch again applies
// nothing and counts every event as a duplicate.
func TestBatchStatementsBounded(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		count := &storeStatements{}
		m, err := demo.Open(context.Background(), b.DSN, count)
		if err != nil {
			t.Fatalf("open mesh on %s: %v", b.Name, err)
		}
		t.Cleanup(func() { m.Close() })
		count.db = m.Store("sales").DB
		br := startBroker(t, "127.0.0.1:0")
		startRelays(t, m.Stores, newPublisher(t, br.Addrs()), nil)
		n := mutate(t, m, "stmts", 40)
		recs := consumeAtLeast(t, br.Addrs(), m.Stores, n, 20*time.Second)

		c := consumerOf(m, "sales", KafkaConfig{Brokers: br.Addrs(), Partitions: testPartitions, ClientID: "meshgate-test"})
		inputs := map[string]bool{}
		for _, in := range c.Reaction.Inputs {
			tp, err := topic(m, in)
			if err != nil {
				t.Fatal(err)
			}
			inputs[tp] = true
		}
		var msgs []*sarama.ConsumerMessage
		for _, r := range recs {
			if inputs[r.Topic] {
				msgs = append(msgs, &sarama.ConsumerMessage{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value})
			}
		}
		const want = 40 + 2*40 // orders, customers (create + update)
		if len(msgs) != want {
			t.Fatalf("%d events of sales' inputs on the topics, want %d", len(msgs), want)
		}

		// 40 statements is what the batch needs whatever its size; applied
		// event by event it took about five per event.
		const bound = 40
		ctx := context.WithValue(context.Background(), counted{}, true)
		before := count.n.Load()
		res, err := c.apply(ctx, msgs)
		if err != nil {
			t.Fatal(err)
		}
		stmts := count.n.Load() - before
		t.Logf("a batch of %d events took %d statements", len(msgs), stmts)
		if stmts > bound {
			t.Errorf("a batch of %d events took %d statements, want at most %d", len(msgs), stmts, bound)
		}
		if res.applied != want || res.dups != 0 {
			t.Fatalf("applied %d, skipped %d duplicates; want %d and 0", res.applied, res.dups, want)
		}
		var orders int
		if err := m.Store("sales").DB.NewRaw("SELECT COALESCE(SUM(orders), 0) FROM daily_revenue").Scan(ctx, &orders); err != nil {
			t.Fatal(err)
		}
		if orders != 40 {
			t.Fatalf("daily revenue counts %d orders, want 40", orders)
		}

		before = count.n.Load()
		res, err = c.apply(ctx, msgs)
		if err != nil {
			t.Fatal(err)
		}
		if stmts := count.n.Load() - before; stmts > bound {
			t.Errorf("the batch again took %d statements, want at most %d", stmts, bound)
		}
		if res.applied != 0 || res.dups != want {
			t.Fatalf("again: applied %d, skipped %d duplicates; want 0 and %d", res.applied, res.dups, want)
		}
	})
}

// flushPicky counts units like unitsReaction but rejects, in Flush, a
// batch holding a line of 13 units: a failure that names no event.
type flushPicky struct {
	next   products.Batch
	poison bool
}

func (b *flushPicky) Apply(ctx context.Context, tx *products.Tx, e *products.AuditEntry) error {
	var l orders.Line
	if err := json.Unmarshal([]byte(*e.After), &l); err != nil {
		return err
	}
	b.poison = b.poison || l.Quantity == 13
	return b.next.Apply(ctx, tx, e)
}

func (b *flushPicky) Flush(ctx context.Context, tx *products.Tx) error {
	if b.poison {
		return products.Invalid("quantity", "13 units cannot be counted")
	}
	return b.next.Flush(ctx, tx)
}

// TestFlushFailureIsolated: a reaction that fails in Flush, where no event
// is named, has the batch split in halves until the event it fails on is
// alone; that event is parked and every other one is applied once.
func TestFlushFailureIsolated(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		m := openMesh(t, b)
		br := startBroker(t, "127.0.0.1:0")
		k := KafkaConfig{Brokers: br.Addrs(), Partitions: 1, ClientID: "meshgate-test"}
		startRelays(t, m.Stores, newPublisher(t, br.Addrs()), nil)
		r := unitsReaction(t, m)
		units0 := r.NewBatch
		r.NewBatch = func() products.Batch { return &flushPicky{next: units0()} }
		want := placeLines(t, m, 1, 2, 3, 13, 4, 5, 6, 7) - 13
		// All the lines on the topic first: they come in one batch.
		consumeAtLeast(t, br.Addrs(), m.Stores, 1+1+8*2, 20*time.Second) // customer, item, orders and lines
		c := &Consumer{Store: m.Store("engagement"), Reaction: r, Topics: func(in products.Input) (string, error) { return topic(m, in) },
			Codec: testCodec, Kafka: k, Group: "meshgate.test-flush", MaxBackoff: 20 * time.Millisecond, Retries: 2}
		runConsumer(t, c)
		eventually(t, 30*time.Second, "seven lines applied and one parked", func() bool {
			return c.Applied() == 7 && c.DeadLettered()["orders"] == 1
		})
		if got := units(t, m); got != want {
			t.Fatalf("units %d, want %d (every line but the poison one)", got, want)
		}
		letters, err := m.Store("engagement").DeadLetters(context.Background(), products.DeadLetterQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(letters) != 1 || !strings.Contains(letters[0].Reason, "13 units cannot be counted") {
			t.Fatalf("dead letters: %+v, want the line of 13 units", letters)
		}
	})
}
