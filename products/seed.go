package products

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Progress reports seeding progress: rows of an entity written so far out of total.
type Progress func(product, entity string, done, total int)

// Insert writes rows in batches inside one transaction, reporting progress
// after each batch. Used for demo seeds, which are a snapshot: they write no
// audit entries.
func Insert[T any](ctx context.Context, s *Store, entity string, rows []*T, progress Progress) error {
	const batch = 500
	return s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for i := 0; i < len(rows); i += batch {
			part := rows[i:min(i+batch, len(rows))]
			if _, err := tx.NewInsert().Model(&part).Exec(ctx); err != nil {
				return fmt.Errorf("seed %s: %w", entity, err)
			}
			if progress != nil {
				progress(s.Product.Name, entity, i+len(part), len(rows))
			}
		}
		if tx.Dialect().Name() == dialect.PG {
			// Seeds bring their own ids: move the id sequence past them.
			table := tx.Dialect().Tables().Get(reflect.TypeFor[T]()).Name
			if _, err := tx.ExecContext(ctx, "SELECT setval(pg_get_serial_sequence(?, 'id'), (SELECT COALESCE(MAX(id), 0) + 1 FROM ?), false)",
				table, bun.Ident(table)); err != nil {
				return fmt.Errorf("seed %s: advance id sequence: %w", entity, err)
			}
		}
		return nil
	})
}

// Pick returns an index into weights, chosen with probability proportional
// to its weight.
func Pick(r *rand.Rand, weights ...int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	x := r.IntN(total)
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1
}
