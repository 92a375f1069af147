package products

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/uptrace/bun"
)

// Publish is called by Outbox with unpublished audit entries in sequence
// order. When it returns nil the entries are marked published; an error
// leaves them unpublished for the next attempt.
type Publish func(ctx context.Context, entries []AuditEntry) error

// Outbox hands up to limit unpublished audit entries, oldest first, to
// publish and marks them published when it succeeds. It returns how many
// entries were published.
//
// Exactly one process publishes a product's log at a time: on PostgreSQL the
// batch runs inside a transaction holding an advisory lock keyed by the
// store's schema and product (a second instance finds the lock taken and
// returns 0 at once); on SQLite the store belongs to one process, and a
// per-store mutex serialises relays.
// An entry published but not marked (a crash in between) is published again
// with the same (product, sequence): delivery is at least once.
func (s *Store) Outbox(ctx context.Context, limit int, publish Publish) (int, error) {
	if s.sqlite {
		return s.outboxSQLite(ctx, limit, publish)
	}
	n := 0
	err := s.DB.RunInTx(ctx, &sql.TxOptions{}, func(ctx context.Context, tx bun.Tx) error {
		var locked bool
		if err := tx.NewRaw("SELECT pg_try_advisory_xact_lock(?)", s.lockKey("outbox")).Scan(ctx, &locked); err != nil {
			return fmt.Errorf("outbox lock: %w", err)
		}
		if !locked {
			return nil
		}
		var entries []AuditEntry
		if err := tx.NewSelect().Model(&entries).Where("published_at IS NULL").
			Order("sequence").Limit(int64(limit)).Scan(ctx); err != nil {
			return fmt.Errorf("read outbox: %w", err)
		}
		if len(entries) == 0 {
			return nil
		}
		if err := publish(ctx, entries); err != nil {
			return err
		}
		if err := markPublished(ctx, tx, entries); err != nil {
			return err
		}
		n = len(entries)
		return nil
	})
	return n, err
}

func (s *Store) outboxSQLite(ctx context.Context, limit int, publish Publish) (int, error) {
	s.outboxMu.Lock()
	defer s.outboxMu.Unlock()
	var entries []AuditEntry
	if err := s.DB.NewSelect().Model(&entries).Where("published_at IS NULL").
		Order("sequence").Limit(int64(limit)).Scan(ctx); err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	if len(entries) == 0 {
		return 0, nil
	}
	if err := publish(ctx, entries); err != nil {
		return 0, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := markPublished(ctx, s.DB, entries); err != nil {
		return 0, err
	}
	return len(entries), nil
}

func markPublished(ctx context.Context, db bun.IDB, entries []AuditEntry) error {
	now := time.Now().UTC()
	if _, err := db.NewUpdate().Model((*AuditEntry)(nil)).Set("published_at = ?", now).
		Where("sequence BETWEEN ? AND ?", entries[0].Sequence, entries[len(entries)-1].Sequence).
		Where("published_at IS NULL").Exec(ctx); err != nil {
		return fmt.Errorf("mark published: %w", err)
	}
	return nil
}

// Republish marks every audit entry unpublished, so that the relay publishes
// the whole log again (used when the broker lost its log, e.g. the embedded
// in-memory broker after a restart).
func (s *Store) Republish(ctx context.Context) error {
	if s.sqlite {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
	}
	if _, err := s.DB.NewUpdate().Model((*AuditEntry)(nil)).Set("published_at = NULL").
		Where("published_at IS NOT NULL").Exec(ctx); err != nil {
		return fmt.Errorf("%s: republish: %w", s.Product.Name, err)
	}
	return nil
}

// Backlog returns the number of unpublished audit entries and the latest
// sequence of the log.
func (s *Store) Backlog(ctx context.Context) (pending, latest int64, err error) {
	pending, err = s.DB.NewSelect().Model((*AuditEntry)(nil)).Where("published_at IS NULL").Count(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: backlog: %w", s.Product.Name, err)
	}
	latest, err = s.Latest(ctx)
	return pending, latest, err
}

// lockKey derives a PostgreSQL advisory lock key for a purpose of this
// product's store. The key names the schema too: stores of other meshes in
// the same database (other schemas) must not exclude this one.
func (s *Store) lockKey(purpose string) int64 {
	h := fnv.New64a()
	h.Write([]byte("meshgate " + purpose + " " + s.schema + "." + s.Product.Name))
	return int64(h.Sum64() >> 1)
}
