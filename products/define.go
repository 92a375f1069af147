package products

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/migrate"
	"github.com/uptrace/bun/schema"
)

// Product is a data product as its package declares it, once: the
// descriptor's metadata, the bun models of its entities and the store's
// migrations. The entities are not written out: Define derives them from
// the models' struct tags, and the GraphQL SDL is generated from them
// (go generate ./...).
//
// An entity is a bun model whose bun.BaseModel field carries the entity's
// GraphQL name and options in a mesh tag and its description in a doc tag:
//
//	bun.BaseModel `bun:"table:orders" mesh:"Order,plural=orders,lookup=order" doc:"An order placed by a customer."`
//
// (plural names the list field, default the name in lower camel case plus
// "s"; lookup the lookup by id, default the name in lower camel case, "-"
// for none). Every column is a field, named after its json tag, described
// by its doc tag, with options in its mesh tag:
//
//	ref=customers.Customer  holds the key of another entity (maybe of another product)
//	enum=OrderStatus        a text column holding a value of one of the product's Enums
//	sort, group             can be sorted by, grouped by
//	aggregate               a number aggregated with sum, avg, min and max
//	nofilter                not in the entity's where filter
//	pii                     personal data (CONFIDENTIAL unless a level is given)
//	level=RESTRICTED        classification: PUBLIC, INTERNAL (default), CONFIDENTIAL, RESTRICTED
//	day=placedDate          also a derived field, the UTC day of this time, for grouping
//	object                  a structured value whose GraphQL type the product's SDL declares
//
// The key is the bun primary key, an int64 named id. GraphQL types follow
// the Go types: int64 keys and references are ID, int is Int, float64
// Float, Decimal (money, a BIGINT of cents) Decimal, string String (or the
// enum), time.Time Time; a pointer is nullable. Fields without a bun column (bun:"-") are not part of the
// entity.
type Product struct {
	Descriptor
	// Models are nil pointers to the bun models of the product's entities,
	// e.g. (*Order)(nil), in the order the entities are listed.
	Models []any
	// Migrations create and evolve the product's store.
	Migrations *migrate.Migrations
	// Seed, if set, writes the product's demo data into its empty store
	// (see Mesh.Seed).
	Seed func(ctx context.Context, m *Mesh, s Seeding) error
	// Reaction, if set, is how the product reacts to other products'
	// changes; the gateway runs it with a Kafka consumer group of the
	// product's own.
	Reaction *Reaction
	// Reset, if set, deletes everything the product derived from its
	// inputs, so that "meshgate replay <product>" can rebuild it from the
	// beginning of its inputs (a derived product).
	Reset func(ctx context.Context, tx *Tx) error
}

// Define derives the product's entities from its models (see Product),
// validates them and registers their Go types, so that generic code finds
// an entity by its model (EntityOf). It panics on a mistake: products call
// it when their package is initialised, so a bad tag stops the program
// before it serves anything. Describe reports the same mistakes as errors.
func Define(p *Product) *Product {
	if err := p.Describe(); err != nil {
		panic(err)
	}
	for i, e := range p.Entities {
		registry.Store(reflect.TypeOf(p.Models[i]).Elem(), registered{&p.Descriptor, e})
	}
	return p
}

type registered struct {
	d *Descriptor
	e *Entity
}

// registry maps a model's struct type to its entity.
var registry sync.Map

// EntityOf returns the entity whose bun model is the struct type t and its
// product, or nils if no defined product has it.
func EntityOf(t reflect.Type) (*Descriptor, *Entity) {
	v, ok := registry.Load(t)
	if !ok {
		return nil, nil
	}
	r := v.(registered)
	return r.d, r.e
}

// modelTables reads the models' bun metadata. Column names, keys and
// nullability do not depend on the dialect; the SQL types do (see
// Store.SQLType).
var modelTables = sqlitedialect.New().Tables()

