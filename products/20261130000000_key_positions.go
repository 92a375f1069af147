package products

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// Stand-in for the per-key positions the streaming work adds to
// consumed.go (same table and API); it goes when that lands.

// keyPosition is the newest position of a source's entity key whose change
// a product has applied: the source's events for one key may arrive out of
// order, and a state-based reaction must never let an older change
// override the effect of a newer one.
type keyPosition struct {
	bun.BaseModel `bun:"table:mg_key_positions"`

	Source   string `bun:"source,pk"`
	Entity   string `bun:"entity,pk"`
	Key      int64  `bun:"key,pk"`
	Sequence int64  `bun:"sequence,notnull"`
}

func init() {
	frameworkMigrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		_, err := db.NewCreateTable().Model((*keyPosition)(nil)).IfNotExists().Exec(ctx)
		return err
	}, nil)
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
