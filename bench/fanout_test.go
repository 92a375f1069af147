package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sync/errgroup"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/resolvers"
	"github.com/meshgate/meshgate/streaming"
	"github.com/meshgate/meshgate/web"
)

// Settings of BenchmarkFanout, from the environment.
const (
	// fanoutSubscribersEnv lists the subscriber counts, comma-separated.
	fanoutSubscribersEnv = "MESHGATE_FANOUT_SUBSCRIBERS"
	// fanoutSourcesEnv is how many source addresses (127.0.0.2, …) the
	// clients spread over; 0 dials from 127.0.0.1 only.
	fanoutSourcesEnv = "MESHGATE_FANOUT_SOURCES"
	// fanoutHeapProfileEnv, if set, names a file that gets the server's
	// heap profile with N idle subscriptions (N appended to the name).
	fanoutHeapProfileEnv = "MESHGATE_FANOUT_HEAP_PROFILE"
	// fanoutGoroutinesEnv, if set, names a file that gets the server's
	// goroutines with N idle subscriptions, grouped by stack with counts
	// (N appended to the name).
	fanoutGoroutinesEnv = "MESHGATE_FANOUT_GOROUTINES"
	// fanoutRateEnv is the mutations per second (default fanoutRate; the
	// issue 12 target is measured at 200).
	fanoutRateEnv = "MESHGATE_FANOUT_RATE"
)

const (
	fanoutDefault  = "1000,5000,10000"
	fanoutSources  = 8
	fanoutRate     = 20 // mutations per second, unless MESHGATE_FANOUT_RATE
	fanoutDuration = 5 * time.Second
	// fanoutDrain bounds the wait for the last deliveries after the last
	// mutation; what has not arrived by then counts as missing.
	fanoutDrain = 45 * time.Second
	// fanoutQuery is every subscriber's subscription.
	fanoutQuery = `subscription { changes(products: ["customers"]) { sequence } }`
)

// The environment of the client process (see TestFanoutClients).
const (
	childURLEnv     = "MESHGATE_FANOUT_CHILD_URL"
	childNEnv       = "MESHGATE_FANOUT_CHILD_N"
	childSourcesEnv = "MESHGATE_FANOUT_CHILD_SOURCES"
	childOutEnv     = "MESHGATE_FANOUT_CHILD_OUT"
	// childQueryEnv, if set, is subscriber i's subscription with %d
	// replaced by 1 + i mod MESHGATE_FANOUT_CHILD_KEYS (default:
	// fanoutQuery for all).
	childQueryEnv = "MESHGATE_FANOUT_CHILD_QUERY"
	childKeysEnv  = "MESHGATE_FANOUT_CHILD_KEYS"
	childPrefix   = "fanout-child:"
)