// Describe derives the product's entities from its models and validates
// the product. It replaces p.Entities.
func (p *Product) Describe() error {
	enums := map[string]*Enum{}
	for _, en := range p.Enums {
		if err := en.validate(); err != nil {
			return fmt.Errorf("product %s: %w", p.Name, err)
		}
		if enums[en.Name] != nil {
			return fmt.Errorf("product %s: enum %s is listed twice", p.Name, en.Name)
		}
		enums[en.Name] = en
	}
	p.Entities = nil
	for _, m := range p.Models {
		e, err := describeModel(m, enums)
		if err != nil {
			return fmt.Errorf("product %s: %w", p.Name, err)
		}
		if p.Entity(e.Name) != nil {
			return fmt.Errorf("product %s: two entities are named %s", p.Name, e.Name)
		}
		p.Entities = append(p.Entities, e)
	}
	if len(p.Entities) == 0 {
		return fmt.Errorf("product %s: has no entities (list their models in Models)", p.Name)
	}
	for what, v := range map[string]string{"domain": p.Domain, "owner": p.Owner, "contact": p.Contact, "description": p.Description} {
		if v == "" {
			return fmt.Errorf("product %s: needs a %s", p.Name, what)
		}
	}
	switch p.Kind {
	case Operational, Analytical, Engagement:
	default:
		return fmt.Errorf("product %s: unknown kind %q", p.Name, p.Kind)
	}
	if r := p.Reaction; r != nil {
		if r.NewBatch == nil || len(r.Inputs) == 0 {
			return fmt.Errorf("product %s: a reaction needs inputs and NewBatch", p.Name)
		}
		for _, in := range r.Inputs {
			if in.Product == "" || in.Entity == "" {
				return fmt.Errorf("product %s: a reaction input must name a product and an entity", p.Name)
			}
		}
	}
	if p.Reset != nil && p.Reaction == nil {
		return fmt.Errorf("product %s: Reset rebuilds what a reaction derived; the product has no Reaction", p.Name)
	}
	return p.Validate()
}

// CheckReferences fails on a field or a reaction input that references an
// entity none of the products has, and on two products or entities of the
// same name.
func CheckReferences(ps []*Product) error {
	byName := map[string]*Product{}
	entities := map[string]string{}
	for _, p := range ps {
		if byName[p.Name] != nil {
			return fmt.Errorf("two data products are named %s", p.Name)
		}
		byName[p.Name] = p
		for _, e := range p.Entities {
			if other, ok := entities[e.Name]; ok {
				return fmt.Errorf("entity %s is defined by %s and %s", e.Name, other, p.Name)
			}
			entities[e.Name] = p.Name
		}
	}
	for _, p := range ps {
		if p.Reaction != nil {
			for _, in := range p.Reaction.Inputs {
				if q := byName[in.Product]; q == nil || q.Entity(in.Entity) == nil {
					return fmt.Errorf("%s: reacts to unknown entity %s.%s", p.Name, in.Product, in.Entity)
				}
			}
		}
		for _, e := range p.Entities {
			for _, f := range e.Fields {
				r := f.References
				if r == nil {
					continue
				}
				if q := byName[r.Product]; q == nil || q.Entity(r.Entity) == nil {
					return fmt.Errorf("%s.%s.%s: references unknown entity %s.%s", p.Name, e.Name, f.Name, r.Product, r.Entity)
				}
			}
		}
	}
	return nil
}

