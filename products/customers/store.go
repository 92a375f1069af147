package customers

import (
	"context"
	"fmt"

	"github.com/meshgate/meshgate/products"
)

// Store is the customers product's store and API.
type Store struct{ *products.Store }

// New returns the customers product's API on an opened mesh.
func New(m *products.Mesh) Store { return Store{Store: m.Store(Product.Name)} }

// Input is a new customer (GraphQL CreateCustomerInput).
type Input struct {
	Name    string  `json:"name"`
	Email   string  `json:"email"`
	Phone   *string `json:"phone"`
	Country string  `json:"country"`
	Segment string  `json:"segment"`
}

// Create validates and inserts a customer.
func (s Store) Create(ctx context.Context, in Input) (*Customer, error) {
	c := &Customer{}
	if err := apply(c, map[string]any{
		"name": in.Name, "email": in.Email, "phone": in.Phone, "country": in.Country, "segment": in.Segment,
	}, "input"); err != nil {
		return nil, err
	}
	_, err := s.Write(ctx, func(ctx context.Context, tx *products.Tx) error {
		if err := s.emailFree(ctx, tx, c.Email, 0); err != nil {
			return err
		}
		c.CreatedAt, c.UpdatedAt = tx.Now(), tx.Now()
		if _, err := tx.NewInsert().Model(c).Returning("id").Exec(ctx); err != nil {
			return fmt.Errorf("insert customer: %w", err)
		}
		return tx.Created(Entity, c.ID, c)
	})
	if err != nil {
		return nil, fmt.Errorf("customers: create: %w", err)
	}
	return c, nil
}

// Update applies the given fields (a GraphQL UpdateCustomerInput; absent
// fields keep their value) to the customer with the id.
func (s Store) Update(ctx context.Context, id int64, changes map[string]any) (*Customer, error) {
	return products.UpdateRow(ctx, s.Store, Entity, id, func(ctx context.Context, tx *products.Tx, before, c *Customer) error {
		if err := apply(c, changes, "input"); err != nil {
			return err
		}
		if c.Email != before.Email {
			if err := s.emailFree(ctx, tx, c.Email, id); err != nil {
				return err
			}
		}
		c.UpdatedAt = tx.Now()
		return nil
	})
}

// Delete deletes the customer with the id and returns it as it was.
func (s Store) Delete(ctx context.Context, id int64) (*Customer, error) {
	return products.DeleteRow[Customer](ctx, s.Store, Entity, id)
}

func (s Store) emailFree(ctx context.Context, tx *products.Tx, email string, self int64) error {
	n, err := tx.NewSelect().Model((*Customer)(nil)).Where("email = ? AND id <> ?", email, self).Count(ctx)
	if err != nil {
		return fmt.Errorf("check email: %w", err)
	}
	if n > 0 {
		return products.Invalid("input.email", "%q is already used by another customer", email)
	}
	return nil
}

// apply validates the given fields and sets them on c.
func apply(c *Customer, in map[string]any, path string) error {
	for _, k := range []string{"name", "email", "phone", "country", "segment"} {
		raw, ok := in[k]
		if !ok {
			continue
		}
		v := products.Deref(raw)
		field := path + "." + k
		if k == "phone" {
			c.Phone = nil
			if p, ok := v.(string); ok {
				ph, err := products.Phone(field, p)
				if err != nil {
					return err
				}
				c.Phone = &ph
			}
			continue
		}
		s, ok := v.(string)
		if !ok {
			return products.Invalid(field, "must not be null")
		}
		var err error
		switch k {
		case "name":
			c.Name, err = products.Text(field, s, 1, 200)
		case "email":
			c.Email, err = products.Email(field, s)
		case "country":
			c.Country, err = products.Country(field, s)
		case "segment":
			err = products.OneOf(field, s, segments...)
			c.Segment = s
		}
		if err != nil {
			return err
		}
	}
	return nil
}
