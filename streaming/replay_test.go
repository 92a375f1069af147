package streaming

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/orders"
	"github.com/meshgate/meshgate/products/sales"
)

// salesConsumer returns the consumer of the sales reaction on addrs.
func salesConsumer(m *products.Mesh, addrs []string) *Consumer {
	return consumerOf(m, "sales", KafkaConfig{Brokers: addrs, Partitions: testPartitions, ClientID: "meshgate-test"})
}

func sourcesOf(m *products.Mesh) map[string]*products.Store {
	out := map[string]*products.Store{}
	for _, s := range m.Stores {
		out[s.Product.Name] = s
	}
	return out
}

// progressLog records Replay's progress reports.
type progressLog struct {
	mu  sync.Mutex
	got []ReplayProgress
}

func (p *progressLog) add(r ReplayProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, r)
}

func (p *progressLog) last(phase string) (ReplayProgress, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.got) - 1; i >= 0; i-- {
		if p.got[i].Phase == phase {
			return p.got[i], true
		}
	}
	return ReplayProgress{}, false
}

// TestReplayThroughPrivateBroker: with an empty broker of its own, the
// replay publishes the inputs' history from the audit logs itself (the
// relays publish nothing and the stores' publishing state is untouched)
// and rebuilds sales exactly.
func TestReplayThroughPrivateBroker(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		m := openMesh(t, b)
		custs, items, _ := shop(t, m, 100)
		ctx := context.Background()
		for i := range 12 {
			o, err := orders.New(m).Place(ctx, custs[i%len(custs)], ordersLines(items, i), "EUR")
			if err != nil {
				t.Fatal(err)
			}
			if i%4 == 0 {
				if _, err := orders.New(m).Cancel(ctx, o.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		sources := []*products.Store{m.Store("customers"), m.Store("orders"), m.Store("inventory")}
		backlog := pending(t, sources)
		br := startBroker(t, "127.0.0.1:0")
		var progress progressLog
		err := Replay(ctx, salesConsumer(m, br.Addrs()), sales.Reset, sourcesOf(m),
			ReplayOptions{Publish: newPublisher(t, br.Addrs()), Progress: progress.add})
		if err != nil {
			t.Fatal(err)
		}
		if d := salesBooks(t, m); d != "" {
			t.Errorf("sales after the replay:\n%s", d)
		}
		pub, ok1 := progress.last("publishing")
		app, ok2 := progress.last("applying")
		if !ok1 || !ok2 || pub.Done != pub.Total || app.Done != app.Total || app.Total == 0 {
			t.Errorf("progress: last publishing %+v, last applying %+v; want both complete", pub, app)
		}
		if got := pending(t, sources); got != backlog {
			t.Errorf("the replay changed the outboxes: %d unpublished entries, was %d", got, backlog)
		}
	})
}

// TestReplayFailsWhenTopicsLostTheirBeginning: the topics hold only the
// later part of the orders log (retention, a broker that lost its log and
// was not republished to). The replay does not wait forever: once it has
// read the topics to their end it fails, saying what is missing and what
// to do.
func TestReplayFailsWhenTopicsLostTheirBeginning(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		m := openMesh(t, b)
		custs, items, _ := shop(t, m, 100)
		ctx := context.Background()
		for i := range 10 {
			if _, err := orders.New(m).Place(ctx, custs[i%len(custs)], ordersLines(items, i), "EUR"); err != nil {
				t.Fatal(err)
			}
		}
		br := startBroker(t, "127.0.0.1:0")
		pub := newPublisher(t, br.Addrs())
		cluster, err := pub.Cluster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The first half of the orders log never reaches the topics.
		if _, err := m.Store("orders").Outbox(ctx, 12, cluster, func(context.Context, []products.AuditEntry) error { return nil }); err != nil {
			t.Fatal(err)
		}
		startRelays(t, m.Stores, pub, nil)
		start := time.Now()
		err = Replay(ctx, salesConsumer(m, br.Addrs()), sales.Reset, sourcesOf(m), ReplayOptions{Stall: 20 * time.Second})
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "no longer hold the beginning") || !strings.Contains(err.Error(), "orders:") ||
			!strings.Contains(err.Error(), "without --kafka-brokers") {
			t.Fatalf("replay over topics without their beginning: %v; want an error saying so and what to do", err)
		}
		if took > 15*time.Second {
			t.Errorf("the replay failed after %v; it should notice once the topics are read", took)
		}
		t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
	})
}

// TestReplayFailsWithoutKafka: with Kafka unreachable the relays cannot
// publish, and the replay fails after the stall bound instead of waiting.
func TestReplayFailsWithoutKafka(t *testing.T) {
	t.Parallel()
	m := openMesh(t, sqliteBackend(t))
	custs, items, _ := shop(t, m, 100)
	if _, err := orders.New(m).Place(context.Background(), custs[0], ordersLines(items, 0), "EUR"); err != nil {
		t.Fatal(err)
	}
	addr := []string{freeAddr(t)}
	startRelays(t, m.Stores, newPublisher(t, addr), nil)
	var progress progressLog
	err := Replay(context.Background(), salesConsumer(m, addr), sales.Reset, sourcesOf(m),
		ReplayOptions{Stall: 300 * time.Millisecond, Progress: progress.add})
	if err == nil || !strings.Contains(err.Error(), "not published after") {
		t.Fatalf("replay without Kafka: %v; want an error saying the logs are not published", err)
	}
	if w, ok := progress.last("waiting"); !ok || w.Total == 0 {
		t.Errorf("no progress line while waiting for the relays: %+v", progress.got)
	}
}

// ordersLines returns one or two order lines over items.
func ordersLines(items []int64, i int) []orders.LineInput {
	lines := []orders.LineInput{{ItemID: items[i%len(items)], Quantity: 1 + i%3}}
	if i%2 == 0 {
		lines = append(lines, orders.LineInput{ItemID: items[(i+1)%len(items)], Quantity: 1})
	}
	return lines
}
