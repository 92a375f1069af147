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
	bun.BaseModel `bun:"table:items" mesh:"Item" doc:"A stock-keeping item. Owned by the inventory data product."`

	ID        int64            `bun:"id,pk,autoincrement" json:"id" mesh:"level=PUBLIC" doc:"Stable identifier, assigned by the inventory product."`
	SKU       string           `bun:"sku,notnull,unique" json:"sku" mesh:"sort,level=PUBLIC" doc:"Stock-keeping unit, unique."`
	Name      string           `bun:"name,notnull" json:"name" mesh:"sort,level=PUBLIC" doc:"Display name."`
	Category  string           `bun:"category,notnull" json:"category" mesh:"sort,group,level=PUBLIC" doc:"Product category."`
	Price     products.Decimal `bun:"price,type:BIGINT,notnull" json:"price" mesh:"sort,aggregate,level=PUBLIC" doc:"Current unit price."`
	Stock     int              `bun:"stock,notnull" json:"stock" mesh:"sort,aggregate" doc:"Units on hand and not reserved."`
	CreatedAt time.Time        `bun:"created_at,notnull" json:"createdAt" mesh:"sort" doc:"When the item was created."`
	UpdatedAt time.Time        `bun:"updated_at,notnull" json:"updatedAt" mesh:"sort" doc:"When the item was last changed."`

	products.Window
}

// IsEntity marks Item as an Apollo Federation entity (keyed by id) for the
// gateway's generated code.
func (Item) IsEntity() {}

// Product is the inventory data product.
var Product = products.Define(&products.Product{
	Descriptor: products.Descriptor{
		Name:        "inventory",
		Domain:      "supply-chain",
		Owner:       "warehouse-team",
		Contact:     "warehouse@example.com",
		Kind:        products.Operational,
		Description: "Items for sale with their prices and the stock on hand.",
		Enums:       []*products.Enum{ReservationStatuses},
	},
	Models:     []any{(*Item)(nil), (*Reservation)(nil)},
	Migrations: Migrations,
})

// Entities of the inventory product.
var (
	Entity            = Product.Entity("Item")
	ReservationEntity = Product.Entity("Reservation")
)
