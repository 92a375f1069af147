package resolvers

// The catalog of the mesh, assembled from the product descriptors, the
// composed schema (descriptions, GraphQL types, directives), the stores
// (SQL types, row counts, freshness), the topic naming and the consumers
// (lineage). The catalog query and the downloads under /catalog/ share it.

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/meshgate/meshgate/graph"
	"github.com/meshgate/meshgate/graph/model"
	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/streaming"
)

// CatalogFilter selects what the catalog lists. Zero values select all.
type CatalogFilter struct {
	Product string
	Domain  string
	// Classification keeps only fields at this level or a more sensitive one.
	Classification products.Classification
	// PII, if set, keeps only fields that hold (true) or do not hold
	// (false) personal data.
	PII *bool
}

// Schema returns the composed GraphQL schema the gateway serves.
var Schema = sync.OnceValue(func() *ast.Schema {
	return graph.NewExecutableSchema(graph.Config{}).Schema()
})

// CatalogProducts lists the data products the gateway serves that match f,
// in serving order, with their entities, fields, topics and lineage. It
// reads no store: row counts, freshness and SDL are computed by the field
// resolvers, only when asked (see Store.RowCount, Store.Freshness and
// ProductSDL).
func (r *Resolver) CatalogProducts(f CatalogFilter) ([]*model.CatalogProduct, error) {
	ds := r.descriptors()
	links, err := r.lineage(ds)
	if err != nil {
		return nil, err
	}
	var out []*model.CatalogProduct
	for _, s := range r.Data.Stores {
		d := s.Product
		if f.Product != "" && d.Name != f.Product || f.Domain != "" && d.Domain != f.Domain {
			continue
		}
		p := &model.CatalogProduct{
			Name: d.Name, Domain: d.Domain, Owner: d.Owner, Contact: d.Contact,
			Kind: model.DataProductKind(strings.ToUpper(string(d.Kind))), Description: d.Description,
			Inputs: []*model.LineageLink{}, Consumers: []*model.LineageLink{},
			Downloads: &model.CatalogDownloads{
				Sdl:  "/catalog/" + d.Name + ".graphql",
				Odps: "/catalog/" + d.Name + "/odps.yaml",
				Odcs: "/catalog/" + d.Name + "/odcs.yaml",
			},
		}
		for _, e := range d.Entities {
			ce := r.catalogEntity(s, e, f)
			if len(ce.Fields) > 0 || !f.narrowsFields() {
				p.Entities = append(p.Entities, ce)
			}
		}
		if len(p.Entities) == 0 && f.narrowsFields() {
			continue
		}
		for _, l := range links {
			ll := &model.LineageLink{
				Consumer: l.Consumer, Producer: l.Producer, Entity: l.Entity, Description: l.Description,
				Topic: r.topic(ds, l.Producer, l.Entity),
			}
			if l.Consumer == d.Name {
				p.Inputs = append(p.Inputs, ll)
			}
			if l.Producer == d.Name {
				p.Consumers = append(p.Consumers, ll)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// lineage is the mesh's lineage: the inputs the products declare in their
// descriptors, and those of the consumers that run their reactions.
func (r *Resolver) lineage(ds []*products.Descriptor) ([]products.Link, error) {
	declared := slices.Clone(ds)
	for i, d := range declared {
		var inputs []products.Input
		for _, c := range r.Consumers {
			if c.Reaction == nil || c.Store == nil || c.Store.Product.Name != d.Name {
				continue
			}
			for _, in := range c.Reaction.Inputs {
				same := func(x products.Input) bool { return x.Product == in.Product && x.Entity == in.Entity }
				if !slices.ContainsFunc(d.Inputs, same) && !slices.ContainsFunc(inputs, same) {
					desc := "Reacts to its change events"
					if in.Description != "" {
						desc = strings.TrimSuffix(in.Description, ".")
					}
					inputs = append(inputs, products.Input{Product: in.Product, Entity: in.Entity,
						Description: desc + " (consumer group " + c.Group + ")."})
				}
			}
		}
		if len(inputs) > 0 {
			dd := *d
			dd.Inputs = append(slices.Clone(d.Inputs), inputs...)
			declared[i] = &dd
		}
	}
	return products.Lineage(declared)
}

func (f CatalogFilter) narrowsFields() bool { return f.Classification != "" || f.PII != nil }

func (r *Resolver) catalogEntity(s *products.Store, e *products.Entity, f CatalogFilter) *model.CatalogEntity {
	def := Schema().Types[e.Name]
	ce := &model.CatalogEntity{
		Name: e.Name, Product: s.Product.Name, Table: e.Table,
		Description: e.Description, Topic: r.codec().Topic(s.Product.Name, e),
		PrimaryKey: []string{"id"}, Fields: []*model.CatalogField{},
	}
	if def != nil && def.Description != "" {
		ce.Description = def.Description
	}
	for _, fd := range e.Fields {
		if fd.Derived {
			continue
		}
		level := fd.Level()
		if f.Classification != "" && level.Rank() < f.Classification.Rank() {
			continue
		}
		if f.PII != nil && fd.PII != *f.PII {
			continue
		}
		cf := &model.CatalogField{
			Name: fd.Name, Column: fd.Column, SQLType: s.SQLType(e, fd),
			Nullable: fd.Nullable, PrimaryKey: fd.Name == "id",
			Classification: model.Classification(level), Pii: fd.PII, Description: fd.Description,
		}
		var sf *ast.FieldDefinition
		if def != nil {
			sf = def.Fields.ForName(fd.Name)
		}
		if sf != nil {
			cf.Type = sf.Type.String()
			if sf.Description != "" {
				cf.Description = sf.Description
			}
		} else {
			cf.Type = graphQLType(fd)
		}
		if ref := fd.References; ref != nil {
			cf.References = &model.FieldReference{Product: ref.Product, Entity: ref.Entity, Field: "id"}
		}
		ce.Fields = append(ce.Fields, cf)
	}
	return ce
}

// graphQLType is the GraphQL type of a stored scalar field, as
// products/gen writes it into the SDL.
func graphQLType(f *products.Field) string {
	t := map[products.FieldType]string{
		products.TypeID: "ID", products.TypeString: "String", products.TypeInt: "Int",
		products.TypeFloat: "Float", products.TypeTime: "Time", products.TypeEnum: "String",
		products.TypeDecimal: "Decimal",
	}[f.Type]
	if f.Enum != nil {
		t = f.Enum.Name
	}
	if !f.Nullable {
		t += "!"
	}
	return t
}

// ProductStore returns the store of the named product, or nil.
func (r *Resolver) ProductStore(name string) *products.Store {
	for _, s := range r.Data.Stores {
		if s.Product.Name == name {
			return s
		}
	}
	return nil
}

// ProductNames lists the products the gateway serves, in serving order.
func (r *Resolver) ProductNames() []string {
	names := make([]string, len(r.Data.Stores))
	for i, s := range r.Data.Stores {
		names[i] = s.Product.Name
	}
	return names
}

func (r *Resolver) descriptors() []*products.Descriptor {
	ds := make([]*products.Descriptor, len(r.Data.Stores))
	for i, s := range r.Data.Stores {
		ds[i] = s.Product
	}
	return ds
}

// codec names the topics: the resolver's Codec, else the hub's, else the
// default prefix "meshgate".
func (r *Resolver) codec() streaming.Codec {
	c := r.Codec
	if c.Prefix == "" && r.Hub != nil {
		c = r.Hub.Codec
	}
	if c.Prefix == "" {
		c.Prefix = "meshgate"
	}
	return c
}

func (r *Resolver) topic(ds []*products.Descriptor, product, entity string) string {
	for _, d := range ds {
		if d.Name == product {
			if e := d.Entity(entity); e != nil {
				return r.codec().Topic(product, e)
			}
		}
	}
	return ""
}

// sdlCache holds the SDL of each product, computed once: the schema is
// compiled in.
var sdlCache sync.Map // product name → string

// ProductSDL returns the product's part of the composed schema: the
// @dataProduct declaration, the types defined in the product's subschema
// (schema/<product>.graphqls) with the fields it defines, the fields it adds
// to other products' types (extend type), the types of shared subschemas
// that only wrap the product's types (its change events), and the root
// fields that return them, with descriptions and directives. Shared types
// (scalars, filters, paging, audit) are referenced, not repeated. ok is
// false for an unknown product.
func (r *Resolver) ProductSDL(product string) (sdl string, ok bool) {
	if r.ProductStore(product) == nil {
		return "", false
	}
	if v, ok := sdlCache.Load(product); ok {
		return v.(string), true
	}
	sdl = productSDL(Schema(), r.descriptors(), product)
	sdlCache.Store(product, sdl)
	return sdl, true
}

func productSDL(s *ast.Schema, ds []*products.Descriptor, product string) string {
	fileOf := func(p *ast.Position) string {
		if p == nil || p.Src == nil || p.Src.BuiltIn {
			return ""
		}
		// A product's schema is its own file and the one generated from
		// its Go models (<product>.gen.graphqls).
		return strings.TrimSuffix(strings.TrimSuffix(path.Base(p.Src.Name), ".graphqls"), ".gen")
	}
	owners := map[string]bool{}
	for _, d := range ds {
		owners[d.Name] = true
	}
	roots := map[string]bool{}
	for _, root := range []*ast.Definition{s.Query, s.Mutation, s.Subscription} {
		if root != nil {
			roots[root.Name] = true
		}
	}
	// The product's own types, and those of other products.
	own, foreign := map[string]bool{}, map[string]bool{}
	var defs []*ast.Definition
	for name, def := range s.Types {
		if roots[name] || def.BuiltIn {
			continue
		}
		switch file := fileOf(def.Position); {
		case file == product:
			own[name] = true
			defs = append(defs, def)
		case owners[file]:
			foreign[name] = true
		}
	}
	byPosition := func(a, b *ast.Definition) int {
		if c := strings.Compare(fileOf(a.Position), fileOf(b.Position)); c != 0 {
			return c
		}
		// The generated file (<product>.gen.graphqls) first.
		if c := strings.Compare(path.Base(a.Position.Src.Name), path.Base(b.Position.Src.Name)); c != 0 {
			return c
		}
		return a.Position.Line - b.Position.Line
	}
	slices.SortFunc(defs, byPosition)
	// Types of shared subschemas that wrap only this product's types, like
	// CustomerChange.
	var wrappers []*ast.Definition
	for name, def := range s.Types {
		file := fileOf(def.Position)
		if roots[name] || def.BuiltIn || file == "" || file == "mesh" || owners[file] || def.Kind != ast.Object {
			continue
		}
		mine, theirs := false, false
		for _, f := range def.Fields {
			t := f.Type.Name()
			mine = mine || own[t]
			theirs = theirs || foreign[t]
		}
		if mine && !theirs {
			wrappers = append(wrappers, def)
		}
	}
	slices.SortFunc(wrappers, byPosition)
	for _, w := range wrappers {
		own[w.Name] = true
	}
	var w sdlWriter
	fmt.Fprintf(&w.b, "# Data product %q: its part of the meshgate schema (served at /graphql,\n"+
		"# and in full as _service { sdl }). Scalars, filters, paging, audit types and\n"+
		"# the directives are declared in the full schema.\n\n", product)
	for _, d := range s.SchemaDirectives {
		if d.Name == "dataProduct" {
			if a := d.Arguments.ForName("name"); a != nil && a.Value.Raw == product {
				w.schemaExtension(d)
			}
		}
	}
	// A type's fields belong to the subschema that defines them: another
	// product may extend this product's types (Item.sales) and this one
	// others' (Customer.value).
	fieldsFrom := func(def *ast.Definition, keep func(file string) bool) *ast.Definition {
		d := *def
		d.Fields = nil
		for _, f := range def.Fields {
			if keep(fileOf(f.Position)) {
				d.Fields = append(d.Fields, f)
			}
		}
		return &d
	}
	for _, def := range append(defs, wrappers...) {
		if def.Kind == ast.Object || def.Kind == ast.Interface {
			def = fieldsFrom(def, func(file string) bool { return file == product || !owners[file] })
		}
		w.definition(def, false)
	}
	var extended []*ast.Definition
	for name, def := range s.Types {
		if !roots[name] && !own[name] && !def.BuiltIn {
			if ext := fieldsFrom(def, func(file string) bool { return file == product }); len(ext.Fields) > 0 {
				extended = append(extended, ext)
			}
		}
	}
	slices.SortFunc(extended, byPosition)
	for _, ext := range extended {
		w.definition(&ast.Definition{Kind: ext.Kind, Name: ext.Name, Fields: ext.Fields}, true)
	}
	for _, root := range []*ast.Definition{s.Query, s.Mutation, s.Subscription} {
		if root == nil {
			continue
		}
		ext := &ast.Definition{Kind: ast.Object, Name: root.Name}
		for _, f := range root.Fields {
			if file := fileOf(f.Position); file == product || own[f.Type.Name()] && file != "" && !owners[file] {
				ext.Fields = append(ext.Fields, f)
			}
		}
		if len(ext.Fields) > 0 {
			w.definition(ext, true)
		}
	}
	return strings.TrimSuffix(w.String(), "\n")
}
