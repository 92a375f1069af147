package resolvers

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun/dialect/sqlitedialect"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/demo"
)

// TestDescriptorSchemaModelAgree checks the three views of every entity
// against each other: the descriptor (derived from the model's tags), the
// served GraphQL type and the bun model's columns. Every stored field is a
// field of the GraphQL type of the right type and nullability and a column
// of the model with a Go type of that kind; every field of the GraphQL type
// is a stored field, its history, or a field the products' SDL adds with
// @lookup or @children; every column of the model is a field.
func TestDescriptorSchemaModelAgree(t *testing.T) {
	s := Schema()
	tables := sqlitedialect.New().Tables()
	for _, p := range demo.Products {
		for _, e := range p.Entities {
			def := s.Types[e.Name]
			if def == nil {
				t.Errorf("%s.%s: no GraphQL type", p.Name, e.Name)
				continue
			}
			table := tables.Get(reflect.TypeOf(e.Model))
			columns := map[string]bool{}
			for _, c := range table.Fields {
				columns[c.Name] = true
			}
			for _, f := range e.Fields {
				if f.Derived {
					continue
				}
				where := e.Name + "." + f.Name
				col := table.LookupField(f.Column)
				if col == nil {
					t.Errorf("%s: column %s is not in the model %s", where, f.Column, table.TypeName)
					continue
				}
				delete(columns, f.Column)
				if kind := goKind(col.IndirectType); f.Type != products.TypeObject && kind != f.Type && !(kind == products.TypeString && f.Type == products.TypeEnum) {
					t.Errorf("%s: the model's Go type %s does not hold a %v", where, col.IndirectType, f.Type)
				}
				if col.IsPtr != f.Nullable {
					t.Errorf("%s: the model's field is a pointer: %v, the descriptor says nullable: %v", where, col.IsPtr, f.Nullable)
				}
				sf := def.Fields.ForName(f.Name)
				if sf == nil {
					t.Errorf("%s: in the descriptor, not in the schema", where)
					continue
				}
				if f.Type == products.TypeObject {
					continue // its GraphQL type is declared by hand
				}
				if got, want := sf.Type.String(), graphQLType(f); got != want {
					t.Errorf("%s: schema type %s, descriptor %s", where, got, want)
				}
			}
			for c := range columns {
				t.Errorf("%s: column %s of the model is no field of the descriptor", e.Name, c)
			}
			for _, sf := range def.Fields {
				switch {
				case e.Field(sf.Name) != nil && !e.Field(sf.Name).Derived,
					sf.Name == "history",
					sf.Directives.ForName("lookup") != nil,
					sf.Directives.ForName("children") != nil:
				default:
					t.Errorf("%s.%s: in the schema, neither a stored field of the descriptor nor a @lookup or @children field", e.Name, sf.Name)
				}
			}
			for _, root := range []struct {
				name string
				want bool
			}{{e.Plural, true}, {e.Plural + "Aggregate", true}, {e.Lookup, e.Lookup != ""}} {
				if root.want && s.Query.Fields.ForName(root.name) == nil {
					t.Errorf("%s: no Query.%s", e.Name, root.name)
				}
			}
			changed := strings.ToLower(e.Name[:1]) + e.Name[1:] + "Changed"
			if s.Subscription.Fields.ForName(changed) == nil {
				t.Errorf("%s: no Subscription.%s", e.Name, changed)
			}
		}
	}
}

func goKind(t reflect.Type) products.FieldType {
	switch {
	case t == reflect.TypeFor[time.Time]():
		return products.TypeTime
	case t == reflect.TypeFor[products.Decimal]():
		return products.TypeDecimal
	case t.Kind() == reflect.Int64:
		return products.TypeID
	case slices.Contains([]reflect.Kind{reflect.Int, reflect.Int32}, t.Kind()):
		return products.TypeInt
	case t.Kind() == reflect.Float64:
		return products.TypeFloat
	case t.Kind() == reflect.String:
		return products.TypeString
	}
	return products.TypeObject
}
