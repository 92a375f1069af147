// Command soak runs a meshgate process on PostgreSQL under mixed load with
// subscription churn for a while (10 minutes by default), then reports the
// error counts, the p99 latency of the first and the last minute, the
// slope of the gateway's goroutines and heap, and the reconciliation of
// the books. It is not run in CI:
//
//	MESHGATE_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	  go run ./bench/soak -duration 10m
//
// The stores live in fresh schemas of that database, dropped at the end;
// the Kafka broker is an embedded one in this process.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/meshgate/meshgate/internal/meshtest"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/pgtest"
	"github.com/meshgate/meshgate/streaming"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func run() error {
	duration := flag.Duration("duration", envDuration("MESHGATE_SOAK_DURATION", 10*time.Minute), "how long the load runs (env MESHGATE_SOAK_DURATION)")
	postgres := flag.String("postgres", os.Getenv(pgtest.Env), "PostgreSQL DSN whose database gets the stores' schemas (env "+pgtest.Env+")")
	rps := flag.Float64("rate", 100, "requests per second of the load, all workers together")
	workers := flag.Int("workers", 8, "concurrent clients of the load")
	churners := flag.Int("subscribers", 20, "subscribers that connect, subscribe for 1 to 15 s, disconnect and start over")
	scale := flag.Float64("seed-scale", 0.05, "demo data seeded before the load (1 = 2,000 customers, 20,000 orders)")
	every := flag.Duration("sample", 10*time.Second, "how often the gateway's goroutines and heap are read from /metrics")
	flag.Parse()
	if *postgres == "" {
		return fmt.Errorf("no PostgreSQL: set %s or -postgres postgres://…", pgtest.Env)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "meshgate-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("soak: building meshgate\n")
	bin, err := meshtest.Build(ctx, dir)
	if err != nil {
		return err
	}
	schemas := pgtest.NewSet(*postgres)
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := schemas.Drop(dctx); err != nil {
			fmt.Fprintln(os.Stderr, "soak:", err)
		}
	}()
	br, err := streaming.StartEmbedded("127.0.0.1:0", 3, "")
	if err != nil {
		return err
	}
	defer br.Close()
	args := []string{"--kafka-brokers", strings.Join(br.Addrs(), ","), "--seed-scale", fmt.Sprint(*scale), "--log-level", "warn",
		"--data-dir", dir, "--max-subscriptions", "1000"}
	for _, d := range demo.Products {
		args = append(args, "--store", d.Name+"="+schemas.DSN(d.Name))
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	g, err := meshtest.Start(sctx, "meshgate", bin, filepath.Join(dir, "meshgate.log"), args...)
	cancel()
	if err != nil {
		return err
	}
	defer g.Stop()
	m, err := demo.Open(ctx, schemas.DSN)
	if err != nil {
		return err
	}
	defer m.Close()
	customers, items, err := meshtest.Shop(ctx, g.URL(), 50)
	if err != nil {
		return err
	}
	targets := func() []string { return []string{g.URL()} }
	load := &meshtest.Load{Targets: targets, Customers: customers, Items: items, Hot: customers[:2], Rate: *rps}

	lctx, stopLoad := context.WithTimeout(ctx, *duration)
	defer stopLoad()
	start := time.Now()
	fmt.Printf("soak: %s of load at %g requests/s from %d clients, %d churning subscribers, on %s\n", *duration, *rps, *workers, *churners, g.URL())
	var wg sync.WaitGroup
	wg.Go(func() { load.Run(lctx, *workers) })
	// Two subscribers stay for the whole run, resuming with their cursor
	// if dropped: their streams must be exact.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	const orderWatch = `subscription($c: ID!, $since: String) { orderChanged(where: {customerId: {eq: $c}}, since: $since) { op sequence cursor after { id status } } }`
	watchers := []*meshtest.Watcher{
		meshtest.Watch(wctx, targets, g.URL(), "orderChanged", orderWatch, map[string]any{"c": customers[0]}),
		meshtest.Watch(wctx, targets, g.URL(), "orderChanged", orderWatch, map[string]any{"c": customers[1]}),
	}
	var churn churnStats
	for i := range *churners {
		wg.Go(func() { churn.run(lctx, g.URL(), customers, uint64(i)) })
	}
	var samples []sample
	wg.Go(func() {
		tick := time.NewTicker(*every)
		defer tick.Stop()
		for {
			mctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			met, err := meshtest.Metrics(mctx, g.URL())
			cancel()
			if err == nil {
				samples = append(samples, sample{time.Since(start), met["go_goroutines"], met["go_memstats_heap_alloc_bytes"]})
			}
			select {
			case <-lctx.Done():
				return
			case <-tick.C:
			}
			if err := g.Exited(); err != nil {
				fmt.Fprintf(os.Stderr, "soak: meshgate exited: %v\n%s\n", err, meshtest.Tail(g.LogFile, 30))
				stopLoad()
				return
			}
		}
	})
	wg.Wait()
	took := time.Since(start)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := g.Exited(); err != nil {
		return fmt.Errorf("meshgate exited during the soak: %v", err)
	}

	fmt.Printf("\nsoak: load ran %v\n", took.Round(time.Second))
	fmt.Printf("requests: %s\n", load.Summary())
	unexpected := load.Unexpected()
	fmt.Printf("errors (outcomes other than ok and the refusals the load provokes): %v\n", unexpected)
	fmt.Printf("subscriptions: %d opened, %d events, %d ended by the server or failed: %v\n",
		churn.opened.Load(), churn.events.Load(), churn.failed.Load(), churn.reasons())

	all := load.Samples()
	first, last := window(all, start, 0, time.Minute), window(all, start, took-time.Minute, took)
	fmt.Printf("latency p99: first minute %v (%d requests), last minute %v (%d requests); mutations %v → %v\n",
		p99(first, ""), len(first), p99(last, ""), len(last), p99(first, "mutation"), p99(last, "mutation"))
	if len(samples) > 0 {
		fmt.Printf("gateway: goroutines %.0f → %.0f, heap %.1f → %.1f MiB\n", samples[0].goroutines, samples[len(samples)-1].goroutines,
			samples[0].heap/(1<<20), samples[len(samples)-1].heap/(1<<20))
	}
	// The slope after the first minute (warm-up: pools, caches, groups).
	var steady []sample
	for _, s := range samples {
		if s.at >= time.Minute || took < 2*time.Minute {
			steady = append(steady, s)
		}
	}
	gs, hs := slope(steady, func(s sample) float64 { return s.goroutines }), slope(steady, func(s sample) float64 { return s.heap / (1 << 20) })
	fmt.Printf("slope after the first minute: %+.2f goroutines/min, %+.3f MiB heap/min (%d samples every %v)\n", gs, hs, len(steady), *every)

	fmt.Printf("\nsettling: waiting for the relays and consumers to catch up\n")
	settled := time.Now()
	var books string
	for {
		backlog, err := meshtest.Backlog(ctx, m)
		if err != nil {
			return err
		}
		want, got, err := meshtest.Progress(ctx, m)
		if err != nil {
			return err
		}
		caught := backlog == 0
		for k, n := range want {
			caught = caught && got[k] == n
		}
		if caught {
			if books, err = meshtest.Books(ctx, m, nil); err != nil {
				return err
			}
			if books == "" {
				break
			}
		}
		if time.Since(settled) > 5*time.Minute {
			return fmt.Errorf("not settled after 5 minutes: backlog %d, applied %v of %v; books:\n%s", backlog, got, want, books)
		}
		time.Sleep(500 * time.Millisecond)
	}
	fmt.Printf("settled in %v\n", time.Since(settled).Round(time.Millisecond))
	ok := true
	ledger, err := meshtest.Reconcile(ctx, m, br.Addrs(), "meshgate")
	if err != nil {
		return err
	}
	fmt.Printf("reconciliation: %s\n", ledger)
	ok = ok && ledger.Exact()
	lost, err := load.CheckCommitted(ctx, m)
	if err != nil {
		return err
	}
	fmt.Printf("committed mutations lost: %s\n", orNone(lost))
	ok = ok && lost == ""
	for i, w := range watchers {
		evs := w.Events()
		if len(evs) == 0 {
			fmt.Printf("long subscriber %d: no event\n", i)
			ok = false
			continue
		}
		want, err := meshtest.OrdersOf(ctx, m, customers[i], evs[0].Sequence)
		if err != nil {
			return err
		}
		deadline := time.Now().Add(time.Minute)
		for len(want) > 0 && evs[len(evs)-1].Sequence < want[len(want)-1] && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			evs = w.Events()
		}
		resumes, _ := w.Resumes()
		d := meshtest.CheckStream(evs, want)
		fmt.Printf("long subscriber %d: %d events, %d resumes, stream %s\n", i, len(evs), resumes, orExact(d))
		ok = ok && d == ""
	}
	if !ok || len(unexpected) > 0 {
		return fmt.Errorf("the soak found problems (above); the gateway's log: %s", g.LogFile)
	}
	return nil
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		fmt.Fprintf(os.Stderr, "soak: %s=%q is not a duration (e.g. 10m); using %v\n", name, v, def)
	}
	return def
}

