package resolvers

// The generic resolvers of every entity: the generated resolver files
// (products/gen's gqlgen plugin) call these with the entity's model type,
// e.g. list[orders.Order](ctx, r.Resolver, first, after, …). The entity
// and its product's store are found through the model type
// (products.EntityOf), so nothing here names a product.

import (
	"context"
	"fmt"
	"reflect"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/streaming"
)

// windowed is a model pointer usable in windowed (per parent) lists.
type windowed[T any] interface {
	*T
	products.Windowed
}

// entity returns the descriptor of T's entity and its product's store.
func entity[T any](r *Resolver) (*products.Descriptor, *products.Entity, *products.Store, error) {
	d, e := products.EntityOf(reflect.TypeFor[T]())
	if e == nil {
		return nil, nil, nil, fmt.Errorf("%s is not the model of a defined entity", reflect.TypeFor[T]())
	}
	s := r.Data.Store(d.Name)
	if s == nil {
		return nil, nil, nil, fmt.Errorf("the gateway does not serve the %s product", d.Name)
	}
	return d, e, s, nil
}

// get resolves a lookup by id: the row, or null (also when a row policy
// of the caller keeps it out).
func get[T any](ctx context.Context, r *Resolver, id int64) (*T, error) {
	_, e, s, err := entity[T](r)
	if err != nil {
		return nil, err
	}
	var row *T
	if pol := accessFrom(ctx, r).policy(e); pol != nil {
		rows, err := products.Lookup[T](ctx, s.DB, e, "id", []int64{id}, pol)
		if err != nil {
			return nil, err
		}
		row = rows[id]
	} else if row, err = getOrNil(products.Get[T](ctx, s.DB, e, id)); err != nil {
		return nil, err
	}
	if row != nil {
		expectBelow(ctx, r, fieldRows(ctx), []*T{row})
	}
	return row, nil
}

// list resolves an entity's list field: filtered, ordered, one page.
func list[T any](ctx context.Context, r *Resolver, first *int, after *string, last *int, before *string, where map[string]any, orderBy []map[string]any) (*products.Connection[T], error) {
	_, e, s, err := entity[T](r)
	if err != nil {
		return nil, err
	}
	a := accessFrom(ctx, r)
	if err := a.refusePII(e, where, orderBy, nil); err != nil {
		return nil, err
	}
	args := listArgs(ctx, first, after, last, before, where, orderBy)
	args.Restrict = a.policy(e)
	p, err := products.List[T](ctx, s.DB, e, args)
	if err != nil {
		return nil, err
	}
	expectBelow(ctx, r, fieldRows(ctx), p.Nodes)
	return products.NewConnection(p), nil
}

// aggregate resolves an entity's aggregate field.
func aggregate[T any](ctx context.Context, r *Resolver, where map[string]any, groupBy []string, having map[string]any) ([]*products.AggregateRow, error) {
	_, e, s, err := entity[T](r)
	if err != nil {
		return nil, err
	}
	a := accessFrom(ctx, r)
	if err := a.refusePII(e, where, nil, groupBy); err != nil {
		return nil, err
	}
	return products.Aggregate(ctx, s.DB, e, products.AggregateArgs{
		Where: where, GroupBy: groupBy, Having: having, Restrict: a.policy(e), MaxGroups: r.MaxGroups,
	})
}

// changed resolves an entity's change subscription.
func changed[T any](ctx context.Context, r *Resolver, where map[string]any, ops []products.Op, since *string) (<-chan *products.Change[T], error) {
	d, e, _, err := entity[T](r)
	if err != nil {
		return nil, err
	}
	a := accessFrom(ctx, r)
	if err := a.refusePII(e, where, nil, nil); err != nil {
		return nil, err
	}
	f, err := entityFilter(d, e, where, ops)
	if err != nil {
		return nil, err
	}
	pol := a.policy(e)
	if pol != nil {
		restrictStream(f, func(*products.AuditEntry) *products.Condition { return pol })
	}
	return subscribe(ctx, r, f, since, func(ev streaming.Event) (*products.Change[T], error) {
		before, after, err := rows[T](ev.Entry)
		if err != nil {
			return nil, err
		}
		if pol != nil {
			// An image outside the caller's policy is not shown.
			if !imageIn(pol, ev.Entry.Before) {
				before = nil
			}
			if !imageIn(pol, ev.Entry.After) {
				after = nil
			}
		}
		a := ev.Entry
		return &products.Change[T]{Op: a.Op, Before: before, After: after, Cursor: ev.Cursor.String(), Actor: a.Actor, At: a.At, Sequence: a.Sequence}, nil
	})
}

// history resolves an entity's history field: the audit entries of one
// row, batched over the rows of a level.
func history[T any](ctx context.Context, r *Resolver, key int64, first *int, after *string, last *int, before *string) (*products.Connection[products.AuditEntry], error) {
	_, e, s, err := entity[T](r)
	if err != nil {
		return nil, err
	}
	a := listArgs(ctx, first, after, last, before, map[string]any{"entity": map[string]any{"eq": e.Name}}, nil)
	if pol := accessFrom(ctx, r).policy(e); pol != nil {
		// The policy is evaluated on each entry's images, in Go: one
		// statement (or more) per row rather than one per level.
		a.Where["key"] = map[string]any{"eq": key}
		p, err := products.ListKeep(ctx, s.DB, products.AuditEntity, a, func(a *products.AuditEntry) (bool, error) {
			return entryIn(pol, a), nil
		})
		if err != nil {
			return nil, err
		}
		return products.NewConnection(p), nil
	}
	l := loader(ctx, "history "+e.Name, func(reg *loaders, name string) *childLoader[products.AuditEntry] {
		return newChildLoader[products.AuditEntry](r, reg, name, s.DB, products.AuditEntity, "key", nil)
	})
	p, err := l.load(ctx, key, a)
	if err != nil {
		return nil, err
	}
	return products.NewConnection(p), nil
}

