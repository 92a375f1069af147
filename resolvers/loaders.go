package resolvers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/uptrace/bun"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/meshgate/meshgate/products"
)

// loaders batch the lookups of one GraphQL operation. They live as long as
// the operation and cache what they loaded for it. There is one loader per
// entity and field it is looked up by (e.g. Customer by id, Shipment by
// orderId), one per entity and parent field for nested lists (the orders
// of customers), and one per entity for histories, made on first use: all
// the fields of one level that need the same rows share a statement.
//
// A level is gathered by look-ahead, not by waiting: whatever loads rows
// (a list, a lookup by id, a loader's batch) looks at the selection of the
// field it resolves and announces, for every relation selected below the
// rows (@lookup and @children fields), the keys its resolvers will ask
// (expect). The first of them to ask loads all the announced keys at once,
// without waiting; its siblings find them loaded or loading. A key nobody
// announced (a relation below a mutation's or a change's row, one below
// rows that a sibling with another selection loaded) is loaded at once,
// alone: the fields of a level resolve one after the other in one
// goroutine (products/gen's Plugin.GenerateCode), so there are no
// siblings to wait for.
type loaders struct {
	mu       sync.Mutex
	m        map[string]any
	expected map[string]map[any]struct{}  // loader name → announced keys
	args     map[string]products.ListArgs // connection arguments by keyArgs
	// fieldArgs are the keyArgs of the arguments a field context's
	// resolver asked with: the fast path resolves a field of every row of a
	// level with one field context, and its arguments are the same.
	fieldArgs map[*graphql.FieldContext]string
}

type loadersKey struct{}

// WithLoaders wraps the execution of one GraphQL operation with fresh batch
// loaders. Install it with the server's AroundOperations.
func (r *Resolver) WithLoaders(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	return next(context.WithValue(ctx, loadersKey{}, r.newLoaders()))
}

func (r *Resolver) newLoaders() *loaders {
	return &loaders{m: map[string]any{}}
}

// freshLoaders gives a subscription event loaders of its own (see
// PerResponse): loaders cache what they loaded, and an event must see the
// rows as they are now, not as they were at an earlier event.
func (r *Resolver) freshLoaders(ctx context.Context) context.Context {
	if _, ok := ctx.Value(loadersKey{}).(*loaders); !ok {
		return ctx
	}
	return context.WithValue(ctx, loadersKey{}, r.newLoaders())
}

// loader returns the operation's loader named key, made by mk on first use.
func loader[L any](ctx context.Context, key string, mk func(l *loaders, name string) L) L {
	l := ctx.Value(loadersKey{}).(*loaders)
	l.mu.Lock()
	defer l.mu.Unlock()
	if v, ok := l.m[key]; ok {
		return v.(L)
	}
	v := mk(l, key)
	l.m[key] = v
	return v
}

// expect announces that the loader named name will be asked for keys.
func (l *loaders) expect(name string, keys []any) {
	if len(keys) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.expected == nil {
		l.expected = map[string]map[any]struct{}{}
	}
	set := l.expected[name]
	if set == nil {
		set = make(map[any]struct{}, len(keys))
		l.expected[name] = set
	}
	for _, k := range keys {
		set[k] = struct{}{}
	}
}

// takeExpected returns and forgets the keys announced for the loader.
func (l *loaders) takeExpected(name string) map[any]struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	set := l.expected[name]
	delete(l.expected, name)
	return set
}

// batcher loads values by key in batches and caches them for the
// operation: a key asked for is loaded at once, with the keys announced
// for the loader.
type batcher[K comparable, V any] struct {
	name  string
	reg   *loaders
	fetch func(ctx context.Context, keys []K) (map[K]V, error)

	mu      sync.Mutex
	entries map[K]*entry[V]
}

type entry[V any] struct {
	done chan struct{}
	v    V
	err  error
}

func newBatcher[K comparable, V any](reg *loaders, name string, fetch func(ctx context.Context, keys []K) (map[K]V, error)) *batcher[K, V] {
	return &batcher[K, V]{name: name, reg: reg, fetch: fetch, entries: map[K]*entry[V]{}}
}

