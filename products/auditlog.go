package products

import (
	"context"
	"fmt"
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
