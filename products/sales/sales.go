// Package sales is the analytical data product: revenue and customer value
// derived only from the change events of orders and customers (it never
// reads their tables). Everything it stores can be rebuilt by replaying
// those events from the beginning.
package sales

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
)

// DailyRevenue is the revenue and order count of one UTC day, over orders
// that are not cancelled.
type DailyRevenue struct {
	bun.BaseModel `bun:"table:daily_revenue" mesh:"DailyRevenue,plural=dailyRevenue,lookup=-" doc:"Revenue and order count of one UTC day, over orders that are not cancelled."`

	ID      int64            `bun:"id,pk" json:"id" doc:"The day as YYYYMMDD."`
	Date    string           `bun:"date,notnull" json:"date" mesh:"sort" doc:"The day, YYYY-MM-DD."`
	Orders  int              `bun:"orders,notnull" json:"orders" mesh:"sort,aggregate" doc:"Orders placed that day and not cancelled."`
	Revenue products.Decimal `bun:"revenue,type:BIGINT,notnull" json:"revenue" mesh:"sort,aggregate" doc:"Their total."`

	products.Window
}

// IsEntity marks DailyRevenue as an Apollo Federation entity (keyed by id).
func (DailyRevenue) IsEntity() {}

// CustomerValue is a customer's lifetime value: orders, revenue, first and
// last order, with the customer's country and segment for slicing.
type CustomerValue struct {
	bun.BaseModel `bun:"table:customer_value" mesh:"CustomerValue,plural=customerValues" doc:"A customer's lifetime value, over orders that are not cancelled."`

	ID           int64            `bun:"id,pk" json:"id" mesh:"ref=customers.Customer" doc:"The customer's id."`
	Country      string           `bun:"country,notnull" json:"country" mesh:"sort,group" doc:"The customer's country (ISO 3166-1 alpha-2) as last seen."`
	Segment      string           `bun:"segment,notnull" json:"segment" mesh:"sort,group" doc:"The customer's segment as last seen."`
	Orders       int              `bun:"orders,notnull" json:"orders" mesh:"sort,aggregate" doc:"Orders."`
	Revenue      products.Decimal `bun:"revenue,type:BIGINT,notnull" json:"revenue" mesh:"sort,aggregate" doc:"Their total."`
	FirstOrderAt *time.Time       `bun:"first_order_at" json:"firstOrderAt" doc:"The first order, if any."`
	LastOrderAt  *time.Time       `bun:"last_order_at" json:"lastOrderAt" doc:"The last order, if any."`

	products.Window
}

// IsEntity marks CustomerValue as an Apollo Federation entity (keyed by id).
func (CustomerValue) IsEntity() {}

// ItemSales is what an item sold over orders that are not cancelled.
type ItemSales struct {
	bun.BaseModel `bun:"table:item_sales" mesh:"ItemSales,plural=itemSales,lookup=-" doc:"What an item sold, over orders that are not cancelled."`

	ID      int64            `bun:"id,pk" json:"id" mesh:"ref=inventory.Item" doc:"The item's id."`
	Orders  int              `bun:"orders,notnull" json:"orders" mesh:"sort,aggregate" doc:"Orders with the item."`
	Units   int              `bun:"units,notnull" json:"units" mesh:"sort,aggregate" doc:"Units sold."`
	Revenue products.Decimal `bun:"revenue,type:BIGINT,notnull" json:"revenue" mesh:"sort,aggregate" doc:"Revenue."`

	products.Window
}

// IsEntity marks ItemSales as an Apollo Federation entity (keyed by id).
func (ItemSales) IsEntity() {}

// order and orderLine are sales' own copy of what it learnt from order
// events: enough to take an order back out when it is cancelled.
type order struct {
	bun.BaseModel `bun:"table:sales_orders"`

	ID         int64            `bun:"id,pk"`
	CustomerID int64            `bun:"customer_id,notnull"`
	Day        int64            `bun:"day,notnull"`
	PlacedAt   time.Time        `bun:"placed_at,notnull"`
	Total      products.Decimal `bun:"total,type:BIGINT,notnull"`
	Counted    bool             `bun:"counted,notnull"`
}

type orderLine struct {
	bun.BaseModel `bun:"table:sales_order_lines"`

	OrderID  int64            `bun:"order_id,pk"`
	ItemID   int64            `bun:"item_id,pk"`
	Quantity int              `bun:"quantity,notnull"`
	Amount   products.Decimal `bun:"amount,type:BIGINT,notnull"`
}

// Product is the sales data product.
var Product = products.Define(&products.Product{
	Descriptor: products.Descriptor{
		Name:        "sales",
		Domain:      "sales",
		Owner:       "sales-analytics-team",
		Contact:     "sales-analytics@example.com",
		Kind:        products.Analytical,
		Description: "Revenue per day, customer lifetime value and item sales, derived from the orders and customers change events.",
	},
	Models:     []any{(*DailyRevenue)(nil), (*CustomerValue)(nil), (*ItemSales)(nil)},
	Migrations: Migrations,
})

// Entities of the sales product.
var (
	DailyEntity         = Product.Entity("DailyRevenue")
	CustomerValueEntity = Product.Entity("CustomerValue")
	ItemSalesEntity     = Product.Entity("ItemSales")
)

// Stats are the headline figures of the sales product.
type Stats struct {
	Orders            int              `json:"orders"`
	Revenue           products.Decimal `json:"revenue"`
	Customers         int              `json:"customers"`
	AverageOrderValue products.Decimal `json:"averageOrderValue"`
	At                time.Time        `json:"at"`
}

// ComputeStats computes the headline figures from the sales store.
func ComputeStats(ctx context.Context, db bun.IDB) (*Stats, error) {
	var t struct {
		N         int              `bun:"n"`
		Sum       products.Decimal `bun:"total"`
		Customers int              `bun:"customers"`
	}
	if err := db.NewSelect().Model((*order)(nil)).
		ColumnExpr("COUNT(*) AS n, COALESCE(SUM(total), 0) AS total, COUNT(DISTINCT customer_id) AS customers").
		Where("counted = ?", true).Scan(ctx, &t); err != nil {
		return nil, fmt.Errorf("sales: stats: %w", err)
	}
	s := &Stats{Orders: t.N, Revenue: t.Sum, Customers: t.Customers, At: time.Now().UTC(),
		AverageOrderValue: products.NewDecimal(0, products.AveragePlaces)}
	if t.N > 0 {
		avg, err := products.Average(t.Sum, int64(t.N))
		if err != nil {
			return nil, fmt.Errorf("sales: stats: %w", err)
		}
		s.AverageOrderValue = avg
	}
	return s, nil
}
