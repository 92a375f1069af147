package streaming

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/orders"
)

// unitsReaction counts the units of every order line into one row of a
// table of the engagement store: an effect that is NOT idempotent by itself
// (applying a line twice counts it twice), so only the consumer's
// deduplication keeps it exact.
func unitsReaction(t testing.TB, m *products.Mesh) *products.Reaction {
	t.Helper()
	ctx := context.Background()
	s := m.Store("engagement")
	for _, q := range []string{
		"CREATE TABLE test_units (id BIGINT PRIMARY KEY, units BIGINT NOT NULL)",
		"INSERT INTO test_units (id, units) VALUES (1, 0)",
	} {
		if _, err := s.DB.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return &products.Reaction{
		Inputs: []products.Input{{Product: "orders", Entity: "OrderLine"}},
		NewBatch: func() products.Batch {
			return products.Each(func(ctx context.Context, tx *products.Tx, e *products.AuditEntry) error {
				var l orders.Line
				if err := json.Unmarshal([]byte(*e.After), &l); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, "UPDATE test_units SET units = units + ? WHERE id = 1", l.Quantity)
				return err
			})
		},
	}
}

func units(t testing.TB, m *products.Mesh) int64 {
	t.Helper()
	var n int64
	if err := m.Store("engagement").DB.NewRaw("SELECT units FROM test_units WHERE id = 1").Scan(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestExactlyOnceAcrossLostOffsetCommit: a consumer applies every change
// of its input and then loses its offset commits, as a process that dies
// between applying a batch and committing its offsets would. Restarted in
// the same group, it gets every change again; the reaction (a counter that
// adds each line's units, not idempotent by itself) still counts each
// change once, because the applied (source, sequence) pairs were recorded
// in the same transaction as the effect.
func TestExactlyOnceAcrossLostOffsetCommit(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		m := openMesh(t, b)
		br := startBroker(t, "127.0.0.1:0")
		startRelays(t, m.Stores, newPublisher(t, br.Addrs()), nil)
		r := unitsReaction(t, m)
		n := mutate(t, m, "units", 6) // 6 orders of two lines: 1 + 2 units each
		const want = 6 * 3
		k := KafkaConfig{Brokers: br.Addrs(), Partitions: testPartitions, ClientID: "meshgate-test"}
		consumer := func() (*Consumer, func()) {
			c := &Consumer{Store: m.Store("engagement"), Reaction: r, Topics: func(in products.Input) (string, error) { return topic(m, in) },
				Codec: testCodec, Kafka: k, Group: "meshgate.test-units", MaxBackoff: 50 * time.Millisecond, Batch: 4}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { c.Run(ctx) })
			return c, func() { cancel(); wg.Wait() }
		}
		consumeAtLeast(t, br.Addrs(), m.Stores, n, 15*time.Second)

		first, stop := consumer()
		eventually(t, 20*time.Second, "the lines to be counted", func() bool { return first.Applied() == 12 })
		stop()
		if got := units(t, m); got != want {
			t.Fatalf("counted %d units, want %d", got, want)
		}

		// The crash: the group's committed offsets are gone.
		cfg, err := k.Sarama()
		if err != nil {
			t.Fatal(err)
		}
		admin, err := sarama.NewClusterAdmin(k.Brokers, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		tp, err := topic(m, r.Inputs[0])
		if err != nil {
			t.Fatal(err)
		}
		for p := range int32(testPartitions) {
			if err := admin.DeleteConsumerGroupOffset("meshgate.test-units", tp, p); err != nil {
				t.Fatalf("delete the committed offset of partition %d: %v", p, err)
			}
		}

		again, stop := consumer()
		defer stop()
		eventually(t, 20*time.Second, "every line to be redelivered", func() bool { return again.Applied()+again.Duplicates() == 12 })
		if got := units(t, m); got != want || again.Applied() != 0 {
			t.Fatalf("after redelivery: %d units counted, %d changes applied again; want %d and 0", got, again.Applied(), want)
		}
	})
}
