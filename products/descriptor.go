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
// audit log, the catalog and the generated SDL. Products do not write its
// entities by hand: Define derives them from the products' bun models and
// their struct tags (see Product).
type Descriptor struct {
	Name        string
	Domain      string
	Owner       string
	Contact     string
	Kind        Kind
	Description string
	Entities    []*Entity
	// Enums are the GraphQL enums of the product's fields.
	Enums []*Enum
	// Inputs are the change topics of other products this product
	// consumes. The catalog derives the mesh's lineage from them.
	Inputs []Input
}

// Input declares that a product consumes the change events of another
// product's entity (its Kafka topic).
type Input struct {
	Product     string // producing data product, e.g. "orders"
	Entity      string // GraphQL type of the consumed entity, e.g. "Order"
	Description string // what the consumer does with the events
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
	// TypeDecimal is money: an exact Decimal, stored as cents.
	TypeDecimal
	// TypeObject is a column holding a structured value (JSON text) whose
	// GraphQL type the product declares by hand; it is neither filtered,
	// sorted nor grouped.
	TypeObject
)

// Entity is one table of a product exposed as a GraphQL type.
type Entity struct {
	Name        string // GraphQL type, e.g. "Customer"
	Table       string // SQL table, e.g. "customers"
	Description string
	Fields      []*Field
	// Model is a nil pointer to the entity's bun model, e.g.
	// (*Customer)(nil); the catalog reads SQL column types from it.
	Model any
	// Plural names the entity's list field (e.g. "orders"), Lookup its
	// lookup by id ("order"; "" for none).
	Plural, Lookup string
}

// Classification is how sensitive a field's data is.
type Classification string

// Classification levels, least sensitive first.
const (
	Public       Classification = "PUBLIC"
	Internal     Classification = "INTERNAL"
	Confidential Classification = "CONFIDENTIAL"
	Restricted   Classification = "RESTRICTED"
)

// Classifications lists the levels, least sensitive first.
var Classifications = []Classification{Public, Internal, Confidential, Restricted}

// Rank orders the levels: 0 for PUBLIC up to 3 for RESTRICTED, -1 for an
// unknown level.
func (c Classification) Rank() int {
	for i, l := range Classifications {
		if l == c {
			return i
		}
	}
	return -1
}

// Reference names the entity whose key a field holds (a foreign key,
// possibly into another product's store, which no SQL constraint enforces).
type Reference struct {
	Product string // owning data product, e.g. "customers"
	Entity  string // GraphQL type, e.g. "Customer"; the key is its id
}

// Field describes one column (or a value derived from one) of an entity.
type Field struct {
	Name     string // GraphQL field, e.g. "createdAt"
	Column   string // SQL column, e.g. "created_at"
	Type     FieldType
	Nullable bool
	PII      bool
	// Classification is the field's sensitivity; empty means CONFIDENTIAL
	// for PII and INTERNAL otherwise (see Level).
	Classification Classification
	// References is set on fields holding another entity's key.
	References  *Reference
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
	// NoFilter keeps a stored field out of the entity's filter.
	NoFilter bool
	// Enum is the GraphQL enum of a TypeEnum field.
	Enum *Enum
	// GoName is the field of the model holding the value, e.g. "CustomerID".
	GoName string
}

// Filterable tells whether the field can be used in a where filter.
func (f *Field) Filterable() bool { return !f.Derived && !f.NoFilter && f.Type != TypeObject }

// Level returns the field's classification, defaulted (see Classification).
func (f *Field) Level() Classification {
	switch {
	case f.Classification != "":
		return f.Classification
	case f.PII:
		return Confidential
	default:
		return Internal
	}
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
	for _, in := range d.Inputs {
		if in.Product == "" || in.Entity == "" {
			return fmt.Errorf("%s: an input must name a product and an entity", d.Name)
		}
	}
	for _, e := range d.Entities {
		if e.Field("id") == nil || e.Field("id").Sort == "" {
			return fmt.Errorf("%s.%s: needs a sortable id field", d.Name, e.Name)
		}
		for _, f := range e.Fields {
			if f.Sort != "" && f.Nullable {
				return fmt.Errorf("%s.%s.%s: sortable fields must not be nullable", d.Name, e.Name, f.Name)
			}
			if f.Classification != "" && f.Classification.Rank() < 0 {
				return fmt.Errorf("%s.%s.%s: unknown classification %q", d.Name, e.Name, f.Name, f.Classification)
			}
			if f.PII && f.Level().Rank() < Confidential.Rank() {
				return fmt.Errorf("%s.%s.%s: personal data must be classified CONFIDENTIAL or RESTRICTED", d.Name, e.Name, f.Name)
			}
			if f.PII && f.Type != TypeString && !f.Nullable {
				return fmt.Errorf("%s.%s.%s: personal data that is not a string must be nullable (masked as null; strings are masked as %q)", d.Name, e.Name, f.Name, Masked)
			}
		}
	}
	return nil
}
