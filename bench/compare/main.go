// Command compare runs meshgate side by side with its peers on loopback
// and prints a table of throughput, latency and ratios (issue 12):
//
//   - meshgate on PostgreSQL, as a separate process (go build), seeded at
//     -scale, the real target;
//   - PostGraphile v5 (amber preset, production mode, Node 22) over the same
//     PostgreSQL schemas, with smart tags declaring the cross-product
//     relations; the answers of both are checked equal before timing;
//   - pgbench replaying the statements meshgate issued for one request (or
//     its write transaction for placeOrder), captured through a PostgreSQL
//     protocol proxy: the physical limit;
//   - meshgate on its embedded SQLite default, the same scenarios.
//
// Rounds interleave the systems (meshgate, PostGraphile, pgbench, meshgate
// SQLite, meshgate, …); the table reports medians of the rounds and
// medians of the per-round ratios. Everything runs under a fresh database
// and login role with a connection limit (dropped at the end), peers are
// installed into -cache and killed at the end, also on failure.
//
//	go run ./bench/compare                    # every scenario
//	go run ./bench/compare nested-read        # one: nested-read, large-result, point-lookup, place-order, catch-up
//	go run ./bench/compare targets            # issue 12's latency and throughput targets (in-process, about 3 min)
//	go run ./bench/compare -scale 5 -duration 20s -rounds 3   # the setting
//
// See bench/doc.go for the scenarios and the README's Performance section.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	postgres    string
	scale       float64
	duration    time.Duration
	rounds      int
	conc        []int
	cache       string
	settle      time.Duration
	connLimit   int
	sqlite      bool
	profile     bool
	timeout     time.Duration
	scenarios   []string
	out         string
	captureReqs int
}

var (
	sideBySide   = []string{"nested-read", "large-result", "point-lookup", "place-order", "catch-up"}
	inProcess    = []string{"encode", "kafka", "fanout", "targets"}
	allScenarios = append(append([]string{}, sideBySide...), inProcess...)
)

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/compare:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	err = run(ctx, o, os.Stdout)
	cancel()
	stop()
	stopAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/compare: FAILED:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	home, _ := os.UserHomeDir()
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	def := os.Getenv("MESHGATE_TEST_POSTGRES")
	if def == "" {
		def = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	fs.StringVar(&o.postgres, "postgres", def, "PostgreSQL DSN of a user that may create roles and databases (env MESHGATE_TEST_POSTGRES)")
	fs.Float64Var(&o.scale, "scale", 1, "demo scale (1 = 20,000 orders; the issue used 5 = 100,000)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of one timed round")
	fs.IntVar(&o.rounds, "rounds", 3, "interleaved rounds per scenario and concurrency")
	conc := fs.String("c", "16,64", "concurrencies (connections of wrk, clients of pgbench)")
	fs.StringVar(&o.cache, "cache", filepath.Join(home, ".cache", "meshgate-bench"), "where peers are installed and results written")
	fs.DurationVar(&o.settle, "settle", 15*time.Minute, "longest wait for the consumers of a fresh gateway to catch up before timing")
	fs.IntVar(&o.connLimit, "conn-limit", 64, "CONNECTION LIMIT of the run's PostgreSQL role (the server is shared)")
	fs.BoolVar(&o.sqlite, "sqlite", true, "also run meshgate on its embedded SQLite stores")
	fs.BoolVar(&o.profile, "profile", true, "collect CPU profiles of meshgate under nested-read and place-order (an extra round each)")
	fs.DurationVar(&o.timeout, "timeout", 3*time.Hour, "bound of the whole run")
	fs.StringVar(&o.out, "out", "", "also write the report (markdown) to this file")
	fs.IntVar(&o.captureReqs, "capture-requests", 5, "requests captured per read scenario to count statements")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./bench/compare [flags] [scenario ...]\n\nScenarios: %s (default: all)\n\nFlags:\n", strings.Join(allScenarios, ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, c := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-c: bad concurrency %q", c)
		}
		o.conc = append(o.conc, n)
	}
	if o.rounds < 1 || o.duration < time.Second || o.scale <= 0 {
		return nil, errors.New("-rounds ≥ 1, -duration ≥ 1s and -scale > 0 please")
	}
	o.scenarios = fs.Args()
	if len(o.scenarios) == 0 || slices.Contains(o.scenarios, "all") {
		o.scenarios = allScenarios
	}
	for _, s := range o.scenarios {
		if !slices.Contains(allScenarios, s) {
			return nil, fmt.Errorf("unknown scenario %q; scenarios: %s", s, strings.Join(allScenarios, ", "))
		}
	}
	return o, nil
}

