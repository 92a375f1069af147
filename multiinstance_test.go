package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgate/meshgate/internal/meshtest"
	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/pgtest"
	"github.com/meshgate/meshgate/streaming"
)

// cluster is several meshgate processes sharing PostgreSQL stores and a
// Kafka broker that outlives them, with mixed load and subscribers on
// them.
type cluster struct {
	t       *testing.T
	brokers []string
	m       *products.Mesh // the stores, opened by the test
	gws     []*meshtest.Gateway
	load    *meshtest.Load
	hot     []int64
	watch   []*meshtest.Watcher

	mu   sync.Mutex
	live []string // base URLs the load and the subscribers use

	stopLoad context.CancelFunc
	loadDone chan struct{}
	stopSubs context.CancelFunc
}

// orderWatch is the filtered subscription of the tests: one customer's
// order changes, resumable.
const orderWatch = `subscription($c: ID!, $since: String) { orderChanged(where: {customerId: {eq: $c}}, since: $since) { op sequence cursor after { id status } } }`

// newCluster builds meshgate and starts n instances on the stores of dsn
// and the brokers (the first seeds a small demo data set), then one
// subscriber per instance, each watching a customer of its own.
func newCluster(t *testing.T, n int, dsn func(string) string, brokers []string) *cluster {
	t.Helper()
	c := &cluster{t: t, brokers: brokers}
	bin := meshtest.BuildT(t)
	args := []string{"--kafka-brokers", strings.Join(brokers, ","), "--seed-scale", "0.01", "--log-level", "warn",
		"--data-dir", t.TempDir(), "--shutdown-timeout", "5s"}
	for _, d := range demo.Products {
		args = append(args, "--store", d.Name+"="+dsn(d.Name))
	}
	for i := range n {
		g := meshtest.StartT(t, fmt.Sprintf("meshgate-%d", i), bin, args...)
		c.gws = append(c.gws, g)
		c.live = append(c.live, g.URL())
	}
	ctx := context.Background()
	m, err := demo.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	c.m = m
	customers, items, err := meshtest.Shop(ctx, c.gws[0].URL(), 20)
	if err != nil {
		t.Fatal(err)
	}
	c.hot = customers[:n]
	// About 40 requests a second: enough to have work in flight at every
	// fault, little enough for a shared 2-core CI machine.
	c.load = &meshtest.Load{Targets: c.targets, Customers: customers, Items: items, Hot: c.hot, Rate: 40}
	sctx, stop := context.WithCancel(ctx)
	c.stopSubs = stop
	t.Cleanup(stop)
	for i, g := range c.gws {
		c.watch = append(c.watch, meshtest.Watch(sctx, c.targets, g.URL(), "orderChanged", orderWatch, map[string]any{"c": c.hot[i]}))
	}
	return c
}

func (c *cluster) targets() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.live)
}

// startLoad runs the mixed load from workers clients until stopLoad.
func (c *cluster) startLoad(workers int) {
	ctx, cancel := context.WithCancel(context.Background())
	c.stopLoad, c.loadDone = cancel, make(chan struct{})
	go func() {
		defer close(c.loadDone)
		c.load.Run(ctx, workers)
	}()
	c.t.Cleanup(c.endLoad)
}

func (c *cluster) endLoad() {
	if c.stopLoad != nil {
		c.stopLoad()
		<-c.loadDone
	}
}

// mutations waits until the load has made n more successful mutations.
func (c *cluster) mutations(n int64, what string) {
	c.t.Helper()
	want := c.load.Mutations() + n
	meshtest.Eventually(c.t, 2*time.Minute, 20*time.Millisecond, fmt.Sprintf("%d more mutations %s (%s)", n, what, c.load.Summary()),
		func() bool { return c.load.Mutations() >= want })
}

// kill SIGKILLs instance i after taking it out of the targets.
func (c *cluster) kill(i int) {
	c.mu.Lock()
	c.live = slices.DeleteFunc(c.live, func(b string) bool { return b == c.gws[i].URL() })
	c.mu.Unlock()
	c.gws[i].Kill()
}

// restart starts instance i again and gives it traffic.
func (c *cluster) restart(i int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.gws[i].Restart(ctx); err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.live = append(c.live, c.gws[i].URL())
	c.mu.Unlock()
}

// balanced waits until every consumer group of the mesh is stable with
// members members sharing all partitions.
func (c *cluster) balanced(members int) {
	c.t.Helper()
	var desc string
	meshtest.Eventually(c.t, 2*time.Minute, 250*time.Millisecond, fmt.Sprintf("the consumer groups to rebalance over %d members", members), func() bool {
		ok, d, err := meshtest.Balanced(context.Background(), c.m, c.brokers, "meshgate", 3, members)
		if err != nil {
			desc = err.Error()
			return false
		}
		desc = d
		return ok
	})
	c.t.Logf("consumer groups: %s", desc)
}

