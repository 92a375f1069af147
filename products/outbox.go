package products

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/uptrace/bun"
)

// Publish is called by Outbox with unpublished audit entries in sequence
// order. It returns nil only if every entry reached the cluster the round
// was started for (Outbox's cluster argument); then the entries are marked
// published. An error leaves them unpublished for the next attempt.
type Publish func(ctx context.Context, entries []AuditEntry) error

// outboxState is a product's publishing state: the Kafka cluster its log
// was published to and how far. Entries are published in sequence order,
// so the published entries are always a prefix of the log: 1…Through.
type outboxState struct {
	bun.BaseModel `bun:"table:mg_outbox"`

	Product string `bun:"product,pk"`
	// Cluster is the Kafka cluster id the entries up to Through went to
	// ("" before the first publication).
	Cluster string `bun:"cluster,notnull"`
	Through int64  `bun:"through,notnull"`
}

// Round is what one Outbox call did.
type Round struct {
	// Published is the number of entries published.
	Published int
	// Restarted is set when the round found the log published to another
	// cluster than the one it publishes to (the broker lost its log, or
	// this is the first publication) and marked the whole log unpublished
	// so that it is published again from the beginning, in order, before
	// any new entry. Previous is the cluster recorded before.
	Restarted bool
	Previous  string
}

// Outbox hands up to limit unpublished audit entries, oldest first, to
// publish and, when it succeeds, extends the published prefix of the log
// (mg_outbox.through) past them. cluster is the identity of the Kafka
// cluster publish sends to (its cluster id).
//
// The store records which cluster its log was published to. When cluster
// differs, the round first marks the whole log unpublished (in the same
// critical section, before anything is published), so the new cluster gets
// the history first and then new entries, in sequence order: per key, an
// older change never lands after a newer one.
//
// Exactly one process publishes a product's log at a time: on PostgreSQL the
// round runs inside a transaction holding an advisory lock keyed by the
// store's schema and product (a second instance finds the lock taken and
// returns at once, publishing nothing); on SQLite the store belongs to one
// process, and a per-store mutex serialises relays.
// An entry published but not marked (a crash in between) is published again
// with the same (product, sequence): delivery is at least once.
func (s *Store) Outbox(ctx context.Context, limit int, cluster string, publish Publish) (Round, error) {
	if s.sqlite {
		return s.outboxSQLite(ctx, limit, cluster, publish)
	}
	// Most rounds that find nothing to do learn it from one statement,
	// without a transaction or the lock: the log ends where it was
	// published to this cluster, and nothing is pending for long. (An
	// entry positioned right after this read wakes the relay again.)
	var idle struct {
		Cluster sql.NullString `bun:"cluster"`
		Through sql.NullInt64  `bun:"through"`
		Latest  int64          `bun:"latest"`
		Stale   bool           `bun:"stale"`
	}
	if err := s.DB.NewRaw(`SELECT o.cluster, o.through, q.value AS latest, (SELECT at < ? FROM mg_audit_pending ORDER BY id LIMIT 1) IS TRUE AS stale
FROM mg_audit_seq AS q LEFT JOIN mg_outbox AS o ON o.product = q.product WHERE q.product = ?`,
		time.Now().Add(-stalePending), s.Product.Name).Scan(ctx, &idle); err != nil {
		return Round{}, fmt.Errorf("outbox: %w", err)
	}
	if idle.Cluster.Valid && idle.Cluster.String == cluster && idle.Through.Int64 >= idle.Latest && !idle.Stale {
		return Round{}, nil
	}
	var round Round
	var stale bool
	err := s.DB.RunInTx(ctx, &sql.TxOptions{}, func(ctx context.Context, tx bun.Tx) error {
		round = Round{}
		// Entries pending for a while lost their writer before it could
		// have them positioned (a crash, the store unreachable): they are
		// positioned after this round.
		//
		// The round's marks need not be durable before the next round:
		// marks lost with a crash of PostgreSQL only republish entries
		// (at least once, as after a crash between publish and mark), and
		// a lost cluster switch is made again. So its commit does not wait
		// for the WAL flush (synchronous_commit off for this transaction).
		var lock struct {
			Locked     bool   `bun:"locked"`
			Stale      bool   `bun:"stale"`
			SyncCommit string `bun:"sync_commit"`
		}
		if err := tx.NewRaw("SELECT pg_try_advisory_xact_lock(?) AS locked, (SELECT at < ? FROM mg_audit_pending ORDER BY id LIMIT 1) IS TRUE AS stale, set_config('synchronous_commit', 'off', true) AS sync_commit",
			s.lockKey("outbox"), time.Now().Add(-stalePending)).Scan(ctx, &lock); err != nil {
			return fmt.Errorf("outbox lock: %w", err)
		}
		stale = lock.Stale
		if !lock.Locked {
			return nil
		}
		st, err := s.outboxState(ctx, tx)
		if err != nil {
			return err
		}
		if st.Cluster != cluster {
			if err := s.restart(ctx, tx, cluster); err != nil {
				return err
			}
			round.Restarted, round.Previous = true, st.Cluster
		}
		if round.Restarted {
			st.Through = 0
		}
		var entries []AuditEntry
		if err := tx.NewSelect().Model(&entries).Where("sequence > ?", st.Through).
			Order("sequence").Limit(int64(limit)).Scan(ctx); err != nil {
			return fmt.Errorf("read outbox: %w", err)
		}
		if len(entries) == 0 {
			return nil
		}
		if err := publish(ctx, entries); err != nil {
			return err
		}
		if err := s.markPublished(ctx, tx, entries); err != nil {
			return err
		}
		round.Published = len(entries)
		return nil
	})
	if err != nil {
		return Round{}, err
	}
	if stale {
		// Published by the next round.
		if _, err := s.seq.await(ctx, nil, 0); err != nil {
			return round, err
		}
	}
	return round, nil
}

