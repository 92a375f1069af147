// Package demo holds the registration list of the demo data mesh: the data
// products the gateway serves (go run .) and whose schema products/gen
// generates. Adding a data product to the mesh is adding it to Products;
// nothing else outside the product's own package names it.
package demo

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/engagement"
	"github.com/meshgate/meshgate/products/inventory"
	"github.com/meshgate/meshgate/products/orders"
	"github.com/meshgate/meshgate/products/sales"
	"github.com/meshgate/meshgate/products/shipments"
)

// Products lists the mesh's data products in the order they are opened,
// seeded and served.
var Products = []*products.Product{
	customers.Product,
	inventory.Product,
	orders.Product,
	engagement.Product,
	sales.Product,
	shipments.Product,
}

// Open opens the stores of the demo mesh's products (see products.OpenMesh).
func Open(ctx context.Context, dsn func(product string) string, hooks ...bun.QueryHook) (*products.Mesh, error) {
	return products.OpenMesh(ctx, Products, dsn, hooks...)
}
