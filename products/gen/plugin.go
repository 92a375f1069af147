package main

import (
	"bytes"
	"fmt"
	"go/format"
	"go/types"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/codegen"
	"github.com/99designs/gqlgen/codegen/config"
	"github.com/99designs/gqlgen/codegen/templates"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/meshgate/meshgate/products"
)

// Plugin is the gqlgen plugin of the mesh: it binds the GraphQL types of
// the registered entities to Go types (MutateConfig) and writes the bodies
// of their resolvers (Implement): one-line calls of the generic resolvers
// in package resolvers. Fields it does not know keep what they had.
type Plugin struct {
	products []*products.Product
	// byName maps GraphQL type names of entities to them.
	byName map[string]*products.Entity
	// errs collects what Implement could not generate; Generate fails
	// on them after gqlgen has written its files.
	errs []error
	// withArgs are the fields with arguments ("Object.field"), for
	// graph/fieldargs.go (see FieldArgs).
	withArgs []string
}

// ModelPackage is where the aliases binding connections, edges and changes live.
const ModelPackage = "github.com/meshgate/meshgate/graph/model"

func newPlugin(ps []*products.Product) *Plugin {
	p := &Plugin{products: ps, byName: map[string]*products.Entity{}}
	for _, prod := range ps {
		for _, e := range prod.Entities {
			p.byName[e.Name] = e
		}
	}
	return p
}

// Name implements plugin.Plugin.
func (p *Plugin) Name() string { return "meshgate" }

// goType is the Go type of an entity's model as package path and name.
func goType(e *products.Entity) (pkg, name string) {
	t := reflect.TypeOf(e.Model).Elem()
	return t.PkgPath(), t.Name()
}

// MutateConfig binds the entities' GraphQL types: each entity to its bun
// model, its connection, edge and change types to the generic types of
// package products (through the aliases in graph/model), its filter,
// ordering and aggregate inputs to maps (the products framework compiles
// them), its enums to strings; and makes the fields with @lookup or
// @children resolvers.
func (p *Plugin) MutateConfig(cfg *config.Config) error {
	bind := func(name, model string) {
		if cfg.Schema.Types[name] == nil {
			return
		}
		entry := cfg.Models[name]
		entry.Model = config.StringList{model}
		cfg.Models[name] = entry
	}
	const (
		asMap     = "map[string]interface{}"
		asString  = "github.com/99designs/gqlgen/graphql.String"
		aggregate = "github.com/meshgate/meshgate/products.AggregateRow"
	)
	bind("AuditEntryConnection", ModelPackage+".AuditEntryConnection")
	bind("AuditEntryEdge", ModelPackage+".AuditEntryEdge")
	bind("PiiReadConnection", ModelPackage+".PiiReadConnection")
	bind("PiiReadEdge", ModelPackage+".PiiReadEdge")
	for _, prod := range p.products {
		for _, en := range prod.Enums {
			bind(en.Name, asString)
			bind(en.Name+"Filter", asMap)
		}
		for _, e := range prod.Entities {
			pkg, name := goType(e)
			bind(e.Name, pkg+"."+name)
			for _, s := range []string{"Connection", "Edge", "Change"} {
				bind(e.Name+s, ModelPackage+"."+e.Name+s)
			}
			for _, s := range []string{"Where", "OrderBy", "Having", "Group", "Numbers", "NumbersFilter"} {
				bind(e.Name+s, asMap)
			}
			bind(e.Name+"Aggregate", aggregate)
			bind(e.Name+"SortField", asString)
			bind(e.Name+"GroupField", asString)
		}
	}
	for _, def := range cfg.Schema.Types {
		for _, f := range def.Fields {
			if f.Directives.ForName("lookup") == nil && f.Directives.ForName("children") == nil {
				continue
			}
			entry := cfg.Models[def.Name]
			if entry.Fields == nil {
				entry.Fields = map[string]config.TypeMapField{}
			}
			tf := entry.Fields[f.Name]
			tf.Resolver = true
			entry.Fields[f.Name] = tf
			cfg.Models[def.Name] = entry
		}
	}
	return nil
}

// Implement writes the body of a resolver gqlgen asks for.
func (p *Plugin) Implement(prev string, f *codegen.Field) string {
	body, err := p.body(f)
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("%s.%s: %w", f.Object.Name, f.Name, err))
		return fmt.Sprintf("panic(%q)", err.Error())
	}
	if body != "" {
		return body
	}
	if prev != "" {
		return prev
	}
	return fmt.Sprintf("panic(fmt.Errorf(\"not implemented: %v - %v\"))", f.GoFieldName, f.Name)
}

