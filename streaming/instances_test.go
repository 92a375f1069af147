package streaming

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
)

// recordingSender passes messages on and remembers the (product, sequence)
// of every message it delivered.
type recordingSender struct {
	next Sender
	mu   sync.Mutex
	sent []id
}

func (s *recordingSender) Cluster(ctx context.Context) (string, error) { return s.next.Cluster(ctx) }

func (s *recordingSender) Send(ctx context.Context, cluster string, msgs []*sarama.ProducerMessage) error {
	if err := s.next.Send(ctx, cluster, msgs); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		var r record
		r.Value, _ = m.Value.Encode()
		if err := r.decode(); err != nil {
			panic(err)
		}
		s.sent = append(s.sent, r.ID())
	}
	return nil
}

func (s *recordingSender) Sent() []id {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]id(nil), s.sent...)
}

// TestTwoInstancesPublishOnce: two gateway instances (two sets of store
// handles on the same PostgreSQL schemas, each with its own publisher and
// relays) write concurrently; every entry is published by exactly one of
// them, exactly once.
func TestTwoInstancesPublishOnce(t *testing.T) {
	t.Parallel()
	b := postgresBackend(t)
	one, two := openMesh(t, b), openMesh(t, b)
	br := startBroker(t, "127.0.0.1:0")
	senders := []*recordingSender{{next: newPublisher(t, br.Addrs())}, {next: newPublisher(t, br.Addrs())}}
	small := func(r *Relay) { r.Batch, r.Poll = 4, 5*time.Millisecond }
	relays := []*relayGroup{startRelays(t, one.Stores, senders[0], small), startRelays(t, two.Stores, senders[1], small)}

	const writers, perWriter = 4, 15
	var wg sync.WaitGroup
	for w := range writers {
		store := []customers.Store{customers.New(one), customers.New(two)}[w%2]
		wg.Go(func() {
			for i := range perWriter {
				c, err := store.Create(context.Background(), customers.Input{Name: "Writer", Email: fmt.Sprintf("w%d-%d@example.org", w, i), Country: "SE", Segment: customers.SegmentConsumer})
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := store.Update(context.Background(), c.ID, map[string]any{"country": "FI"}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	n := 2 * writers * perWriter
	eventually(t, 15*time.Second, "both instances' relays to publish everything", func() bool {
		return relays[0].Published()+relays[1].Published() >= int64(n) && pending(t, one.Stores) == 0
	})
	recs := consumeAtLeast(t, br.Addrs(), one.Stores, n, 15*time.Second)
	checkExactlyOnce(t, recs, auditLog(t, one.Stores))
	checkOrderPerKey(t, recs)

	sentBy := map[id][]int{}
	for i, s := range senders {
		for _, pair := range s.Sent() {
			sentBy[pair] = append(sentBy[pair], i+1)
		}
	}
	if len(sentBy) != n {
		t.Errorf("%d distinct entries sent, want %d", len(sentBy), n)
	}
	for pair, by := range sentBy {
		if len(by) != 1 {
			t.Errorf("%v sent %d times, by instances %v", pair, len(by), by)
		}
	}
	p1, p2 := relays[0].Published(), relays[1].Published()
	t.Logf("instance 1 published %d entries, instance 2 published %d", p1, p2)
	if p1+p2 != int64(n) {
		t.Errorf("instances published %d+%d entries, want %d in all", p1, p2, n)
	}
}

// outbox runs one outbox round of s for the test cluster and returns how
// many entries it published.
func outbox(ctx context.Context, s *products.Store, publish products.Publish) (int, error) {
	round, err := s.Outbox(ctx, 10, "test-cluster", publish)
	return round.Published, err
}

// TestOutboxLockExcludesSecondInstance: while one instance is inside
// Outbox (published, not yet marked), a second instance's Outbox on the same
// PostgreSQL store publishes nothing and returns at once.
func TestOutboxLockExcludesSecondInstance(t *testing.T) {
	t.Parallel()
	b := postgresBackend(t)
	one, two := openMesh(t, b), openMesh(t, b)
	ctx := context.Background()
	if _, err := customers.New(one).Create(ctx, customers.Input{Name: "Kim Lee", Email: "kim@example.org", Country: "DE", Segment: customers.SegmentConsumer}); err != nil {
		t.Fatal(err)
	}
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		n, err := outbox(ctx, one.Store("customers"), func(ctx context.Context, entries []products.AuditEntry) error {
			close(inside)
			<-release
			return nil
		})
		if err == nil && n != 1 {
			err = fmt.Errorf("first instance published %d entries, want 1", n)
		}
		done <- err
	}()
	select {
	case <-inside:
	case <-time.After(10 * time.Second):
		t.Fatal("first instance never reached publish")
	}
	start := time.Now()
	n, err := outbox(ctx, two.Store("customers"), func(ctx context.Context, entries []products.AuditEntry) error {
		t.Errorf("second instance got %d entries to publish while the first held the outbox", len(entries))
		return nil
	})
	if err != nil || n != 0 {
		t.Errorf("second instance: Outbox = %d, %v; want 0, nil", n, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second instance waited %v for the lock; it must return at once", d)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Once the first committed, nothing is left for the second.
	n, err = outbox(ctx, two.Store("customers"), func(ctx context.Context, entries []products.AuditEntry) error {
		t.Errorf("second instance republished %d marked entries", len(entries))
		return nil
	})
	if err != nil || n != 0 {
		t.Errorf("second instance after the first: Outbox = %d, %v; want 0, nil", n, err)
	}
}

// TestOutboxLockIsPerStore: the outbox lock excludes instances of the same
// store only. Two meshes in different schemas of one database (two
// deployments, or two test runs) each publish their own product's log even
// while the other holds its outbox.
func TestOutboxLockIsPerStore(t *testing.T) {
	t.Parallel()
	one, two := openMesh(t, postgresBackend(t)), openMesh(t, postgresBackend(t))
	ctx := context.Background()
	for i, m := range []*products.Mesh{one, two} {
		if _, err := customers.New(m).Create(ctx, customers.Input{Name: "Kim Lee", Email: fmt.Sprintf("kim%d@example.org", i), Country: "DE", Segment: customers.SegmentConsumer}); err != nil {
			t.Fatal(err)
		}
	}
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := outbox(ctx, one.Store("customers"), func(ctx context.Context, entries []products.AuditEntry) error {
			close(inside)
			<-release
			return nil
		})
		done <- err
	}()
	defer func() {
		close(release)
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-inside:
	case <-time.After(10 * time.Second):
		t.Fatal("first mesh never reached publish")
	}
	n, err := outbox(ctx, two.Store("customers"), func(ctx context.Context, entries []products.AuditEntry) error { return nil })
	if err != nil || n != 1 {
		t.Errorf("other mesh's Outbox = %d, %v while the first held its own outbox; want 1, nil", n, err)
	}
}
