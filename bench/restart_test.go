package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/pgtest"
)

// Settings of BenchmarkRestart, from the environment.
const (
	// restartScalesEnv lists the seed scales to measure.
	restartScalesEnv = "MESHGATE_RESTART_SCALES"
	// restartBinEnv, if set, is the meshgate binary to measure instead of
	// one built from this tree (e.g. an older version, for comparison).
	restartBinEnv = "MESHGATE_RESTART_BIN"
)

// BenchmarkRestart measures a restart of the meshgate binary over an
// existing data directory: the first start seeds the demo mesh at the given
// scale and runs until everything is published and every reaction applied;
// it is stopped with SIGTERM and started again on the same data directory
// (and the embedded broker's log in <data-dir>/kafka). Reported, from the
// second start:
//
//   - healthz_ms: from the process start to /healthz answering 200;
//   - settled_ms: from /healthz answering to nothing unpublished (catalog
//     freshness.unpublished) and zero consumer lag (consumerLag);
//   - reaction_ms: from /healthz answering to an order placed at that
//     moment being RESERVED or BACKORDERED (orders → inventory → orders
//     through Kafka: the consumer groups are back and current);
//   - republished: meshgate_relay_restarts_total after the restart (0: the
//     history was not published again).
//
// SQLite always; PostgreSQL too when MESHGATE_TEST_POSTGRES is set (each
// product in a fresh schema). MESHGATE_RESTART_SCALES picks the scales
// (default 1); MESHGATE_RESTART_BIN measures another binary.
//
//	go test -run XXX -bench Restart -benchtime 1x -timeout 60m ./bench/
//	MESHGATE_RESTART_SCALES=1,5 go test -run XXX -bench Restart …
func BenchmarkRestart(b *testing.B) {
	bin := os.Getenv(restartBinEnv)
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "meshgate")
		build := exec.Command("go", "build", "-o", bin, ".")
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("go build: %v\n%s", err, out)
		}
	}
	scales := os.Getenv(restartScalesEnv)
	if scales == "" {
		scales = "1"
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, sc := range strings.Split(scales, ",") {
			scale := strings.TrimSpace(sc)
			b.Run(fmt.Sprintf("%s/scale=%s", backend, scale), func(b *testing.B) {
				args := []string{"--addr", "127.0.0.1:0", "--embedded-kafka-addr", "127.0.0.1:0",
					"--data-dir", b.TempDir(), "--seed-scale", scale, "--log-level", "warn"}
				if backend == "postgres" {
					// Each product in a schema of its own, with the
					// gateway's default pool (not the tests' small one).
					pg := pgtest.New(b)
					for _, p := range demo.Products {
						u, err := url.Parse(pg.DSN(p.Name))
						if err != nil {
							b.Fatal(err)
						}
						q := u.Query()
						q.Del("pool_max_conns")
						u.RawQuery = q.Encode()
						args = append(args, "--store", p.Name+"="+u.String())
					}
				}
				restart(b, bin, args)
			})
		}
	}
}

// meshgate is a running meshgate process.
type meshgate struct {
	cmd    *exec.Cmd
	base   string
	exited chan error
	stderr *lockedBuffer
}

func startMeshgate(b *testing.B, bin string, args []string) *meshgate {
	g := &meshgate{cmd: exec.Command(bin, args...), exited: make(chan error, 1), stderr: &lockedBuffer{}}
	g.cmd.Stderr = g.stderr
	stdout, err := g.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "GraphQL" {
				found <- strings.TrimSuffix(f[1], "/graphql")
			}
		}
		g.exited <- g.cmd.Wait()
	}()
	b.Cleanup(func() {
		if g.cmd.ProcessState == nil {
			g.cmd.Process.Kill() // our child, by its pid
		}
	})
	select {
	case g.base = <-found:
	case err := <-g.exited:
		b.Fatalf("meshgate exited: %v\n%s", err, g.stderr.String())
	case <-time.After(30 * time.Minute):
		b.Fatal("meshgate did not start")
	}
	return g
}

// stop sends SIGTERM and waits for a clean exit.
func (g *meshgate) stop(b *testing.B) {
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-g.exited:
		if err != nil {
			b.Fatalf("meshgate stopped with %v\n%s", err, g.stderr.String())
		}
	case <-time.After(time.Minute):
		b.Fatal("meshgate did not stop within a minute")
	}
}

func (g *meshgate) gql(b *testing.B, query string, vars map[string]any) map[string]any {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	resp, err := http.Post(g.base+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data   map[string]any
		Errors []any
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Errors) > 0 {
		b.Fatalf("%s: %v %v", query, err, out.Errors)
	}
	return out.Data
}

// settled tells whether nothing is unpublished and no reaction lags.
func (g *meshgate) settled(b *testing.B) bool {
	d := g.gql(b, `{ consumerLag { lag } catalog { freshness { unpublished } } }`, nil)
	for _, l := range d["consumerLag"].([]any) {
		if l.(map[string]any)["lag"].(float64) != 0 {
			return false
		}
	}
	for _, p := range d["catalog"].([]any) {
		if p.(map[string]any)["freshness"].(map[string]any)["unpublished"].(float64) != 0 {
			return false
		}
	}
	return true
}

func (g *meshgate) metric(b *testing.B, prefix string) float64 {
	resp, err := http.Get(g.base + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var sum float64
	for line := range strings.Lines(string(raw)) {
		if strings.HasPrefix(line, prefix) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

func restart(b *testing.B, bin string, args []string) {
	start := time.Now()
	g := startMeshgate(b, bin, args)
	waitFor(b, 60*time.Minute, "the first run to settle", func() bool { return g.settled(b) })
	first := time.Since(start)
	g.stop(b)

	b.ResetTimer()
	start = time.Now()
	g = startMeshgate(b, bin, args)
	var healthz time.Duration
	waitFor(b, 10*time.Minute, "/healthz", func() bool {
		resp, err := http.Get(g.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		healthz = time.Since(start)
		return resp.StatusCode == http.StatusOK
	})
	up := time.Now()
	o := g.gql(b, `mutation { placeOrder(customerId: 1, lines: [{itemId: 1, quantity: 1}]) { id } }`, nil)
	id := o["placeOrder"].(map[string]any)["id"]
	var settled, reaction time.Duration
	waitFor(b, 60*time.Minute, "the restarted gateway to settle and react", func() bool {
		if reaction == 0 {
			d := g.gql(b, `query($id: ID!) { order(id: $id) { status } }`, map[string]any{"id": id})
			if s := d["order"].(map[string]any)["status"]; s == "RESERVED" || s == "BACKORDERED" {
				reaction = time.Since(up)
			}
		}
		if settled == 0 && g.settled(b) {
			settled = time.Since(up)
		}
		return reaction > 0 && settled > 0
	})
	b.StopTimer()
	republished := g.metric(b, "meshgate_relay_restarts_total")
	g.stop(b)
	b.ReportMetric(float64(healthz.Milliseconds()), "healthz_ms")
	b.ReportMetric(float64(settled.Milliseconds()), "settled_ms")
	b.ReportMetric(float64(reaction.Milliseconds()), "reaction_ms")
	b.ReportMetric(republished, "republished")
	fmt.Printf("restart over the data directory (%s): first run settled in %v; second start: /healthz after %v, then settled (nothing unpublished, zero lag) after %v, "+
		"an order placed then reacted to after %v; relays republished %v logs\n",
		strings.Join(args, " "), first.Round(time.Millisecond), healthz.Round(time.Millisecond), settled.Round(time.Millisecond), reaction.Round(time.Millisecond), republished)
}