// env is what the report says about the run.
type env struct {
	Date, Commit, CPU, Load, PG, PGL, Node, Wrk, Pgbench, Go string
	Cores                                                    int
}

func command(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "?"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

func machine(root string) env {
	e := env{Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Cores: numCPU()}
	e.Commit = command("git", "-C", root, "rev-parse", "--short=12", "HEAD")
	if out, _ := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); len(out) > 0 {
		e.Commit += "-dirty"
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				e.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		e.Load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	e.Wrk = command("wrk", "-v")
	e.Pgbench = command(pgbenchPath(), "--version")
	e.Go = command("go", "version")
	return e
}

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\nprocessor") + 1
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run from inside the meshgate module")
	}
	return filepath.Dir(mod), nil
}

// system is one contestant of a scenario.
type system struct {
	Name string
	run  func(ctx context.Context, c int) (result, error)
}

// measured holds the rounds of one scenario at one concurrency.
type measured struct {
	Scenario *scenario
	Conc     int
	Rounds   map[string][]result // by system name
	Order    []string
}

type report struct {
	env        env
	opts       *options
	seedTook   time.Duration
	catchUp    *catchUp
	sqliteUp   *catchUp
	stmts      map[string][]int // statements per request, by scenario
	setups     map[string][]int // session setup statements (new connections) per request
	stmtText   map[string]string
	results    []*measured
	profiles   []string
	notes      []string
	equalities []string
	goOut      map[string][]string // in-process benchmark output, by scenario
	goOrder    []string
}

func run(ctx context.Context, o *options, stdout io.Writer) (err error) {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	runDir := filepath.Join(o.cache, "results", time.Now().UTC().Format("20060102-150405"))
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	logf("results and logs in %s", runDir)
	rep := &report{env: machine(root), opts: o, stmts: map[string][]int{}, setups: map[string][]int{}, stmtText: map[string]string{}, goOut: map[string][]string{}}
	defer stopAll()
	if slices.ContainsFunc(o.scenarios, func(s string) bool { return slices.Contains(sideBySide, s) }) {
		if err := runSideBySide(ctx, o, root, runDir, rep, logf); err != nil {
			return err
		}
	}
	stopAll() // the peers leave the cores to the in-process benchmarks
	for _, name := range inProcess {
		if !slices.Contains(o.scenarios, name) {
			continue
		}
		b := goBenches(o.postgres)[name]
		logf("in-process benchmark %s: go test -bench %s", name, b.pattern)
		lines, err := runGoBench(ctx, root, b)
		if err != nil {
			return err
		}
		rep.goOut[name] = lines
		rep.goOrder = append(rep.goOrder, name)
	}
	return rep.print(stdout, runDir)
}

