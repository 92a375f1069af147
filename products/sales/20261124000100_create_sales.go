package sales

import (
	"context"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

// Migrations create and evolve the sales store. bun names each migration
// after the file that registers it.
var Migrations = migrate.NewMigrations()

func init() {
	Migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		for _, m := range []any{(*DailyRevenue)(nil), (*CustomerValue)(nil), (*ItemSales)(nil), (*order)(nil), (*orderLine)(nil)} {
			if _, err := db.NewCreateTable().Model(m).IfNotExists().Exec(ctx); err != nil {
				return err
			}
		}
		for _, ix := range []struct {
			model any
			name  string
			cols  []string
		}{
			{(*order)(nil), "sales_orders_customer_idx", []string{"customer_id", "counted"}},
			{(*order)(nil), "sales_orders_day_idx", []string{"day", "counted"}},
			{(*orderLine)(nil), "sales_order_lines_item_idx", []string{"item_id"}},
			{(*CustomerValue)(nil), "customer_value_revenue_idx", []string{"revenue", "id"}},
		} {
			if _, err := db.NewCreateIndex().Model(ix.model).IfNotExists().Index(ix.name).Column(ix.cols...).Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}
