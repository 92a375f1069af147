// Package meshtest runs meshgate as real processes for tests and benchmarks
// (several instances sharing stores and a broker, killed and restarted),
// drives them over HTTP and graphql-transport-ws, and reconciles the books
// of the mesh: audit entries against the records on Kafka against what each
// consumer applied, and the derived products against SQL over their sources.
//
// It imports no meshgate package but products (and the demo products), so
// that the tests of every package, streaming's included, can use it.
package meshtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build builds the meshgate binary of the module this package belongs to
// into dir and returns its path.
func Build(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the meshgate module (go env GOMOD is empty): run from the repository")
	}
	bin := filepath.Join(dir, "meshgate")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Dir(mod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build meshgate: %w\n%s", err, out)
	}
	return bin, nil
}

// BuildT builds meshgate into t.TempDir() and fails t if it cannot.
func BuildT(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := Build(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Gateway is a meshgate process. Its standard output and error go to
// LogFile.
type Gateway struct {
	Name    string
	Bin     string
	Args    []string
	LogFile string
	// Base is http://host:port of the running process; Kafka the brokers
	// it printed.
	Base  string
	Kafka string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs bin with args (plus --addr 127.0.0.1:0 unless args set
// --addr) and waits until it printed its banner (it serves then).
func Start(ctx context.Context, name, bin, logFile string, args ...string) (*Gateway, error) {
	g := &Gateway{Name: name, Bin: bin, Args: args, LogFile: logFile}
	if err := g.start(ctx); err != nil {
		return nil, err
	}
	return g, nil
}

// StartT starts a gateway whose log lives in t.TempDir(), stops it when t
// ends and then, if t failed, logs the end of its log.
func StartT(t testing.TB, name, bin string, args ...string) *Gateway {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g, err := Start(ctx, name, bin, filepath.Join(t.TempDir(), name+".log"), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.Stop()
		if t.Failed() {
			t.Logf("%s: end of its log %s:\n%s", g.Name, g.LogFile, Tail(g.LogFile, 40))
		}
	})
	return g
}

func (g *Gateway) start(ctx context.Context) error {
	args := g.Args
	hasAddr := false
	for _, a := range args {
		hasAddr = hasAddr || a == "--addr" || strings.HasPrefix(a, "--addr=")
	}
	if !hasAddr {
		args = append([]string{"--addr", "127.0.0.1:0"}, args...)
	}
	f, err := os.OpenFile(g.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "==== %s: start %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), g.Bin, strings.Join(args, " "))
	cmd := exec.Command(g.Bin, args...)
	// Its own process group, killed with the test process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = f
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		f.Close()
		return err
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", g.Name, err)
	}
	done := make(chan struct{})
	g.mu.Lock()
	g.cmd, g.done, g.err = cmd, done, nil
	g.mu.Unlock()
	ready := make(chan struct{})
	var base, kafka string
	go func() {
		sc := bufio.NewScanner(stdout)
		seen := false
		for sc.Scan() {
			fmt.Fprintln(f, sc.Text())
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 && fields[0] == "GraphQL" {
				base = strings.TrimSuffix(fields[1], "/graphql")
			}
			if len(fields) >= 2 && fields[0] == "kafka" && !seen {
				kafka, seen = fields[1], true
				close(ready)
			}
		}
		io.Copy(f, stdout)
		err := cmd.Wait()
		g.mu.Lock()
		g.err = err
		g.mu.Unlock()
		f.Close()
		close(done)
	}()
	select {
	case <-ready:
		g.mu.Lock()
		g.Base, g.Kafka = base, kafka
		g.mu.Unlock()
		return nil
	case <-done:
		return fmt.Errorf("%s exited before serving (%v); end of its log %s:\n%s", g.Name, g.Exited(), g.LogFile, Tail(g.LogFile, 30))
	case <-ctx.Done():
		g.Kill()
		return fmt.Errorf("%s did not serve: %w; end of its log %s:\n%s", g.Name, ctx.Err(), g.LogFile, Tail(g.LogFile, 30))
	}
}

// URL returns the base URL of the running process.
func (g *Gateway) URL() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.Base
}

// Restart starts the process again with the same arguments (on a new port
// unless they set --addr); it must have exited.
func (g *Gateway) Restart(ctx context.Context) error {
	if g.Exited() == nil {
		return fmt.Errorf("%s is still running", g.Name)
	}
	return g.start(ctx)
}

// Exited returns nil while the process runs, else why it ended.
func (g *Gateway) Exited() error {
	g.mu.Lock()
	done, err := g.done, g.err
	g.mu.Unlock()
	select {
	case <-done:
		if err == nil {
			return errors.New("exited with status 0")
		}
		return err
	default:
		return nil
	}
}

// Kill sends SIGKILL to the process group and waits until it is gone.
func (g *Gateway) Kill() {
	g.signal(syscall.SIGKILL, 0)
}

// Stop sends SIGTERM and waits up to 30 s for a graceful exit, then kills.
func (g *Gateway) Stop() {
	g.signal(syscall.SIGTERM, 30*time.Second)
}

func (g *Gateway) signal(sig syscall.Signal, grace time.Duration) {
	g.mu.Lock()
	cmd, done := g.cmd, g.done
	g.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	syscall.Kill(-cmd.Process.Pid, sig)
	if grace > 0 {
		select {
		case <-done:
			return
		case <-time.After(grace):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	<-done
}

// Tail returns the last n lines of a file.
func Tail(file string, n int) string {
	b, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Eventually polls cond every interval until it holds, or fails t after
// timeout saying what it waited for. cond may call t.Fatal.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
}

// Until is Eventually for a condition that also describes the state it
// saw: the last description goes into the failure.
func Until(t testing.TB, timeout, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last seen:\n%s", timeout, what, state)
		}
		time.Sleep(interval)
	}
}

// FreeAddr returns a loopback address nothing listens on (yet), for a
// broker that must come back on the same address. The port is taken below
// Linux's ephemeral range (32768+), so that nothing started on port 0 gets
// it meanwhile.
func FreeAddr() (string, error) {
	for range 100 {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000)))
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr, nil
	}
	return "", errors.New("no free port in 20000-31999")
}
