// Package shipments is the shipments data product: getting reserved orders
// to their customers. It prepares a shipment for every order inventory has
// reserved stock for, cancels it when the reservation is released before
// the goods left, and records when a shipment leaves with a carrier and
// when it is delivered. Orders learns from its change events that an order
// is shipped or delivered.
package shipments

import (
	"time"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
)

// Shipment states.
const (
	Preparing = "PREPARING"
	Shipped   = "SHIPPED"
	Delivered = "DELIVERED"
	Cancelled = "CANCELLED"
)

// Statuses is the ShipmentStatus enum.
var Statuses = &products.Enum{Name: "ShipmentStatus", Description: "Where a shipment is.", Values: []products.EnumValue{
	{Name: Preparing, Description: "The order's stock is reserved; the goods are being picked and packed."},
	{Name: Shipped, Description: "Handed to the carrier."},
	{Name: Delivered, Description: "Delivered to the customer."},
	{Name: Cancelled, Description: "The order was cancelled before the goods left."},
}}

// Shipment is a row of the shipments table and the GraphQL Shipment type.
type Shipment struct {
	bun.BaseModel `bun:"table:shipments" mesh:"Shipment" doc:"The shipment of an order's goods to its customer. Owned by the shipments data product."`

	ID          int64      `bun:"id,pk,autoincrement" json:"id" doc:"Stable identifier, assigned by the shipments product."`
	OrderID     int64      `bun:"order_id,notnull,unique" json:"orderId" mesh:"ref=orders.Order,sort" doc:"The order shipped (a key into the orders product); an order has at most one shipment."`
	Status      string     `bun:"status,notnull" json:"status" mesh:"enum=ShipmentStatus,sort,group" doc:"Where the shipment is."`
	Carrier     *string    `bun:"carrier" json:"carrier" mesh:"group" doc:"The carrier that took the goods; null until shipped."`
	Units       int        `bun:"units,notnull" json:"units" mesh:"sort,aggregate" doc:"Units to ship: the quantities of the order's reserved lines."`
	CreatedAt   time.Time  `bun:"created_at,notnull" json:"createdAt" mesh:"sort,day=createdDate" doc:"When the shipment was prepared (inventory reserved the stock)."`
	ShippedAt   *time.Time `bun:"shipped_at" json:"shippedAt" doc:"When the goods left; null until shipped."`
	DeliveredAt *time.Time `bun:"delivered_at" json:"deliveredAt" doc:"When the goods arrived; null until delivered."`
	UpdatedAt   time.Time  `bun:"updated_at,notnull" json:"updatedAt" mesh:"sort" doc:"When the shipment last changed."`

	products.Window
}

// IsEntity marks Shipment as an Apollo Federation entity (keyed by id).
func (Shipment) IsEntity() {}

// Product is the shipments data product.
var Product = products.Define(&products.Product{
	Descriptor: products.Descriptor{
		Name:        "shipments",
		Domain:      "fulfilment",
		Owner:       "fulfilment-team",
		Contact:     "fulfilment@example.com",
		Kind:        products.Operational,
		Description: "Shipments of reserved orders to their customers: carrier, when they left and when they arrived.",
		Enums:       []*products.Enum{Statuses},
	},
	Models:     []any{(*Shipment)(nil)},
	Migrations: Migrations,
})

// Entity describes the Shipment entity.
var Entity = Product.Entity("Shipment")
