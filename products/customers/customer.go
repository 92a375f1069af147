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

// Segments is the CustomerSegment enum.
var Segments = &products.Enum{Name: "CustomerSegment", Description: "Market segment of a customer.", Values: []products.EnumValue{
	{Name: SegmentConsumer, Description: "A private person."},
	{Name: SegmentSmallBusiness, Description: "A business with fewer than 250 employees."},
	{Name: SegmentEnterprise, Description: "A large business."},
}}

var segments = Segments.Names()

// Customer is a row of the customers table and the GraphQL Customer type.
type Customer struct {
	bun.BaseModel `bun:"table:customers" mesh:"Customer" doc:"A customer of the company. Owned by the customers data product."`

	ID        int64     `bun:"id,pk,autoincrement" json:"id" doc:"Stable identifier, assigned by the customers product."`
	Name      string    `bun:"name,notnull" json:"name" mesh:"sort,pii" doc:"Full name."`
	Email     string    `bun:"email,notnull,unique" json:"email" mesh:"sort,pii" doc:"E-mail address; personal data."`
	Phone     *string   `bun:"phone" json:"phone" mesh:"pii" doc:"Phone number in E.164 form; personal data."`
	Country   string    `bun:"country,notnull" json:"country" mesh:"sort,group" doc:"Country of residence, ISO 3166-1 alpha-2."`
	Segment   string    `bun:"segment,notnull" json:"segment" mesh:"enum=CustomerSegment,sort,group" doc:"Market segment."`
	CreatedAt time.Time `bun:"created_at,notnull" json:"createdAt" mesh:"sort" doc:"When the customer was created."`
	UpdatedAt time.Time `bun:"updated_at,notnull" json:"updatedAt" mesh:"sort" doc:"When the customer was last changed."`

	products.Window
}

// IsEntity marks Customer as an Apollo Federation entity (keyed by id) for the
// gateway's generated code.
func (Customer) IsEntity() {}

// Product is the customers data product.
var Product = products.Define(&products.Product{
	Descriptor: products.Descriptor{
		Name:        "customers",
		Domain:      "sales",
		Owner:       "customer-data-team",
		Contact:     "customer-data@example.com",
		Kind:        products.Operational,
		Description: "Customers of the company: identity, contact details, country and market segment.",
		Enums:       []*products.Enum{Segments},
	},
	Models:     []any{(*Customer)(nil)},
	Migrations: Migrations,
})

// Entity describes the Customer entity for queries, audit and catalog.
var Entity = Product.Entity("Customer")
