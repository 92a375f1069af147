package demo_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/engagement"
	"github.com/meshgate/meshgate/products/inventory"
	"github.com/meshgate/meshgate/products/pgtest"
)

// TestNULInMutations sends a NUL character in every text field of the
// demo products' mutations, on SQLite and PostgreSQL: each is
// BAD_USER_INPUT naming the field, and no store changes.
func TestNULInMutations(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dsn := func(p string) string { return "sqlite:" + filepath.Join(t.TempDir(), p+".db") }
			if backend == "postgres" {
				dsn = pgtest.New(t).DSN
			}
			ctx := context.Background()
			m, err := demo.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			kim, err := customers.New(m).Create(ctx, customers.Input{Name: "Kim", Email: "kim@example.org", Country: "DE", Segment: customers.SegmentConsumer})
			if err != nil {
				t.Fatal(err)
			}
			mug, err := inventory.New(m).Create(ctx, inventory.Input{SKU: "MUG-1", Name: "Mug", Category: "Kitchen", Price: products.Cents(950), Stock: 3})
			if err != nil {
				t.Fatal(err)
			}
			latest := func() map[string]int64 {
				out := map[string]int64{}
				for _, s := range m.Stores {
					n, err := s.Latest(ctx)
					if err != nil {
						t.Fatal(err)
					}
					out[s.Product.Name] = n
				}
				return out
			}
			before := latest()
			nul := "a\x00b"
			for _, c := range []struct {
				field string
				run   func() error
			}{
				{"input.name", func() error {
					_, err := customers.New(m).Create(ctx, customers.Input{Name: nul, Email: "nul@example.org", Country: "DE", Segment: customers.SegmentConsumer})
					return err
				}},
				{"input.email", func() error {
					_, err := customers.New(m).Create(ctx, customers.Input{Name: "Nul", Email: "a\x00@example.org", Country: "DE", Segment: customers.SegmentConsumer})
					return err
				}},
				{"input.name", func() error {
					_, err := customers.New(m).Update(ctx, kim.ID, map[string]any{"name": nul})
					return err
				}},
				{"input.sku", func() error {
					_, err := inventory.New(m).Create(ctx, inventory.Input{SKU: nul, Name: "Cup", Category: "Kitchen", Price: products.Cents(100), Stock: 1})
					return err
				}},
				{"input.category", func() error {
					_, err := inventory.New(m).Update(ctx, mug.ID, map[string]any{"category": nul})
					return err
				}},
				{"input.note", func() error {
					_, err := engagement.New(m).Create(ctx, engagement.Input{CustomerID: kim.ID, Channel: engagement.Channels[0], Kind: engagement.Kinds[0], Note: &nul})
					return err
				}},
			} {
				err := c.run()
				var e *products.Error
				if !errors.As(err, &e) || e.Code != products.BadUserInput || e.Field != c.field || !strings.Contains(e.Message, "NUL") {
					t.Errorf("%s with a NUL: %v, want BAD_USER_INPUT on %s", c.field, err, c.field)
				}
			}
			after := latest()
			for p, n := range before {
				if after[p] != n {
					t.Errorf("%s changed: audit log at %d, was %d", p, after[p], n)
				}
			}
		})
	}
}
