package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/pgtest"
)

// gateway is a meshgate started in-process through run, as the binary does.
type gateway struct {
	base   string // http://host:port
	kafka  string // broker address
	banner string // what it printed on stdout at start
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	logs   *syncWriter // what it logged (stderr)
}

// stop shuts the gateway down (once) and checks that it stopped cleanly.
func (g *gateway) stop(t testing.TB) {
	g.once.Do(func() {
		g.cancel()
		select {
		case err := <-g.done:
			if err != nil {
				t.Errorf("gateway stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("gateway did not stop within 30s")
		}
	})
}

// startGateway runs the gateway with args added to test defaults (ports
// picked by the OS, a temp data dir, a small seed, quiet logs) and stops it
// at the end of the test.
func startGateway(t testing.TB, args ...string) *gateway {
	t.Helper()
	all := append([]string{
		"--addr", "127.0.0.1:0", "--embedded-kafka-addr", "127.0.0.1:0",
		"--data-dir", t.TempDir(), "--seed-scale", "0.01", "--log-level", "warn",
	}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	g := &gateway{cancel: cancel, done: make(chan error, 1)}
	var buf bytes.Buffer
	stderr := &syncWriter{w: &buf}
	g.logs = stderr
	go func() {
		err := run(ctx, all, func(string) string { return "" }, pw, stderr)
		pw.Close()
		g.done <- err
	}()
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			g.banner += sc.Text() + "\n"
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && f[0] == "GraphQL" {
				g.base = strings.TrimSuffix(f[1], "/graphql")
			}
			if len(f) >= 2 && f[0] == "kafka" {
				g.kafka = f[1]
				close(found)
			}
		}
	}()
	select {
	case <-found:
	case err := <-g.done:
		stderr.mu.Lock()
		defer stderr.mu.Unlock()
		t.Fatalf("gateway did not start: %v\n%s", err, buf.String())
	case <-time.After(60 * time.Second):
		t.Fatal("gateway did not start within 60s")
	}
	t.Cleanup(func() { g.stop(t) })
	return g
}

// syncWriter serialises writes of the gateway's goroutines to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// String returns what was written so far (w.w must be a *bytes.Buffer).
func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.(*bytes.Buffer).String()
}

func (w *syncWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

// gql posts a GraphQL request and returns the decoded response.
func (g *gateway) gql(t testing.TB, query string, vars map[string]any) gqlResponse {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	resp, err := http.Post(g.base+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST /graphql: %v", err)
	}
	defer resp.Body.Close()
	var out gqlResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	return out
}

type gqlResponse struct {
	Data   map[string]any `json:"data"`
	Errors []gqlError     `json:"errors"`
}

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

// must fails the test on GraphQL errors.
func (r gqlResponse) must(t testing.TB) map[string]any {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("GraphQL errors: %+v", r.Errors)
	}
	return r.Data
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// postgresStores returns --store flags that put every product of the demo
// mesh in its own fresh schema of the PostgreSQL test database, dropped
// after the test (see pgtest for when it skips or fails).
func postgresStores(t testing.TB) []string {
	t.Helper()
	pg := pgtest.New(t)
	var args []string
	for _, d := range demo.Products {
		args = append(args, "--store", d.Name+"="+pg.DSN(d.Name))
	}
	return args
}

func backends(t *testing.T, fn func(t *testing.T, args []string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, nil) })
	t.Run("postgres", func(t *testing.T) { fn(t, postgresStores(t)) })
}

func TestHelpAndBadFlags(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"--help"}, func(string) string { return "" }, io.Discard, &out)
	if err == nil || !strings.Contains(out.String(), "-data-dir") || !strings.Contains(out.String(), "MESHGATE_") {
		t.Fatalf("--help: err=%v output=%q", err, out.String())
	}
	for _, args := range [][]string{
		{"--nope"},
		{"--store", "orders"},
		{"--store", "unknown=sqlite:x.db"},
		{"--store", "orders=mysql://x", "--data-dir", t.TempDir()},
		{"--seed-scale", "-1"},
	} {
		err := run(context.Background(), args, func(string) string { return "" }, io.Discard, io.Discard)
		var ue usageError
		if err == nil || !asUsage(err, &ue) {
			t.Errorf("%v: want a usage error (exit 2), got %v", args, err)
		}
	}
}

