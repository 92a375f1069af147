// Package customers is the customers data product: who buys from the
// company. It owns the customers table in its own store.
package customers

import (
	"time"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
)

// Segments a customer can belong to.
const (
	SegmentConsumer      = "CONSUMER"
	SegmentSmallBusiness = "SMALL_BUSINESS"
	SegmentEnterprise    = "ENTERPRISE"
)

var segments = []string{SegmentConsumer, SegmentSmallBusiness, SegmentEnterprise}

// Customer is a row of the customers table and the GraphQL Customer type.
type Customer struct {
	bun.BaseModel `bun:"table:customers"`

	ID        int64     `bun:"id,pk,autoincrement" json:"id"`
	Name      string    `bun:"name,notnull" json:"name"`
	Email     string    `bun:"email,notnull,unique" json:"email"`
	Phone     *string   `bun:"phone" json:"phone"`
	Country   string    `bun:"country,notnull" json:"country"`
	Segment   string    `bun:"segment,notnull" json:"segment"`
	CreatedAt time.Time `bun:"created_at,notnull" json:"createdAt"`
	UpdatedAt time.Time `bun:"updated_at,notnull" json:"updatedAt"`

	products.Window
}

// IsEntity marks Customer as an Apollo Federation entity (keyed by id) for the
// gateway's generated code.
func (Customer) IsEntity() {}

// Entity describes the Customer entity for queries, audit and catalog.
var Entity = &products.Entity{
	Name: "Customer", Table: "customers",
	Description: "A customer of the company.",
	Model:       (*Customer)(nil),
	Fields: []*products.Field{
		{Name: "id", Column: "id", Type: products.TypeID, Sort: "ID", Description: "Stable identifier."},
		{Name: "name", Column: "name", Type: products.TypeString, Sort: "NAME", Description: "Full name.", PII: true},
		{Name: "email", Column: "email", Type: products.TypeString, Sort: "EMAIL", Description: "E-mail address.", PII: true},
		{Name: "phone", Column: "phone", Type: products.TypeString, Nullable: true, Description: "Phone number, E.164.", PII: true},
		{Name: "country", Column: "country", Type: products.TypeString, Sort: "COUNTRY", Group: "COUNTRY", Description: "ISO 3166-1 alpha-2 country."},
		{Name: "segment", Column: "segment", Type: products.TypeEnum, Sort: "SEGMENT", Group: "SEGMENT", Description: "Market segment."},
		{Name: "createdAt", Column: "created_at", Type: products.TypeTime, Sort: "CREATED_AT", Description: "Creation time."},
		{Name: "updatedAt", Column: "updated_at", Type: products.TypeTime, Sort: "UPDATED_AT", Description: "Last change."},
	},
}

// Product is the customers data product's descriptor.
var Product = &products.Descriptor{
	Name:        "customers",
	Domain:      "sales",
	Owner:       "customer-data-team",
	Contact:     "customer-data@example.com",
	Kind:        products.Operational,
	Description: "Customers of the company: identity, contact details, country and market segment.",
	Entities:    []*products.Entity{Entity},
}
