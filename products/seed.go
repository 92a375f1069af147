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

// Insert writes rows in batches through the write path, in one transaction,
// reporting progress after each batch. Each row gets its CREATE audit entry
// like any other write, so the demo data reaches Kafka and the products that
// react to it.
func Insert[T any](ctx context.Context, s *Store, e *Entity, rows []*T, progress Progress) error {
	const batch = 500
	table := s.DB.Dialect().Tables().Get(reflect.TypeFor[T]())
	_, err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		for i := 0; i < len(rows); i += batch {
			part := rows[i:min(i+batch, len(rows))]
			if _, err := tx.NewInsert().Model(&part).Exec(ctx); err != nil {
				return fmt.Errorf("seed %s: %w", e.Name, err)
			}
			for _, r := range part {
				id, err := columnValue(table, r, "id")
				if err != nil {
					return err
				}
				if err := tx.Created(e, id.(int64), r); err != nil {
					return err
				}
			}
			if progress != nil {
				progress(s.Product.Name, e.Name, i+len(part), len(rows))
			}
		}
		if tx.Dialect().Name() == dialect.PG {
			// Seeds bring their own ids: move the id sequence past them.
			if _, err := tx.ExecContext(ctx, "SELECT setval(pg_get_serial_sequence(?, 'id'), (SELECT COALESCE(MAX(id), 0) + 1 FROM ?), false)",
				table.Name, bun.Ident(table.Name)); err != nil {
				return fmt.Errorf("seed %s: advance id sequence: %w", e.Name, err)
			}
		}
		return nil
	})
	return err
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