// BenchmarkFanout measures the subscription fan-out of one gateway: N
// websocket subscribers (graphql-transport-ws, gorilla/websocket) of
// changes(products: ["customers"]) while customers are updated at 20/s
// (MESHGATE_FANOUT_RATE) for 5 s. The gateway is assembled as run() in server.go does (demo mesh on
// SQLite, embedded broker, publisher, one relay per store, the reactions'
// consumers, the hub, web.NewServer with the default flags) and served
// with httptest. The subscribers live in a child process (this test binary
// running TestFanoutClients), so that the memory measured is the server's
// alone and each process stays within the open-file limit (20,000 here,
// not raisable without CAP_SYS_RESOURCE: 10,000 sockets per side fit in
// one process each, 20,000 do not).
//
// Reported per N: commit_p50_ms and commit_p99_ms, from the mutation's
// commit returning to a subscriber reading the event, over all deliveries
// (the processes share the machine's clock); deliveries/s, over the time
// from the first commit to the last delivery (offered: N × rate); B/sub and
// goroutines/sub, the server's heap plus goroutine stacks (after GC, no
// kernel socket buffers) and goroutines added by N idle subscriptions,
// divided by N; server_us/delivery, the server process's CPU time from the
// first mutation to the last delivery per delivery; missing, deliveries
// that did not arrive within 45 s of the last mutation or ended in an
// error. The two processes share the machine's 2 cores; the client
// process's CPU time is printed too.
//
//	go test -run XXX -bench Fanout -benchtime 1x ./bench/
//	MESHGATE_FANOUT_SUBSCRIBERS=1000,5000,10000 MESHGATE_FANOUT_SOURCES=8 go test … (the defaults)
//	MESHGATE_FANOUT_HEAP_PROFILE=/tmp/fanout.heap go test …   (the server's heap with N idle subscriptions)
//	MESHGATE_FANOUT_GOROUTINES=/tmp/fanout.goroutines go test …   (its goroutines, grouped by stack)
//	MESHGATE_FANOUT_SUBSCRIBERS=1000 MESHGATE_FANOUT_RATE=200 go test …   (issue 12's latency target)
func BenchmarkFanout(b *testing.B) {
	list := os.Getenv(fanoutSubscribersEnv)
	if list == "" {
		list = fanoutDefault
	}
	sources := fanoutSources
	if s := os.Getenv(fanoutSourcesEnv); s != "" {
		var err error
		if sources, err = strconv.Atoi(s); err != nil || sources < 0 || sources > 250 {
			b.Fatalf("%s=%q: want 0…250", fanoutSourcesEnv, s)
		}
	}
	mutRate := fanoutRate
	if s := os.Getenv(fanoutRateEnv); s != "" {
		var err error
		if mutRate, err = strconv.Atoi(s); err != nil || mutRate < 1 || mutRate > 10000 {
			b.Fatalf("%s=%q: want mutations per second, 1…10000", fanoutRateEnv, s)
		}
	}
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want subscriber counts like %s", fanoutSubscribersEnv, list, fanoutDefault)
		}
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) { fanout(b, n, sources, mutRate) })
	}
}

// fanoutGateway is the gateway's pieces, wired as run() wires them.
type fanoutGateway struct {
	url  string // ws://…/graphql
	mesh *products.Mesh
	hub  *streaming.Hub
}

func startFanoutGateway(b *testing.B) *fanoutGateway {
	ctx := context.Background()
	dir := b.TempDir()
	mesh, err := demo.Open(ctx, func(p string) string { return "sqlite:" + filepath.Join(dir, p+".db") })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { mesh.Close() })
	// 20 customers, 200 orders: the mutations update customers 1…20.
	if _, err := mesh.Seed(ctx, 0.01, func(string, string, int, int) {}); err != nil {
		b.Fatal(err)
	}
	k, pub := kafkaPublisher(b)
	consumers := streaming.Consumers(mesh, codec, k, nil)
	hub := &streaming.Hub{Stores: mesh.Stores, Codec: codec, Kafka: k, Buffer: 1024}
	res := &resolvers.Resolver{Data: mesh, Version: "bench", BatchWait: 2 * time.Millisecond, Hub: hub, LiveRate: 4, Consumers: consumers, Codec: codec}
	srv := httptest.NewServer(web.NewServer(web.Config{
		Resolver: res, Ready: mesh.Ping,
		MaxBodyBytes: 1 << 20, ComplexityLimit: 5000, QueryTimeout: 30 * time.Second,
		PingInterval: 15 * time.Second, WSWriteBuffer: 64 << 10,
	}))

	gctx, cancel := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(gctx)
	g.Go(func() error { return hub.Run(gctx) })
	for _, c := range consumers {
		g.Go(func() error { return c.Run(gctx) })
	}
	for _, s := range mesh.Stores {
		relay := &streaming.Relay{Store: s, Sender: pub, Codec: codec}
		g.Go(func() error { return relay.Run(gctx) })
	}
	b.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		cancel()
		if err := g.Wait(); err != nil {
			b.Errorf("gateway: %v", err)
		}
	})

	select {
	case <-hub.Ready():
	case <-time.After(30 * time.Second):
		b.Fatal("the hub did not start consuming within 30 s")
	}
	// Let the reactions to the seed finish, so that they do not run during
	// the measurement.
	waitFor(b, 60*time.Second, "the reactions to the seed", func() bool {
		for _, c := range consumers {
			lags, err := c.Lag(ctx, mesh.Store)
			if err != nil {
				return false
			}
			for _, l := range lags {
				if l.Pending > 0 {
					return false
				}
			}
		}
		return true
	})
	return &fanoutGateway{url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/graphql", mesh: mesh, hub: hub}
}

