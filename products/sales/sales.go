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
	bun.BaseModel `bun:"table:daily_revenue"`

	ID      int64            `bun:"id,pk" json:"id"` // YYYYMMDD
	Date    string           `bun:"date,notnull" json:"date"`
	Orders  int              `bun:"orders,notnull" json:"orders"`
	Revenue products.Decimal `bun:"revenue,type:BIGINT,notnull" json:"revenue"`

	products.Window
}

// IsEntity marks DailyRevenue as an Apollo Federation entity (keyed by id).
func (DailyRevenue) IsEntity() {}

// CustomerValue is a customer's lifetime value: orders, revenue, first and
// last order, with the customer's country and segment for slicing.
type CustomerValue struct {
	bun.BaseModel `bun:"table:customer_value"`

	ID           int64            `bun:"id,pk" json:"id"` // the customer's id
	Country      string           `bun:"country,notnull" json:"country"`
	Segment      string           `bun:"segment,notnull" json:"segment"`
	Orders       int              `bun:"orders,notnull" json:"orders"`
	Revenue      products.Decimal `bun:"revenue,type:BIGINT,notnull" json:"revenue"`
	FirstOrderAt *time.Time       `bun:"first_order_at" json:"firstOrderAt"`
	LastOrderAt  *time.Time       `bun:"last_order_at" json:"lastOrderAt"`

	products.Window
}

// IsEntity marks CustomerValue as an Apollo Federation entity (keyed by id).
func (CustomerValue) IsEntity() {}

// ItemSales is what an item sold over orders that are not cancelled.
type ItemSales struct {
	bun.BaseModel `bun:"table:item_sales"`

	ID      int64            `bun:"id,pk" json:"id"` // the item's id
	Orders  int              `bun:"orders,notnull" json:"orders"`
	Units   int              `bun:"units,notnull" json:"units"`
	Revenue products.Decimal `bun:"revenue,type:BIGINT,notnull" json:"revenue"`

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

// Entities of the sales product.
var (
	DailyEntity = &products.Entity{
		Name: "DailyRevenue", Table: "daily_revenue",
		Description: "Revenue and order count per UTC day.",
		Fields: []*products.Field{
			{Name: "id", Column: "id", Type: products.TypeID, Sort: "ID", Description: "The day as YYYYMMDD."},
			{Name: "date", Column: "date", Type: products.TypeString, Sort: "DATE", Description: "The day, YYYY-MM-DD."},
			{Name: "orders", Column: "orders", Type: products.TypeInt, Sort: "ORDERS", Numeric: true, Description: "Orders placed that day, not cancelled."},
			{Name: "revenue", Column: "revenue", Type: products.TypeDecimal, Sort: "REVENUE", Numeric: true, Description: "Their total."},
		},
	}
	CustomerValueEntity = &products.Entity{
		Name: "CustomerValue", Table: "customer_value",
		Description: "A customer's lifetime value.",
		Fields: []*products.Field{
			{Name: "id", Column: "id", Type: products.TypeID, Sort: "ID", Description: "The customer's id."},
			{Name: "country", Column: "country", Type: products.TypeString, Sort: "COUNTRY", Group: "COUNTRY", Description: "The customer's country."},
			{Name: "segment", Column: "segment", Type: products.TypeString, Sort: "SEGMENT", Group: "SEGMENT", Description: "The customer's segment."},
			{Name: "orders", Column: "orders", Type: products.TypeInt, Sort: "ORDERS", Numeric: true, Description: "Orders, not cancelled."},
			{Name: "revenue", Column: "revenue", Type: products.TypeDecimal, Sort: "REVENUE", Numeric: true, Description: "Their total."},
			{Name: "firstOrderAt", Column: "first_order_at", Type: products.TypeTime, Nullable: true, Description: "First order."},
			{Name: "lastOrderAt", Column: "last_order_at", Type: products.TypeTime, Nullable: true, Description: "Last order."},
		},
	}
	ItemSalesEntity = &products.Entity{
		Name: "ItemSales", Table: "item_sales",
		Description: "What an item sold.",
		Fields: []*products.Field{
			{Name: "id", Column: "id", Type: products.TypeID, Sort: "ID", Description: "The item's id."},
			{Name: "orders", Column: "orders", Type: products.TypeInt, Sort: "ORDERS", Numeric: true, Description: "Orders with the item, not cancelled."},
			{Name: "units", Column: "units", Type: products.TypeInt, Sort: "UNITS", Numeric: true, Description: "Units sold."},
			{Name: "revenue", Column: "revenue", Type: products.TypeDecimal, Sort: "REVENUE", Numeric: true, Description: "Revenue."},
		},
	}
)

// Product is the sales data product's descriptor.
var Product = &products.Descriptor{
	Name:        "sales",
	Domain:      "sales",
	Owner:       "sales-analytics-team",
	Contact:     "sales-analytics@example.com",
	Kind:        products.Analytical,
	Description: "Revenue per day, customer lifetime value and item sales, derived from the orders and customers change events.",
	Entities:    []*products.Entity{DailyEntity, CustomerValueEntity, ItemSalesEntity},
}

// Stats are the headline figures of the sales product. Revenue is exact;
// AverageOrderValue is revenue / orders rounded half to even to
// products.AveragePlaces places.
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
