package resolvers

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/99designs/gqlgen/graphql"

	"github.com/meshgate/meshgate/products"
)

// listArgs collects a connection field's arguments; the total is counted
// only when the query selects totalCount.
func listArgs(ctx context.Context, first *int, after *string, last *int, before *string, where map[string]any, orderBy []map[string]any) products.ListArgs {
	return products.ListArgs{
		First: first, After: after, Last: last, Before: before,
		Where: where, OrderBy: orderBy,
		WantTotal: selects(ctx, "totalCount"),
	}
}

// selects tells whether the field being resolved selects a subfield.
func selects(ctx context.Context, name string) bool {
	for _, f := range graphql.CollectFieldsCtx(ctx, nil) {
		if f.Name == name {
			return true
		}
	}
	return false
}

// getOrNil turns NOT_FOUND into a null result, as lookups by id answer.
func getOrNil[T any](v *T, err error) (*T, error) {
	if products.ErrorCode(err) == products.NotFound {
		return nil, nil
	}
	return v, err
}

// image decodes an audit entry's before or after image.
func image(s *string) (map[string]any, error) {
	if s == nil {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(*s), &m); err != nil {
		return nil, fmt.Errorf("decode audit image: %w", err)
	}
	return m, nil
}