func asUsage(err error, ue *usageError) bool {
	u, ok := err.(usageError)
	if ok {
		*ue = u
	}
	return ok
}

func TestEnvAndConfigFile(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/meshgate.yaml"
	os.WriteFile(file, []byte("seed-scale: 0.5\nlog-level: debug\nstore:\n  - orders=sqlite:/tmp/o.db\n"), 0o644)
	env := map[string]string{"MESHGATE_CONFIG": file, "MESHGATE_LOG_LEVEL": "error", "MESHGATE_DATA_DIR": dir}
	c, err := parseConfig([]string{"--seed-scale", "0.25"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.SeedScale != 0.25 || c.LogLevel != "error" || c.DataDir != dir || c.Stores["orders"] != "sqlite:/tmp/o.db" {
		t.Fatalf("precedence flag > env > file broken: %+v", c)
	}
	os.WriteFile(file, []byte("no-such-setting: 1\n"), 0o644)
	if _, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard); err == nil {
		t.Fatal("unknown config setting accepted")
	}
}

// TestPGMaxConns checks that --pg-max-conns (flag, MESHGATE_PG_MAX_CONNS or
// pg-max-conns in the config file) becomes the pool size of every
// PostgreSQL store that does not set its own.
func TestPGMaxConns(t *testing.T) {
	file := t.TempDir() + "/meshgate.yaml"
	os.WriteFile(file, []byte("pg-max-conns: 5\n"), 0o644)
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, fmt.Sprintf("pool_max_conns=%d", products.DefaultMaxConns)},
		{[]string{"--pg-max-conns", "12"}, nil, "pool_max_conns=12"},
		{nil, map[string]string{"MESHGATE_PG_MAX_CONNS": "7"}, "pool_max_conns=7"},
		{nil, map[string]string{"MESHGATE_CONFIG": file}, "pool_max_conns=5"},
	} {
		args := append([]string{"--postgres", "postgres://u:p@db:5432/mesh?sslmode=disable",
			"--store", "sales=postgres://u:p@db:5432/mesh?pool_max_conns=3"}, c.args...)
		cfg, err := parseConfig(args, func(k string) string { return c.env[k] }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.dsn("orders"); !strings.Contains(got, c.want) || !strings.Contains(got, "sslmode=disable") {
			t.Errorf("%v %v: orders DSN %s, want %s", c.args, c.env, got, c.want)
		}
		if got := cfg.dsn("sales"); !strings.HasSuffix(got, "?pool_max_conns=3") {
			t.Errorf("%v %v: the DSN's own pool_max_conns lost: %s", c.args, c.env, got)
		}
		if got := cfg.dsn("customers"); strings.Count(got, "pool_max_conns") != 1 {
			t.Errorf("customers DSN %s", got)
		}
	}
	cfg, err := parseConfig([]string{"--data-dir", "/tmp/d"}, func(string) string { return "" }, io.Discard)
	if err != nil || cfg.dsn("orders") != "sqlite:/tmp/d/orders.db" {
		t.Errorf("SQLite DSN changed: %v %v", cfg.dsn("orders"), err)
	}
	if _, err := parseConfig([]string{"--pg-max-conns", "1"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("--pg-max-conns 1 accepted")
	}
}

func TestEndpoints(t *testing.T) {
	g := startGateway(t)
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/": 200, "/nope": 404} {
		resp, err := http.Get(g.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	data := g.gql(t, `{ mesh { products } customers(first: 1) { totalCount } }`, nil).must(t)
	var names []string
	for _, p := range demo.Products {
		names = append(names, p.Name)
	}
	if want := fmt.Sprintf("map[products:%v]", names); fmt.Sprint(data["mesh"]) != want {
		t.Errorf("mesh: %v, want the registered products %s", data["mesh"], want)
	}
}
