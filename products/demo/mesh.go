// Package demo assembles the demo data mesh: the four operational data
// products, each in its own store, wired to each other's APIs, and their
// deterministic demo data.
package demo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/engagement"
	"github.com/meshgate/meshgate/products/inventory"
	"github.com/meshgate/meshgate/products/orders"
	"github.com/meshgate/meshgate/products/sales"
)

// Products lists the mesh's data products in the order they are opened and seeded.
var Products = []*products.Product{customers.Product, inventory.Product, orders.Product, engagement.Product, sales.Product}

// Mesh is the set of open product stores.
type Mesh struct {
	Customers  customers.Store
	Inventory  inventory.Store
	Orders     orders.Store
	Engagement engagement.Store
	Sales      *products.Store
	// Stores holds every store, in the order of Products.
	Stores []*products.Store
}

// Store returns the store of the named product, or nil.
func (m *Mesh) Store(name string) *products.Store {
	for _, s := range m.Stores {
		if s.Product.Name == name {
			return s
		}
	}
	return nil
}

// Open opens every product's store; dsn returns the DSN of a product. On
// error, stores opened so far are closed. The caller closes the mesh.
func Open(ctx context.Context, dsn func(product string) string, hooks ...bun.QueryHook) (*Mesh, error) {
	if err := products.CheckReferences(Products); err != nil {
		return nil, err
	}
	m := &Mesh{}
	byName := map[string]*products.Store{}
	for _, d := range Products {
		s, err := products.Open(ctx, &d.Descriptor, dsn(d.Name), d.Migrations, hooks...)
		if err != nil {
			m.Close()
			return nil, err
		}
		m.Stores = append(m.Stores, s)
		byName[d.Name] = s
	}
	m.Customers = customers.Store{Store: byName["customers"]}
	m.Inventory = inventory.Store{Store: byName["inventory"]}
	m.Orders = orders.Store{Store: byName["orders"], Customers: m.Customers, Inventory: m.Inventory}
	m.Engagement = engagement.Store{Store: byName["engagement"], Customers: m.Customers}
	m.Sales = byName["sales"]
	return m, nil
}

// Close closes every store.
func (m *Mesh) Close() error {
	var errs []error
	for _, s := range m.Stores {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// Ping checks that every store answers.
func (m *Mesh) Ping(ctx context.Context) error {
	for _, s := range m.Stores {
		if err := s.DB.PingContext(ctx); err != nil {
			return fmt.Errorf("%s store: %w", s.Product.Name, err)
		}
	}
	return nil
}

// Sizes of the demo mesh at scale 1.
const (
	BaseCustomers    = 2000
	BaseItems        = 500
	BaseOrders       = 20000
	BaseInteractions = 10000
)

// Seed fills an empty mesh with deterministic demo data, scaled (1 ≈ 2,000
// customers, 500 items, 20,000 orders with 60,000 lines, 10,000
// interactions). It does nothing and returns false if the customers store
// already holds data. Seeds are a snapshot: they write no audit entries.
func (m *Mesh) Seed(ctx context.Context, scale float64, progress products.Progress) (bool, error) {
	if scale <= 0 {
		return false, nil
	}
	n, err := m.Customers.DB.NewSelect().Model((*customers.Customer)(nil)).Count(ctx)
	if err != nil {
		return false, fmt.Errorf("demo seed: %w", err)
	}
	if n > 0 {
		return false, nil
	}
	size := func(base int) int { return max(1, int(float64(base)*scale)) }
	end := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	start := end.AddDate(-2, 0, 0)
	span := end.Sub(start)
	nc := size(BaseCustomers)
	if err := customers.Seed(ctx, m.Customers, nc, start, span, progress); err != nil {
		return false, err
	}
	prices, err := inventory.Seed(ctx, m.Inventory, size(BaseItems), start, progress)
	if err != nil {
		return false, err
	}
	if err := orders.Seed(ctx, m.Orders, size(BaseOrders), nc, prices, start, span, progress); err != nil {
		return false, err
	}
	if err := engagement.Seed(ctx, m.Engagement, size(BaseInteractions), nc, start, span, progress); err != nil {
		return false, err
	}
	return true, nil
}
