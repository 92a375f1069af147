package resolvers

// The fast path of plain reads. gqlgen's executor resolves every field of
// a response through graphql.ResolveField: a field context, a context, the
// field middleware (Authorize) and a Marshaler per value, which is most of
// the gateway's CPU under a read of many rows. For a query it fully
// understands — root lists and lookups of the mesh's entities, their
// scalar fields, @lookup and @children relations, connections (nodes,
// edges, pageInfo, totalCount), __typename, aliases, fragments and
// @skip/@include as graphql.CollectFields resolves them — FastSchema
// decides that from the document and the caller's roles (check), then
// calls the same
// resolvers (the generated ones, so the same loaders and row policies)
// and writes the JSON of `data` itself, applying the same rules as
// Authorize. Anything else, any field the caller may not resolve, and any
// error while it writes (a resolver's, a null where the schema forbids
// one) let gqlgen answer the operation, discarding what was written:
// reads are idempotent, and the loaders keep what they loaded for it.
//
// It wraps the ExecutableSchema, not the operation: gqlgen's operation and
// response middlewares (metrics, loaders, access, read audit, extensions)
// run around it as around gqlgen's own execution.

import (
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"log/slog"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/meshgate/meshgate/graph"
	"github.com/meshgate/meshgate/products"
)

// FastSchema returns es answering the queries it understands on the fast
// path (see above), with the resolvers of root (the ResolverRoot es was made
// with) and r's rules; es itself if r.NoFastPath.
func (r *Resolver) FastSchema(es graphql.ExecutableSchema, root graph.ResolverRoot) graphql.ExecutableSchema {
	if r.NoFastPath {
		return es
	}
	s := &fastSchema{ExecutableSchema: es, r: r, root: reflect.ValueOf(root), entities: map[string]*products.Entity{}}
	for _, p := range r.Data.Products {
		for _, e := range p.Entities {
			s.entities[e.Name] = e
		}
	}
	return s
}

// FastPathAnswers returns how many operations the fast path answered
// (gqlgen answered the others).
func FastPathAnswers() int64 { return fastAnswers.Load() }

type fastSchema struct {
	graphql.ExecutableSchema
	r        *Resolver
	root     reflect.Value
	entities map[string]*products.Entity // by GraphQL type name
	sizes    [256]atomic.Int64           // bytes of the last answer, by a hash of the query
	methods  sync.Map                    // "Object.field" → fastMethod, or nil
	fields   sync.Map                    // reflect.Type + GraphQL field → []int (the Go field's index)
}

var sizeSeed = maphash.MakeSeed()

// fastAnswers counts the operations the fast path answered.
var fastAnswers atomic.Int64

// errSlow: the fast path does not answer this query; gqlgen does.
var errSlow = errors.New("not on the fast path")

// Exec implements graphql.ExecutableSchema.
func (s *fastSchema) Exec(ctx context.Context) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if oc.Operation == nil || oc.Operation.Operation != ast.Query {
		return s.ExecutableSchema.Exec(ctx)
	}
	first := true
	var slow graphql.ResponseHandler
	return func(rctx context.Context) *graphql.Response {
		if slow != nil {
			return slow(rctx)
		}
		if !first {
			return nil
		}
		first = false
		if data, err := s.run(rctx, oc); err == nil {
			fastAnswers.Add(1)
			return &graphql.Response{Data: data}
		}
		slow = s.ExecutableSchema.Exec(ctx)
		return slow(rctx)
	}
}

// run writes the data of the operation, or fails with errSlow (or the
// error that stopped it).
func (s *fastSchema) run(ctx context.Context, oc *graphql.OperationContext) (data json.RawMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.r.logger().WarnContext(ctx, "fast path failed; gqlgen answers", slog.Any("panic", p))
			data, err = nil, errSlow
		}
	}()
	// The buffer starts as large as the last answer to the same query (up
	// to 8 MiB), so that a large one is not copied a dozen times while it
	// grows.
	last := &s.sizes[maphash.String(sizeSeed, oc.RawQuery)%uint64(len(s.sizes))]
	size := min(max(last.Load()+last.Load()/8, 1024), 8<<20)
	w := &fastWriter{s: s, oc: oc, a: accessFrom(ctx, s.r), rules: s.r.rulesOf(), buf: make([]byte, 0, size)}
	ctx = graphql.WithFieldContext(ctx, &graphql.FieldContext{Object: "Query"})
	// Everything the fast path does not answer, and every field the
	// caller may not resolve, is known from the document: leave those
	// operations to gqlgen before anything is loaded.
	if err := w.check(); err != nil {
		return nil, err
	}
	if err := w.root(ctx); err != nil {
		return nil, err
	}
	last.Store(int64(len(w.buf)))
	if log := readLogFrom(ctx); log != nil {
		for _, rd := range w.reads {
			log.add(rd.product, rd.entity, rd.field, rd.key)
		}
	}
	return w.buf, nil
}