func describeModel(model any, enums map[string]*Enum) (*Entity, error) {
	rt := reflect.TypeOf(model)
	if rt == nil || rt.Kind() != reflect.Pointer || rt.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("model %T: want a nil pointer to a bun model struct, e.g. (*Order)(nil)", model)
	}
	st := rt.Elem()
	base, ok := st.FieldByName("BaseModel")
	if !ok || base.Type != reflect.TypeFor[bun.BaseModel]() {
		return nil, fmt.Errorf("model %s: embeds no bun.BaseModel", st.Name())
	}
	name, opts, err := splitTag(base.Tag.Get("mesh"))
	if err != nil || name == "" {
		return nil, fmt.Errorf(`model %s: its bun.BaseModel needs a mesh tag naming the GraphQL type, e.g. mesh:"Order"`, st.Name())
	}
	if !isTypeName(name) {
		return nil, fmt.Errorf("model %s: %q is not a GraphQL type name", st.Name(), name)
	}
	table := modelTables.Get(st)
	e := &Entity{
		Name: name, Table: table.Name, Description: base.Tag.Get("doc"), Model: model,
		Plural: lowerFirst(name) + "s", Lookup: lowerFirst(name),
	}
	if e.Description == "" {
		return nil, fmt.Errorf("entity %s: needs a description (a doc tag on its bun.BaseModel)", name)
	}
	for _, o := range opts {
		switch o.key {
		case "plural":
			e.Plural = o.value
		case "lookup":
			e.Lookup = o.value
			if o.value == "-" {
				e.Lookup = ""
			}
		default:
			return nil, fmt.Errorf("entity %s: unknown option %q (known: plural, lookup)", name, o.key)
		}
	}
	for _, n := range []string{e.Plural, e.Lookup} {
		if n != "" && !isFieldName(n) {
			return nil, fmt.Errorf("entity %s: %q is not a GraphQL field name", name, n)
		}
	}
	if len(table.PKs) != 1 || table.PKs[0].Name != "id" {
		return nil, fmt.Errorf("entity %s: the key must be one primary-key column named id (bun:\"id,pk\")", name)
	}
	fields := slices.Clone(table.Fields)
	slices.SortFunc(fields, func(a, b *schema.Field) int { return slices.Compare(a.Index, b.Index) })
	var derived []*Field
	for _, bf := range fields {
		f, day, err := describeField(e, bf, enums)
		if err != nil {
			return nil, err
		}
		e.Fields = append(e.Fields, f)
		if day != nil {
			derived = append(derived, day)
		}
	}
	for _, d := range derived {
		if e.Field(d.Name) != nil {
			return nil, fmt.Errorf("%s.%s: day=%s names an existing field", e.Name, d.DateOf, d.Name)
		}
		e.Fields = append(e.Fields, d)
	}
	return e, nil
}

