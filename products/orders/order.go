// Package orders is the orders data product: what customers buy.
package orders

import (
	"time"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
)

// Order states.
const (
	StatusPlaced      = "PLACED"
	StatusReserved    = "RESERVED"
	StatusBackordered = "BACKORDERED"
	StatusCancelled   = "CANCELLED"
	StatusShipped     = "SHIPPED"
	StatusDelivered   = "DELIVERED"
)

// Statuses is the OrderStatus enum.
var Statuses = &products.Enum{Name: "OrderStatus", Description: "Lifecycle state of an order.", Values: []products.EnumValue{
	{Name: StatusPlaced, Description: "Placed; stock not yet reserved."},
	{Name: StatusReserved, Description: "Stock reserved for every line."},
	{Name: StatusBackordered, Description: "Some stock is short; waiting for replenishment."},
	{Name: StatusCancelled, Description: "Cancelled by the customer or the company."},
	{Name: StatusShipped, Description: "Handed to the carrier."},
	{Name: StatusDelivered, Description: "Delivered to the customer."},
}}

// Order is a row of the orders table and the GraphQL Order type.
type Order struct {
	bun.BaseModel `bun:"table:orders" mesh:"Order" doc:"An order placed by a customer. Owned by the orders data product."`

	ID         int64            `bun:"id,pk,autoincrement" json:"id" doc:"Stable identifier, assigned by the orders product."`
	CustomerID int64            `bun:"customer_id,notnull" json:"customerId" mesh:"ref=customers.Customer,sort,group" doc:"The customer who placed the order (a key into the customers product)."`
	Status     string           `bun:"status,notnull" json:"status" mesh:"enum=OrderStatus,sort,group" doc:"Lifecycle state."`
	Total      products.Decimal `bun:"total,type:BIGINT,notnull" json:"total" mesh:"sort,aggregate" doc:"Sum of the line amounts."`
	Currency   string           `bun:"currency,notnull" json:"currency" mesh:"sort,group" doc:"ISO 4217 currency of all amounts of the order."`
	PlacedAt   time.Time        `bun:"placed_at,notnull" json:"placedAt" mesh:"sort,day=placedDate" doc:"When the order was placed."`
	UpdatedAt  time.Time        `bun:"updated_at,notnull" json:"updatedAt" mesh:"sort" doc:"When the order was last changed."`
	// Lines travel with the order's creation event (they are not stored in
	// this table), so that products reacting to a new order get it whole.
	Lines []*Line `bun:"-" json:"lines,omitempty"`

	products.Window
}

// IsEntity marks Order as an Apollo Federation entity (keyed by id) for the
// gateway's generated code.
func (Order) IsEntity() {}

// Line is a row of the order_lines table and the GraphQL OrderLine type.
type Line struct {
	bun.BaseModel `bun:"table:order_lines" mesh:"OrderLine" doc:"A line of an order: a quantity of one item at a price."`

	ID        int64            `bun:"id,pk,autoincrement" json:"id" doc:"Stable identifier."`
	OrderID   int64            `bun:"order_id,notnull" json:"orderId" mesh:"ref=orders.Order,sort,group" doc:"The order this line belongs to."`
	ItemID    int64            `bun:"item_id,notnull" json:"itemId" mesh:"ref=inventory.Item,sort,group" doc:"The item ordered (a key into the inventory product)."`
	Quantity  int              `bun:"quantity,notnull" json:"quantity" mesh:"sort,aggregate" doc:"Units ordered, at least 1."`
	UnitPrice products.Decimal `bun:"unit_price,type:BIGINT,notnull" json:"unitPrice" mesh:"sort,aggregate" doc:"Price of one unit when the order was placed, from inventory."`
	Amount    products.Decimal `bun:"amount,type:BIGINT,notnull" json:"amount" mesh:"sort,aggregate" doc:"quantity × unitPrice."`

	products.Window
}

// IsEntity marks Line as an Apollo Federation entity (keyed by id) for the
// gateway's generated code.
func (Line) IsEntity() {}

// Product is the orders data product.
var Product = products.Define(&products.Product{
	Descriptor: products.Descriptor{
		Name:        "orders",
		Domain:      "sales",
		Owner:       "order-management-team",
		Contact:     "orders@example.com",
		Kind:        products.Operational,
		Description: "Orders placed by customers and their lines, with status and totals.",
		Enums:       []*products.Enum{Statuses},
	},
	Models:     []any{(*Order)(nil), (*Line)(nil)},
	Migrations: Migrations,
})

// Entities of the orders product.
var (
	Entity     = Product.Entity("Order")
	LineEntity = Product.Entity("OrderLine")
)
