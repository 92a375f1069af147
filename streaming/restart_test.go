package streaming

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// TestRestartRepublishesHistory: the embedded broker keeps its log in
// memory. After a restart (new mesh handles, new broker on the same
// address, Republish as server.go does, new relays) kcat sees the whole
// history of every product — sequences 1..N, each once — and the events
// of the first run again with the same bytes.
func TestRestartRepublishesHistory(t *testing.T) {
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
		for _, s := range m.Stores {
			if err := s.Republish(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if p := pending(t, m.Stores); p != int64(n) {
			t.Fatalf("after Republish %d entries are unpublished, want %d", p, n)
		}
		startRelays(t, m.Stores, newPublisher(t, br.Addrs()), nil)
		n += mutate(t, m, "run2", 2)
		recs := kcatAtLeast(t, addr, m.Stores, n, 15*time.Second)
		checkExactlyOnce(t, recs, auditLog(t, m.Stores))
		checkOrderPerKey(t, recs)

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
