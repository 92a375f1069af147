package products

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// lockWaitChunk bounds one wait for a PostgreSQL advisory lock on the
// server (lock_timeout). It stays below any driver's socket read timeout,
// so a wait never ends as a broken connection; longer waits are several
// chunks, each in a fresh transaction.
const lockWaitChunk = 2 * time.Second

// turns are the in-process turns of exclusive writers, one per lock key:
// within one process only one writer at a time waits for the database
// lock, the others wait here without holding a connection.
var turns sync.Map // int64 → chan struct{} (capacity 1)

// lockSQL takes an advisory lock (the second argument), waiting at most the
// lock_timeout given first, and then restores the lock_timeout it found.
const lockSQL = `WITH found AS MATERIALIZED (SELECT current_setting('lock_timeout') AS lock_timeout)
SELECT set_config('lock_timeout', ?, true), pg_advisory_xact_lock(?), set_config('lock_timeout', found.lock_timeout, true) FROM found`

// errLockWait marks a failure of the lock statement itself.
var errLockWait = errors.New("lock wait")

// WriteExclusive runs fn in a write transaction (see Write) that holds the
// product's lock for purpose: writers of the same purpose take turns, within
// this process and across every instance sharing the store. Reactions use
// it to recompute derived rows from what earlier batches committed.
//
// On PostgreSQL the turn is taken in two steps. First an in-process turn,
// waited for without a connection. Then the transaction-scoped advisory
// lock, waited for on the server with lock_timeout (so the wait is never
// cut by a socket timeout): the waiting session is active, never idle in a
// transaction, and a wait that times out rolls back and tries again in a
// new transaction. It blocks at most wait (0: until ctx ends) for the lock,
// then fails with an error saying so; fn's own work is not bounded. On
// SQLite writers take turns anyway: it is Write.
func (s *Store) WriteExclusive(ctx context.Context, purpose string, wait time.Duration, fn func(ctx context.Context, tx *Tx) error) ([]AuditEntry, error) {
	if s.sqlite {
		return s.Write(ctx, fn)
	}
	key := s.lockKey(purpose)
	var deadline time.Time
	if wait > 0 {
		deadline = time.Now().Add(wait)
	}
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	t, _ := turns.LoadOrStore(key, make(chan struct{}, 1))
	turn := t.(chan struct{})
	var expired <-chan time.Time
	if !deadline.IsZero() {
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case turn <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("lock %s: %w", purpose, ctx.Err())
	case <-expired:
		return nil, fmt.Errorf("lock %s: not acquired within %v (another writer of this process held it)", purpose, wait)
	}
	defer func() { <-turn }()
	for {
		chunk := lockWaitChunk
		if !deadline.IsZero() {
			chunk = min(chunk, time.Until(deadline))
		}
		if chunk < time.Millisecond {
			return nil, fmt.Errorf("lock %s: not acquired within %v (another instance holds it)", purpose, wait)
		}
		began := time.Now()
		entries, err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
			// One statement (one round trip): the columns are evaluated
			// in order, so the wait for the lock is bounded by the
			// lock_timeout set before it, and the setting found before is
			// restored once the lock is held.
			if _, err := tx.ExecContext(ctx, lockSQL, fmt.Sprintf("%dms", chunk.Milliseconds()), key); err != nil {
				return fmt.Errorf("%w: %w", errLockWait, err)
			}
			return fn(ctx, tx)
		})
		if err == nil || !errors.Is(err, errLockWait) {
			return entries, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("lock %s: %w", purpose, ctx.Err())
		}
		if !deadline.IsZero() && time.Until(deadline) < time.Millisecond {
			return nil, fmt.Errorf("lock %s: not acquired within %v (another instance holds it): %w", purpose, wait, err)
		}
		if time.Since(began) < chunk/2 {
			// Not a lock timeout (the connection failed?): do not spin.
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("lock %s: %w", purpose, ctx.Err())
			case <-expired:
				return nil, fmt.Errorf("lock %s: not acquired within %v: %w", purpose, wait, err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}