// stalePending is how long an entry stays pending before a relay positions
// it: its writer positions it right after its commit unless it died.
//
// The relay looks at the oldest pending entry by id only, through the
// primary key, rather than at every entry (a scan of the whole queue, as
// many pages as it ever grew to, on every relay round). An entry left
// behind is found all the same, a little later at most: the entries with
// lower ids were appended before it, and each is either positioned soon
// by its live writer or itself left behind; and the sweep that follows
// positions every committed entry, not just the oldest.
const stalePending = 5 * time.Second

func (s *Store) outboxSQLite(ctx context.Context, limit int, cluster string, publish Publish) (Round, error) {
	s.outboxMu.Lock()
	defer s.outboxMu.Unlock()
	var round Round
	st, err := s.outboxState(ctx, s.DB)
	if err != nil {
		return round, err
	}
	if st.Cluster != cluster {
		s.writeMu.Lock()
		err := s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error { return s.restart(ctx, tx, cluster) })
		s.writeMu.Unlock()
		if err != nil {
			return round, err
		}
		round.Restarted, round.Previous = true, st.Cluster
		st.Through = 0
	}
	var entries []AuditEntry
	if err := s.DB.NewSelect().Model(&entries).Where("sequence > ?", st.Through).
		Order("sequence").Limit(int64(limit)).Scan(ctx); err != nil {
		return round, fmt.Errorf("read outbox: %w", err)
	}
	if len(entries) == 0 {
		return round, nil
	}
	if err := publish(ctx, entries); err != nil {
		return round, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error { return s.markPublished(ctx, tx, entries) }); err != nil {
		return round, err
	}
	round.Published = len(entries)
	return round, nil
}