// load returns the value of k (the zero value if there is none): loaded
// already or being loaded by a sibling, or loaded now together with
// every key announced for the loader.
func (b *batcher[K, V]) load(ctx context.Context, k K) (V, error) {
	b.mu.Lock()
	if e, ok := b.entries[k]; ok {
		b.mu.Unlock()
		return e.wait(ctx)
	}
	announced := b.reg.takeExpected(b.name)
	e := &entry[V]{done: make(chan struct{})}
	b.entries[k] = e
	keys := make([]K, 1, len(announced)+1)
	keys[0] = k
	ents := make([]*entry[V], 1, len(announced)+1)
	ents[0] = e
	for a := range announced {
		ak, ok := a.(K)
		if !ok {
			continue
		}
		if _, loaded := b.entries[ak]; loaded {
			continue
		}
		ae := &entry[V]{done: make(chan struct{})}
		b.entries[ak] = ae
		keys = append(keys, ak)
		ents = append(ents, ae)
	}
	b.mu.Unlock()
	b.run(ctx, keys, ents)
	return e.wait(ctx)
}

// run fetches keys and completes their entries; a panic of the fetch
// fails them instead of leaving their resolvers waiting.
func (b *batcher[K, V]) run(ctx context.Context, keys []K, ents []*entry[V]) {
	done := false
	defer func() {
		if done {
			return
		}
		err := fmt.Errorf("batch loader %s failed: %v", b.name, recover())
		for _, e := range ents {
			e.err = err
			close(e.done)
		}
	}()
	vals, err := b.fetch(ctx, keys)
	for i, e := range ents {
		if err != nil {
			e.err = err
		} else {
			e.v = vals[keys[i]]
		}
		close(e.done)
	}
	done = true
}

