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
)

// Order is a row of the orders table and the GraphQL Order type.
type Order struct {
	bun.BaseModel `bun:"table:orders"`

	ID         int64            `bun:"id,pk,autoincrement" json:"id"`
	CustomerID int64            `bun:"customer_id,notnull" json:"customerId"`
	Status     string           `bun:"status,notnull" json:"status"`
	Total      products.Decimal `bun:"total,type:BIGINT,notnull" json:"total"`
	Currency   string           `bun:"currency,notnull" json:"currency"`
	PlacedAt   time.Time        `bun:"placed_at,notnull" json:"placedAt"`
	UpdatedAt  time.Time        `bun:"updated_at,notnull" json:"updatedAt"`
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
	bun.BaseModel `bun:"table:order_lines"`

	ID        int64            `bun:"id,pk,autoincrement" json:"id"`
	OrderID   int64            `bun:"order_id,notnull" json:"orderId"`
	ItemID    int64            `bun:"item_id,notnull" json:"itemId"`
	Quantity  int              `bun:"quantity,notnull" json:"quantity"`
	UnitPrice products.Decimal `bun:"unit_price,type:BIGINT,notnull" json:"unitPrice"`
	Amount    products.Decimal `bun:"amount,type:BIGINT,notnull" json:"amount"`

	products.Window
}

// IsEntity marks Line as an Apollo Federation entity (keyed by id) for the
// gateway's generated code.
func (Line) IsEntity() {}

// Entity describes the Order entity.
var Entity = &products.Entity{
	Name: "Order", Table: "orders",
	Description: "An order placed by a customer.",
	Model:       (*Order)(nil),
	Fields: []*products.Field{
		{Name: "id", Column: "id", Type: products.TypeID, Sort: "ID", Description: "Stable identifier."},
		{Name: "customerId", Column: "customer_id", Type: products.TypeID, Sort: "CUSTOMER_ID", Group: "CUSTOMER_ID", Description: "The customer who placed it.", References: &products.Reference{Product: "customers", Entity: "Customer"}},
		{Name: "status", Column: "status", Type: products.TypeEnum, Sort: "STATUS", Group: "STATUS", Description: "Lifecycle state."},
		{Name: "total", Column: "total", Type: products.TypeDecimal, Sort: "TOTAL", Numeric: true, Description: "Sum of the line amounts."},
		{Name: "currency", Column: "currency", Type: products.TypeString, Sort: "CURRENCY", Group: "CURRENCY", Description: "ISO 4217 currency."},
		{Name: "placedAt", Column: "placed_at", Type: products.TypeTime, Sort: "PLACED_AT", Description: "When it was placed."},
		{Name: "updatedAt", Column: "updated_at", Type: products.TypeTime, Sort: "UPDATED_AT", Description: "Last change."},
		{Name: "placedDate", Type: products.TypeString, Group: "PLACED_DATE", DateOf: "placedAt", Derived: true, Description: "UTC day it was placed."},
	},
}

// LineEntity describes the OrderLine entity.
var LineEntity = &products.Entity{
	Name: "OrderLine", Table: "order_lines",
	Description: "A line of an order.",
	Model:       (*Line)(nil),
	Fields: []*products.Field{
		{Name: "id", Column: "id", Type: products.TypeID, Sort: "ID", Description: "Stable identifier."},
		{Name: "orderId", Column: "order_id", Type: products.TypeID, Sort: "ORDER_ID", Group: "ORDER_ID", Description: "The order.", References: &products.Reference{Product: "orders", Entity: "Order"}},
		{Name: "itemId", Column: "item_id", Type: products.TypeID, Sort: "ITEM_ID", Group: "ITEM_ID", Description: "The item.", References: &products.Reference{Product: "inventory", Entity: "Item"}},
		{Name: "quantity", Column: "quantity", Type: products.TypeInt, Sort: "QUANTITY", Numeric: true, Description: "Units ordered."},
		{Name: "unitPrice", Column: "unit_price", Type: products.TypeDecimal, Sort: "UNIT_PRICE", Numeric: true, Description: "Unit price when placed."},
		{Name: "amount", Column: "amount", Type: products.TypeDecimal, Sort: "AMOUNT", Numeric: true, Description: "quantity × unitPrice."},
	},
}

// Product is the orders data product's descriptor.
var Product = &products.Descriptor{
	Name:        "orders",
	Domain:      "sales",
	Owner:       "order-management-team",
	Contact:     "orders@example.com",
	Kind:        products.Operational,
	Description: "Orders placed by customers and their lines, with status and totals.",
	Entities:    []*products.Entity{Entity, LineEntity},
}
