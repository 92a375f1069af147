package products

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
)

// sequenceChunk bounds the entries one sequencing transaction moves.
const sequenceChunk = 5000

// sequenceTimeout bounds a sequencing round run for waiting writers (it
// runs whatever their contexts say: their changes are committed).
const sequenceTimeout = 30 * time.Second

// positioned is a pending entry's id and the position it got.
type positioned struct {
	ID       int64 `bun:"id"`
	Sequence int64 `bun:"sequence"`
}

// sequencer runs a PostgreSQL store's sequencing rounds for the writers of
// this process, one round at a time: a writer that committed waits for a
// round that began after its commit (which moves its entries, unless
// another instance's round did first) and shares it with every writer
// that committed meanwhile, as PostgreSQL's group commit shares a WAL
// flush. Writers never wait for each other's transactions, only for the
// next round.
type sequencer struct {
	s *Store

	mu       sync.Mutex
	running  bool
	started  uint64        // rounds begun
	finished uint64        // the last round ended (rounds end in order)
	done     chan struct{} // closed when the running round ends
	err      error         // of the last round ended
	want     map[int64]int64
	last     map[int64]int64 // what the last round positioned: id → position
	highest  int64           // the highest position this process assigned or found

	// moved counts the entries this process's rounds deleted from the
	// pending table since it last asked for a vacuum; vacuum wakes the
	// store's upkeep (see Upkeep) once that is vacuumAfter or more.
	moved  int
	vacuum chan struct{}
}

// vacuumAfter is how many entries the rounds move out of the pending
// table before the store vacuums it (see Upkeep). Every round finds its
// batch by scanning the table's primary key from its start, past the
// entries earlier rounds deleted: until a VACUUM removes them, each round
// steps over all of them. Measured on PostgreSQL 15 under placeOrder at
// c16: with 36,000 entries deleted since the last vacuum, a round took
// 11.7 ms, 0.97 ms right after a vacuum, and the VACUUM itself 58 ms.
// Autovacuum's default rule (50 + 20 % of live rows, checked once a
// minute) lets far more pile up in a queue whose live rows stay few.
const vacuumAfter = 500

func newSequencer(s *Store) *sequencer {
	return &sequencer{s: s, done: make(chan struct{}), want: map[int64]int64{}, vacuum: make(chan struct{}, 1)}
}

// floor returns a position below every position assigned from now on.
func (q *sequencer) floor() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.highest
}

// await returns the positions of the committed pending entries ids (in the
// same order), running or joining sequencing rounds until one that began
// after the call has ended. floor is a position below theirs (see
// floor). With no ids it just runs such a round (the relay's sweep of
// entries whose writer died before it could wait).
func (q *sequencer) await(ctx context.Context, ids []int64, floor int64) ([]int64, error) {
	out := make([]int64, len(ids))
	q.mu.Lock()
	missing := 0
	for i, id := range ids {
		if p, ok := q.last[id]; ok { // positioned by the round that just ended
			out[i] = p
			continue
		}
		q.want[id] = 0
		missing++
	}
	if len(ids) > 0 && missing == 0 {
		q.mu.Unlock()
		return out, nil
	}
	need := q.started + 1
	for q.finished < need {
		if !q.running {
			q.running = true
			q.started++
			round := q.started
			q.mu.Unlock()
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sequenceTimeout)
			moved, err := q.s.sequence(rctx)
			cancel()
			q.mu.Lock()
			q.last = make(map[int64]int64, len(moved))
			for _, m := range moved {
				q.last[m.ID] = m.Sequence
				if _, ok := q.want[m.ID]; ok {
					q.want[m.ID] = m.Sequence
				}
				q.highest = max(q.highest, m.Sequence)
			}
			if q.moved += len(moved); q.moved >= vacuumAfter {
				q.moved = 0
				select {
				case q.vacuum <- struct{}{}:
				default: // already asked
				}
			}
			q.running, q.finished, q.err = false, round, err
			close(q.done)
			q.done = make(chan struct{})
			continue
		}
		done := q.done
		q.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			q.mu.Lock()
			for _, id := range ids {
				delete(q.want, id)
			}
			q.mu.Unlock()
			return nil, ctx.Err()
		}
		q.mu.Lock()
	}
	var lost []int64 // positioned by another instance's round
	for i, id := range ids {
		if p, ok := q.want[id]; ok {
			if p != 0 {
				out[i] = p
			} else {
				lost = append(lost, id)
			}
			delete(q.want, id)
		}
	}
	err := q.err
	q.mu.Unlock()
	if len(lost) == 0 {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	found, err := q.s.findOrigins(ctx, lost, floor)
	if err != nil {
		return out, err
	}
	q.mu.Lock()
	for i, id := range ids {
		if out[i] == 0 {
			out[i] = found[id]
			q.highest = max(q.highest, out[i])
		}
	}
	q.mu.Unlock()
	for i, id := range ids {
		if out[i] == 0 {
			return out, fmt.Errorf("audit entry %d (pending) was not positioned", id)
		}
	}
	return out, nil
}