func (e *entry[V]) wait(ctx context.Context) (V, error) {
	select {
	case <-e.done:
		return e.v, e.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// lookupName names the loader of T's rows by field (see lookup).
func lookupName(e *products.Entity, by string, pol *products.Condition) string {
	if pol == nil {
		// The common name, once: it is asked for every row of a level.
		k := nameKey{e, by}
		if n, ok := lookupNames.Load(k); ok {
			return n.(string)
		}
		n := "lookup " + e.Name + "." + by
		lookupNames.Store(k, n)
		return n
	}
	return "lookup " + e.Name + "." + by + policyKey(pol)
}

type nameKey struct {
	e     *products.Entity
	field string
}

var lookupNames, childrenNames sync.Map // nameKey → loader name without a policy

// childrenName names the loader of T's rows by parent field fk.
func childrenName(e *products.Entity, fk string, pol *products.Condition) string {
	if pol == nil {
		k := nameKey{e, fk}
		if n, ok := childrenNames.Load(k); ok {
			return n.(string)
		}
		n := "children " + e.Name + "." + fk
		childrenNames.Store(k, n)
		return n
	}
	return "children " + e.Name + "." + fk + policyKey(pol)
}

// byField batches lookups by a key field (id, or a unique reference) into
// one IN query; a missing row loads as nil.
// A row outside restrict (a row policy, if not nil) loads as nil too.
func byField[T any](r *Resolver, reg *loaders, name string, db bun.IDB, e *products.Entity, field string, restrict *products.Condition) *batcher[int64, *T] {
	return newBatcher(reg, name, func(ctx context.Context, keys []int64) (map[int64]*T, error) {
		rows, err := products.Lookup[T](ctx, db, e, field, keys, restrict)
		if err != nil {
			return nil, err
		}
		list := make([]*T, 0, len(rows))
		for _, row := range rows {
			list = append(list, row)
		}
		expectBelow(ctx, r, fieldRows(ctx), list)
		return rows, nil
	})
}

// childLoader batches connections below many parents (e.g. the orders of
// each customer): parents asking with the same arguments share one windowed
// statement.
type childLoader[T any] struct {
	*batcher[childKey, *products.Page[T]]
}

type childKey struct {
	args   string
	parent int64
}

// keyArgs returns the form of a connection's arguments that tells batches
// apart, and keeps the arguments for the batch that loads them.
func (l *loaders) keyArgs(a products.ListArgs) (string, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return "", err
	}
	key := string(b)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.args == nil {
		l.args = map[string]products.ListArgs{}
	}
	if _, ok := l.args[key]; !ok {
		l.args[key] = a
	}
	return key, nil
}

func (l *loaders) argsOf(key string) (products.ListArgs, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.args[key]
	return a, ok
}

func newChildLoader[T any, PT interface {
	*T
	products.Windowed
}](r *Resolver, reg *loaders, name string, db bun.IDB, e *products.Entity, fk string, restrict *products.Condition) *childLoader[T] {
	c := &childLoader[T]{}
	c.batcher = newBatcher(reg, name, func(ctx context.Context, keys []childKey) (map[childKey]*products.Page[T], error) {
		byArgs := map[string][]int64{}
		for _, k := range keys {
			byArgs[k.args] = append(byArgs[k.args], k.parent)
		}
		pages := make(map[childKey]*products.Page[T], len(keys))
		var all []*T
		for a, parents := range byArgs {
			args, ok := reg.argsOf(a)
			if !ok {
				return nil, fmt.Errorf("batch loader %s: unknown arguments %s", name, a)
			}
			// The loader's row policy, whoever registered the arguments.
			args.Restrict = restrict
			got, err := products.ListFor[T, PT](ctx, db, e, fk, parents, args)
			if err != nil {
				return nil, err
			}
			for p, pg := range got {
				pages[childKey{a, p}] = pg
				all = append(all, pg.Nodes...)
			}
		}
		expectBelow(ctx, r, fieldRows(ctx), all)
		return pages, nil
	})
	return c
}

// load returns the page of children of parent for the arguments, which
// are those of the field being resolved (see loaders.fieldArgs).
func (c *childLoader[T]) load(ctx context.Context, parent int64, a products.ListArgs) (*products.Page[T], error) {
	fc := graphql.GetFieldContext(ctx)
	c.reg.mu.Lock()
	key, ok := c.reg.fieldArgs[fc]
	c.reg.mu.Unlock()
	if !ok || fc == nil {
		var err error
		if key, err = c.reg.keyArgs(a); err != nil {
			return nil, err
		}
		if fc != nil {
			c.reg.mu.Lock()
			if c.reg.fieldArgs == nil {
				c.reg.fieldArgs = map[*graphql.FieldContext]string{}
			}
			c.reg.fieldArgs[fc] = key
			c.reg.mu.Unlock()
		}
	}
	return c.batcher.load(ctx, childKey{key, parent})
}

// fieldRows returns the selection sets that apply to each row the field
// being resolved returns: its own, or, for a connection, those of its
// nodes and of its edges' node.
func fieldRows(ctx context.Context) []ast.SelectionSet {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Field.Field == nil || fc.Field.Definition == nil || !graphql.HasOperationContext(ctx) {
		return nil
	}
	def := fc.Field.Definition
	name := def.Type.Name()
	if def.Type.Elem != nil || !strings.HasSuffix(name, "Connection") {
		return []ast.SelectionSet{fc.Field.Selections}
	}
	oc := graphql.GetOperationContext(ctx)
	var out []ast.SelectionSet
	for _, f := range graphql.CollectFields(oc, fc.Field.Selections, []string{name}) {
		switch f.Name {
		case "nodes":
			out = append(out, f.Selections)
		case "edges":
			for _, n := range graphql.CollectFields(oc, f.Selections, []string{strings.TrimSuffix(name, "Connection") + "Edge"}) {
				if n.Name == "node" {
					out = append(out, n.Selections)
				}
			}
		}
	}
	return out
}

// expectBelow announces, for rows of T just loaded and the selection sets
// that apply to them, the keys the relations selected on them will ask:
// the level below is loaded in one statement per loader as soon as its
// first field asks, without waiting (see loaders). Nothing is loaded
// here: a relation whose resolver never runs (not authorized, an error
// above it) costs nothing.
func expectBelow[T any](ctx context.Context, r *Resolver, sels []ast.SelectionSet, rows []*T) {
	if len(rows) == 0 || len(sels) == 0 {
		return
	}
	reg, ok := ctx.Value(loadersKey{}).(*loaders)
	if !ok {
		return
	}
	_, pe, ps, err := entity[T](r)
	if err != nil {
		return
	}
	oc := graphql.GetOperationContext(ctx)
	for _, sel := range sels {
		for _, f := range graphql.CollectFields(oc, sel, []string{pe.Name}) {
			if f.Definition == nil {
				continue
			}
			if d := f.Definition.Directives.ForName("lookup"); d != nil {
				target := r.entityNamed(f.Definition.Type.Name())
				by := directiveArg(d, "by", "id")
				keys := products.KeysOf(ps.DB, pe, directiveArg(d, "key", "id"), rows)
				if target == nil || keys == nil {
					continue
				}
				reg.expect(lookupName(target, by, accessFrom(ctx, r).policy(target)), keys)
				continue
			}
			d := f.Definition.Directives.ForName("children")
			if d == nil {
				continue
			}
			t := f.Definition.Type
			var target *products.Entity
			var a products.ListArgs
			if t.Elem != nil {
				target = r.entityNamed(t.Elem.Name())
				n := products.MaxPageSize
				a = products.ListArgs{First: &n, Cursors: products.NoCursors}
			} else {
				target = r.entityNamed(strings.TrimSuffix(t.Name(), "Connection"))
				a = connectionArgs(oc, f)
			}
			fk := directiveArg(d, "key", "")
			if target == nil || target.Field(fk) == nil {
				continue
			}
			ak, err := reg.keyArgs(a)
			parents := products.KeysOf(ps.DB, pe, "id", rows)
			if err != nil || parents == nil {
				continue
			}
			keys := make([]any, len(parents))
			for i, p := range parents {
				keys[i] = childKey{ak, p.(int64)}
			}
			reg.expect(childrenName(target, fk, accessFrom(ctx, r).policy(target)), keys)
		}
	}
}

// connectionArgs are the arguments a connection field's resolver will
// pass (see listArgs), from the field's arguments as the query gives them.
func connectionArgs(oc *graphql.OperationContext, f graphql.CollectedField) products.ListArgs {
	m := f.ArgumentMap(oc.Variables)
	intArg := func(name string) *int {
		switch v := m[name].(type) {
		case int64:
			n := int(v)
			return &n
		case int:
			return &v
		case json.Number:
			if n, err := v.Int64(); err == nil {
				i := int(n)
				return &i
			}
		}
		return nil
	}
	strArg := func(name string) *string {
		if s, ok := m[name].(string); ok {
			return &s
		}
		return nil
	}
	where, _ := m["where"].(map[string]any)
	var orderBy []map[string]any
	if list, ok := m["orderBy"].([]any); ok {
		for _, o := range list {
			if om, ok := o.(map[string]any); ok {
				orderBy = append(orderBy, om)
			}
		}
	}
	return products.ListArgs{
		First: intArg("first"), After: strArg("after"), Last: intArg("last"), Before: strArg("before"),
		Where: where, OrderBy: orderBy,
		WantTotal: selectsIn(oc, f, "totalCount"),
		Cursors:   cursorsIn(oc, f),
	}
}

// directiveArg returns a directive's string argument, or def.
func directiveArg(d *ast.Directive, name, def string) string {
	if a := d.Arguments.ForName(name); a != nil && a.Value != nil {
		return a.Value.Raw
	}
	return def
}

// entityNamed returns the served entity with the GraphQL type name, or
// nil.
func (r *Resolver) entityNamed(name string) *products.Entity {
	for _, s := range r.Data.Stores {
		if e := s.Product.Entity(name); e != nil {
			return e
		}
	}
	return nil
}