// waitFor polls cond every 10 ms until it holds, failing b after timeout.
func waitFor(b *testing.B, timeout time.Duration, what string, cond func() bool) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// serverMemory returns the heap in use and the goroutine stacks after a
// GC, and the goroutine count.
func serverMemory() (heap, stack uint64, goroutines int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine()
}

// cpuTime returns the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func fanout(b *testing.B, n, sources, mutRate int) {
	ctx := context.Background()
	g := startFanoutGateway(b)
	heap0, stack0, gr0 := serverMemory()

	// The subscribers: a child process.
	clients := startClients(b, g.url, n, sources)
	childLine := clients.line
	connected := childLine(90*time.Second, "its subscriptions")
	// Registration is asynchronous: wait until the hub has them all.
	waitFor(b, 60*time.Second, fmt.Sprintf("%d subscriptions in the hub", n), func() bool {
		return g.hub.Stats().Subscribers >= int64(n)
	})
	heap1, stack1, gr1 := serverMemory()
	if name := os.Getenv(fanoutHeapProfileEnv); name != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", name, n))
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	if name := os.Getenv(fanoutGoroutinesEnv); name != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", name, n))
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.Lookup("goroutine").WriteTo(f, 1); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	heapPerSub := (float64(heap1) - float64(heap0)) / float64(n)
	stackPerSub := (float64(stack1) - float64(stack0)) / float64(n)
	perSub := heapPerSub + stackPerSub
	goroutinesPerSub := float64(gr1-gr0) / float64(n)

	// The mutations: 20/s for 5 s, one at a time, each commit time kept.
	// Nothing else writes customers, so mutation i commits sequence base+1+i.
	store := customers.New(g.mesh)
	base, err := store.Latest(ctx)
	if err != nil {
		b.Fatal(err)
	}
	m := int(float64(mutRate) * fanoutDuration.Seconds())
	commits := make([]int64, m)
	b.ResetTimer()
	cpu0 := cpuTime()
	tick := time.NewTicker(time.Second / time.Duration(mutRate))
	for i := range m {
		<-tick.C
		if _, err := store.Update(ctx, int64(1+i%20), map[string]any{"name": fmt.Sprintf("Fanout %d", i)}); err != nil {
			tick.Stop()
			b.Fatal(err)
		}
		commits[i] = time.Now().UnixNano()
	}
	tick.Stop()
	if last, err := store.Latest(ctx); err != nil || last != base+int64(m) {
		b.Fatalf("customers log at %d (%v), want %d: another writer?", last, err, base+int64(m))
	}
	fmt.Fprintf(clients.stdin, "expect %d\n", m)
	done, raw := clients.finish()
	serverCPU := cpuTime() - cpu0
	b.StopTimer()

	lat := make([]time.Duration, 0, len(raw)/16)
	var lastRecv int64
	stray := 0
	for i := 0; i+16 <= len(raw); i += 16 {
		seq := int64(binary.LittleEndian.Uint64(raw[i:]))
		at := int64(binary.LittleEndian.Uint64(raw[i+8:]))
		k := seq - base - 1
		if k < 0 || k >= int64(m) {
			stray++
			continue
		}
		lat = append(lat, time.Duration(at-commits[k]))
		lastRecv = max(lastRecv, at)
	}
	if stray > 0 {
		b.Errorf("%d deliveries of sequences outside the benchmark's mutations", stray)
	}
	slices.Sort(lat)
	at := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(max(int(p/100*float64(len(lat))+0.5)-1, 0), len(lat)-1)]
	}
	want := n * m
	missing := want - len(lat)
	rate := 0.0
	if lastRecv > commits[0] {
		rate = float64(len(lat)) / (float64(lastRecv-commits[0]) / 1e9)
	}
	b.ReportMetric(ms(at(50)), "commit_p50_ms")
	b.ReportMetric(ms(at(99)), "commit_p99_ms")
	b.ReportMetric(rate, "deliveries/s")
	b.ReportMetric(perSub, "B/sub")
	b.ReportMetric(float64(serverCPU.Microseconds())/float64(max(len(lat), 1)), "server_us/delivery")
	b.ReportMetric(goroutinesPerSub, "goroutines/sub")
	b.ReportMetric(float64(missing), "missing")
	fmt.Printf("fan-out, %d subscribers (%s), %d mutations at %d/s: commit->client p50 %.1f ms p99 %.1f ms max %.1f ms; "+
		"%d of %d deliveries (%s), %.0f deliveries/s (offered %d/s), server CPU %.1f s (%.1f µs/delivery); "+
		"idle subscription %.1f KiB (heap %.1f + stacks %.1f), %.1f goroutines\n",
		n, connected, m, mutRate, ms(at(50)), ms(at(99)), ms(at(100)),
		len(lat), want, done, rate, n*mutRate, serverCPU.Seconds(), float64(serverCPU.Microseconds())/float64(max(len(lat), 1)),
		perSub/1024, heapPerSub/1024, stackPerSub/1024, goroutinesPerSub)
	if missing > 0 {
		b.Errorf("%d of %d deliveries missing", missing, want)
	}
}