type fastWriter struct {
	s     *fastSchema
	oc    *graphql.OperationContext
	a     *access
	rules *rules
	buf   []byte
	reads []fastRead

	collected map[selKey][]graphql.CollectedField
	plans     map[planKey]*objectPlan
	calls     map[callKey]*fastCall
}

// callKey identifies a field of the operation: a field of the document
// with the selections graphql.CollectFields gave it (merged ones differ),
// on an object, under an alias.
type callKey struct {
	field         *ast.Field
	first         *ast.Selection
	n             int
	object, alias string
}

// fastCall is what the resolver of one field of the operation is called
// with, whatever row it resolves: its field context (so its arguments,
// coerced once) and the context carrying it.
type fastCall struct {
	ctx context.Context
	fc  *graphql.FieldContext
	m   fastMethod
	// head and args are the call's arguments before and after the
	// parent, each a Value of its parameter's exact type: reflect's Call
	// then assigns them without checking, per call, whether the context's
	// concrete type implements context.Context (measured: a twentieth of
	// the nested read's gateway CPU went to that and to finding a method
	// value's function).
	head, args []reflect.Value
}

// fastMethod is a generated resolver method: its function (receiver
// first) and the receiver.
type fastMethod struct {
	fn, recv reflect.Value
}

// fastRead is a personal field returned unmasked, recorded in the read
// audit once the answer is complete.
type fastRead struct {
	product, entity, field string
	key                    int64
}

// selKey identifies a selection set (one slice of the document, or one
// that graphql.CollectFields merged).
type selKey struct {
	first *ast.Selection
	n     int
	typ   string
}

func keyOf(sel ast.SelectionSet, typ string) selKey {
	return selKey{unsafe.SliceData(sel), len(sel), typ}
}

// collect returns the fields of sel that apply to an object of type typ,
// as gqlgen collects them: once per selection set and type of the
// operation, not per row.
func (w *fastWriter) collect(sel ast.SelectionSet, typ string) ([]graphql.CollectedField, error) {
	k := keyOf(sel, typ)
	if c, ok := w.collected[k]; ok {
		return c, nil
	}
	c, err := w.collectNew(sel, typ)
	if err != nil {
		return nil, err
	}
	if w.collected == nil {
		w.collected = map[selKey][]graphql.CollectedField{}
	}
	w.collected[k] = c
	return c, nil
}

func (w *fastWriter) collectNew(sel ast.SelectionSet, typ string) ([]graphql.CollectedField, error) {
	def := Schema().Types[typ]
	if def == nil {
		return nil, errSlow
	}
	satisfies := []string{typ}
	for _, i := range Schema().GetImplements(def) {
		satisfies = append(satisfies, i.Name)
	}
	fields := graphql.CollectFields(w.oc, sel, satisfies)
	for _, f := range fields {
		if len(f.Deferrables) > 0 || f.Name != "__typename" && f.Definition == nil {
			return nil, errSlow
		}
	}
	return fields, nil
}

// key writes the key of the i-th field of an object (and the comma before
// it).
func (w *fastWriter) key(i int, alias string) {
	if i > 0 {
		w.buf = append(w.buf, ',')
	}
	w.buf = appendQuoted(w.buf, alias)
	w.buf = append(w.buf, ':')
}

// root writes the fields of Query: lists and lookups of entities.
func (w *fastWriter) root(ctx context.Context) error {
	fields, err := w.collect(w.oc.Operation.SelectionSet, "Query")
	if err != nil {
		return err
	}
	w.buf = append(w.buf, '{')
	for i, f := range fields {
		w.key(i, f.Alias)
		if f.Name == "__typename" {
			w.buf = append(w.buf, `"Query"`...)
			continue
		}
		t := f.Definition.Type
		var e *products.Entity
		switch {
		case t.Elem == nil && strings.HasSuffix(t.Name(), "Connection"):
			e = w.s.entities[strings.TrimSuffix(t.Name(), "Connection")]
			if e == nil || f.Name != e.Plural {
				return errSlow
			}
		case t.Elem == nil:
			e = w.s.entities[t.Name()]
			if e == nil || f.Name != e.Lookup {
				return errSlow
			}
		default:
			return errSlow
		}
		v, err := w.call(ctx, "Query", f, reflect.Value{})
		if err != nil {
			return err
		}
		if err := w.value(ctx, f, v); err != nil {
			return err
		}
	}
	w.buf = append(w.buf, '}')
	return nil
}

