package resolvers

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
)

// findMany resolves a batch of Apollo Federation representations of one
// entity type with ONE statement (products.GetMany). The result follows the
// order of reps; a representation whose row does not exist resolves to nil
// (null in _entities).
func findMany[T any, R any](ctx context.Context, db bun.IDB, e *products.Entity, reps []R, id func(R) int64) ([]*T, error) {
	ids := make([]int64, len(reps))
	for i, rep := range reps {
		ids[i] = id(rep)
	}
	rows, err := products.GetMany[T](ctx, db, e, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*T, len(reps))
	for i, id := range ids {
		out[i] = rows[id]
	}
	return out, nil
}
