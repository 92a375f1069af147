package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process of the harness in its own process group. Stop
// kills the whole group; every proc is stopped when the harness ends, also
// on failure or interrupt (and the kernel kills it if the harness dies:
// Pdeathsig).
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // file holding its stdout and stderr
	done chan struct{}
	err  error
}

var (
	procsMu sync.Mutex
	procs   []*proc
)

// startProc starts cmd, writing its output to logFile, and calls line for
// each line of its standard output until line returns true (ready) or
// timeout passes.
func startProc(ctx context.Context, name string, cmd *exec.Cmd, logFile string, timeout time.Duration, line func(string) bool) (*proc, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = f
	out, err := cmd.StdoutPipe()
	if err != nil {
		f.Close()
		return nil, err
	}
	// A pipe that stays open while the harness lives: peers that watch their
	// standard input stop when it closes.
	if _, err := cmd.StdinPipe(); err != nil {
		f.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logFile, done: make(chan struct{})}
	procsMu.Lock()
	procs = append(procs, p)
	procsMu.Unlock()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		isReady := false
		for sc.Scan() {
			fmt.Fprintln(f, sc.Text())
			if !isReady && line(sc.Text()) {
				isReady = true
				close(ready)
			}
		}
		io.Copy(f, out)
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	select {
	case <-ready:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready (%v); its log: %s\n%s", name, p.err, logFile, tail(logFile, 30))
	case <-time.After(timeout):
		p.Stop()
		return nil, fmt.Errorf("%s not ready after %v; its log: %s\n%s", name, timeout, logFile, tail(logFile, 30))
	case <-ctx.Done():
		p.Stop()
		return nil, ctx.Err()
	}
}

// Stop sends SIGTERM to the process group, then SIGKILL after 10 s.
func (p *proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Alive reports an error if the process has exited.
func (p *proc) Alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); its log: %s\n%s", p.name, p.err, p.log, tail(p.log, 30))
	default:
		return nil
	}
}

func stopAll() {
	procsMu.Lock()
	ps := append([]*proc(nil), procs...)
	procsMu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(p.Stop)
	}
	wg.Wait()
}

func tail(file string, n int) string {
	b, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// freePort returns a loopback address that was free a moment ago (for
// --pprof-addr, whose port the gateway does not print).
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// gateway is a running meshgate process.
type gateway struct {
	*proc
	URL   string // GraphQL endpoint
	Base  string
	Kafka string
	Pprof string
}

var (
	graphqlLine = regexp.MustCompile(`GraphQL\s+(http://\S+)/graphql`)
	kafkaLine   = regexp.MustCompile(`kafka\s+(\S+)`)
)

// buildGateway builds meshgate from the repository at root into dir.
func buildGateway(ctx context.Context, root, dir, commit string) (string, error) {
	bin := filepath.Join(dir, "meshgate")
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X main.version="+commit, "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build meshgate: %w\n%s", err, out)
	}
	return bin, nil
}

// startGateway runs meshgate with args plus a private HTTP address, pprof
// address and (unless args name brokers) embedded broker, and waits for
// its banner.
func startGateway(ctx context.Context, name, bin, dir string, args ...string) (*gateway, error) {
	// The PostgreSQL server is shared: when it has no connection left,
	// try again a few times.
	for attempt := 1; ; attempt++ {
		g, err := startGatewayOnce(ctx, name, bin, dir, args...)
		if err == nil || attempt == 5 || !strings.Contains(err.Error(), "too many clients") {
			return g, err
		}
		fmt.Fprintf(os.Stderr, "%s: PostgreSQL has no connection left; trying again (%d/5)\n", name, attempt)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt) * 5 * time.Second):
		}
	}
}

