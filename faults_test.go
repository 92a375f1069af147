package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meshgate/meshgate/internal/meshtest"
	"github.com/meshgate/meshgate/products/pgtest"
	"github.com/meshgate/meshgate/streaming"
)

// These fault tests drive real gateway processes (two instances sharing
// stores, under the mixed load and subscribers of the multi-instance test)
// through an outage and end with the books reconciled: audit entries =
// records on Kafka by (product, sequence) = changes applied by each
// consumer, sales and stock as SQL over the sources say, no committed
// mutation lost, every subscriber's stream exact. The in-process variants
// of the broker faults, and the relay killed between publish and mark, are
// in streaming (books_test.go, outage_test.go, crash_test.go).

// faultBroker is an embedded broker on a fixed address that a test stops
// and starts again.
type faultBroker struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	e    *streaming.Embedded
}

func newFaultBroker(t *testing.T) *faultBroker {
	addr, err := meshtest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	b := &faultBroker{t: t, addr: addr}
	t.Cleanup(b.stop)
	return b
}

// start starts the broker on its address, keeping its log and offsets in
// dir ("" = in memory).
func (b *faultBroker) start(dir string) {
	b.t.Helper()
	e, err := streaming.StartEmbedded(b.addr, 3, dir)
	if err != nil {
		b.t.Fatal(err)
	}
	b.mu.Lock()
	b.e = e
	b.mu.Unlock()
}

func (b *faultBroker) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.e != nil {
		b.e.Close()
		b.e = nil
	}
}

// readiness polls every instance's /readyz until stop is closed and
// returns how often each status was seen.
func (c *cluster) readiness(stop <-chan struct{}) map[int]int {
	seen := map[int]int{}
	for {
		for _, base := range c.targets() {
			seen[meshtest.Ready(context.Background(), base)]++
		}
		select {
		case <-stop:
			return seen
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ready waits until every instance's /readyz answers 200.
func (c *cluster) ready(what string) {
	c.t.Helper()
	meshtest.Until(c.t, 2*time.Minute, 100*time.Millisecond, what, func() (bool, string) {
		for _, base := range c.targets() {
			if s := meshtest.Ready(context.Background(), base); s != 200 {
				return false, fmt.Sprintf("%s/readyz: %d", base, s)
			}
		}
		return true, ""
	})
}

// kafkaOutage runs the load on two instances, stops the broker for
// outage (with mutations going on: they must succeed, the relays keep
// them), starts it again, from dir or empty, and settles the books.
func kafkaOutage(t *testing.T, outage time.Duration, empty bool) {
	if testing.Short() {
		t.Skip("starts gateway processes")
	}
	pg := pgtest.New(t)
	br := newFaultBroker(t)
	dir := t.TempDir()
	br.start(dir)
	c := newCluster(t, 2, pg.DSN, []string{br.addr})
	c.startLoad(4)
	c.subscribed()
	c.mutations(60, "before the outage")

	br.stop()
	down := time.Now()
	stop := make(chan struct{})
	seen := make(chan map[int]int)
	go func() { seen <- c.readiness(stop) }()
	c.mutations(60, "with Kafka down")
	meshtest.Until(t, time.Minute, 100*time.Millisecond, "changes waiting in the outbox", func() (bool, string) {
		n, err := meshtest.Backlog(context.Background(), c.m)
		return err == nil && n > 0, fmt.Sprintf("backlog %d (%v)", n, err)
	})
	// The outage lasts its time whatever the load does meanwhile.
	time.Sleep(time.Until(down.Add(outage)))
	close(stop)
	statuses := <-seen
	t.Logf("Kafka down for %v: /readyz answered %v; %s", time.Since(down).Round(time.Millisecond), statuses, c.load.Summary())
	if statuses[503] == 0 {
		t.Errorf("/readyz never answered 503 while Kafka was down: %v", statuses)
	}

	if empty {
		br.start(t.TempDir()) // a new cluster: the log and the offsets are lost
	} else {
		br.start(dir)
	}
	c.mutations(60, "after Kafka came back")
	c.ready("/readyz to answer 200 with Kafka back")
	c.settle("transport")
}

// TestFaultKafkaUnreachable: the broker is unreachable for 30 s under load
// and comes back on its address with its log and the groups' offsets.
func TestFaultKafkaUnreachable(t *testing.T) {
	kafkaOutage(t, 30*time.Second, false)
}

// TestFaultKafkaRestartedEmpty: the broker dies under load and comes back
// empty (its log lost, a new cluster): the relays publish every audit log
// again, the consumer groups start over and skip what they applied.
func TestFaultKafkaRestartedEmpty(t *testing.T) {
	kafkaOutage(t, 3*time.Second, true)
}

// TestFaultPostgresRestart: the PostgreSQL server of the stores (a private
// one: the shared test server is never restarted) goes down under load and
// comes back. While it is down requests touching it fail and /readyz says
// so; afterwards the instances serve again by themselves, and no mutation
// that reported success is lost.
func TestFaultPostgresRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server and gateway processes")
	}
	pg := meshtest.StartPostgres(t)
	br, err := streaming.StartEmbedded("127.0.0.1:0", 3, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(br.Close)
	c := newCluster(t, 2, pgtest.NewSet(pg.DSN).DSN, br.Addrs())
	c.startLoad(4)
	c.subscribed()
	c.mutations(60, "before the restart")

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	meshtest.Until(t, time.Minute, 50*time.Millisecond, "every /readyz to report the outage", func() (bool, string) {
		for _, base := range c.targets() {
			if s := meshtest.Ready(context.Background(), base); s == 200 {
				return false, base + "/readyz: 200"
			}
		}
		return true, ""
	})
	failed := func() int {
		n := 0
		for k, v := range c.load.Outcomes() {
			if len(k) < 3 || k[len(k)-3:] != " ok" {
				n += v
			}
		}
		return n
	}
	before := failed()
	meshtest.Until(t, time.Minute, 50*time.Millisecond, "requests to fail while PostgreSQL is down", func() (bool, string) {
		return failed() >= before+10, c.load.Summary()
	})
	// Down for 5 s at least, long enough for the relays, consumers and
	// subscription hub to fail and retry too.
	time.Sleep(time.Until(down.Add(5 * time.Second)))
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL down for %v; %s", time.Since(down).Round(time.Millisecond), c.load.Summary())
	c.ready("/readyz to answer 200 with PostgreSQL back")
	for i, g := range c.gws {
		if err := g.Exited(); err != nil {
			t.Fatalf("instance %d exited: %v", i, err)
		}
	}
	c.mutations(100, "after PostgreSQL came back")
	// During the outage requests fail as unavailable (503, UNAVAILABLE),
	// never as internal errors; none that succeeded may be lost.
	c.settle("transport", "timeout", "UNAVAILABLE", "HTTP 503")
}
