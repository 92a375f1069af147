package products

import (
	"fmt"
	"strings"
)

// Kind says what a data product is for.
type Kind string

// Kinds of data product.
const (
	Operational Kind = "operational"
	Analytical  Kind = "analytical"
	Engagement  Kind = "engagement"
)

// Descriptor is a data product's metadata: who owns it, what it is, and the
// entities it manages. It is the single source for query compilation, the
// audit log and the catalog.
type Descriptor struct {
	Name        string
	Domain      string
	Owner       string
	Contact     string
	Kind        Kind
	Description string
	Entities    []*Entity
}

// Entity returns the product's entity with the GraphQL type name, or nil.
func (d *Descriptor) Entity(name string) *Entity {
	for _, e := range d.Entities {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// FieldType is the scalar kind of a field, which decides how its filter
// values are coerced and how aggregates scan.
type FieldType int

// Field types.
const (
	TypeID FieldType = iota
	TypeString
	TypeInt
	TypeFloat
	TypeTime
	TypeEnum
)

// Entity is one table of a product exposed as a GraphQL type.
type Entity struct {
	Name        string // GraphQL type, e.g. "Customer"
	Table       string // SQL table, e.g. "customers"
	Description string
	Fields      []*Field
}

// Field describes one column (or a value derived from one) of an entity.
type Field struct {
	Name        string // GraphQL field, e.g. "createdAt"
	Column      string // SQL column, e.g. "created_at"
	Type        FieldType
	Nullable    bool
	PII         bool
	Description string
	// Sort is the field's name in the entity's SortField enum ("" if the
	// field cannot be sorted on). Sortable fields are NOT NULL.
	Sort string
	// Group is the field's name in the entity's GroupField enum ("" if it
	// cannot be grouped by).
	Group string
	// Numeric fields are aggregated with sum, avg, min and max.
	Numeric bool
	// DateOf names a Time column: the field is that column's UTC day
	// (YYYY-MM-DD), for grouping only.
	DateOf string
	// Derived fields exist only for grouping and are not filterable.
	Derived bool
}

// Field returns the entity's field with the GraphQL name, or nil.
func (e *Entity) Field(name string) *Field {
	for _, f := range e.Fields {
		if f.Name == name {
			return f
		}
	}
	return nil
}

func (e *Entity) bySort(v string) *Field {
	for _, f := range e.Fields {
		if f.Sort != "" && f.Sort == v {
			return f
		}
	}
	return nil
}

func (e *Entity) byGroup(v string) *Field {
	for _, f := range e.Fields {
		if f.Group != "" && f.Group == v {
			return f
		}
	}
	return nil
}

func (e *Entity) numeric() []*Field {
	var out []*Field
	for _, f := range e.Fields {
		if f.Numeric {
			out = append(out, f)
		}
	}
	return out
}

// Validate checks the descriptor for mistakes a product author can make.
func (d *Descriptor) Validate() error {
	if d.Name == "" || strings.ToLower(d.Name) != d.Name {
		return fmt.Errorf("product name %q must be lower case and not empty", d.Name)
	}
	for _, e := range d.Entities {
		if e.Field("id") == nil || e.Field("id").Sort == "" {
			return fmt.Errorf("%s.%s: needs a sortable id field", d.Name, e.Name)
		}
		for _, f := range e.Fields {
			if f.Sort != "" && f.Nullable {
				return fmt.Errorf("%s.%s.%s: sortable fields must not be nullable", d.Name, e.Name, f.Name)
			}
		}
	}
	return nil
}
