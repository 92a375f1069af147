package engagement

import (
	"context"
	"fmt"
	"time"

	"github.com/meshgate/meshgate/products"
)

// Customers tells whether a customer exists; the customers product answers.
type Customers interface {
	Exists(ctx context.Context, id int64) (bool, error)
}

// Store is the engagement product's store and API.
type Store struct {
	*products.Store
	Customers Customers
}

// New returns the engagement product's API on an opened mesh: customers
// are checked with the customers product through the mesh.
func New(m *products.Mesh) Store {
	return Store{Store: m.Store(Product.Name), Customers: meshCustomers{m}}
}

type meshCustomers struct{ m *products.Mesh }

func (c meshCustomers) Exists(ctx context.Context, id int64) (bool, error) {
	return c.m.Exists(ctx, "customers", "Customer", id)
}

// Input is a new interaction (GraphQL CreateInteractionInput).
type Input struct {
	CustomerID int64      `json:"customerId"`
	Channel    string     `json:"channel"`
	Kind       string     `json:"kind"`
	Sentiment  float64    `json:"sentiment"`
	Note       *string    `json:"note"`
	OccurredAt *time.Time `json:"occurredAt"`
}

// Create validates and records an interaction of an existing customer.
func (s Store) Create(ctx context.Context, in Input) (*Interaction, error) {
	it := &Interaction{CustomerID: in.CustomerID}
	if err := apply(it, map[string]any{"channel": in.Channel, "kind": in.Kind, "sentiment": in.Sentiment, "note": in.Note, "occurredAt": in.OccurredAt}, "input"); err != nil {
		return nil, err
	}
	ok, err := s.Customers.Exists(ctx, in.CustomerID)
	if err != nil {
		return nil, fmt.Errorf("engagement: check customer: %w", err)
	}
	if !ok {
		return nil, &products.Error{Code: products.NotFound, Field: "input.customerId", Message: fmt.Sprintf("customer %d does not exist", in.CustomerID)}
	}
	_, err = s.Write(ctx, func(ctx context.Context, tx *products.Tx) error {
		if it.OccurredAt.IsZero() {
			it.OccurredAt = tx.Now()
		}
		if _, err := tx.NewInsert().Model(it).Returning("id").Exec(ctx); err != nil {
			return fmt.Errorf("insert interaction: %w", err)
		}
		return tx.Created(Entity, it.ID, it)
	})
	if err != nil {
		return nil, fmt.Errorf("engagement: create: %w", err)
	}
	return it, nil
}

// Update applies the given fields to the interaction with the id.
func (s Store) Update(ctx context.Context, id int64, changes map[string]any) (*Interaction, error) {
	return products.UpdateRow(ctx, s.Store, Entity, id, func(ctx context.Context, tx *products.Tx, _, it *Interaction) error {
		return apply(it, changes, "input")
	})
}

// Delete deletes the interaction with the id and returns it as it was.
func (s Store) Delete(ctx context.Context, id int64) (*Interaction, error) {
	return products.DeleteRow[Interaction](ctx, s.Store, Entity, id)
}

func apply(it *Interaction, in map[string]any, path string) error {
	for _, k := range []string{"channel", "kind", "sentiment", "note", "occurredAt"} {
		raw, ok := in[k]
		if !ok {
			continue
		}
		v := products.Deref(raw)
		field := path + "." + k
		if v == nil {
			switch k {
			case "note":
				it.Note = nil
			case "occurredAt":
				// Left zero: Create fills in the transaction time.
			default:
				return products.Invalid(field, "must not be null")
			}
			continue
		}
		var err error
		switch k {
		case "channel":
			err = products.OneOf(field, v.(string), Channels...)
			it.Channel = v.(string)
		case "kind":
			err = products.OneOf(field, v.(string), Kinds...)
			it.Kind = v.(string)
		case "sentiment":
			err = products.Range(field, v.(float64), -1, 1)
			it.Sentiment = v.(float64)
		case "note":
			var n string
			n, err = products.Text(field, v.(string), 0, 2000)
			it.Note = &n
		case "occurredAt":
			t := v.(time.Time).UTC().Truncate(time.Microsecond)
			if t.Year() < 1970 || t.Year() > 9999 {
				err = products.Invalid(field, "must be a time between 1970 and 9999")
			}
			it.OccurredAt = t
		}
		if err != nil {
			return err
		}
	}
	return nil
}