// runSideBySide runs the scenarios with peers: meshgate on PostgreSQL (and
// SQLite), PostGraphile, pgbench.
func runSideBySide(ctx context.Context, o *options, root, runDir string, rep *report, logf func(string, ...any)) (err error) {

	bin, err := buildGateway(ctx, root, runDir, rep.env.Commit)
	if err != nil {
		return err
	}
	db, err := createBenchDB(ctx, o.postgres, o.connLimit)
	if err != nil {
		return err
	}
	defer func() {
		stopAll()
		if derr := db.Drop(); derr != nil && err == nil {
			err = fmt.Errorf("drop the run's database %s: %w", db.Name, derr)
		}
	}()
	rep.env.PG = db.serverVersion(ctx)
	logf("database and role %s (connection limit %d)", db.Name, o.connLimit)

	// meshgate on PostgreSQL from a cold start: seeding, then the consumers
	// catch up with everything the seed wrote (scenario catch-up).
	start := time.Now()
	mesh, err := startGateway(ctx, "meshgate-pg", bin, runDir, "--postgres", db.DSN, "--seed-scale", fmt.Sprint(o.scale))
	if err != nil {
		return err
	}
	rep.seedTook = time.Since(start)
	logf("meshgate on PostgreSQL at %s (seeded in %v); waiting for its consumers (at most %v)", mesh.URL, rep.seedTook.Round(time.Second), o.settle)
	var catchUpProfile chan error
	if o.profile && slices.Contains(o.scenarios, "catch-up") {
		// The CPU profile of the catch-up: its first 10 s.
		catchUpProfile = make(chan error, 1)
		go func() { catchUpProfile <- cpuProfile(ctx, mesh, 10, filepath.Join(runDir, "cpu-catch-up.pprof")) }()
	}
	cu, err := mesh.settle(ctx, o.settle)
	if err != nil {
		return err
	}
	if catchUpProfile != nil {
		// The profile is a help, not the measurement: a failure is noted.
		err := <-catchUpProfile
		if err == nil {
			err = summarise(ctx, bin, runDir, "catch-up", fmt.Sprintf("the first 10 s of the catch-up (which took %v)", cu.Took.Round(100*time.Millisecond)), rep)
		}
		if err != nil {
			rep.notes = append(rep.notes, fmt.Sprintf("no CPU profile of the catch-up: %v", err))
		}
	}
	rep.catchUp = &cu
	logf("consumers settled=%v after %v; sales applied %.0f events/s", cu.Settled, cu.Took.Round(time.Second), cu.SalesRate)
	if !cu.Settled {
		rep.notes = append(rep.notes, fmt.Sprintf("meshgate (PostgreSQL) consumers still had %.0f changes to apply when timing began (bound -settle %v): reactions ran during the rounds", cu.Remaining, o.settle))
	}
	if err := db.analyze(ctx); err != nil {
		return fmt.Errorf("analyze the run's database: %w", err)
	}
	logf("tables analyzed (planner statistics fresh for both systems)")
	scs := scenarios(o.scale)
	want := func(name string) bool { return slices.Contains(o.scenarios, name) }
	var reads []*scenario
	var place *scenario
	for _, s := range scs {
		if want(s.Name) {
			if s.Write {
				place = s
			} else {
				reads = append(reads, s)
			}
		}
	}
	// meshgate on SQLite from a cold start, the same way (its gateway
	// then serves the rounds beside the others).
	var lite *gateway
	catchUpSQLite := func() error {
		if !o.sqlite {
			return nil
		}
		if lite, err = startGateway(ctx, "meshgate-sqlite", bin, runDir, "--seed-scale", fmt.Sprint(o.scale)); err != nil {
			return err
		}
		cu, err := lite.settle(ctx, o.settle)
		if err != nil {
			return err
		}
		rep.sqliteUp = &cu
		logf("meshgate on SQLite at %s, consumers settled=%v after %v; sales applied %.0f events/s", lite.URL, cu.Settled, cu.Took.Round(time.Second), cu.SalesRate)
		return nil
	}
	if len(reads) == 0 && place == nil {
		return catchUpSQLite() // catch-up alone
	}

	var pgl *peer
	if len(reads) > 0 {
		dir, err := installPeers(ctx, root, o.cache)
		if err != nil {
			return err
		}
		tags, err := db.tagsJSON(ctx)
		if err != nil {
			return err
		}
		tagsFile := filepath.Join(runDir, "postgraphile.tags.json5")
		if err := os.WriteFile(tagsFile, []byte(tags), 0o644); err != nil {
			return err
		}
		if pgl, err = startPostGraphile(ctx, dir, runDir, db.DSN, tagsFile, 10); err != nil {
			return err
		}
		rep.env.PGL, rep.env.Node = pgl.Version, pgl.Node
		logf("PostGraphile %s on Node %s at %s", pgl.Version, pgl.Node, pgl.URL)
	}
	if err := catchUpSQLite(); err != nil {
		return err
	}

	// Capture the statements of each read request through a second
	// instance (same stores, same Kafka) behind the protocol proxy.
	replay := map[string]string{}
	if len(reads) > 0 {
		if err := captureReads(ctx, o, db, bin, runDir, mesh, reads, rep, replay); err != nil {
			return err
		}
		// Equal answers, or nothing is timed.
		for _, s := range reads {
			for i, pair := range s.checks() {
				a, rawA, err := post(ctx, mesh.URL, pair[0])
				if err != nil {
					return fmt.Errorf("%s: meshgate: %w", s.Name, err)
				}
				b, rawB, err := post(ctx, pgl.URL, pair[1])
				if err != nil {
					return fmt.Errorf("%s: PostGraphile: %w", s.Name, err)
				}
				os.WriteFile(filepath.Join(runDir, fmt.Sprintf("answer-%s-%d-meshgate.json", s.Name, i)), rawA, 0o644)
				os.WriteFile(filepath.Join(runDir, fmt.Sprintf("answer-%s-%d-postgraphile.json", s.Name, i)), rawB, 0o644)
				same, diff, err := sameAnswer(a, b)
				if err != nil {
					return fmt.Errorf("%s: %w", s.Name, err)
				}
				if !same {
					return fmt.Errorf("%s: meshgate and PostGraphile answer differently (first difference %s); answers in %s", s.Name, diff, runDir)
				}
				if countRows(a) == 0 {
					return fmt.Errorf("%s: empty answer", s.Name)
				}
				if lite != nil && i == 0 {
					if _, _, err := post(ctx, lite.URL, pair[0]); err != nil {
						return fmt.Errorf("%s: meshgate on SQLite: %w", s.Name, err)
					}
				}
			}
			rep.equalities = append(rep.equalities, fmt.Sprintf("%s: %d answers equal (%d rows in the first)", s.Name, len(s.checks()), countRowsOf(ctx, mesh.URL, s.checks()[0][0])))
		}
		logf("answers equal: %s", strings.Join(rep.equalities, "; "))
	}

	for _, s := range reads {
		var systems []system
		systems = append(systems, wrkSystem("meshgate PG", runDir, s.Name+"-meshgate", mesh.URL, s.Meshgate, mesh.proc))
		systems = append(systems, wrkSystem("PostGraphile", runDir, s.Name+"-postgraphile", pgl.URL, s.PostGraphile, pgl.proc))
		if s.Replay {
			script := filepath.Join(runDir, s.Name+".pgbench.sql")
			if err := os.WriteFile(script, []byte(replay[s.Name]), 0o644); err != nil {
				return err
			}
			systems = append(systems, pgbenchSystem("pgbench", db, script, replay[s.Name+".path"], "prepared", runDir, o.connLimit))
		}
		if lite != nil {
			systems = append(systems, wrkSystem("meshgate SQLite", runDir, s.Name+"-sqlite", lite.URL, s.Meshgate, lite.proc))
		}
		if err := rounds(ctx, o, db, s, systems, rep, logf, nil); err != nil {
			return err
		}
		if o.profile && s.Name == "nested-read" {
			if err := profile(ctx, o, bin, runDir, mesh, systems[0], s.Name, rep, logf); err != nil {
				return err
			}
		}
	}

	if place != nil {
		// Capture the write transaction of one placeOrder, then time.
		tx, path, err := captureWrite(ctx, db, bin, runDir, mesh, place, rep)
		if err != nil {
			return err
		}
		script := filepath.Join(runDir, "place-order.pgbench.sql")
		if err := os.WriteFile(script, []byte(tx), 0o644); err != nil {
			return err
		}
		// pgbench writes into a copy of the schema: meshgate's relay would
		// otherwise publish its rows and the reactions would process them.
		if first, _, _ := strings.Cut(path, ","); strings.Trim(first, `" `) != "" {
			first = strings.Trim(first, `" `) // captured as SET search_path TO "orders"
			copyName := "pgbench_" + first
			if err := db.cloneSchema(ctx, first, copyName); err != nil {
				return fmt.Errorf("copy schema %s for pgbench: %w", first, err)
			}
			path = copyName
		}
		systems := []system{
			wrkSystem("meshgate PG", runDir, "place-order-meshgate", mesh.URL, place.Meshgate, mesh.proc),
			pgbenchSystem("pgbench", db, script, path, "simple", runDir, o.connLimit),
		}
		if lite != nil {
			systems = append(systems, wrkSystem("meshgate SQLite", runDir, "place-order-sqlite", lite.URL, place.Meshgate, lite.proc))
		}
		// Reactions to the orders placed (inventory, sales) run after each
		// round; let them finish (bounded) so that they do not load the next.
		between := func(ctx context.Context) {
			for _, g := range []*gateway{mesh, lite} {
				if g != nil {
					g.settle(ctx, 30*time.Second)
				}
			}
		}
		if err := rounds(ctx, o, db, place, systems, rep, logf, between); err != nil {
			return err
		}
		if o.profile {
			if err := profile(ctx, o, bin, runDir, mesh, systems[0], place.Name, rep, logf); err != nil {
				return err
			}
		}
	}
	return nil
}

