package streaming

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// crashingSender delivers the first batch and then reports a failure, as a
// process that dies after Kafka acknowledged a batch and before the outbox
// marked it: the entries stay unpublished. Later batches pass.
type crashingSender struct {
	next Sender
	// die makes every later Send fail without sending: the process is
	// gone. after, if set, runs once after the lost batch.
	die     bool
	after   func()
	mu      sync.Mutex
	crashed bool
	lost    int
}

var errCrash = errors.New("simulated crash between publish and mark")

func (s *crashingSender) Cluster(ctx context.Context) (string, error) { return s.next.Cluster(ctx) }

func (s *crashingSender) Send(ctx context.Context, cluster string, msgs []*sarama.ProducerMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.crashed && s.die {
		return errCrash
	}
	if err := s.next.Send(ctx, cluster, msgs); err != nil {
		return err
	}
	if s.crashed {
		return nil
	}
	s.crashed, s.lost = true, len(msgs)
	if s.after != nil {
		s.after()
	}
	return errCrash
}

func (s *crashingSender) Lost() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost
}

// checkDuplicates checks that duplicates are byte-for-byte the same event
// (same key, value and ce_id, so the same (product, sequence)), that a
// consumer deduplicating by (product, sequence) sees every audit entry
// exactly once in order per key, and returns how many records were
// duplicates.
func checkDuplicates(t *testing.T, recs []record) (deduped []record, dups int) {
	t.Helper()
	first := map[id]record{}
	for _, r := range recs {
		f, ok := first[r.ID()]
		if !ok {
			first[r.ID()] = r
			deduped = append(deduped, r)
			continue
		}
		dups++
		if r.Topic != f.Topic || !bytes.Equal(r.Key, f.Key) || !bytes.Equal(r.Value, f.Value) || r.Headers["ce_id"] != f.Headers["ce_id"] {
			t.Errorf("duplicate of %v differs: %s %s %s vs %s %s %s", r.ID(), r.Topic, r.Key, r.Value, f.Topic, f.Key, f.Value)
		}
		if r.Partition != f.Partition || r.Offset <= f.Offset {
			t.Errorf("duplicate of %v at %d@%d, first at %d@%d", r.ID(), r.Partition, r.Offset, f.Partition, f.Offset)
		}
	}
	return deduped, dups
}

// TestCrashBetweenPublishAndMark: a batch reaches Kafka but is not marked
// published; the relay publishes it again. The duplicates carry the same
// (product, sequence), and a consumer deduplicating by that pair sees each
// change exactly once.
func TestCrashBetweenPublishAndMark(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		m := openMesh(t, b)
		br := startBroker(t, "127.0.0.1:0")
		n := mutate(t, m, "before", 4)
		// Only the customers relay crashes; the first batch holds all of
		// the customers' entries written so far.
		customersLog := len(auditLog(t, m.Stores)["customers"])
		sender := &crashingSender{next: newPublisher(t, br.Addrs())}
		relays := startRelays(t, m.Stores[:1], sender, nil)
		startRelays(t, m.Stores[1:], newPublisher(t, br.Addrs()), nil)
		eventually(t, 10*time.Second, "the crash", func() bool { return sender.Lost() > 0 })
		n += mutate(t, m, "after", 2)

		recs := consumeAtLeast(t, br.Addrs(), m.Stores, n+customersLog, 15*time.Second)
		if sender.Lost() != customersLog {
			t.Errorf("the crashed batch held %d entries, want %d", sender.Lost(), customersLog)
		}
		if relays.Failures() != 1 {
			t.Errorf("customers relay failed %d times, want 1", relays.Failures())
		}
		deduped, dups := checkDuplicates(t, recs)
		if dups != customersLog {
			t.Errorf("%d duplicates, want %d (the crashed batch)", dups, customersLog)
		}
		checkExactlyOnce(t, deduped, auditLog(t, m.Stores))
		checkOrderPerKey(t, deduped)
	})
}

// TestCrashThenRestart: the process dies right after Kafka acknowledged a
// batch; a new instance on the same stores publishes the batch again with
// the same (product, sequence).
func TestCrashThenRestart(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		m := openMesh(t, b)
		br := startBroker(t, "127.0.0.1:0")
		n := mutate(t, m, "before", 3)
		ctx, crash := context.WithCancel(context.Background())
		defer crash()
		sender := &crashingSender{next: newPublisher(t, br.Addrs()), die: true, after: crash}
		relays := startRelays(t, m.Stores, sender, func(r *Relay) {
			r.Batch = 2
		})
		<-ctx.Done()
		relays.Stop()
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		lost := sender.Lost()
		if lost == 0 {
			t.Fatal("the crashed batch was empty")
		}

		m = openMesh(t, b)
		startRelays(t, m.Stores, newPublisher(t, br.Addrs()), nil)
		n += mutate(t, m, "after", 2)
		recs := consumeAtLeast(t, br.Addrs(), m.Stores, n+lost, 15*time.Second)
		deduped, dups := checkDuplicates(t, recs)
		if dups != lost {
			t.Errorf("%d duplicates, want %d (the crashed batch)", dups, lost)
		}
		checkExactlyOnce(t, deduped, auditLog(t, m.Stores))
		checkOrderPerKey(t, deduped)
	})
}