// check tells, before anything is resolved, whether the fast path
// answers the operation: every field is one it writes, and one the
// caller may resolve (see Authorize; personal fields are masked or
// recorded while writing).
func (w *fastWriter) check() error {
	fields, err := w.collect(w.oc.Operation.SelectionSet, "Query")
	if err != nil {
		return err
	}
	for _, f := range fields {
		if f.Name == "__typename" {
			continue
		}
		t := f.Definition.Type
		if t.Elem != nil {
			return errSlow
		}
		if e := w.s.entities[strings.TrimSuffix(t.Name(), "Connection")]; e != nil && f.Name == e.Plural && t.Name() == e.Name+"Connection" {
			err = w.checkConnection("Query", f, e)
		} else if e := w.s.entities[t.Name()]; e != nil && f.Name == e.Lookup {
			err = w.checkRule("Query", f, false)
			if err == nil {
				err = w.checkEntity(f.Selections, e)
			}
		} else {
			return errSlow
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkRule refuses a field the caller may not resolve, and one with a
// rule the fast path does not apply (all but personal fields, if pii).
func (w *fastWriter) checkRule(object string, f graphql.CollectedField, pii bool) error {
	ru := w.rules.byField[f.Definition]
	if ru == nil {
		return nil
	}
	if ru.pii != nil && !pii || ru.productArg != "" {
		return errSlow
	}
	return ru.check(w.a, &graphql.FieldContext{Object: object, Field: f})
}

// checkConnection checks a field returning a connection of e, and the
// field's own rule if it is one of object's ("": checked already).
func (w *fastWriter) checkConnection(object string, f graphql.CollectedField, e *products.Entity) error {
	if object != "" {
		if err := w.checkRule(object, f, false); err != nil {
			return err
		}
	}
	name := f.Definition.Type.Name()
	fields, err := w.collect(f.Selections, name)
	if err != nil {
		return err
	}
	for _, cf := range fields {
		if cf.Name == "__typename" {
			continue
		}
		if w.rules.byField[cf.Definition] != nil {
			return errSlow
		}
		switch cf.Name {
		case "totalCount":
		case "nodes":
			if err := w.checkEntity(cf.Selections, e); err != nil {
				return err
			}
		case "edges":
			t := cf.Definition.Type
			if t.Elem == nil || !t.Elem.NonNull {
				return errSlow
			}
			efs, err := w.collect(cf.Selections, t.Elem.Name())
			if err != nil {
				return err
			}
			for _, ef := range efs {
				if w.rules.byField[ef.Definition] != nil && ef.Definition != nil {
					return errSlow
				}
				switch ef.Name {
				case "__typename", "cursor":
				case "node":
					if err := w.checkEntity(ef.Selections, e); err != nil {
						return err
					}
				default:
					return errSlow
				}
			}
		case "pageInfo":
			pfs, err := w.collect(cf.Selections, cf.Definition.Type.Name())
			if err != nil {
				return err
			}
			for _, pf := range pfs {
				if w.rules.byField[pf.Definition] != nil && pf.Definition != nil {
					return errSlow
				}
				switch pf.Name {
				case "__typename", "hasNextPage", "hasPreviousPage", "startCursor", "endCursor":
				default:
					return errSlow
				}
			}
		default:
			return errSlow
		}
	}
	return nil
}

// checkEntity checks the selection of a row of e.
func (w *fastWriter) checkEntity(sel ast.SelectionSet, e *products.Entity) error {
	fields, err := w.collect(sel, e.Name)
	if err != nil {
		return err
	}
	for _, f := range fields {
		if f.Name == "__typename" {
			continue
		}
		d := f.Definition
		if d.Directives.ForName("lookup") != nil || d.Directives.ForName("children") != nil {
			if err := w.checkRule(e.Name, f, false); err != nil {
				return err
			}
			t := d.Type
			switch {
			case t.Elem != nil && w.s.entities[t.Elem.Name()] != nil:
				err = w.checkEntity(f.Selections, w.s.entities[t.Elem.Name()])
			case t.Elem == nil && w.s.entities[t.Name()] != nil:
				err = w.checkEntity(f.Selections, w.s.entities[t.Name()])
			case t.Elem == nil && strings.HasSuffix(t.Name(), "Connection") && w.s.entities[strings.TrimSuffix(t.Name(), "Connection")] != nil:
				err = w.checkConnection("", f, w.s.entities[strings.TrimSuffix(t.Name(), "Connection")])
			default:
				return errSlow
			}
			if err != nil {
				return err
			}
			continue
		}
		mf := e.Field(f.Name)
		if mf == nil || mf.Derived || len(f.Arguments) > 0 || len(f.Selections) > 0 {
			return errSlow
		}
		if err := w.checkRule(e.Name, f, true); err != nil {
			return err
		}
		// A Go type marshalling itself (products.Op quotes with
		// strconv.Quote), but for those scalar writes as they do, is
		// left to gqlgen.
		if sf, ok := reflect.TypeOf(e.Model).Elem().FieldByName(mf.GoName); !ok {
			return errSlow
		} else if gt := sf.Type; gt != timeType && gt != decimalType && (gt.Implements(marshalerType) || reflect.PointerTo(gt).Implements(marshalerType)) {
			return errSlow
		}
		switch n := d.Type.Name(); n {
		case "ID", "Int", "Long", "Boolean", "Time", "Decimal", "Float", "String":
		default:
			if def := Schema().Types[n]; def == nil || def.Kind != ast.Enum {
				return errSlow
			}
		}
	}
	return nil
}

// call resolves field f of object (parent is the object's Go value, or
// invalid for Query) with its generated resolver, after checking the
// caller may resolve it.
func (w *fastWriter) call(ctx context.Context, object string, f graphql.CollectedField, parent reflect.Value) (reflect.Value, error) {
	c, err := w.prepare(ctx, object, f)
	if err != nil {
		return reflect.Value{}, err
	}
	return c.invoke(parent)
}

// invoke calls the resolver of a prepared call for parent. It only reads
// the call, so calls may run concurrently (see prefetch).
func (c *fastCall) invoke(parent reflect.Value) (reflect.Value, error) {
	n := len(c.head) + len(c.args)
	if parent.IsValid() {
		n++
	}
	if n != c.m.fn.Type().NumIn() {
		return reflect.Value{}, errSlow
	}
	var buf [8]reflect.Value
	in := append(buf[:0], c.head...)
	if parent.IsValid() {
		in = append(in, parent)
	}
	in = append(in, c.args...)
	out := c.m.fn.Call(in)
	if e := out[1].Interface(); e != nil {
		return reflect.Value{}, e.(error)
	}
	return out[0], nil
}

// typed returns v as a Value of type t exactly (v's type must be
// assignable to t).
func typed(v reflect.Value, t reflect.Type) reflect.Value {
	if v.Type() == t {
		return v
	}
	p := reflect.New(t).Elem()
	p.Set(v)
	return p
}

// prepare returns the call of field f of object, checking once that the
// caller may resolve it.
func (w *fastWriter) prepare(ctx context.Context, object string, f graphql.CollectedField) (*fastCall, error) {
	k := callKey{f.Field, unsafe.SliceData(f.Selections), len(f.Selections), object, f.Alias}
	if c, ok := w.calls[k]; ok {
		return c, nil
	}
	m, err := w.s.method(object, f.Name)
	if err != nil {
		return nil, err
	}
	fc := &graphql.FieldContext{Object: object, Field: f, IsMethod: true, IsResolver: true}
	ctx = graphql.WithFieldContext(ctx, fc)
	if len(f.Definition.Arguments) > 0 {
		if fc.Args, err = graph.FieldArgs(ctx, object, f.Name, f.ArgumentMap(w.oc.Variables)); err != nil {
			return nil, err
		}
	}
	if ru := w.rules.byField[f.Definition]; ru != nil {
		if ru.pii != nil {
			return nil, errSlow
		}
		if err := ru.check(w.a, fc); err != nil {
			return nil, err
		}
	}
	c := &fastCall{ctx: ctx, fc: fc, m: m}
	mt := m.fn.Type()
	if mt.NumIn() < 2 || !contextType.AssignableTo(mt.In(1)) {
		return nil, errSlow
	}
	c.head = []reflect.Value{m.recv, typed(reflect.ValueOf(&c.ctx).Elem(), mt.In(1))}
	// The arguments follow the parent (an object's field) or the
	// context (a root field).
	at := 2
	if object != "Query" {
		at = 3
	}
	for i, a := range f.Definition.Arguments {
		if at+i >= mt.NumIn() {
			return nil, errSlow
		}
		pt := mt.In(at + i)
		v := fc.Args[a.Name]
		if v == nil {
			c.args = append(c.args, reflect.Zero(pt))
			continue
		}
		rv := reflect.ValueOf(v)
		if !rv.Type().AssignableTo(pt) {
			return nil, errSlow
		}
		c.args = append(c.args, typed(rv, pt))
	}
	if w.calls == nil {
		w.calls = map[callKey]*fastCall{}
	}
	w.calls[k] = c
	return c, nil
}

// method returns the generated resolver method of object's field and its
// resolver.
func (s *fastSchema) method(object, field string) (fastMethod, error) {
	k := object + "." + field
	if m, ok := s.methods.Load(k); ok {
		if m == nil {
			return fastMethod{}, errSlow
		}
		return m.(fastMethod), nil
	}
	var found fastMethod
	if o := s.root.MethodByName(object); o.IsValid() && o.Type().NumIn() == 0 && o.Type().NumOut() == 1 {
		res := o.Call(nil)[0]
		if res.Kind() == reflect.Interface {
			res = res.Elem()
		}
		if res.IsValid() {
			t := res.Type()
			for i := range t.NumMethod() {
				if strings.EqualFold(t.Method(i).Name, field) {
					found = fastMethod{fn: t.Method(i).Func, recv: res}
					break
				}
			}
		}
	}
	if !found.fn.IsValid() || found.fn.Type().NumOut() != 2 {
		s.methods.Store(k, nil)
		return fastMethod{}, errSlow
	}
	s.methods.Store(k, found)
	return found, nil
}

// value writes the result v of the field f: a connection, a list of rows
// or a row of an entity.
func (w *fastWriter) value(ctx context.Context, f graphql.CollectedField, v reflect.Value) error {
	t := f.Definition.Type
	if v.Kind() == reflect.Pointer && v.IsNil() {
		if t.NonNull {
			return errSlow
		}
		w.buf = append(w.buf, "null"...)
		return nil
	}
	if t.Elem != nil {
		e := w.s.entities[t.Elem.Name()]
		if e == nil || v.Kind() != reflect.Slice {
			return errSlow
		}
		return w.rows(ctx, e, t, f.Selections, v)
	}
	if e := w.s.entities[t.Name()]; e != nil {
		return w.row(ctx, e, f.Selections, v)
	}
	name := t.Name()
	e := w.s.entities[strings.TrimSuffix(name, "Connection")]
	if e == nil || !strings.HasSuffix(name, "Connection") {
		return errSlow
	}
	conn := v.Elem()
	fields, err := w.collect(f.Selections, name)
	if err != nil {
		return err
	}
	w.buf = append(w.buf, '{')
	for i, cf := range fields {
		w.key(i, cf.Alias)
		switch cf.Name {
		case "__typename":
			w.buf = appendQuoted(w.buf, name)
		case "totalCount":
			w.buf = strconv.AppendInt(w.buf, conn.FieldByName("TotalCount").Int(), 10)
		case "nodes":
			if err := w.rows(ctx, e, cf.Definition.Type, cf.Selections, conn.FieldByName("Nodes")); err != nil {
				return err
			}
		case "edges":
			if err := w.edges(ctx, e, cf, conn.FieldByName("Edges")); err != nil {
				return err
			}
		case "pageInfo":
			if err := w.pageInfo(cf, conn.FieldByName("PageInfo")); err != nil {
				return err
			}
		default:
			return errSlow
		}
	}
	w.buf = append(w.buf, '}')
	return nil
}

// edges writes the edges of a connection of e (a slice of
// *products.Edge[T]).
func (w *fastWriter) edges(ctx context.Context, e *products.Entity, f graphql.CollectedField, v reflect.Value) error {
	t := f.Definition.Type
	if t.Elem == nil || !t.Elem.NonNull {
		return errSlow
	}
	if v.IsNil() {
		if !t.NonNull {
			return errSlow
		}
		w.buf = append(w.buf, "[]"...)
		return nil
	}
	typ := t.Elem.Name()
	fields, err := w.collect(f.Selections, typ)
	if err != nil {
		return err
	}
	w.buf = append(w.buf, '[')
	for i := range v.Len() {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		edge := v.Index(i)
		if edge.IsNil() {
			return errSlow
		}
		edge = edge.Elem()
		w.buf = append(w.buf, '{')
		for j, ef := range fields {
			w.key(j, ef.Alias)
			switch ef.Name {
			case "__typename":
				w.buf = appendQuoted(w.buf, typ)
			case "cursor":
				if err := w.scalar(ef.Definition.Type, edge.FieldByName("Cursor")); err != nil {
					return err
				}
			case "node":
				node := edge.FieldByName("Node")
				if node.IsNil() {
					if ef.Definition.Type.NonNull {
						return errSlow
					}
					w.buf = append(w.buf, "null"...)
					continue
				}
				if err := w.row(ctx, e, ef.Selections, node); err != nil {
					return err
				}
			default:
				return errSlow
			}
		}
		w.buf = append(w.buf, '}')
	}
	w.buf = append(w.buf, ']')
	return nil
}

// pageInfo writes a connection's *products.PageInfo.
func (w *fastWriter) pageInfo(f graphql.CollectedField, v reflect.Value) error {
	if v.IsNil() {
		return errSlow
	}
	p := v.Interface().(*products.PageInfo)
	fields, err := w.collect(f.Selections, f.Definition.Type.Name())
	if err != nil {
		return err
	}
	w.buf = append(w.buf, '{')
	for i, pf := range fields {
		w.key(i, pf.Alias)
		switch pf.Name {
		case "__typename":
			w.buf = appendQuoted(w.buf, f.Definition.Type.Name())
		case "hasNextPage":
			w.buf = strconv.AppendBool(w.buf, p.HasNextPage)
		case "hasPreviousPage":
			w.buf = strconv.AppendBool(w.buf, p.HasPreviousPage)
		case "startCursor", "endCursor":
			c := p.StartCursor
			if pf.Name == "endCursor" {
				c = p.EndCursor
			}
			if c == nil {
				w.buf = append(w.buf, "null"...)
			} else {
				w.buf = appendQuoted(w.buf, *c)
			}
		default:
			return errSlow
		}
	}
	w.buf = append(w.buf, '}')
	return nil
}

// rows writes a list (of GraphQL type list) of rows of e: a nil slice as
// [] if the list is non-null, as gqlgen does.
func (w *fastWriter) rows(ctx context.Context, e *products.Entity, list *ast.Type, sel ast.SelectionSet, v reflect.Value) error {
	elem := list.Elem
	if v.IsNil() {
		if list.NonNull {
			w.buf = append(w.buf, "[]"...)
		} else {
			w.buf = append(w.buf, "null"...)
		}
		return nil
	}
	fields, err := w.collect(sel, e.Name)
	if err != nil {
		return err
	}
	if err := w.prefetch(ctx, e, fields, v); err != nil {
		return err
	}
	w.buf = append(w.buf, '[')
	for i := range v.Len() {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		row := v.Index(i)
		if row.IsNil() {
			if elem.NonNull {
				return errSlow
			}
			w.buf = append(w.buf, "null"...)
			continue
		}
		if err := w.object(ctx, e, fields, row); err != nil {
			return err
		}
	}
	w.buf = append(w.buf, ']')
	return nil
}

// maxPrefetch bounds the relations of a level loaded at the same time
// for one request (and so the connections it holds at once).
const maxPrefetch = 4

// prefetch loads the relations selected on a list of rows concurrently:
// each relation's loader loads the keys all the rows announced (see
// loaders) when its first row asks, so asking for the first row of every
// relation at once sends a level's statements to the products together —
// customers and order lines of 50 orders in the time of one round trip
// instead of two — and the rows written next find them loaded. A level
// with one relation, or rows not yet announced, cost nothing more. What
// a relation returns or fails with here is kept by its loader for the
// writing that follows, which reports it.
func (w *fastWriter) prefetch(ctx context.Context, e *products.Entity, fields []graphql.CollectedField, v reflect.Value) error {
	var first reflect.Value
	for i := range v.Len() {
		if r := v.Index(i); !r.IsNil() {
			first = r
			break
		}
	}
	if !first.IsValid() {
		return nil
	}
	p, err := w.planOf(e, fields, first.Elem().Type())
	if err != nil {
		return err
	}
	var jobs []*fastCall
	for i, f := range fields {
		if !p.fields[i].relation {
			continue
		}
		c, err := w.prepare(ctx, e.Name, f)
		if err != nil {
			return err
		}
		jobs = append(jobs, c)
	}
	if len(jobs) < 2 {
		return nil
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxPrefetch-1)
	for _, j := range jobs[1:] {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() {
				// A resolver's panic is reported when the row is written
				// (gqlgen recovers it there); it must not end the process.
				_ = recover()
				<-sem
			}()
			_, _ = j.invoke(first)
		})
	}
	_, _ = jobs[0].invoke(first)
	wg.Wait()
	return nil
}

// row writes one row of e (a non-nil pointer).
func (w *fastWriter) row(ctx context.Context, e *products.Entity, sel ast.SelectionSet, v reflect.Value) error {
	fields, err := w.collect(sel, e.Name)
	if err != nil {
		return err
	}
	return w.object(ctx, e, fields, v)
}

// object writes the selected fields of a row of e (a non-nil pointer to
// its model).
func (w *fastWriter) object(ctx context.Context, e *products.Entity, fields []graphql.CollectedField, v reflect.Value) error {
	s := v.Elem()
	p, err := w.planOf(e, fields, s.Type())
	if err != nil {
		return err
	}
	w.buf = append(w.buf, '{')
	for i, f := range fields {
		w.key(i, f.Alias)
		fp := &p.fields[i]
		switch {
		case fp.typename:
			w.buf = appendQuoted(w.buf, e.Name)
			continue
		case fp.relation:
			res, err := w.call(ctx, e.Name, f, v)
			if err != nil {
				return err
			}
			if err := w.value(ctx, f, res); err != nil {
				return err
			}
			continue
		}
		fv := s.FieldByIndex(fp.idx)
		if ru := fp.pii; ru != nil {
			// As Authorize: masked for callers without pii:read
			// (strings as "***", a null one too), else recorded.
			if !w.a.pii {
				switch fv.Kind() {
				case reflect.String:
					w.buf = appendQuoted(w.buf, products.Masked)
				case reflect.Pointer:
					if fv.Type().Elem().Kind() == reflect.String {
						w.buf = appendQuoted(w.buf, products.Masked)
						continue
					}
					if f.Definition.Type.NonNull {
						return errSlow
					}
					w.buf = append(w.buf, "null"...)
				default:
					return errSlow
				}
				continue
			}
			if !(fv.Kind() == reflect.Pointer && fv.IsNil()) && p.id != nil {
				w.reads = append(w.reads, fastRead{ru.product, ru.entity.Name, ru.pii.Name, s.FieldByIndex(p.id).Int()})
			}
		}
		if err := w.scalar(f.Definition.Type, fv); err != nil {
			return err
		}
	}
	w.buf = append(w.buf, '}')
	return nil
}

// objectPlan is how the fields collected for a row of an entity are
// written, worked out once per selection and model type.
type objectPlan struct {
	fields []fieldPlan
	id     []int // the model's int64 ID field (the key of read records), or nil
}

type fieldPlan struct {
	typename, relation bool
	idx                []int      // a scalar's Go field
	pii                *fieldRule // a personal field's rule
}

type planKey struct {
	first *graphql.CollectedField
	t     reflect.Type
}

func (w *fastWriter) planOf(e *products.Entity, fields []graphql.CollectedField, t reflect.Type) (*objectPlan, error) {
	if len(fields) == 0 {
		return &objectPlan{}, nil
	}
	k := planKey{&fields[0], t}
	if p, ok := w.plans[k]; ok {
		return p, nil
	}
	p := &objectPlan{fields: make([]fieldPlan, len(fields))}
	if sf, ok := t.FieldByName("ID"); ok && sf.Type.Kind() == reflect.Int64 {
		p.id = sf.Index
	}
	for i, f := range fields {
		fp := &p.fields[i]
		if f.Name == "__typename" {
			fp.typename = true
			continue
		}
		d := f.Definition
		if d.Directives.ForName("lookup") != nil || d.Directives.ForName("children") != nil {
			fp.relation = true
			continue
		}
		mf := e.Field(f.Name)
		if mf == nil || mf.Derived || len(f.Arguments) > 0 {
			return nil, errSlow
		}
		idx, err := w.s.fieldIndex(t, mf)
		if err != nil {
			return nil, err
		}
		fp.idx = idx
		if ru := w.rules.byField[d]; ru != nil {
			if ru.pii == nil || ru.role != "" || ru.read != "" || ru.write != "" || ru.productArg != "" {
				return nil, errSlow
			}
			fp.pii = ru
		}
	}
	if w.plans == nil {
		w.plans = map[planKey]*objectPlan{}
	}
	w.plans[k] = p
	return p, nil
}

// fieldIndex returns the index of the Go field of t holding mf.
func (s *fastSchema) fieldIndex(t reflect.Type, mf *products.Field) ([]int, error) {
	type key struct {
		t    reflect.Type
		name string
	}
	k := key{t, mf.Name}
	if idx, ok := s.fields.Load(k); ok {
		if idx == nil {
			return nil, errSlow
		}
		return idx.([]int), nil
	}
	sf, ok := t.FieldByName(mf.GoName)
	if !ok || mf.GoName == "" {
		s.fields.Store(k, nil)
		return nil, errSlow
	}
	s.fields.Store(k, sf.Index)
	return sf.Index, nil
}

var (
	timeType    = reflect.TypeFor[time.Time]()
	contextType = reflect.TypeFor[context.Context]()
	decimalType = reflect.TypeFor[products.Decimal]()
	// marshalerType: graphql.Marshaler.
	marshalerType = reflect.TypeFor[graphql.Marshaler]()
)

// scalar writes a scalar value of GraphQL type t as gqlgen's marshallers
// do (graphql.MarshalString, MarshalInt…, scalars.MarshalID64,
// scalars.MarshalTime, Decimal.MarshalGQL).
func (w *fastWriter) scalar(t *ast.Type, v reflect.Value) error {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			if t.NonNull {
				return errSlow
			}
			w.buf = append(w.buf, "null"...)
			return nil
		}
		v = v.Elem()
	}
	name := t.Name()
	switch name {
	case "ID":
		if v.Kind() != reflect.Int64 {
			return errSlow
		}
		w.buf = append(w.buf, '"')
		w.buf = strconv.AppendInt(w.buf, v.Int(), 10)
		w.buf = append(w.buf, '"')
	case "Int", "Long":
		switch v.Kind() {
		case reflect.Int, reflect.Int64, reflect.Int32:
			w.buf = strconv.AppendInt(w.buf, v.Int(), 10)
		default:
			return errSlow
		}
	case "Float":
		// graphql.MarshalFloatContext: %g, which is the shortest form.
		if v.Kind() != reflect.Float64 || math.IsInf(v.Float(), 0) || math.IsNaN(v.Float()) {
			return errSlow
		}
		w.buf = strconv.AppendFloat(w.buf, v.Float(), 'g', -1, 64)
	case "Boolean":
		if v.Kind() != reflect.Bool {
			return errSlow
		}
		w.buf = strconv.AppendBool(w.buf, v.Bool())
	case "Time":
		if v.Type() != timeType {
			return errSlow
		}
		w.buf = append(w.buf, '"')
		w.buf = valueOf[time.Time](v).UTC().AppendFormat(w.buf, time.RFC3339Nano)
		w.buf = append(w.buf, '"')
	case "Decimal":
		if v.Type() != decimalType {
			return errSlow
		}
		w.buf = append(w.buf, valueOf[products.Decimal](v).String()...)
	default:
		def := Schema().Types[name]
		if v.Kind() != reflect.String || !(name == "String" || def != nil && def.Kind == ast.Enum) {
			return errSlow
		}
		w.buf = appendQuoted(w.buf, v.String())
	}
	return nil
}

// valueOf returns the T v holds, without boxing it when v is addressable
// (a field of a row reached through its pointer).
func valueOf[T any](v reflect.Value) T {
	if v.CanAddr() {
		return *v.Addr().Interface().(*T)
	}
	return v.Interface().(T)
}

// appendQuoted is gqlgen's writeQuotedString (graphql.MarshalString).
func appendQuoted(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF" // gqlgen's encodeHex
	start := 0
	b = append(b, '"')
	for i, c := range s {
		if c < 0x20 || c == '\\' || c == '"' {
			b = append(b, s[start:i]...)
			switch c {
			case '\t':
				b = append(b, `\t`...)
			case '\r':
				b = append(b, `\r`...)
			case '\n':
				b = append(b, `\n`...)
			case '\\':
				b = append(b, `\\`...)
			case '"':
				b = append(b, `\"`...)
			default:
				b = append(b, `\u00`...)
				b = append(b, hex[c>>4], hex[c&0xf])
			}
			start = i + 1
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
