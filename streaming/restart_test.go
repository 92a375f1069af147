package streaming

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products"
)

// TestRestartOverEmptyBrokerRepublishes: after a restart over an empty
// broker (new mesh handles, a new in-memory broker on the same address, new
// relays, nothing else) the relays find a cluster the logs were not
// published to and publish the whole history again by themselves: kcat sees
// every product's sequences 1..N, each once, in order per key, and the
// events of the first run again with the same bytes.
func TestRestartOverEmptyBrokerRepublishes(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		kcat(t)
		addr := freeAddr(t)

		// First run.
		m := openMesh(t, b)
		br := startBroker(t, addr)
		pub := newPublisher(t, br.Addrs())
		relays := startRelays(t, m.Stores, pub, nil)
		n := mutate(t, m, "run1", 4)
		first := kcatAtLeast(t, addr, m.Stores, n, 15*time.Second)
		checkExactlyOnce(t, first, auditLog(t, m.Stores))
		relays.Stop()
		pub.Close()
		br.Close()
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}

		// Second run: the broker starts empty.
		m = openMesh(t, b)
		br = startBroker(t, addr)
		if recs, err := readTopics(br.Addrs(), allTopics(m.Stores)); err != nil || len(recs) != 0 {
			t.Fatalf("new embedded broker holds %d records (%v), want none", len(recs), err)
		}
		relays = startRelays(t, m.Stores, newPublisher(t, br.Addrs()), nil)
		n += mutate(t, m, "run2", 2)
		recs := kcatAtLeast(t, addr, m.Stores, n, 15*time.Second)
		checkExactlyOnce(t, recs, auditLog(t, m.Stores))
		checkOrderPerKey(t, recs)
		if relays.Restarts() != int64(len(m.Stores)) {
			t.Errorf("relays started over %d times, want once per product (%d)", relays.Restarts(), len(m.Stores))
		}

		again := map[id]record{}
		for _, r := range recs {
			again[r.ID()] = r
		}
		for _, r := range first {
			a, ok := again[r.ID()]
			if !ok {
				continue // reported by checkExactlyOnce
			}
			if a.Topic != r.Topic || !bytes.Equal(a.Key, r.Key) || !bytes.Equal(a.Value, r.Value) {
				t.Errorf("%v republished differently:\n first %s %s %s\n again %s %s %s", r.ID(), r.Topic, r.Key, r.Value, a.Topic, a.Key, a.Value)
			}
		}
	})
}

// TestRestartOverBrokerDataDirPublishesNothingTwice: the embedded broker
// with a data directory keeps its log and the consumer groups' offsets
// across a restart (it comes back as the same cluster). After a restart of
// everything — stores, broker, relays, a reaction's consumer — nothing is
// published again, the consumer resumes from its committed offsets (no
// redelivery), and only the new changes travel.
func TestRestartOverBrokerDataDirPublishesNothingTwice(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		dir := filepath.Join(t.TempDir(), "kafka")
		start := func() (*products.Mesh, *Embedded, *relayGroup, *Consumer, func()) {
			m := openMesh(t, b)
			br, err := StartEmbedded("127.0.0.1:0", testPartitions, dir)
			if err != nil {
				t.Fatal(err)
			}
			pub := newPublisher(t, br.Addrs())
			relays := startRelays(t, m.Stores, pub, nil)
			k := KafkaConfig{Brokers: br.Addrs(), Partitions: testPartitions, ClientID: "meshgate-test"}
			c := consumerOf(m, "inventory", k) // inventory reacts to orders
			c.MaxBackoff = 50 * time.Millisecond
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { c.Run(ctx) })
			stop := func() {
				cancel()
				wg.Wait()
				relays.Stop()
				pub.Close()
				br.Close()
				m.Close()
			}
			return m, br, relays, c, stop
		}
		m, _, _, c, stop := start()
		mutate(t, m, "run1", 4)
		eventually(t, 20*time.Second, "inventory to apply the orders", func() bool { return c.Applied() == 4 })
		eventually(t, 10*time.Second, "the relays to publish everything", func() bool { return pending(t, m.Stores) == 0 })
		stop()

		m, br, relays, c, stop := start()
		defer stop()
		before := 0
		for _, es := range auditLog(t, m.Stores) {
			before += len(es)
		}
		eventually(t, 10*time.Second, "the relays to find nothing to publish", func() bool {
			return pending(t, m.Stores) == 0
		})
		mutate(t, m, "run2", 2)
		eventually(t, 20*time.Second, "inventory to apply the new orders", func() bool { return c.Applied() == 2 })
		log := auditLog(t, m.Stores)
		after := 0
		for _, es := range log {
			after += len(es)
		}
		recs := consumeAtLeast(t, br.Addrs(), m.Stores, after, 15*time.Second)
		checkExactlyOnce(t, recs, log)
		checkOrderPerKey(t, recs)
		if relays.Restarts() != 0 || relays.Published() != int64(after-before) {
			t.Errorf("after the restart the relays started over %d times and published %d entries; want 0 and the %d new ones",
				relays.Restarts(), relays.Published(), after-before)
		}
		if d := c.Duplicates(); d != 0 {
			t.Errorf("the consumer was redelivered %d changes it had applied before the restart; want none", d)
		}
		lags, err := c.Lag(context.Background(), m.Store)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lags {
			if l.Pending != 0 {
				t.Errorf("lag of %s behind %s is %d, want 0", l.Product, l.Source, l.Pending)
			}
		}
	})
}