// settle stops the load and the subscribers' wait for the last changes and
// checks the books: every committed mutation is in the stores and their
// audit logs; every audit entry is on Kafka by (product, sequence) and
// nothing else; each reacting product applied each change of its inputs
// exactly once; sales, stock and shipments agree with SQL over their
// sources; every subscriber got exactly the changes of its customer's
// orders after its first event, in order, across resumes.
func (c *cluster) settle(allowed ...string) {
	t := c.t
	t.Helper()
	c.endLoad()
	t.Logf("load: %s", c.load.Summary())
	ctx := context.Background()
	meshtest.Until(t, 3*time.Minute, 250*time.Millisecond, "the relays, consumers and books to settle", func() (bool, string) {
		backlog, err := meshtest.Backlog(ctx, c.m)
		if err != nil || backlog > 0 {
			return false, fmt.Sprintf("backlog %d (%v)", backlog, err)
		}
		want, got, err := meshtest.Progress(ctx, c.m)
		if err != nil {
			return false, err.Error()
		}
		for k, n := range want {
			if got[k] != n {
				return false, fmt.Sprintf("consumers applied %v of %v", got, want)
			}
		}
		books, err := meshtest.Books(ctx, c.m, nil)
		if err != nil {
			t.Fatal(err)
		}
		return books == "", books
	})
	lost, err := c.load.CheckCommitted(ctx, c.m)
	if err != nil {
		t.Fatal(err)
	}
	if lost != "" {
		t.Errorf("committed mutations lost:\n%s", lost)
	}
	ledger, err := meshtest.Reconcile(ctx, c.m, c.brokers, "meshgate")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ledger: %s", ledger)
	if !ledger.Exact() {
		t.Errorf("the books do not balance: %s", ledger)
	}
	for i, w := range c.watch {
		evs := w.Events()
		if len(evs) == 0 {
			t.Errorf("subscriber %d got no event", i)
			continue
		}
		var want []int64
		meshtest.Eventually(t, time.Minute, 100*time.Millisecond, fmt.Sprintf("subscriber %d to get its customer's last change", i), func() bool {
			evs = w.Events()
			if want, err = meshtest.OrdersOf(ctx, c.m, c.hot[i], evs[0].Sequence); err != nil {
				t.Fatal(err)
			}
			return len(want) == 0 || evs[len(evs)-1].Sequence >= want[len(want)-1]
		})
		resumes, ends := w.Resumes()
		t.Logf("subscriber %d (customer %d): %d events, %d resumes: %v", i, c.hot[i], len(evs), resumes, ends)
		if d := meshtest.CheckStream(evs, want); d != "" {
			t.Errorf("subscriber %d: %s", i, d)
		}
	}
	if u := c.load.Unexpected(allowed...); len(u) > 0 {
		t.Errorf("unexpected outcomes: %v", u)
	}
}

// catchUp waits until every reacting product has applied as many changes
// as its sources hold now.
func (c *cluster) catchUp() {
	c.t.Helper()
	ctx := context.Background()
	mark, _, err := meshtest.Progress(ctx, c.m)
	if err != nil {
		c.t.Fatal(err)
	}
	meshtest.Eventually(c.t, 2*time.Minute, 250*time.Millisecond, fmt.Sprintf("the consumers to apply %v", mark), func() bool {
		_, got, err := meshtest.Progress(ctx, c.m)
		if err != nil {
			c.t.Fatal(err)
		}
		for k, n := range mark {
			if got[k] < n {
				return false
			}
		}
		return true
	})
}

// subscribed waits until every subscriber got a first event.
func (c *cluster) subscribed() {
	c.t.Helper()
	meshtest.Eventually(c.t, 2*time.Minute, 50*time.Millisecond, "every subscriber's first event", func() bool {
		for _, w := range c.watch {
			if len(w.Events()) == 0 {
				return false
			}
		}
		return true
	})
}

// TestMultiInstanceKillOne: three instances share PostgreSQL stores and a
// broker that outlives them. Under mixed load (orders placed, cancelled and
// shipped, reads) with a filtered subscriber on each, one instance is
// SIGKILLed mid-run: its subscriber resumes on another instance with its
// cursor; the consumer groups rebalance, the survivors taking over its
// partitions and applying everything while it is down; then it starts
// again and rejoins. In the end no committed mutation is lost, the books
// balance exactly and every subscriber got each change once, in order.
func TestMultiInstanceKillOne(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three gateway processes")
	}
	pg := pgtest.New(t)
	br, err := streaming.StartEmbedded("127.0.0.1:0", 3, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(br.Close)
	c := newCluster(t, 3, pg.DSN, br.Addrs())
	c.startLoad(4)
	c.subscribed()
	c.mutations(100, "on three instances")
	c.balanced(3)

	killed := c.gws[0].URL()
	c.kill(0)
	t.Logf("killed %s after %s", killed, c.load.Summary())
	c.balanced(2)
	c.mutations(100, "on two instances")
	meshtest.Eventually(t, time.Minute, 50*time.Millisecond, "the killed instance's subscriber to resume elsewhere", func() bool {
		resumes, _ := c.watch[0].Resumes()
		return resumes > 0 && c.watch[0].Base() != killed
	})
	// The survivors apply what was made while it is down.
	c.catchUp()

	c.restart(0)
	c.balanced(3)
	c.mutations(50, "after the restart")
	c.settle("transport")
}
