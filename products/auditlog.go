package products

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/uptrace/bun"
)

// Entries returns up to limit audit entries with after < sequence <=
// through (no upper bound when through is 0), in sequence order.
func (s *Store) Entries(ctx context.Context, after, through int64, limit int) ([]AuditEntry, error) {
	var out []AuditEntry
	q := s.DB.NewSelect().Model(&out).Where("sequence > ?", after).Order("sequence").Limit(int64(limit))
	if through > 0 {
		q = q.Where("sequence <= ?", through)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("%s: read audit log: %w", s.Product.Name, err)
	}
	return out, nil
}

// Latest returns the sequence of the product's last committed audit entry
// (0 for an empty log).
func (s *Store) Latest(ctx context.Context) (int64, error) {
	var latest int64
	err := s.DB.NewSelect().Model((*auditSeq)(nil)).Column("value").Where("product = ?", s.Product.Name).Scan(ctx, &latest)
	if err != nil {
		return 0, fmt.Errorf("%s: latest sequence: %w", s.Product.Name, err)
	}
	return latest, nil
}

// entityCount is how many audit entries of an entity the log holds, kept by
// every write in its transaction, so that figures like a consumer's lag are
// arithmetic instead of a COUNT over the whole history.
type entityCount struct {
	bun.BaseModel `bun:"table:mg_entity_counts"`

	Entity string `bun:"entity,pk"`
	N      int64  `bun:"n,notnull"`
}

// countEntries adds a transaction's new audit entries to the per-entity
// counts, in one statement. Write calls it after taking the log's counter
// row, so writers lock the count rows in the same order.
func countEntries(ctx context.Context, tx bun.IDB, entries []AuditEntry) error {
	by := map[string]int64{}
	var order []string
	for i := range entries {
		if by[entries[i].Entity] == 0 {
			order = append(order, entries[i].Entity)
		}
		by[entries[i].Entity]++
	}
	rows := make([]entityCount, len(order))
	for i, e := range order {
		rows[i] = entityCount{Entity: e, N: by[e]}
	}
	if _, err := tx.NewInsert().Model(&rows).
		On("CONFLICT (entity) DO UPDATE").Set("n = ?TableAlias.n + EXCLUDED.n").Exec(ctx); err != nil {
		return fmt.Errorf("count audit entries: %w", err)
	}
	return nil
}

// EntityCounts returns how many audit entries the log holds per entity.
// It reads a few counter rows, whatever the size of the log.
func (s *Store) EntityCounts(ctx context.Context) (map[string]int64, error) {
	var rows []entityCount
	if err := s.DB.NewSelect().Model(&rows).Scan(ctx); err != nil {
		return nil, fmt.Errorf("%s: entity counts: %w", s.Product.Name, err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.Entity] = r.N
	}
	return out, nil
}

// Snapshot returns the log's latest sequence and its entries per entity up
// to it, read consistently in one transaction.
func (s *Store) Snapshot(ctx context.Context) (latest int64, counts map[string]int64, err error) {
	opts := &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	if s.sqlite {
		opts = nil // a SQLite transaction reads one snapshot anyway
	}
	err = s.DB.RunInTx(ctx, opts, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewSelect().Model((*auditSeq)(nil)).Column("value").Where("product = ?", s.Product.Name).Scan(ctx, &latest); err != nil {
			return err
		}
		var rows []entityCount
		if err := tx.NewSelect().Model(&rows).Scan(ctx); err != nil {
			return err
		}
		counts = make(map[string]int64, len(rows))
		for _, r := range rows {
			counts[r.Entity] = r.N
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("%s: log snapshot: %w", s.Product.Name, err)
	}
	return latest, counts, nil
}
