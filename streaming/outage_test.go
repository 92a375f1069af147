package streaming

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/inventory"
	"github.com/meshgate/meshgate/products/orders"
)

// mutate runs a mix of mutations on every product but engagement: n new
// customers, an update of each, n items and n orders of two lines each. It
// returns how many audit entries they wrote.
func mutate(t testing.TB, m *products.Mesh, tag string, n int) int {
	t.Helper()
	ctx := products.WithRequestID(products.WithActor(context.Background(), "tester"), tag)
	var items []int64
	for i := range n {
		it, err := inventory.New(m).Create(ctx, inventory.Input{SKU: fmt.Sprintf("%s-SKU-%d", tag, i), Name: "Item " + tag, Category: "Test", Price: products.Cents(int64(i)*100 + 50), Stock: 100})
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, it.ID)
	}
	for i := range n {
		c, err := customers.New(m).Create(ctx, customers.Input{Name: "Customer " + tag, Email: fmt.Sprintf("%s-%d@example.org", tag, i), Country: "DE", Segment: customers.SegmentConsumer})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := customers.New(m).Update(ctx, c.ID, map[string]any{"segment": customers.SegmentEnterprise}); err != nil {
			t.Fatal(err)
		}
		lines := []orders.LineInput{{ItemID: items[i], Quantity: 1}, {ItemID: items[(i+1)%n], Quantity: 2}}
		if n == 1 {
			lines = lines[:1]
		}
		if _, err := orders.New(m).Place(ctx, c.ID, lines, "EUR"); err != nil {
			t.Fatal(err)
		}
	}
	entries := n + 2*n + n // items, customers (create + update), orders
	if n == 1 {
		return entries + 1
	}
	return entries + 2*n // order lines
}

// TestKafkaOutage: while Kafka is unreachable mutations succeed and the
// relays retry; once a broker listens on the address, every event arrives
// exactly once by (product, sequence), in order per key.
func TestKafkaOutage(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		m := openMesh(t, b)
		addr := freeAddr(t)
		relays := startRelays(t, m.Stores, newPublisher(t, []string{addr}), nil)

		start := time.Now()
		n := mutate(t, m, "down", 10)
		took := time.Since(start)
		t.Logf("%d audit entries written in %v with Kafka down", n, took)
		if took > 10*time.Second {
			t.Errorf("mutations took %v with Kafka down; they must not wait for Kafka", took)
		}
		eventually(t, 5*time.Second, "the relays to retry", func() bool { return relays.Failures() >= 4 })
		if p := pending(t, m.Stores); p != int64(n) {
			t.Fatalf("%d entries unpublished with Kafka down, want %d", p, n)
		}
		if relays.Published() != 0 {
			t.Fatalf("relays published %d entries with Kafka down", relays.Published())
		}

		br := startBroker(t, addr)
		n += mutate(t, m, "up", 3)
		recs := consumeAtLeast(t, br.Addrs(), m.Stores, n, 20*time.Second)
		checkExactlyOnce(t, recs, auditLog(t, m.Stores))
		checkOrderPerKey(t, recs)
		if relays.Published() != int64(n) {
			t.Errorf("relays published %d entries, want %d", relays.Published(), n)
		}
		t.Logf("%d failed attempts while Kafka was down; %d entries published once it was back", relays.Failures(), relays.Published())
	})
}

// TestKafkaLostMidRun: the broker goes away while the relays are connected;
// mutations keep succeeding, and once a broker listens on the address again
// everything arrives exactly once, in order per key. The new broker is
// empty (a new cluster, its log lost), so the relays publish the whole log
// to it again, the history before the changes made during the outage.
func TestKafkaLostMidRun(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		m := openMesh(t, b)
		addr := freeAddr(t)
		br := startBroker(t, addr)
		relays := startRelays(t, m.Stores, newPublisher(t, br.Addrs()), nil)
		n := mutate(t, m, "up", 2)
		consumeAtLeast(t, br.Addrs(), m.Stores, n, 15*time.Second)
		published := relays.Published()
		restarts := relays.Restarts()

		br.Close()
		down := mutate(t, m, "down", 3)
		eventually(t, 10*time.Second, "the relays to notice Kafka is gone", func() bool { return relays.Failures() > 0 })
		if p := pending(t, m.Stores); p != int64(down) {
			t.Fatalf("%d entries unpublished with Kafka down, want %d", p, down)
		}

		br = startBroker(t, addr)
		recs := consumeAtLeast(t, br.Addrs(), m.Stores, n+down, 20*time.Second)
		checkExactlyOnce(t, recs, auditLog(t, m.Stores))
		checkOrderPerKey(t, recs)
		if got := relays.Published() - published; got != int64(n+down) {
			t.Errorf("relays published %d entries to the new broker, want the whole log, %d", got, n+down)
		}
		if got := relays.Restarts() - restarts; got != int64(len(m.Stores)) {
			t.Errorf("relays started over %d times, want once per product (%d)", got, len(m.Stores))
		}
	})
}

// TestRelayWakesOnCommit: with a poll interval far beyond the test's
// deadline, a commit in this process alone gets its entries published, and
// a backlog larger than a batch is drained without waiting for the poll.
func TestRelayWakesOnCommit(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		m := openMesh(t, b)
		br := startBroker(t, "127.0.0.1:0")
		relays := startRelays(t, m.Stores, newPublisher(t, br.Addrs()), func(r *Relay) { r.Poll, r.Batch = time.Hour, 3 })
		start := time.Now()
		n := mutate(t, m, "wake", 4)
		recs := consumeAtLeast(t, br.Addrs(), m.Stores, n, 5*time.Second)
		t.Logf("%d entries published %v after the first commit (poll interval 1h)", len(recs), time.Since(start).Round(time.Millisecond))
		checkExactlyOnce(t, recs, auditLog(t, m.Stores))
		if relays.Published() != int64(n) {
			t.Errorf("published %d, want %d", relays.Published(), n)
		}
	})
}
