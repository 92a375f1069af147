package inventory

import (
	"context"
	"fmt"

	"github.com/meshgate/meshgate/products"
)

// Store is the inventory product's store and API.
type Store struct{ *products.Store }

// New returns the inventory product's API on an opened mesh.
func New(m *products.Mesh) Store { return Store{Store: m.Store(Product.Name)} }

// Input is a new item (GraphQL CreateItemInput).
type Input struct {
	SKU      string           `json:"sku"`
	Name     string           `json:"name"`
	Category string           `json:"category"`
	Price    products.Decimal `json:"price"`
	Stock    int              `json:"stock"`
}

// Create validates and inserts an item.
func (s Store) Create(ctx context.Context, in Input) (*Item, error) {
	it := &Item{}
	if err := apply(it, map[string]any{"sku": in.SKU, "name": in.Name, "category": in.Category, "price": in.Price, "stock": in.Stock}, "input"); err != nil {
		return nil, err
	}
	_, err := s.Write(ctx, func(ctx context.Context, tx *products.Tx) error {
		if err := skuFree(ctx, tx, it.SKU, 0); err != nil {
			return err
		}
		it.CreatedAt, it.UpdatedAt = tx.Now(), tx.Now()
		if _, err := tx.NewInsert().Model(it).Returning("id").Exec(ctx); err != nil {
			return fmt.Errorf("insert item: %w", err)
		}
		return tx.Created(Entity, it.ID, it)
	})
	if err != nil {
		return nil, fmt.Errorf("inventory: create: %w", err)
	}
	return it, nil
}

// Update applies the given fields to the item with the id.
func (s Store) Update(ctx context.Context, id int64, changes map[string]any) (*Item, error) {
	return products.UpdateRow(ctx, s.Store, Entity, id, func(ctx context.Context, tx *products.Tx, before, it *Item) error {
		if err := apply(it, changes, "input"); err != nil {
			return err
		}
		if it.SKU != before.SKU {
			if err := skuFree(ctx, tx, it.SKU, id); err != nil {
				return err
			}
		}
		it.UpdatedAt = tx.Now()
		return nil
	})
}

// Delete deletes the item with the id and returns it as it was.
func (s Store) Delete(ctx context.Context, id int64) (*Item, error) {
	return products.DeleteRow[Item](ctx, s.Store, Entity, id)
}

func skuFree(ctx context.Context, tx *products.Tx, sku string, self int64) error {
	n, err := tx.NewSelect().Model((*Item)(nil)).Where("sku = ? AND id <> ?", sku, self).Count(ctx)
	if err != nil {
		return fmt.Errorf("check sku: %w", err)
	}
	if n > 0 {
		return products.Invalid("input.sku", "%q is already used by another item", sku)
	}
	return nil
}

func apply(it *Item, in map[string]any, path string) error {
	for _, k := range []string{"sku", "name", "category", "price", "stock"} {
		raw, ok := in[k]
		if !ok {
			continue
		}
		v := products.Deref(raw)
		field := path + "." + k
		if v == nil {
			return products.Invalid(field, "must not be null")
		}
		var err error
		switch k {
		case "sku":
			it.SKU, err = products.Text(field, v.(string), 1, 64)
		case "name":
			it.Name, err = products.Text(field, v.(string), 1, 200)
		case "category":
			it.Category, err = products.Text(field, v.(string), 1, 100)
		case "price":
			var p products.Decimal
			if p, err = products.DecimalInput(field, v); err == nil {
				if p.Cmp(products.Cents(0)) < 0 || p.Cmp(products.Cents(1e11)) > 0 {
					err = products.Invalid(field, "must be between 0 and 1000000000")
				} else {
					it.Price = p
				}
			}
		case "stock":
			n := v.(int)
			if err = products.Range(field, float64(n), 0, 1e9); err == nil {
				it.Stock = n
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