// body returns the generated body of f, or "" if f is written by hand.
func (p *Plugin) body(f *codegen.Field) (string, error) {
	obj := f.Object.Name
	switch {
	case f.FieldDefinition.Directives.ForName("lookup") != nil:
		return p.lookupBody(f)
	case f.FieldDefinition.Directives.ForName("children") != nil:
		return p.childrenBody(f)
	case obj == "Query":
		return p.queryBody(f)
	case obj == "Subscription":
		for _, e := range p.byName {
			if f.Name == ChangedField(e) {
				return fmt.Sprintf("return changed[%s](ctx, r.Resolver, %s)", p.ref(e), p.args(f, "where", "ops", "since")), nil
			}
		}
	case obj == "Entity" && strings.HasPrefix(f.Name, "findMany") && strings.HasSuffix(f.Name, "ByIDs"):
		e := p.byName[strings.TrimSuffix(strings.TrimPrefix(f.Name, "findMany"), "ByIDs")]
		if e == nil || len(f.Args) != 1 {
			return "", fmt.Errorf("not a federation resolver of an entity")
		}
		rep := templates.CurrentImports.LookupType(elem(f.Args[0].TypeReference.GO))
		return fmt.Sprintf("return findMany[%s](ctx, r.Resolver, %s, func(rep %s) int64 { return rep.ID })", p.ref(e), f.Args[0].VarName, rep), nil
	case f.Name == "history" && p.byName[obj] != nil:
		e := p.byName[obj]
		return fmt.Sprintf("return history[%s](ctx, r.Resolver, obj.ID, %s)", p.ref(e), p.args(f, "first", "after", "last", "before")), nil
	}
	return "", nil
}

func (p *Plugin) queryBody(f *codegen.Field) (string, error) {
	for _, e := range p.byName {
		switch f.Name {
		case e.Lookup:
			return fmt.Sprintf("return get[%s](ctx, r.Resolver, %s)", p.ref(e), p.args(f, "id")), nil
		case e.Plural:
			return fmt.Sprintf("return list[%s](ctx, r.Resolver, %s)", p.ref(e), p.args(f, "first", "after", "last", "before", "where", "orderBy")), nil
		case AggregateField(e):
			return fmt.Sprintf("return aggregate[%s](ctx, r.Resolver, %s)", p.ref(e), p.args(f, "where", "groupBy", "having")), nil
		}
	}
	return "", nil
}

// lookupBody: @lookup(key: "customerId", by: "id") resolves the entity the
// field returns whose field by equals the parent's field key.
func (p *Plugin) lookupBody(f *codegen.Field) (string, error) {
	d := f.FieldDefinition.Directives.ForName("lookup")
	key, by := directiveArg(d, "key", "id"), directiveArg(d, "by", "id")
	target := p.byName[f.TypeReference.GQL.Name()]
	if target == nil || f.TypeReference.GQL.Elem != nil {
		return "", fmt.Errorf("@lookup needs a field returning one entity of the mesh")
	}
	if bf := target.Field(by); bf == nil || bf.Type != products.TypeID {
		return "", fmt.Errorf("@lookup(by: %q): %s has no key or reference field %s", by, target.Name, by)
	}
	parent, pointer, err := parentField(f, key)
	if err != nil {
		return "", err
	}
	if f.TypeReference.GQL.NonNull {
		if pointer {
			return "", fmt.Errorf("@lookup(key: %q): a non-null field needs a non-null key", key)
		}
		return fmt.Sprintf("return lookupRequired[%s](ctx, r.Resolver, %s, obj.%s)", p.ref(target), strconv.Quote(by), parent), nil
	}
	return fmt.Sprintf("return lookup[%s](ctx, r.Resolver, %s, obj.%s)", p.ref(target), strconv.Quote(by), parent), nil
}

// childrenBody: @children(key: "customerId") resolves the rows of an
// entity whose field key holds the parent's id, as a connection or a
// plain list.
func (p *Plugin) childrenBody(f *codegen.Field) (string, error) {
	d := f.FieldDefinition.Directives.ForName("children")
	key := directiveArg(d, "key", "")
	t := f.TypeReference.GQL
	var target *products.Entity
	connection := t.Elem == nil
	if connection {
		target = p.byName[strings.TrimSuffix(t.Name(), "Connection")]
	} else {
		target = p.byName[t.Elem.Name()]
	}
	if target == nil || connection && !strings.HasSuffix(t.Name(), "Connection") {
		return "", fmt.Errorf("@children needs a field returning an entity's connection or a list of an entity")
	}
	if kf := target.Field(key); kf == nil || kf.Type != products.TypeID {
		return "", fmt.Errorf("@children(key: %q): %s has no key or reference field %s", key, target.Name, key)
	}
	parent, pointer, err := parentField(f, "id")
	if err != nil || pointer {
		return "", fmt.Errorf("@children needs a parent with a non-null id")
	}
	if connection {
		return fmt.Sprintf("return children[%s](ctx, r.Resolver, %s, obj.%s, %s)", p.ref(target), strconv.Quote(key), parent,
			p.args(f, "first", "after", "last", "before", "where", "orderBy")), nil
	}
	return fmt.Sprintf("return childList[%s](ctx, r.Resolver, %s, obj.%s)", p.ref(target), strconv.Quote(key), parent), nil
}

