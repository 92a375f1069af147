package streaming

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/meshgate/meshgate/products"
)

// sessions reports the PostgreSQL sessions of one application name.
type sessions struct {
	db  *sql.DB
	app string
}

type session struct {
	PID       int
	State     string
	Waiting   string // wait_event_type
	XactStart sql.NullTime
}

func (s sessions) list(t testing.TB) []session {
	t.Helper()
	rows, err := s.db.Query(`SELECT pid, COALESCE(state, ''), COALESCE(wait_event_type, ''), xact_start
		FROM pg_stat_activity WHERE application_name = $1`, s.app)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []session
	for rows.Next() {
		var x session
		if err := rows.Scan(&x.PID, &x.State, &x.Waiting, &x.XactStart); err != nil {
			t.Fatal(err)
		}
		out = append(out, x)
	}
	return out
}

// inTransaction returns the sessions inside a transaction. (A session
// that just ended one may briefly show its start with the state idle.)
func (s sessions) inTransaction(t testing.TB) []session {
	var out []session
	for _, x := range s.list(t) {
		if x.XactStart.Valid && x.State != "idle" {
			out = append(out, x)
		}
	}
	return out
}

// TestReactionLockWaits: reactions of one product take turns through
// Store.WriteExclusive. Many waiting at once in one process hold no
// connection in a transaction (only the holder is in one); a wait for a
// lock another instance holds is an active session waiting on the server,
// never idle in a transaction, goes on past the driver's timeouts in fresh
// transactions, and ends at the deadline chosen with a clear error.
func TestReactionLockWaits(t *testing.T) {
	t.Parallel()
	base := os.Getenv(pgEnv)
	b := postgresBackend(t)
	var rnd [4]byte
	rand.Read(rnd[:])
	app := "mgtest_lock_" + hex.EncodeToString(rnd[:])
	dsn := func(product string) string {
		u, err := url.Parse(b.DSN(product))
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("application_name", app)
		u.RawQuery = q.Encode()
		return u.String()
	}
	m := openMesh(t, backend{Name: b.Name, DSN: dsn})
	store := m.Store("inventory")
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ours := sessions{db: admin, app: app}
	ctx := context.Background()

	// 1. One writer holds the lock; twelve more of this process wait.
	inside, release := make(chan struct{}), make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		_, err := store.WriteExclusive(ctx, "react", 10*time.Second, func(ctx context.Context, tx *products.Tx) error {
			close(inside)
			<-release
			return nil
		})
		holder <- err
	}()
	<-inside
	const waiters = 12
	var wg sync.WaitGroup
	errs := make(chan error, waiters)
	for range waiters {
		wg.Go(func() {
			_, err := store.WriteExclusive(ctx, "react", 30*time.Second, func(ctx context.Context, tx *products.Tx) error { return nil })
			errs <- err
		})
	}
	for range 50 {
		if in := ours.inTransaction(t); len(in) != 1 {
			t.Fatalf("%d sessions in a transaction while one writer holds the lock and %d wait: %+v; want only the holder", len(in), waiters, in)
		}
	}
	var key int64
	if err := admin.QueryRow(`SELECT (l.classid::bigint << 32) | l.objid::bigint FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		WHERE a.application_name = $1 AND l.locktype = 'advisory' AND l.granted`, app).Scan(&key); err != nil {
		t.Fatalf("the holder's advisory lock: %v", err)
	}
	close(release)
	if err := <-holder; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a waiting writer failed: %v", err)
		}
	}

	// 2. Another instance holds the lock.
	other, err := admin.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	if _, err := other.Exec("SELECT pg_advisory_xact_lock($1)", key); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = store.WriteExclusive(ctx, "react", 300*time.Millisecond, func(ctx context.Context, tx *products.Tx) error {
		t.Error("got the lock another instance holds")
		return nil
	})
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "not acquired within 300ms") {
		t.Errorf("bounded wait: %v, want an error saying the lock was not acquired within 300ms", err)
	}
	if took > 5*time.Second {
		t.Errorf("bounded wait of 300ms returned after %v", took)
	}
	if in := ours.inTransaction(t); len(in) != 0 {
		t.Errorf("after a timed-out wait %d sessions are in a transaction: %+v", len(in), in)
	}

	// 3. A long wait outlives lock_timeout chunks: it retries in a fresh
	// transaction, active and waiting on the lock each time, and gets the
	// lock once the other instance lets go.
	done := make(chan error, 1)
	go func() {
		_, err := store.WriteExclusive(ctx, "react", time.Minute, func(ctx context.Context, tx *products.Tx) error { return nil })
		done <- err
	}()
	// Seen waiting (active on a Lock) in two different transactions. (A
	// sample may also catch it between two statements of a transaction.)
	starts := map[time.Time]bool{}
	eventually(t, 20*time.Second, "the waiter to wait again in a new transaction", func() bool {
		for _, x := range ours.list(t) {
			if x.XactStart.Valid && x.State == "active" && x.Waiting == "Lock" {
				starts[x.XactStart.Time] = true
			}
		}
		return len(starts) >= 2
	})
	select {
	case err := <-done:
		t.Fatalf("the waiter returned while the lock was held: %v", err)
	default:
	}
	if err := other.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the waiter failed after the lock was released: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter did not get the lock after it was released")
	}
}