func countRowsOf(ctx context.Context, url, body string) int {
	v, _, err := post(ctx, url, body)
	if err != nil {
		return 0
	}
	return countRows(v)
}

func wrkSystem(name, dir, script, url string, b body, p *proc) system {
	return system{Name: name, run: func(ctx context.Context, c int) (result, error) {
		path, err := writeWrkScript(dir, script, b, 1)
		if err != nil {
			return result{}, err
		}
		r, err := runWrk(ctx, url, path, c, roundDuration)
		if err == nil {
			err = p.Alive()
		}
		return r, err
	}}
}

func pgbenchSystem(name string, db *benchDB, script, path, mode, dir string, connLimit int) system {
	return system{Name: name, run: func(ctx context.Context, c int) (result, error) {
		// The role's connection limit also covers the pools of the
		// gateways and PostGraphile: pgbench gets what is left of it.
		held, err := db.openSessions(ctx)
		if err != nil {
			return result{}, err
		}
		clients := min(c, max(1, connLimit-held-2))
		return runPgbench(ctx, db.DSN, script, path, mode, dir, clients, roundDuration)
	}}
}

var roundDuration = 10 * time.Second

// rounds times every system at every concurrency, interleaved, -rounds
// times, recording PostgreSQL sessions and transactions of each round.
func rounds(ctx context.Context, o *options, db *benchDB, s *scenario, systems []system, rep *report, logf func(string, ...any), between func(context.Context)) error {
	roundDuration = o.duration
	for _, c := range o.conc {
		m := &measured{Scenario: s, Conc: c, Rounds: map[string][]result{}}
		for _, sys := range systems {
			m.Order = append(m.Order, sys.Name)
		}
		rep.results = append(rep.results, m)
		for r := range o.rounds {
			for _, sys := range systems {
				if between != nil {
					between(ctx)
				}
				before, err := db.stats(ctx)
				if err != nil {
					return err
				}
				res, err := sys.run(ctx, c)
				if err != nil {
					return fmt.Errorf("%s c%d round %d %s: %w", s.Name, c, r+1, sys.Name, err)
				}
				// Backends report their counters when idle, at most once a second.
				select {
				case <-time.After(1500 * time.Millisecond):
				case <-ctx.Done():
					return ctx.Err()
				}
				after, err := db.stats(ctx)
				if err != nil {
					return err
				}
				res.Sessions, res.Xacts = after.Sessions-before.Sessions, after.Xacts-before.Xacts
				m.Rounds[sys.Name] = append(m.Rounds[sys.Name], res)
				logf("%s c%d round %d %-15s %8.1f/s p50 %7.1f ms p99 %7.1f ms errors %d sessions %d", s.Name, c, r+1, sys.Name,
					res.RPS, ms(res.P50), ms(res.P99), res.Errors, res.Sessions)
				if res.Errors > 0 && res.FirstBad != "" {
					logf("  first bad answer: %.300s", res.FirstBad)
				}
			}
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// captureReads starts a second meshgate instance on the same stores and
// Kafka behind the protocol proxy and records the statements of
// -capture-requests sequential requests of each read scenario; the last
// one's statements become the pgbench replay script.
func captureReads(ctx context.Context, o *options, db *benchDB, bin, runDir string, mesh *gateway, reads []*scenario, rep *report, replay map[string]string) error {
	proxy, err := startWireProxy(db.Host)
	if err != nil {
		return err
	}
	defer proxy.Close()
	capt, err := startGateway(ctx, "meshgate-capture", bin, runDir, "--postgres", db.WithHost(proxy.Addr()), "--seed-scale", "0", "--kafka-brokers", mesh.Kafka)
	if err != nil {
		return err
	}
	defer capt.Stop()
	// Joining the consumer groups makes both instances' consumers look at
	// their positions again: let that pass, then wait for a quiet moment.
	if cu, err := capt.settle(ctx, time.Minute); err != nil {
		return err
	} else if !cu.Settled {
		rep.notes = append(rep.notes, fmt.Sprintf("the capturing instance's consumers still had %.0f changes to apply when the reads were captured", cu.Remaining))
	}
	quiet(ctx, proxy)
	var text strings.Builder
	for _, s := range reads {
		body := s.checks()[0][0]
		for range 3 { // warm up: prepared plans, pools, loaders
			if _, _, err := post(ctx, capt.URL, body); err != nil {
				return fmt.Errorf("capture %s: %w", s.Name, err)
			}
		}
		var last []statement
		for i := range o.captureReqs {
			quiet(ctx, proxy)
			mark := proxy.Mark()
			if _, _, err := post(ctx, capt.URL, body); err != nil {
				return fmt.Errorf("capture %s: %w", s.Name, err)
			}
			var setup []statement
			last, setup = requestStatements(proxy.Since(mark))
			rep.stmts[s.Name] = append(rep.stmts[s.Name], len(last))
			rep.setups[s.Name] = append(rep.setups[s.Name], len(setup))
			fmt.Fprintf(&text, "-- %s, request %d: %d statements, %d session setup\n", s.Name, i+1, len(last), len(setup))
			for _, st := range append(setup, last...) {
				l, err := st.Literal()
				if err != nil {
					l = st.SQL + fmt.Sprintf("  -- params %d (binary)", len(st.Params))
				}
				fmt.Fprintf(&text, "/* conn %d */ %s;\n", st.Conn, oneLine(l))
			}
		}
		if s.Replay {
			script, err := readScript(last)
			if err != nil {
				return fmt.Errorf("capture %s: %w", s.Name, err)
			}
			replay[s.Name] = script
			replay[s.Name+".path"] = searchPath(last)
		}
	}
	rep.stmtText["reads"] = text.String()
	return os.WriteFile(filepath.Join(runDir, "captured-reads.sql"), []byte(text.String()), 0o644)
}

// quiet waits (at most 30 s) until half a second passes without a
// statement other than meshgate's bookkeeping through the proxy.
func quiet(ctx context.Context, p *wireProxy) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		mark := p.Mark()
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
		if work, setup := requestStatements(p.Since(mark)); len(work)+len(setup) == 0 {
			return
		}
	}
}

// captureWrite records one placeOrder through a second instance behind the
// proxy and returns the pgbench script of its write transaction.
func captureWrite(ctx context.Context, db *benchDB, bin, runDir string, mesh *gateway, s *scenario, rep *report) (script, path string, err error) {
	proxy, err := startWireProxy(db.Host)
	if err != nil {
		return "", "", err
	}
	defer proxy.Close()
	capt, err := startGateway(ctx, "meshgate-capture-write", bin, runDir, "--postgres", db.WithHost(proxy.Addr()), "--seed-scale", "0", "--kafka-brokers", mesh.Kafka)
	if err != nil {
		return "", "", err
	}
	defer capt.Stop()
	if _, err := capt.settle(ctx, time.Minute); err != nil {
		return "", "", err
	}
	quiet(ctx, proxy)
	body := gql(placeMeshgate, map[string]any{"c": "1", "l": []map[string]any{{"itemId": "1", "quantity": 1}, {"itemId": "2", "quantity": 2}}})
	if _, _, err := post(ctx, capt.URL, body); err != nil { // warm up
		return "", "", fmt.Errorf("capture placeOrder: %w", err)
	}
	mark := proxy.Mark()
	if _, _, err := post(ctx, capt.URL, body); err != nil {
		return "", "", fmt.Errorf("capture placeOrder: %w", err)
	}
	all := proxy.Since(mark)
	tx, err := writeTransaction(all)
	if err != nil {
		return "", "", err
	}
	script, err = writeScript(tx)
	if err != nil {
		return "", "", err
	}
	var text strings.Builder
	fmt.Fprintf(&text, "-- placeOrder: %d statements in the request window (all products, relays, reactions), %d in the orders write transaction\n", len(all), len(tx))
	for _, st := range all {
		l, _ := st.Literal()
		fmt.Fprintf(&text, "-- conn %d: %s\n", st.Conn, oneLine(l))
	}
	text.WriteString("\n-- pgbench script:\n" + script)
	rep.stmts["place-order"] = []int{len(tx)}
	os.WriteFile(filepath.Join(runDir, "captured-place-order.sql"), []byte(text.String()), 0o644)
	return script, searchPath(tx), nil
}

// profile runs one more (untimed) round of sys at the first concurrency
// while taking a CPU profile of the gateway, and summarises it.
func profile(ctx context.Context, o *options, bin, runDir string, g *gateway, sys system, name string, rep *report, logf func(string, ...any)) error {
	file := filepath.Join(runDir, "cpu-"+name+".pprof")
	secs := int(o.duration.Seconds())
	errc := make(chan error, 1)
	go func() { errc <- cpuProfile(ctx, g, secs, file) }()
	time.Sleep(200 * time.Millisecond)
	res, err := sys.run(ctx, o.conc[0])
	if err != nil {
		return err
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("CPU profile: %w", err)
	}
	if err := summarise(ctx, bin, runDir, name, fmt.Sprintf("%s, c%d, %ds (%.0f req/s during the profile)", name, o.conc[0], secs, res.RPS), rep); err != nil {
		return err
	}
	logf("profile of %s in %s", name, file)
	return nil
}

// cpuProfile writes a CPU profile of the gateway over secs seconds to file.
func cpuProfile(ctx context.Context, g *gateway, secs int, file string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", g.Pprof, secs), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// summarise adds the top of the profile cpu-<name>.pprof to the report.
func summarise(ctx context.Context, bin, runDir, name, under string, rep *report) error {
	file := filepath.Join(runDir, "cpu-"+name+".pprof")
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", bin, file).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go tool pprof: %w\n%s", err, top)
	}
	cum, _ := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=30", bin, file).CombinedOutput()
	summary := fmt.Sprintf("CPU profile of meshgate (PostgreSQL) under %s; %s\n\nflat:\n%s\ncumulative:\n%s",
		under, file, trimPprof(string(top)), trimPprof(string(cum)))
	os.WriteFile(filepath.Join(runDir, "cpu-"+name+".txt"), []byte(summary), 0o644)
	rep.profiles = append(rep.profiles, summary)
	return nil
}

func trimPprof(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Type:") || strings.HasPrefix(l, "Time:") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}
