package resolvers

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/99designs/gqlgen/graphql"

	"github.com/meshgate/meshgate/products"
)

// listArgs collects a connection field's arguments; the total is counted
// only when the query selects totalCount, cursors computed only when it
// selects edges or pageInfo.
func listArgs(ctx context.Context, first *int, after *string, last *int, before *string, where map[string]any, orderBy []map[string]any) products.ListArgs {
	a := products.ListArgs{
		First: first, After: after, Last: last, Before: before,
		Where: where, OrderBy: orderBy,
	}
	if fc := graphql.GetFieldContext(ctx); fc != nil && graphql.HasOperationContext(ctx) {
		oc := graphql.GetOperationContext(ctx)
		a.WantTotal = selectsIn(oc, fc.Field, "totalCount")
		a.Cursors = cursorsIn(oc, fc.Field)
	}
	return a
}

// selectsIn tells whether the field selects a subfield.
func selectsIn(oc *graphql.OperationContext, f graphql.CollectedField, name string) bool {
	for _, c := range graphql.CollectFields(oc, f.Selections, nil) {
		if c.Name == name {
			return true
		}
	}
	return false
}

// cursorsIn returns which cursors a connection field needs: all for
// edges, the page's first and last for pageInfo alone, else none.
func cursorsIn(oc *graphql.OperationContext, f graphql.CollectedField) products.CursorNeed {
	need := products.NoCursors
	for _, c := range graphql.CollectFields(oc, f.Selections, nil) {
		switch c.Name {
		case "edges":
			return products.AllCursors
		case "pageInfo":
			need = products.EndCursors
		}
	}
	return need
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