func startGatewayOnce(ctx context.Context, name, bin, dir string, args ...string) (*gateway, error) {
	pprofAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	args = append([]string{"--addr", "127.0.0.1:0", "--pprof-addr", pprofAddr, "--data-dir", filepath.Join(dir, name+"-data"), "--log-level", "warn"}, args...)
	if !strings.Contains(strings.Join(args, " "), "--kafka-brokers") {
		args = append(args, "--embedded-kafka-addr", "127.0.0.1:0")
	}
	g := &gateway{Pprof: pprofAddr}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MESHGATE_CONFIG=")
	p, err := startProc(ctx, name, cmd, filepath.Join(dir, name+".log"), 30*time.Minute, func(l string) bool {
		if m := graphqlLine.FindStringSubmatch(l); m != nil {
			g.Base = m[1]
			g.URL = m[1] + "/graphql"
		}
		if m := kafkaLine.FindStringSubmatch(l); m != nil && g.URL != "" {
			g.Kafka = m[1]
			return true
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	g.proc = p
	return g, nil
}

var (
	metricLine = regexp.MustCompile(`^(meshgate_consumer_lag|meshgate_consumer_applied_sequence|meshgate_consumer_events_applied_total)\{product="([^"]+)",source="([^"]+)"\} (\S+)`)
	busyLine   = regexp.MustCompile(`^(meshgate_consumer_apply_seconds_total|meshgate_consumer_batches_total)\{product="([^"]+)"\} (\S+)`)
)

// consumerState is the gateway's consumer lag, applied sequences and
// events applied, per "product<-source", and the time each consuming
// product spent applying, per product.
type consumerState struct {
	Lag     map[string]float64
	Applied map[string]float64 // highest source sequence applied
	Events  map[string]float64 // source changes applied by this instance
	Busy    map[string]float64 // seconds spent applying, by product
	Batches map[string]float64 // batches applied, by product
}

func (s consumerState) total(m map[string]float64, product string) float64 {
	t := 0.0
	for k, v := range m {
		if product == "" || strings.HasPrefix(k, product+"<-") {
			t += v
		}
	}
	return t
}

func (g *gateway) consumers(ctx context.Context) (consumerState, error) {
	s := consumerState{Lag: map[string]float64{}, Applied: map[string]float64{}, Events: map[string]float64{}, Busy: map[string]float64{}, Batches: map[string]float64{}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", g.Base+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m := busyLine.FindStringSubmatch(sc.Text()); m != nil {
			v, _ := strconv.ParseFloat(m[3], 64)
			if m[1] == "meshgate_consumer_batches_total" {
				s.Batches[m[2]] = v
			} else {
				s.Busy[m[2]] = v
			}
			continue
		}
		m := metricLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[4], 64)
		key := m[2] + "<-" + m[3]
		switch m[1] {
		case "meshgate_consumer_lag":
			if v < 0 {
				return s, fmt.Errorf("lag of %s unknown", key)
			}
			s.Lag[key] = v
		case "meshgate_consumer_applied_sequence":
			s.Applied[key] = v
		default:
			s.Events[key] = v
		}
	}
	if len(s.Lag) == 0 {
		return s, errors.New("no meshgate_consumer_lag in /metrics")
	}
	return s, sc.Err()
}

// catchUp is what settling a fresh gateway measured.
type catchUp struct {
	Took      time.Duration // until every consumer lag was 0 (or the bound)
	Settled   bool
	Remaining float64 // total lag left at the end
	SalesRate float64 // events/s applied by sales while it had lag
	SalesN    float64
	// Rates is every consuming product's rate while it had lag (source
	// positions applied per second), by product.
	Rates map[string]float64
	// Reactions is what each consuming product applied meanwhile, by
	// product (from meshgate_consumer_events_applied_total and
	// meshgate_consumer_apply_seconds_total).
	Reactions map[string]reactionRate
}

// reactionRate is what one reacting product applied while catching up.
type reactionRate struct {
	Events float64       // source changes applied (redeliveries skipped)
	Behind time.Duration // from the first poll to the last that saw it behind
	Busy   float64       // seconds it spent applying batches
	// Batches is how many transactions it applied them in.
	Batches float64
}

// Rate is the events applied per second while it was behind.
func (r reactionRate) Rate() float64 {
	if r.Behind <= 0 {
		return 0
	}
	return r.Events / r.Behind.Seconds()
}

// ApplyRate is the events applied per second of applying: the rate when
// events wait for it, whatever the sources' pace.
func (r reactionRate) ApplyRate() float64 {
	if r.Busy <= 0 {
		return 0
	}
	return r.Events / r.Busy
}

// products returns the consuming products of s, sorted.
func (s consumerState) products() []string {
	var out []string
	for k := range s.Lag {
		p, _, _ := strings.Cut(k, "<-")
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// settlePoll is how often settle reads the gateway's consumer figures.
const settlePoll = 250 * time.Millisecond

// settle waits until every consumer of g has no lag, at most bound, and
// measures the sales consumer's rate meanwhile.
func (g *gateway) settle(ctx context.Context, bound time.Duration) (catchUp, error) {
	start := time.Now()
	var first, last, final consumerState
	var firstAt, lastBusy time.Time
	var res catchUp
	busyUntil := map[string]time.Time{} // by product: the last poll that saw it behind
	for {
		s, err := g.consumers(ctx)
		if err == nil {
			if first.Applied == nil {
				first, firstAt = s, time.Now()
			}
			for _, p := range s.products() {
				if _, ok := busyUntil[p]; !ok || s.total(s.Lag, p) > 0 {
					busyUntil[p] = time.Now()
				}
			}
			final = s
			if s.total(s.Lag, "sales") > 0 || lastBusy.IsZero() {
				lastBusy, last = time.Now(), s
			} else if last.Applied != nil {
				last = s
			}
			if s.total(s.Lag, "") == 0 {
				res.Settled = true
				res.Remaining = 0
				break
			}
			res.Remaining = s.total(s.Lag, "")
		}
		if err := g.Alive(); err != nil {
			return res, err
		}
		if time.Since(start) > bound {
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(settlePoll):
		}
	}
	res.Took = time.Since(start)
	if first.Applied != nil && last.Applied != nil && lastBusy.After(firstAt) {
		res.SalesN = last.total(last.Applied, "sales") - first.total(first.Applied, "sales")
		res.SalesRate = res.SalesN / lastBusy.Sub(firstAt).Seconds()
	}
	// Like sales' rate: what each applied by the end, over the time it
	// was behind.
	res.Rates = map[string]float64{}
	res.Reactions = map[string]reactionRate{}
	for p, b := range busyUntil {
		if b.After(firstAt) && last.Applied != nil {
			res.Rates[p] = (last.total(last.Applied, p) - first.total(first.Applied, p)) / b.Sub(firstAt).Seconds()
			res.Reactions[p] = reactionRate{
				Events:  final.total(final.Events, p) - first.total(first.Events, p),
				Behind:  b.Sub(firstAt),
				Busy:    final.Busy[p] - first.Busy[p],
				Batches: final.Batches[p] - first.Batches[p],
			}
		}
	}
	return res, nil
}

// peer is a running PostGraphile.
type peer struct {
	*proc
	URL     string
	Version string
	Node    string
}

// installPeers installs the npm packages of bench/peers into cache (npm ci,
// only when package-lock.json changed) and copies the server script.
func installPeers(ctx context.Context, root, cache string) (string, error) {
	dir := filepath.Join(cache, "peers")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	src := filepath.Join(root, "bench", "peers")
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		return "", err
	}
	old, _ := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	_, statErr := os.Stat(filepath.Join(dir, "node_modules", "node", "bin", "node"))
	for _, f := range []string{"package.json", "package-lock.json", "postgraphile.mjs"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return "", err
		}
	}
	if string(old) == string(lock) && statErr == nil {
		return dir, nil
	}
	fmt.Fprintf(os.Stderr, "installing PostGraphile and Node 22 into %s (npm ci)…\n", dir)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm ci in %s: %w\n%s", dir, err, out)
	}
	return dir, nil
}