// lookup resolves a field holding the row of T whose field by (its id, or
// a unique reference) equals key, batched over the rows of a level (a
// @lookup field). A missing row, or a null key, is null.
func lookup[T any, K interface{ int64 | *int64 }](ctx context.Context, r *Resolver, by string, key K) (*T, error) {
	var k int64
	switch v := any(key).(type) {
	case int64:
		k = v
	case *int64:
		if v == nil {
			return nil, nil
		}
		k = *v
	}
	_, e, s, err := entity[T](r)
	if err != nil {
		return nil, err
	}
	pol := accessFrom(ctx, r).policy(e)
	l := loader(ctx, lookupName(e, by, pol), func(reg *loaders, name string) *batcher[int64, *T] {
		return byField[T](r, reg, name, s.DB, e, by, pol)
	})
	return l.load(ctx, k)
}

// lookupRequired is lookup for a non-null field: a missing row is
// NOT_FOUND.
func lookupRequired[T any](ctx context.Context, r *Resolver, by string, key int64) (*T, error) {
	v, err := lookup[T](ctx, r, by, key)
	if err == nil && v == nil {
		// Missing, or outside the caller's row policy.
		_, e, _, _ := entity[T](r)
		err = products.Errorf(products.NotFound, "%s with %s %d does not exist", e.Name, by, key)
	}
	return v, err
}

// children resolves a connection of the rows of T whose field fk holds the
// parent's key (a @children field), one windowed statement for all parents
// of a level that ask with the same arguments.
func children[T any, PT windowed[T]](ctx context.Context, r *Resolver, fk string, key int64, first *int, after *string, last *int, before *string, where map[string]any, orderBy []map[string]any) (*products.Connection[T], error) {
	_, e, _, err := entity[T](r)
	if err != nil {
		return nil, err
	}
	if err := accessFrom(ctx, r).refusePII(e, where, orderBy, nil); err != nil {
		return nil, err
	}
	p, err := childPage[T, PT](ctx, r, fk, key, listArgs(ctx, first, after, last, before, where, orderBy))
	if err != nil {
		return nil, err
	}
	return products.NewConnection(p), nil
}

// childList is children for a plain list field: every child (up to
// products.MaxPageSize), ordered by id.
func childList[T any, PT windowed[T]](ctx context.Context, r *Resolver, fk string, key int64) ([]*T, error) {
	n := products.MaxPageSize
	p, err := childPage[T, PT](ctx, r, fk, key, products.ListArgs{First: &n, Cursors: products.NoCursors})
	if err != nil {
		return nil, err
	}
	return p.Nodes, nil
}

func childPage[T any, PT windowed[T]](ctx context.Context, r *Resolver, fk string, key int64, a products.ListArgs) (*products.Page[T], error) {
	_, e, s, err := entity[T](r)
	if err != nil {
		return nil, err
	}
	f := e.Field(fk)
	if f == nil || f.Derived {
		return nil, fmt.Errorf("%s has no field %s", e.Name, fk)
	}
	a.Restrict = accessFrom(ctx, r).policy(e)
	l := loader(ctx, childrenName(e, fk, a.Restrict), func(reg *loaders, name string) *childLoader[T] {
		return newChildLoader[T, PT](r, reg, name, s.DB, e, f.Column, a.Restrict)
	})
	return l.load(ctx, key, a)
}

// findMany resolves a batch of Apollo Federation representations of one
// entity type with ONE statement (products.Lookup). The result follows the
// order of reps; a representation whose row does not exist, or is outside
// the caller's row policy, resolves to nil (null in _entities). A caller
// without the type's product's read role gets FORBIDDEN (and nulls) for
// the representations of this type only.
func findMany[T any, R any](ctx context.Context, r *Resolver, reps []R, id func(R) int64) ([]*T, error) {
	d, e, s, err := entity[T](r)
	if err != nil {
		return nil, err
	}
	a := accessFrom(ctx, r)
	if err := a.need(products.ReadRole(d.Name), "_entities of type "+e.Name); err != nil {
		return nil, err
	}
	ids := make([]int64, len(reps))
	for i, rep := range reps {
		ids[i] = id(rep)
	}
	rows, err := products.Lookup[T](ctx, s.DB, e, "id", ids, a.policy(e))
	if err != nil {
		return nil, err
	}
	out := make([]*T, len(reps))
	found := make([]*T, 0, len(rows))
	for i, id := range ids {
		out[i] = rows[id]
		if out[i] != nil {
			found = append(found, out[i])
		}
	}
	expectBelow(ctx, r, fieldRows(ctx), found)
	return out, nil
}

// policyKey tells loaders of differently restricted callers apart (loaders
// live as long as one operation of one caller, so this is a second line of
// defence: a batch result is never shared across policies).
func policyKey(c *products.Condition) string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf(" policy %p", c)
}