// outboxState reads the product's publishing state, creating it for a
// store that has none yet (a new store, or one published before the state
// was kept: then the published prefix is taken from the entries' marks and
// the cluster is unknown, so the next round publishes the log again).
func (s *Store) outboxState(ctx context.Context, db bun.IDB) (*outboxState, error) {
	st := &outboxState{}
	err := db.NewSelect().Model(st).Where("product = ?", s.Product.Name).Scan(ctx)
	if err == nil {
		return st, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read outbox state: %w", err)
	}
	st = &outboxState{Product: s.Product.Name}
	if err := db.NewRaw("SELECT COALESCE((SELECT MIN(sequence) - 1 FROM mg_audit_log WHERE published_at IS NULL), "+
		"(SELECT value FROM mg_audit_seq WHERE product = ?), 0)", s.Product.Name).Scan(ctx, &st.Through); err != nil {
		return nil, fmt.Errorf("read published prefix: %w", err)
	}
	if _, err := db.NewInsert().Model(st).On("CONFLICT (product) DO NOTHING").Exec(ctx); err != nil {
		return nil, fmt.Errorf("create outbox state: %w", err)
	}
	return st, nil
}

// restart marks the whole log unpublished (the published prefix becomes
// empty) and records that it is now published to cluster.
func (s *Store) restart(ctx context.Context, tx bun.Tx, cluster string) error {
	if _, err := tx.NewUpdate().Model((*outboxState)(nil)).Set("cluster = ?, through = 0", cluster).
		Where("product = ?", s.Product.Name).Exec(ctx); err != nil {
		return fmt.Errorf("%s: record cluster: %w", s.Product.Name, err)
	}
	return nil
}

// markPublished extends the published prefix of the log through the last
// of entries (published in order after the prefix).
func (s *Store) markPublished(ctx context.Context, db bun.IDB, entries []AuditEntry) error {
	last := entries[len(entries)-1].Sequence
	if _, err := db.NewUpdate().Model((*outboxState)(nil)).Set("through = ?", last).
		Where("product = ? AND through < ?", s.Product.Name, last).Exec(ctx); err != nil {
		return fmt.Errorf("mark published: %w", err)
	}
	return nil
}

// Republish marks every audit entry unpublished (the published prefix
// becomes empty), so that the relays publish
// the whole log again, in order, before any newer entry. Consumers skip
// what they applied before. (Relays do this by themselves when the
// cluster they publish to is not the one the log went to.)
func (s *Store) Republish(ctx context.Context) error {
	if s.sqlite {
		s.outboxMu.Lock()
		defer s.outboxMu.Unlock()
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
	}
	err := s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if !s.sqlite {
			// Wait for a relay's round in flight: the log is marked
			// unpublished between rounds, never in the middle of one.
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", s.lockKey("outbox")); err != nil {
				return fmt.Errorf("outbox lock: %w", err)
			}
		}
		st, err := s.outboxState(ctx, tx)
		if err != nil {
			return err
		}
		return s.restart(ctx, tx, st.Cluster)
	})
	if err != nil {
		return fmt.Errorf("%s: republish: %w", s.Product.Name, err)
	}
	return nil
}

// Backlog returns the number of unpublished audit entries and the latest
// sequence of the log. It reads two counters (the published prefix and the
// log's position): its cost does not grow with the log.
func (s *Store) Backlog(ctx context.Context) (pending, latest int64, err error) {
	var through int64
	err = s.DB.NewSelect().Model((*outboxState)(nil)).Column("through").Where("product = ?", s.Product.Name).Scan(ctx, &through)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, 0, fmt.Errorf("%s: backlog: %w", s.Product.Name, err)
	}
	// Read after the prefix: the log only grows, so latest >= through.
	latest, err = s.Latest(ctx)
	if err != nil {
		return 0, 0, err
	}
	return latest - through, latest, nil
}

// lockKey derives a PostgreSQL advisory lock key for a purpose of this
// product's store. The key names the schema too: stores of other meshes in
// the same database (other schemas) must not exclude this one.
func (s *Store) lockKey(purpose string) int64 {
	h := fnv.New64a()
	h.Write([]byte("meshgate " + purpose + " " + s.schema + "." + s.Product.Name))
	return int64(h.Sum64() >> 1)
}
