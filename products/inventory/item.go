// Package inventory is the inventory data product: what the company sells
// and how much of it is in stock.
package inventory

import (
	"time"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
)

// Item is a row of the items table and the GraphQL Item type.
type Item struct {
	bun.BaseModel `bun:"table:items"`

	ID        int64            `bun:"id,pk,autoincrement" json:"id"`
	SKU       string           `bun:"sku,notnull,unique" json:"sku"`
	Name      string           `bun:"name,notnull" json:"name"`
	Category  string           `bun:"category,notnull" json:"category"`
	Price     products.Decimal `bun:"price,type:BIGINT,notnull" json:"price"`
	Stock     int              `bun:"stock,notnull" json:"stock"`
	CreatedAt time.Time        `bun:"created_at,notnull" json:"createdAt"`
	UpdatedAt time.Time        `bun:"updated_at,notnull" json:"updatedAt"`

	products.Window
}

// IsEntity marks Item as an Apollo Federation entity (keyed by id) for the
// gateway's generated code.
func (Item) IsEntity() {}

// Entity describes the Item entity.
var Entity = &products.Entity{
	Name: "Item", Table: "items",
	Description: "A stock-keeping item.",
	Model:       (*Item)(nil),
	Fields: []*products.Field{
		{Name: "id", Column: "id", Type: products.TypeID, Sort: "ID", Description: "Stable identifier.", Classification: products.Public},
		{Name: "sku", Column: "sku", Type: products.TypeString, Sort: "SKU", Description: "Stock-keeping unit.", Classification: products.Public},
		{Name: "name", Column: "name", Type: products.TypeString, Sort: "NAME", Description: "Display name.", Classification: products.Public},
		{Name: "category", Column: "category", Type: products.TypeString, Sort: "CATEGORY", Group: "CATEGORY", Description: "Product category.", Classification: products.Public},
		{Name: "price", Column: "price", Type: products.TypeDecimal, Sort: "PRICE", Numeric: true, Description: "Unit price.", Classification: products.Public},
		{Name: "stock", Column: "stock", Type: products.TypeInt, Sort: "STOCK", Numeric: true, Description: "Units on hand."},
		{Name: "createdAt", Column: "created_at", Type: products.TypeTime, Sort: "CREATED_AT", Description: "Creation time."},
		{Name: "updatedAt", Column: "updated_at", Type: products.TypeTime, Sort: "UPDATED_AT", Description: "Last change."},
	},
}

// Product is the inventory data product's descriptor.
var Product = &products.Descriptor{
	Name:        "inventory",
	Domain:      "supply-chain",
	Owner:       "warehouse-team",
	Contact:     "warehouse@example.com",
	Kind:        products.Operational,
	Description: "Items for sale with their prices and the stock on hand.",
	Entities:    []*products.Entity{Entity, ReservationEntity},
}