// clients is BenchmarkFanout's client process (TestFanoutClients).
type clients struct {
	b       *testing.B
	cmd     *exec.Cmd
	out     string // the deliveries file
	stdin   io.WriteCloser
	stderr  *lockedBuffer
	lines   chan string
	exited  chan struct{}
	exitErr error // set before exited closes
}

// startClients starts n subscribers in a child process (env adds to its
// environment, e.g. a query per subscriber); the benchmark kills it if it
// is still running at the end.
func startClients(b *testing.B, url string, n, sources int, env ...string) *clients {
	c := &clients{b: b, out: filepath.Join(b.TempDir(), "deliveries.bin"), stderr: &lockedBuffer{},
		lines: make(chan string, 16), exited: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestFanoutClients$", "-test.count=1")
	c.cmd.Env = append(append(os.Environ(),
		childURLEnv+"="+url, childNEnv+"="+strconv.Itoa(n),
		childSourcesEnv+"="+strconv.Itoa(sources), childOutEnv+"="+c.out), env...)
	c.cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		b.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if l, ok := strings.CutPrefix(sc.Text(), childPrefix); ok {
				c.lines <- strings.TrimSpace(l)
			} else {
				c.stderr.WriteString(sc.Text() + "\n") // test framework output, for failures
			}
		}
		c.exitErr = c.cmd.Wait()
		close(c.exited)
		close(c.lines)
	}()
	b.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			c.cmd.Process.Kill() // our child, by its pid
			<-c.exited
		}
	})
	return c
}

// line returns the child's next report, failing after timeout.
func (c *clients) line(timeout time.Duration, what string) string {
	select {
	case l, ok := <-c.lines:
		if !ok {
			<-c.exited
			c.b.Fatalf("the client process ended before %s: %v\n%s", what, c.exitErr, c.stderr.String())
		}
		if strings.HasPrefix(l, "error") {
			c.b.Fatalf("client process: %s", l)
		}
		return l
	case <-time.After(timeout):
		c.b.Fatalf("the client process did not report %s within %v\n%s", what, timeout, c.stderr.String())
	}
	return ""
}

// finish closes the child's stdin (after the caller wrote its expect
// line), waits for its last report and its exit, and returns the report
// and the deliveries: (sequence, receive time in Unix ns) pairs,
// little-endian int64s.
func (c *clients) finish() (string, []byte) {
	c.stdin.Close()
	done := c.line(fanoutDrain+30*time.Second, "its deliveries")
	select {
	case <-c.exited:
		if c.exitErr != nil {
			c.b.Fatalf("client process: %v\n%s", c.exitErr, c.stderr.String())
		}
	case <-time.After(30 * time.Second):
		c.b.Fatal("the client process did not exit")
	}
	raw, err := os.ReadFile(c.out)
	if err != nil {
		c.b.Fatal(err)
	}
	return done, raw
}