// startPostGraphile runs the PostGraphile peer over schemas of dsn with the
// smart tags in tagsFile.
func startPostGraphile(ctx context.Context, dir, runDir, dsn, tagsFile string, poolMax int) (*peer, error) {
	node := filepath.Join(dir, "node_modules", "node", "bin", "node")
	pv := &peer{}
	if b, err := os.ReadFile(filepath.Join(dir, "node_modules", "postgraphile", "package.json")); err == nil {
		var pkg struct{ Version string }
		json.Unmarshal(b, &pkg)
		pv.Version = pkg.Version
	}
	if out, err := exec.CommandContext(ctx, node, "--version").Output(); err == nil {
		pv.Node = strings.TrimSpace(string(out))
	}
	cmd := exec.Command(node, "postgraphile.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_ENV=production", "DATABASE_URL="+dsn, "TAGS_FILE="+tagsFile,
		"PG_SCHEMAS=customers,orders,inventory", "PG_POOL_MAX="+strconv.Itoa(poolMax))
	p, err := startProc(ctx, "postgraphile", cmd, filepath.Join(runDir, "postgraphile.log"), 2*time.Minute, func(l string) bool {
		if u, ok := strings.CutPrefix(l, "listening "); ok {
			pv.URL = u
			return true
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	pv.proc = p
	return pv, nil
}
