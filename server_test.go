package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"
)

// gateway is a meshgate started in-process through run, as the binary does.
type gateway struct {
	base   string // http://host:port
	kafka  string // broker address
	banner string // what it printed on stdout at start
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
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

// postgresStores returns --store flags that put every product in its own
// fresh schema of the PostgreSQL test database, dropped after the test; it
// skips when MESHGATE_TEST_POSTGRES is unset.
func postgresStores(t testing.TB) []string {
	t.Helper()
	dsn := os.Getenv("MESHGATE_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("MESHGATE_TEST_POSTGRES is not set")
	}
	var b [4]byte
	rand.Read(b[:])
	prefix := "t" + hex.EncodeToString(b[:])
	var args []string
	var schemas []string
	for _, p := range []string{"customers", "inventory", "orders", "engagement"} {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", prefix+"_"+p)
		u.RawQuery = q.Encode()
		args = append(args, "--store", p+"="+u.String())
		schemas = append(schemas, prefix+"_"+p)
	}
	t.Cleanup(func() {
		db := bun.NewDB(sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn))), pgdialect.New())
		defer db.Close()
		for _, s := range schemas {
			if _, err := db.Exec("DROP SCHEMA IF EXISTS ? CASCADE", bun.Ident(s)); err != nil {
				t.Errorf("drop schema %s: %v", s, err)
			}
		}
	})
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
	if fmt.Sprint(data["mesh"]) != "map[products:[customers inventory orders engagement sales]]" {
		t.Errorf("mesh: %v", data["mesh"])
	}
}