// lockedBuffer collects the client process's output from two goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) WriteString(s string) {
	l.Write([]byte(s))
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestFanoutClients is BenchmarkFanout's client process, not a test: it is
// skipped unless the benchmark starts it. It opens N subscriptions to
// MESHGATE_FANOUT_CHILD_URL over graphql-transport-ws, prints
// "fanout-child: subscribed …", reads "expect M" on stdin, waits until every
// subscription got M events (or fanoutDrain passes), writes each delivery
// as (sequence, receive time in Unix ns), little-endian int64s, to
// MESHGATE_FANOUT_CHILD_OUT and prints "fanout-child: done …".
func TestFanoutClients(t *testing.T) {
	url := os.Getenv(childURLEnv)
	if url == "" {
		t.Skip("the client process of BenchmarkFanout")
	}
	fail := func(format string, args ...any) {
		fmt.Printf(childPrefix+" error "+format+"\n", args...)
		t.FailNow()
	}
	n, err := strconv.Atoi(os.Getenv(childNEnv))
	if err != nil || n < 1 {
		fail("%s=%q", childNEnv, os.Getenv(childNEnv))
	}
	sources, _ := strconv.Atoi(os.Getenv(childSourcesEnv))

	var (
		received atomic.Int64
		target   atomic.Int64
		failures atomic.Int64
		firstErr atomic.Value
		doneOnce sync.Once
		done     = make(chan struct{})
		readers  sync.WaitGroup
	)
	target.Store(int64(^uint64(0) >> 1))
	check := func() {
		if received.Load() >= target.Load() {
			doneOnce.Do(func() { close(done) })
		}
	}
	subs := make([]*fanoutSubscriber, n)
	start := time.Now()
	jobs := make(chan int)
	var dialers errgroup.Group
	for range 32 {
		dialers.Go(func() error {
			for i := range jobs {
				q := fanoutQuery
				if tpl := os.Getenv(childQueryEnv); strings.Contains(tpl, "%d") {
					keys, _ := strconv.Atoi(os.Getenv(childKeysEnv))
					q = fmt.Sprintf(tpl, 1+i%max(keys, 1))
				} else if tpl != "" {
					q = tpl
				}
				s, err := dialSubscriber(url, q, i, sources)
				if err != nil {
					for range jobs { // drain: the first error ends the run
					}
					return fmt.Errorf("subscriber %d: %w", i, err)
				}
				subs[i] = s
				readers.Go(func() {
					s.read(func(seq int64) {
						received.Add(1)
						check()
					}, func(why string) {
						failures.Add(1)
						firstErr.CompareAndSwap(nil, why)
						check()
					})
				})
			}
			return nil
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	if err := dialers.Wait(); err != nil {
		fail("%v", err)
	}
	sourceDesc := "127.0.0.1"
	if sources > 0 {
		sourceDesc = fmt.Sprintf("127.0.0.2-127.0.0.%d", 1+min(sources, n))
	}
	fmt.Printf("%s subscribed %d from %s in %v\n", childPrefix, n, sourceDesc, time.Since(start).Round(time.Millisecond))
	cpu0 := cpuTime()

	// Wait for "expect M" (events per subscriber) or "expect-total T",
	// then for the deliveries.
	var m, want int64
	sc := bufio.NewScanner(os.Stdin)
	for want == 0 && sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "expect-total %d", &want); err == nil {
			break
		}
		if _, err := fmt.Sscanf(sc.Text(), "expect %d", &m); err == nil {
			want = int64(n) * m
		}
	}
	if want == 0 {
		fail("stdin closed before expect")
	}
	target.Store(want)
	check()
	select {
	case <-done:
	case <-time.After(fanoutDrain):
	}
	for _, s := range subs {
		s.c.Close()
	}
	readers.Wait()
	cpu := cpuTime() - cpu0

	f, err := os.Create(os.Getenv(childOutEnv))
	if err != nil {
		fail("%v", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var rec [16]byte
	total := 0
	for _, s := range subs {
		for _, d := range s.got {
			binary.LittleEndian.PutUint64(rec[:], uint64(d.seq))
			binary.LittleEndian.PutUint64(rec[8:], uint64(d.at))
			w.Write(rec[:])
			total++
		}
	}
	if err := w.Flush(); err != nil {
		fail("%v", err)
	}
	if err := f.Close(); err != nil {
		fail("%v", err)
	}
	status := "complete"
	if int64(total) < want {
		status = "incomplete"
	}
	if e := failures.Load(); e > 0 {
		status = fmt.Sprintf("%s, %d subscription errors, first: %v", status, e, firstErr.Load())
	}
	fmt.Printf("%s done %s; client CPU %.1f s\n", childPrefix, status, cpu.Seconds())
}

// fanoutSubscriber is one websocket with one changes subscription.
type fanoutSubscriber struct {
	c   *websocket.Conn
	got []delivery // written by read only
}

type delivery struct{ seq, at int64 }

// dialSubscriber connects subscriber i (from source address 127.0.0.(2 +
// i mod sources), or the kernel's choice when sources is 0), completes
// connection_init and subscribes.
func dialSubscriber(url, query string, i, sources int) (*fanoutSubscriber, error) {
	nd := &net.Dialer{Timeout: 10 * time.Second}
	if sources > 0 {
		nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%sources))}
	}
	d := websocket.Dialer{
		NetDialContext: nd.DialContext, Subprotocols: []string{"graphql-transport-ws"},
		HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024,
	}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	if err := c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{}}); err != nil {
		c.Close()
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ack struct{ Type string }
	if err := c.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		c.Close()
		return nil, fmt.Errorf("connection_ack: %v %q", err, ack.Type)
	}
	c.SetReadDeadline(time.Time{})
	if err := c.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": query}}); err != nil {
		c.Close()
		return nil, err
	}
	return &fanoutSubscriber{c: c, got: make([]delivery, 0, fanoutRate*int(fanoutDuration.Seconds()))}, nil
}

