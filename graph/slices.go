package graph

// Written by hand, not by gqlgen: products/gen rewrites gqlgen's calls of
// graphql.MarshalSliceConcurrently into calls of marshalSliceSequentially
// for lists of objects whose fields resolve sequentially (see
// products/gen's Plugin.GenerateCode), so that a list of 1,000 rows is
// not 1,000 goroutines.

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
)

// marshalSliceSequentially is graphql.MarshalSliceConcurrently marshalling
// the elements one after the other in the caller's goroutine: each element
// with a field context of its own carrying its index, and a panic in one
// recovered as an error of that element (unless omitPanicHandler), whose
// value is then Null.
func marshalSliceSequentially(ctx context.Context, length int, _ int64, omitPanicHandler bool,
	marshalElement func(ctx context.Context, i int) graphql.Marshaler) graphql.Array {
	ret := make(graphql.Array, length)
	fcs := make([]graphql.FieldContext, length)
	index := make([]int, length)
	for i := range length {
		index[i] = i
		fcs[i].Index = &index[i]
		childCtx := graphql.WithFieldContext(ctx, &fcs[i])
		if omitPanicHandler {
			ret[i] = marshalElement(childCtx, i)
			continue
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					graphql.AddError(childCtx, graphql.Recover(childCtx, r))
					ret[i] = graphql.Null
				}
			}()
			ret[i] = marshalElement(childCtx, i)
		}()
	}
	return ret
}