// parentField returns the Go field of the resolved object holding the
// GraphQL field name, and whether it is a pointer.
func parentField(f *codegen.Field, name string) (goName string, pointer bool, err error) {
	for _, sib := range f.Object.Fields {
		if sib.Name != name {
			continue
		}
		if sib.IsResolver || sib.GoFieldType != codegen.GoFieldVariable {
			return "", false, fmt.Errorf("the parent's %s is not a field of its Go type", name)
		}
		_, pointer = sib.TypeReference.GO.(*types.Pointer)
		return sib.GoFieldName, pointer, nil
	}
	return "", false, fmt.Errorf("the parent type %s has no field %s", f.Object.Name, name)
}

func directiveArg(d *ast.Directive, name, def string) string {
	if a := d.Arguments.ForName(name); a != nil {
		return a.Value.Raw
	}
	return def
}

// ref is the Go type of an entity's model as the file being written names it.
func (p *Plugin) ref(e *products.Entity) string {
	pkg, name := goType(e)
	if alias := templates.CurrentImports.Lookup(pkg); alias != "" {
		return alias + "." + name
	}
	return name
}

// args lists the Go variables of the field's arguments with these names,
// nil for those the field does not have.
func (p *Plugin) args(f *codegen.Field, names ...string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "nil"
		for _, a := range f.Args {
			if a.Name == n {
				out[i] = a.VarName
			}
		}
	}
	return strings.Join(out, ", ")
}

func elem(t types.Type) types.Type {
	if s, ok := t.(*types.Slice); ok {
		return s.Elem()
	}
	return t
}

// concurrent are the object types whose resolver fields gqlgen keeps
// running in goroutines of their own (see GenerateCode): the root
// Query, whose fields are independent reads (of different products),
// and the catalog's objects, whose fields (freshness, rowCount) do slow
// I/O of their own per product or entity that no loader batches.
var concurrent = map[string]bool{
	"Query":          true,
	"Subscription":   true,
	"Catalog":        true,
	"CatalogProduct": true,
	"CatalogEntity":  true,
}

// GenerateCode runs before gqlgen writes its code: it makes the fields
// of every object but those in concurrent resolve one after the other
// in the goroutine of their parent (gqlgen's DisableConcurrency), not
// each in a goroutine of its own. Their relations are served by the
// look-ahead loaders, which load a whole level when its first field
// asks (resolvers/loaders.go): running the siblings concurrently gains
// nothing and costs a goroutine (and its stack growth) per field.
// Lists of such objects are marshalled sequentially too (see
// sequentialSlices).
func (p *Plugin) GenerateCode(data *codegen.Data) error {
	for _, o := range data.Objects {
		if !concurrent[o.Name] {
			o.DisableConcurrency = true
		}
		for _, f := range o.Fields {
			if len(f.Args) > 0 {
				p.withArgs = append(p.withArgs, o.Name+"."+f.Name)
			}
		}
	}
	return nil
}

// FieldArgs returns graph/fieldargs.go: graph.FieldArgs coerces a field's
// arguments exactly as gqlgen's executor does (its generated
// field_<Object>_<field>_args functions), for the resolvers' fast path.
func (p *Plugin) FieldArgs() ([]byte, error) {
	fields := slices.Clone(p.withArgs)
	slices.Sort(fields)
	var b bytes.Buffer
	b.WriteString(`// Code generated by products/gen; DO NOT EDIT.

package graph

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
)

// FieldArgs coerces the raw arguments (graphql.CollectedField.ArgumentMap)
// of the field of object as gqlgen's executor does before it calls the
// field's resolver: the resolvers' fast path passes the same values.
func FieldArgs(ctx context.Context, object, field string, raw map[string]any) (map[string]any, error) {
	ec := newExecutionContext(graphql.GetOperationContext(ctx), &executableSchema{}, nil)
	switch object + "." + field {
`)
	for _, f := range fields {
		obj, name, _ := strings.Cut(f, ".")
		fmt.Fprintf(&b, "\tcase %q:\n\t\treturn ec.field_%s_%s_args(ctx, raw)\n", f, obj, name)
	}
	b.WriteString("\t}\n\treturn nil, fmt.Errorf(\"%s.%s takes no arguments\", object, field)\n}\n")
	return format.Source(b.Bytes())
}