func describeField(e *Entity, bf *schema.Field, enums map[string]*Enum) (f, day *Field, err error) {
	sf := bf.StructField
	jsonName, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
	if jsonName == "" || jsonName == "-" {
		return nil, nil, fmt.Errorf("%s: field %s needs a json name (the GraphQL field and the key in change events)", e.Name, sf.Name)
	}
	f = &Field{Name: jsonName, Column: bf.Name, GoName: sf.Name, Description: sf.Tag.Get("doc"), Nullable: bf.IsPtr}
	where := e.Name + "." + jsonName
	if !isFieldName(jsonName) {
		return nil, nil, fmt.Errorf("%s: %q is not a GraphQL field name", where, jsonName)
	}
	if f.Description == "" {
		return nil, nil, fmt.Errorf("%s: needs a description (a doc tag)", where)
	}
	_, opts, err := splitTag(sf.Tag.Get("mesh"))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	var enum, ref string
	var object bool
	for _, o := range opts {
		switch o.key {
		case "ref":
			ref = o.value
		case "enum":
			enum = o.value
		case "sort":
			f.Sort = upperSnake(jsonName)
		case "group":
			f.Group = upperSnake(jsonName)
		case "aggregate":
			f.Numeric = true
		case "nofilter":
			f.NoFilter = true
		case "pii":
			f.PII = true
		case "level":
			f.Classification = Classification(o.value)
		case "object":
			object = true
		case "day":
			day = &Field{
				Name: o.value, Type: TypeString, Group: upperSnake(o.value), DateOf: jsonName, Derived: true,
				Description: "The UTC day (YYYY-MM-DD) of " + jsonName + ".",
			}
			if !isFieldName(o.value) {
				return nil, nil, fmt.Errorf("%s: day=%q is not a GraphQL field name", where, o.value)
			}
		default:
			return nil, nil, fmt.Errorf("%s: unknown mesh option %q (known: ref, enum, sort, group, aggregate, nofilter, pii, level, day, object)", where, o.key)
		}
	}
	if bf.IsPK {
		f.Sort = "ID"
	}
	if !f.Nullable && !bf.NotNull && !bf.IsPK {
		return nil, nil, fmt.Errorf(`%s: a non-pointer field must be a NOT NULL column (bun:"%s,notnull"), or a pointer if it may be null`, where, bf.Name)
	}
	if f.Nullable && bf.NotNull {
		return nil, nil, fmt.Errorf("%s: a pointer field may be null, but its column is notnull", where)
	}
	t := bf.IndirectType
	switch {
	case object:
		f.Type = TypeObject
		if f.Sort != "" || f.Group != "" || f.Numeric || enum != "" || ref != "" || day != nil {
			return nil, nil, fmt.Errorf("%s: an object field cannot be sorted, grouped, aggregated, an enum, a reference or a day", where)
		}
	case t == reflect.TypeFor[time.Time]():
		f.Type = TypeTime
	case t.Kind() == reflect.Int64 && (bf.IsPK || ref != ""):
		f.Type = TypeID
	case t.Kind() == reflect.Int64:
		return nil, nil, fmt.Errorf("%s: an int64 is a key (the id) or a reference (ref=product.Entity); use int for a count", where)
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int32:
		f.Type = TypeInt
	case t == reflect.TypeFor[Decimal]():
		f.Type = TypeDecimal
	case t.Kind() == reflect.Float64:
		f.Type = TypeFloat
	case t.Kind() == reflect.String && enum != "":
		f.Type = TypeEnum
		if f.Enum = enums[enum]; f.Enum == nil {
			return nil, nil, fmt.Errorf("%s: enum=%s is not one of the product's Enums", where, enum)
		}
	case t.Kind() == reflect.String:
		f.Type = TypeString
	default:
		return nil, nil, fmt.Errorf("%s: Go type %s has no GraphQL type (int64 key or ref, int, float64, Decimal, string, time.Time, or object)", where, t)
	}
	if enum != "" && f.Type != TypeEnum {
		return nil, nil, fmt.Errorf("%s: enum=%s needs a string field", where, enum)
	}
	if ref != "" {
		if f.Type != TypeID {
			return nil, nil, fmt.Errorf("%s: ref=%s needs an int64 field", where, ref)
		}
		product, entity, ok := strings.Cut(ref, ".")
		if !ok || product == "" || !isTypeName(entity) {
			return nil, nil, fmt.Errorf("%s: ref=%q must be product.Entity, e.g. customers.Customer", where, ref)
		}
		f.References = &Reference{Product: product, Entity: entity}
	}
	if f.Numeric && f.Type != TypeInt && f.Type != TypeFloat && f.Type != TypeDecimal {
		return nil, nil, fmt.Errorf("%s: only numbers can be aggregated", where)
	}
	if day != nil && f.Type != TypeTime {
		return nil, nil, fmt.Errorf("%s: day=%s needs a time.Time field", where, day.Name)
	}
	return f, day, nil
}

type tagOption struct{ key, value string }

// splitTag splits a mesh tag into its first element (a name, if it has no
// "=") and its options.
func splitTag(tag string) (name string, opts []tagOption, err error) {
	if tag == "" {
		return "", nil, nil
	}
	for i, part := range strings.Split(tag, ",") {
		part = strings.TrimSpace(part)
		k, v, hasValue := strings.Cut(part, "=")
		switch {
		case i == 0 && !hasValue && isTypeName(k):
			name = k
		case part == "":
			return "", nil, fmt.Errorf("mesh tag %q has an empty option", tag)
		case hasValue && v == "":
			return "", nil, fmt.Errorf("mesh tag %q: option %s needs a value", tag, k)
		default:
			opts = append(opts, tagOption{k, v})
		}
	}
	for _, o := range opts {
		needsValue := map[string]bool{"plural": true, "lookup": true, "ref": true, "enum": true, "level": true, "day": true}[o.key]
		if needsValue && o.value == "" {
			return "", nil, fmt.Errorf("mesh tag %q: option %s needs a value (%s=…)", tag, o.key, o.key)
		}
		if !needsValue && o.value != "" {
			return "", nil, fmt.Errorf("mesh tag %q: option %s takes no value", tag, o.key)
		}
	}
	return name, opts, nil
}

func isFieldName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// upperSnake turns a GraphQL field name into an enum value: placedAt →
// PLACED_AT.
func upperSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}
