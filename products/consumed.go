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

// keyPosition is the newest position of a source's entity key whose change
// a product has applied: the source's events for one key may arrive out of
// order (a broker that lost its log, a republish racing live publishing),
// and a state-based reaction must never let an older change override the
// effect of a newer one.
type keyPosition struct {
	bun.BaseModel `bun:"table:mg_key_positions"`

	Source   string `bun:"source,pk"`
	Entity   string `bun:"entity,pk"`
	Key      int64  `bun:"key,pk"`
	Sequence int64  `bun:"sequence,notnull"`
}

// Newest records, inside tx, that the change at sequence of the source's
// entity key is being applied, and tells whether it is the newest change
// of that key applied so far. false means a newer change of the key was
// applied before: this one is stale and must not override its effect.
// One statement; the key's row stays locked until the transaction ends.
func (t *Tx) Newest(ctx context.Context, source, entity string, key, sequence int64) (bool, error) {
	var newest int64
	err := t.NewInsert().Model(&keyPosition{Source: source, Entity: entity, Key: key, Sequence: sequence}).
		On("CONFLICT (source, entity, key) DO UPDATE").
		Set("sequence = CASE WHEN EXCLUDED.sequence > ?TableAlias.sequence THEN EXCLUDED.sequence ELSE ?TableAlias.sequence END").
		Returning("sequence").Scan(ctx, &newest)
	if err != nil {
		return false, fmt.Errorf("record position of %s %s %d: %w", source, entity, key, err)
	}
	return newest == sequence, nil
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

// ConsumedThrough returns how many changes of source up to sequence through
// the product has applied, and the lowest sequence among them (0: none).
// It counts the record of applied changes: for checks after a replay, not
// for figures read often.
func (s *Store) ConsumedThrough(ctx context.Context, source string, through int64) (n, first int64, err error) {
	var row struct {
		N     int64 `bun:"n"`
		First int64 `bun:"first"`
	}
	if err := s.DB.NewSelect().Model((*consumedEvent)(nil)).ColumnExpr("COUNT(*) AS n, COALESCE(MIN(sequence), 0) AS first").
		Where("source = ? AND sequence <= ?", source, through).Scan(ctx, &row); err != nil {
		return 0, 0, fmt.Errorf("%s: count applied changes of %s: %w", s.Product.Name, source, err)
	}
	return row.N, row.First, nil
}