// sequence moves every committed pending entry into the log, numbered
// after its last position in the order they were appended, and returns
// their new positions. Each transaction holds the store's sequencing
// advisory lock, so rounds of all instances take turns; each is one
// statement that also advances the log's counter and the per-entity
// counts. An entry committed after the statement began waits for the next
// round: it can only come after every entry this round positions.
//
// A transaction is one round trip: the lock and the move go to the server
// as one simple-protocol query of two statements, which PostgreSQL runs
// as one transaction (the lock is held until it commits; the move, a
// statement of its own, sees what committed before it got the lock).
func (s *Store) sequence(ctx context.Context) ([]positioned, error) {
	// The batch is read through the primary key (enable_seqscan off for
	// this transaction): expecting few entries, the planner otherwise
	// scans the whole table, every page it ever grew to, and sorts it.
	query := fmt.Sprintf("SELECT pg_advisory_xact_lock(%d), set_config('enable_seqscan', 'off', true); ", s.lockKey("sequence")) +
		s.DB.QueryGen().FormatQuery(sequenceSQL, sequenceChunk, s.Product.Name)
	var all []positioned
	for {
		moved, err := s.sequenceOnce(ctx, query)
		if err != nil {
			return all, fmt.Errorf("%s: position audit entries: %w", s.Product.Name, err)
		}
		all = append(all, moved...)
		if len(moved) < sequenceChunk {
			return all, nil
		}
	}
}

func (s *Store) sequenceOnce(ctx context.Context, query string) ([]positioned, error) {
	conn, err := s.DB.DB.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var moved []positioned
	err = conn.Raw(func(dc any) error {
		var pc *pgx.Conn
		switch c := dc.(type) {
		case interface{ PgxConn() *pgx.Conn }:
			pc = c.PgxConn()
		case interface{ Conn() *pgx.Conn }:
			pc = c.Conn()
		default:
			return fmt.Errorf("not a pgx session: %T", dc)
		}
		results, err := pc.PgConn().Exec(ctx, query).ReadAll()
		if err != nil {
			return err
		}
		if len(results) != 2 {
			return fmt.Errorf("%d results of the sequencing query, want 2", len(results))
		}
		moved = make([]positioned, len(results[1].Rows))
		for i, r := range results[1].Rows {
			if len(r) != 2 {
				return fmt.Errorf("sequencing query: %d columns, want 2", len(r))
			}
			if moved[i].ID, err = strconv.ParseInt(string(r[0]), 10, 64); err == nil {
				moved[i].Sequence, err = strconv.ParseInt(string(r[1]), 10, 64)
			}
			if err != nil {
				return fmt.Errorf("sequencing query: %w", err)
			}
		}
		return nil
	})
	return moved, err
}

// sequenceSQL moves up to ? pending entries (oldest first) into the log of
// product ?, after its last position. The batch's ids are read once, as an
// array: with "id IN (SELECT … LIMIT ?)" the planner, expecting a nearly
// empty table, ran the limited scan again for every row it deleted. Every
// part sees the same snapshot: entries committed later stay pending. The entries of one transaction stay
// together, in the order they were appended; transactions follow each other
// in the order of their first entries (a transaction that waited for
// another's row lock appended its entries after that one committed).
const sequenceSQL = `WITH moved AS (
	DELETE FROM mg_audit_pending WHERE id = ANY (ARRAY(SELECT id FROM mg_audit_pending ORDER BY id LIMIT ?))
	RETURNING id, tx, product, entity, key, op, before, after, actor, request_id, traceparent, at
), grouped AS (
	SELECT min(id) OVER (PARTITION BY tx) AS first, * FROM moved
), numbered AS (
	SELECT row_number() OVER (ORDER BY first, id) AS n, * FROM grouped
), counter AS (
	UPDATE mg_audit_seq SET value = value + (SELECT count(*) FROM moved)
	WHERE product = ? AND EXISTS (SELECT 1 FROM moved)
	RETURNING value - (SELECT count(*) FROM moved) AS base
), logged AS (
	INSERT INTO mg_audit_log (sequence, product, entity, key, op, before, after, actor, request_id, traceparent, at, origin)
	SELECT counter.base + numbered.n, numbered.product, numbered.entity, numbered.key, numbered.op, numbered.before,
		numbered.after, numbered.actor, numbered.request_id, numbered.traceparent, numbered.at, numbered.id
	FROM numbered, counter
), counted AS (
	INSERT INTO mg_entity_counts (entity, n) SELECT entity, count(*) FROM moved GROUP BY entity
	ON CONFLICT (entity) DO UPDATE SET n = mg_entity_counts.n + EXCLUDED.n
)
SELECT numbered.id, counter.base + numbered.n AS sequence FROM numbered, counter`

// findOrigins returns the positions of the pending entries ids, which
// another instance's round moved into the log after position floor.
func (s *Store) findOrigins(ctx context.Context, ids []int64, floor int64) (map[int64]int64, error) {
	var rows []positioned
	if err := s.DB.NewRaw("SELECT origin AS id, sequence FROM mg_audit_log WHERE sequence > ? AND origin IN (?)",
		floor, bun.List(ids)).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("%s: find positioned entries: %w", s.Product.Name, err)
	}
	out := make(map[int64]int64, len(rows))
	for _, r := range rows {
		out[r.ID] = r.Sequence
	}
	return out, nil
}
