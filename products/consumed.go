package products

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// consumedEvent records that a product applied another product's change
// (source product, sequence), in the same transaction as the effect, so a
// redelivered event is recognised and skipped: exactly-once effect on top
// of at-least-once delivery, whatever order events of different topics
// arrive in.
type consumedEvent struct {
	bun.BaseModel `bun:"table:mg_consumed"`

	Source   string `bun:"source,pk"`
	Sequence int64  `bun:"sequence,pk"`
}

// SourcePosition is how far a product has applied a source product's
// changes: the highest sequence applied and when that change was committed
// at the source.
type SourcePosition struct {
	bun.BaseModel `bun:"table:mg_source_positions"`

	Source    string    `bun:"source,pk" json:"source"`
	Sequence  int64     `bun:"sequence,notnull" json:"sequence"`
	At        time.Time `bun:"at,notnull" json:"at"`
	AppliedAt time.Time `bun:"applied_at,notnull" json:"appliedAt"`
	Applied   int64     `bun:"applied,notnull" json:"applied"`
}

// Consume records, inside tx, that the change (source, sequence) committed
// at the source at time at is being applied. It returns false if it was
// applied before: the caller must then skip it.
func (t *Tx) Consume(ctx context.Context, source string, sequence int64, at time.Time) (bool, error) {
	res, err := t.NewInsert().Model(&consumedEvent{Source: source, Sequence: sequence}).
		On("CONFLICT DO NOTHING").Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("record consumed %s/%d: %w", source, sequence, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	pos := &SourcePosition{Source: source, Sequence: sequence, At: at.UTC(), AppliedAt: t.now, Applied: 1}
	if _, err := t.NewInsert().Model(pos).
		On("CONFLICT (source) DO UPDATE").
		Set("sequence = CASE WHEN EXCLUDED.sequence > ?TableAlias.sequence THEN EXCLUDED.sequence ELSE ?TableAlias.sequence END").
		Set("at = CASE WHEN EXCLUDED.sequence > ?TableAlias.sequence THEN EXCLUDED.at ELSE ?TableAlias.at END").
		Set("applied_at = EXCLUDED.applied_at").
		Set("applied = ?TableAlias.applied + 1").
		Exec(ctx); err != nil {
		return false, fmt.Errorf("record position of %s: %w", source, err)
	}
	return true, nil
}

// SourcePositions returns how far the product has applied each source.
func (s *Store) SourcePositions(ctx context.Context) ([]SourcePosition, error) {
	var out []SourcePosition
	if err := s.DB.NewSelect().Model(&out).Order("source").Scan(ctx); err != nil {
		return nil, fmt.Errorf("%s: source positions: %w", s.Product.Name, err)
	}
	return out, nil
}

// ForgetConsumed deletes the record of applied changes (for a replay from
// the beginning, together with the product's derived data).
func (s *Store) ForgetConsumed(ctx context.Context, tx bun.IDB) error {
	for _, m := range []any{(*consumedEvent)(nil), (*SourcePosition)(nil), (*keyPosition)(nil)} {
		if _, err := tx.NewDelete().Model(m).Where("1=1").Exec(ctx); err != nil {
			return fmt.Errorf("%s: forget consumed: %w", s.Product.Name, err)
		}
	}
	return nil
}
