package resolvers

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/uptrace/bun"
	"github.com/vikstrous/dataloadgen"

	"github.com/meshgate/meshgate/products"
)

// loaders batch the lookups of one GraphQL operation. They live as long as
// the operation and cache what they loaded for it. There is one loader per
// entity and field it is looked up by (e.g. Customer by id, Shipment by
// orderId), one per entity and parent field for nested lists (the orders
// of customers), and one per entity for histories, made on first use: all
// the fields of one level that need the same rows share a statement.
type loaders struct {
	wait time.Duration
	mu   sync.Mutex
	m    map[string]any
}

type loadersKey struct{}

// WithLoaders wraps the execution of one GraphQL operation with fresh batch
// loaders. Install it with the server's AroundOperations.
func (r *Resolver) WithLoaders(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	wait := r.BatchWait
	if wait <= 0 {
		wait = 2 * time.Millisecond
	}
	return next(context.WithValue(ctx, loadersKey{}, &loaders{wait: wait, m: map[string]any{}}))
}

// freshLoaders gives a subscription event loaders of its own (see
// PerResponse): loaders cache what they loaded, and an event must see the
// rows as they are now, not as they were at an earlier event.
func (r *Resolver) freshLoaders(ctx context.Context) context.Context {
	l, ok := ctx.Value(loadersKey{}).(*loaders)
	if !ok {
		return ctx
	}
	return context.WithValue(ctx, loadersKey{}, &loaders{wait: l.wait, m: map[string]any{}})
}

// loader returns the operation's loader named key, made by mk on first use.
func loader[L any](ctx context.Context, key string, mk func(wait time.Duration) L) L {
	l := ctx.Value(loadersKey{}).(*loaders)
	l.mu.Lock()
	defer l.mu.Unlock()
	if v, ok := l.m[key]; ok {
		return v.(L)
	}
	v := mk(l.wait)
	l.m[key] = v
	return v
}

// byField batches lookups by a key field (id, or a unique reference) into
// one IN query; a missing row loads as nil.
// A row outside restrict (a row policy, if not nil) loads as nil too.
func byField[T any](db bun.IDB, e *products.Entity, field string, restrict *products.Condition, wait time.Duration) *dataloadgen.Loader[int64, *T] {
	return dataloadgen.NewLoader(func(ctx context.Context, keys []int64) ([]*T, []error) {
		rows, err := products.Lookup[T](ctx, db, e, field, keys, restrict)
		if err != nil {
			return nil, []error{err}
		}
		out := make([]*T, len(keys))
		for i, k := range keys {
			out[i] = rows[k]
		}
		return out, nil
	}, dataloadgen.WithWait(wait))
}

// childLoader batches connections below many parents (e.g. the orders of
// each customer): parents asking with the same arguments share one windowed
// statement.
type childLoader[T any] struct {
	loader *dataloadgen.Loader[childKey, *products.Page[T]]
	mu     sync.Mutex
	args   map[string]products.ListArgs
}

type childKey struct {
	args   string
	parent int64
}

func newChildLoader[T any, PT interface {
	*T
	products.Windowed
}](db bun.IDB, e *products.Entity, fk string, wait time.Duration) *childLoader[T] {
	c := &childLoader[T]{args: map[string]products.ListArgs{}}
	c.loader = dataloadgen.NewLoader(func(ctx context.Context, keys []childKey) ([]*products.Page[T], []error) {
		byArgs := map[string][]int64{}
		for _, k := range keys {
			byArgs[k.args] = append(byArgs[k.args], k.parent)
		}
		pages := map[childKey]*products.Page[T]{}
		for a, parents := range byArgs {
			c.mu.Lock()
			args := c.args[a]
			c.mu.Unlock()
			got, err := products.ListFor[T, PT](ctx, db, e, fk, parents, args)
			if err != nil {
				return nil, []error{err}
			}
			for p, pg := range got {
				pages[childKey{a, p}] = pg
			}
		}
		out := make([]*products.Page[T], len(keys))
		for i, k := range keys {
			out[i] = pages[k]
		}
		return out, nil
	}, dataloadgen.WithWait(wait))
	return c
}

// load returns the page of children of parent for the arguments.
func (c *childLoader[T]) load(ctx context.Context, parent int64, a products.ListArgs) (*products.Page[T], error) {
	b, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	key := string(b)
	c.mu.Lock()
	c.args[key] = a
	c.mu.Unlock()
	return c.loader.Load(ctx, childKey{key, parent})
}
