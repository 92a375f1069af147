package meshtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// PostgresBin returns the directory of the PostgreSQL server binaries: the
// newest /usr/lib/postgresql/<version>/bin holding initdb (Debian's
// layout), or "" when there is none.
func PostgresBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	best, bestVersion := "", -1
	for _, d := range dirs {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(d))))
		if err == nil && v > bestVersion {
			best, bestVersion = filepath.Dir(d), v
		}
	}
	return best
}

// Postgres is a private PostgreSQL server for a test that stops, restarts or
// breaks it (never the shared server of the other tests). As root it runs
// as the user postgres (the server refuses root).
type Postgres struct {
	Dir  string // the cluster's data directory; its socket and log are beside it
	Port int
	// DSN reaches the database "postgres" as the superuser postgres.
	DSN string

	bin  string // directory of the server binaries
	root string
	as   string // user to run the binaries as ("" = this one)
}

// StartPostgres initialises a cluster in t.TempDir() and starts it on a
// free loopback port with fsync off; it stops at the end of t. Without the
// binaries it skips t, or fails it when CI is set.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin := PostgresBin()
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("the PostgreSQL server binaries (/usr/lib/postgresql/<version>/bin/initdb) are missing while CI is set: apt-get install postgresql")
		}
		t.Skipf("the PostgreSQL server binaries (/usr/lib/postgresql/<version>/bin/initdb) are missing: apt-get install postgresql to run")
	}
	p, err := NewPostgres(bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

// NewPostgres initialises a cluster under root (which must exist) with the
// binaries in bin, without starting it.
func NewPostgres(bin, root string) (*Postgres, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := &Postgres{bin: bin, root: root, Dir: filepath.Join(root, "data"), Port: port,
		DSN: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs the user postgres: %w", err)
		}
		p.as = "postgres"
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		// The server's user must reach root: open the directories above
		// it for traversal and hand root over.
		for d := root; d != "/" && d != "." && d != os.TempDir(); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o711); err != nil {
				return nil, err
			}
		}
		if err := os.Chown(root, uid, gid); err != nil {
			return nil, err
		}
	}
	if out, err := p.run("initdb", "-D", p.Dir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return p, nil
}

func (p *Postgres) run(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path := filepath.Join(p.bin, name)
	var cmd *exec.Cmd
	if p.as != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", p.as, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = p.root
	return cmd.CombinedOutput()
}

// Start starts the server and waits until it accepts connections.
func (p *Postgres) Start() error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
		p.Port, p.root)
	if out, err := p.run("pg_ctl", "-D", p.Dir, "-l", filepath.Join(p.root, "postgres.log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		return fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, Tail(filepath.Join(p.root, "postgres.log"), 20))
	}
	return nil
}

// Stop stops the server (fast: open sessions are ended) if it runs.
func (p *Postgres) Stop() error {
	if _, err := os.Stat(filepath.Join(p.Dir, "postmaster.pid")); err != nil {
		return nil
	}
	if out, err := p.run("pg_ctl", "-D", p.Dir, "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Log returns the end of the server's log.
func (p *Postgres) Log(lines int) string { return Tail(filepath.Join(p.root, "postgres.log"), lines) }