// read records events until the connection closes; it answers the
// protocol's pings (websocket ping frames are answered by gorilla). Every
// message is checked: a next for subscription "1" whose payload is data
// with exactly one field holding a sequence, and no errors (nextSequence);
// anything else is a failure.
func (s *fanoutSubscriber) read(onEvent func(seq int64), onFailure func(why string)) {
	for {
		_, data, err := s.c.ReadMessage()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && !websocket.IsCloseError(err, websocket.CloseNormalClosure) && !errors.Is(err, io.EOF) {
				onFailure(err.Error())
			}
			return
		}
		at := time.Now().UnixNano()
		seq, typ, why := nextSequence(data)
		switch {
		case why == "":
			s.got = append(s.got, delivery{seq, at})
			onEvent(seq)
		case typ == "ping":
			s.c.WriteJSON(map[string]any{"type": "pong"})
		case typ == "pong":
		default:
			onFailure(why)
		}
	}
}

// nextSequence checks a server message: a next of subscription "1" with
// data of exactly one field that holds a sequence and no errors gives the
// sequence and an empty why. Otherwise why says what is wrong, and typ is
// the message's type (a ping or pong is not wrong).
//
// The server writes its messages in one shape (payload, id, type; the
// payload data and extensions: see web.writeResponse), which is checked
// byte by byte and its sequence read with strconv: the client process
// shares the machine's cores with the server it measures, and decoding
// each message with encoding/json took a good part of them. A message of
// any other shape is decoded with encoding/json and checked the same.
func nextSequence(data []byte) (seq int64, typ, why string) {
	if seq, ok := nextShape(data); ok {
		return seq, "next", ""
	}
	var msg struct {
		Type    string `json:"type"`
		ID      string `json:"id"`
		Payload struct {
			Data   map[string]json.RawMessage `json:"data"`
			Errors []json.RawMessage          `json:"errors"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(data, &msg); err != nil {
		return 0, "", fmt.Sprintf("%v: %s", err, data)
	}
	if msg.Type != "next" || msg.ID != "1" || len(msg.Payload.Errors) > 0 || len(msg.Payload.Data) != 1 {
		return 0, msg.Type, fmt.Sprintf("%s: %s", msg.Type, data)
	}
	for _, field := range msg.Payload.Data {
		var ev struct{ Sequence *int64 }
		if err := json.Unmarshal(field, &ev); err != nil || ev.Sequence == nil {
			return 0, msg.Type, fmt.Sprintf("next without a sequence: %v %s", err, data)
		}
		seq = *ev.Sequence
	}
	return seq, msg.Type, ""
}

// nextShape reads the sequence of a next message of the shape the server
// writes: {"payload":{"data":{"<field>":{"sequence":<n>}}[,"extensions":
// <object>]},"id":"1","type":"next"}; false for anything else.
func nextShape(data []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(data, []byte(`{"payload":{"data":{"`))
	if !ok {
		return 0, false
	}
	// The field: a GraphQL name.
	i := 0
	for i < len(rest) && (rest[i] == '_' || '0' <= rest[i] && rest[i] <= '9' || 'a' <= rest[i]|0x20 && rest[i]|0x20 <= 'z') {
		i++
	}
	if i == 0 {
		return 0, false
	}
	if rest, ok = bytes.CutPrefix(rest[i:], []byte(`":{"sequence":`)); !ok {
		return 0, false
	}
	i = 0
	for i < len(rest) && '0' <= rest[i] && rest[i] <= '9' {
		i++
	}
	seq, err := strconv.ParseInt(string(rest[:i]), 10, 64)
	if err != nil {
		return 0, false
	}
	if rest, ok = bytes.CutPrefix(rest[i:], []byte(`}}`)); !ok {
		return 0, false
	}
	if ext, ok := bytes.CutPrefix(rest, []byte(`,"extensions":{`)); ok {
		// Extensions (the cost): a JSON object, then the end.
		const end = `},"id":"1","type":"next"}`
		obj, ok := bytes.CutSuffix(ext, []byte(end))
		return seq, ok && json.Valid(append([]byte{'{'}, obj...))
	}
	return seq, bytes.Equal(rest, []byte(`},"id":"1","type":"next"}`))
}

// TestNextSequence: the benchmark client's check of the server's messages,
// the byte-by-byte shape and the decoded fallback alike.
func TestNextSequence(t *testing.T) {
	for _, c := range []struct {
		msg string
		seq int64
		typ string // "" when the message is an event
	}{
		{`{"payload":{"data":{"changes":{"sequence":42}}},"id":"1","type":"next"}`, 42, ""},
		{`{"payload":{"data":{"orderChanged":{"sequence":7}},"extensions":{"cost":{"requested":3}}},"id":"1","type":"next"}`, 7, ""},
		{`{"type":"next","id":"1","payload":{"data":{"changes":{"sequence":9}}}}`, 9, ""}, // another order: decoded
		{`{"payload":{"data":{"changes":{"sequence":42}}},"id":"2","type":"next"}`, 0, "next"},
		{`{"payload":{"data":{"changes":{"sequence":42}},"errors":[{"message":"x"}]},"id":"1","type":"next"}`, 0, "next"},
		{`{"payload":{"data":{"a":{"sequence":1},"b":{"sequence":2}}},"id":"1","type":"next"}`, 0, "next"},
		{`{"payload":{"data":{"changes":{"cursor":"x"}}},"id":"1","type":"next"}`, 0, "next"},
		{`{"payload":{"data":{"changes":{"sequence":42}}},"id":"1","type":"next"}x`, 0, "?"},
		{`{"payload":{"data":{"changes":{"sequence":42}},"extensions":{"cost":}},"id":"1","type":"next"}`, 0, "?"},
		{`{"id":"1","type":"complete"}`, 0, "complete"},
		{`{"type":"ping"}`, 0, "ping"},
	} {
		seq, typ, why := nextSequence([]byte(c.msg))
		switch {
		case c.typ == "" && (why != "" || seq != c.seq):
			t.Errorf("%s: %d %q, want sequence %d", c.msg, seq, why, c.seq)
		case c.typ != "" && why == "":
			t.Errorf("%s: accepted (sequence %d)", c.msg, seq)
		case c.typ != "" && c.typ != "?" && typ != c.typ:
			t.Errorf("%s: type %q, want %q", c.msg, typ, c.typ)
		}
	}
}