type sample struct {
	at               time.Duration
	goroutines, heap float64
}

// slope fits a line through the samples (least squares) and returns its
// slope per minute.
func slope(ss []sample, y func(sample) float64) float64 {
	if len(ss) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	n := float64(len(ss))
	for _, s := range ss {
		x := s.at.Minutes()
		sx += x
		sy += y(s)
		sxx += x * x
		sxy += x * y(s)
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// window returns the samples started between from and to after start.
func window(all []meshtest.Sample, start time.Time, from, to time.Duration) []meshtest.Sample {
	var out []meshtest.Sample
	for _, s := range all {
		if at := s.At.Sub(start); at >= from && at < to {
			out = append(out, s)
		}
	}
	return out
}

// p99 of the successful requests (kind "mutation": mutations only).
func p99(ss []meshtest.Sample, kind string) time.Duration {
	var ds []time.Duration
	for _, s := range ss {
		if s.Outcome == "ok" && (kind == "" || s.Op != "read") {
			ds = append(ds, s.Took)
		}
	}
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[int(math.Ceil(0.99*float64(len(ds))))-1].Round(100 * time.Microsecond)
}

// churnStats counts what the churning subscribers saw.
type churnStats struct {
	opened, events, failed atomic.Int64
	mu                     sync.Mutex
	why                    map[string]int
}

// run subscribes to a random customer's orders for 1 to 15 s, closes,
// and starts over until ctx ends.
func (c *churnStats) run(ctx context.Context, base string, customers []int64, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	const q = `subscription($c: ID!) { orderChanged(where: {customerId: {eq: $c}}) { op sequence cursor after { id status total } } }`
	for ctx.Err() == nil {
		life := time.Duration(1000+rng.IntN(14000)) * time.Millisecond
		sctx, cancel := context.WithTimeout(ctx, life)
		sub, err := meshtest.Subscribe(sctx, base, "orderChanged", q, map[string]any{"c": customers[rng.IntN(len(customers))]})
		if err != nil {
			cancel()
			if ctx.Err() == nil {
				c.fail(err.Error())
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		c.opened.Add(1)
		stop := context.AfterFunc(sctx, sub.Close)
		for range sub.Events {
			c.events.Add(1)
		}
		stop()
		if sctx.Err() == nil {
			c.fail(sub.Err().Error()) // the server ended it
		}
		cancel()
	}
}

func (c *churnStats) fail(why string) {
	c.failed.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.why == nil {
		c.why = map[string]int{}
	}
	c.why[why]++
}

func (c *churnStats) reasons() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for k, v := range c.why {
		out = append(out, fmt.Sprintf("%d× %s", v, k))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return "\n" + s
}

func orExact(s string) string {
	if s == "" {
		return "exact"
	}
	return "NOT EXACT:\n" + s
}
