package streaming

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/inventory"
	"github.com/meshgate/meshgate/products/orders"
)

// snapshot is what a failed mutation must leave unchanged.
type snapshot struct {
	customers, orders, lines int64
	audit                    map[string]int64
	latest                   map[string]int64
}

func takeSnapshot(t *testing.T, m *products.Mesh) snapshot {
	t.Helper()
	ctx := context.Background()
	count := func(s *products.Store, model any) int64 {
		n, err := s.DB.NewSelect().Model(model).Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	s := snapshot{
		customers: count(m.Store("customers"), (*customers.Customer)(nil)),
		orders:    count(m.Store("orders"), (*orders.Order)(nil)),
		lines:     count(m.Store("orders"), (*orders.Line)(nil)),
		audit:     map[string]int64{},
		latest:    map[string]int64{},
	}
	for _, st := range m.Stores {
		s.audit[st.Product.Name] = count(st, (*products.AuditEntry)(nil))
		latest, err := st.Latest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s.latest[st.Product.Name] = latest
	}
	return s
}

// TestFailedMutationWritesNothing: a mutation that fails — bad input, a
// constraint violation in the database, an error returned inside
// Store.Write after rows were written and recorded — writes neither the
// entity nor an audit entry, does not advance the position, wakes no relay
// and puts nothing on Kafka.
func TestFailedMutationWritesNothing(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		m := openMesh(t, b)
		br := startBroker(t, "127.0.0.1:0")
		startRelays(t, m.Stores, newPublisher(t, br.Addrs()), nil)
		var commits atomic.Int64
		for _, s := range m.Stores {
			s.OnCommit(func() { commits.Add(1) })
		}
		ctx := context.Background()
		kim, err := customers.New(m).Create(ctx, customers.Input{Name: "Kim Lee", Email: "kim@example.org", Country: "DE", Segment: customers.SegmentConsumer})
		if err != nil {
			t.Fatal(err)
		}
		mug, err := inventory.New(m).Create(ctx, inventory.Input{SKU: "MUG-1", Name: "Mug", Category: "Kitchen", Price: products.Cents(950), Stock: 10})
		if err != nil {
			t.Fatal(err)
		}
		ola, err := customers.New(m).Create(ctx, customers.Input{Name: "Ola", Email: "ola@example.org", Country: "NO", Segment: customers.SegmentConsumer})
		if err != nil {
			t.Fatal(err)
		}
		good := 3
		consumeAtLeast(t, br.Addrs(), m.Stores, good, 10*time.Second)
		before := takeSnapshot(t, m)
		commitsBefore := commits.Load()

		errInside := errors.New("failure inside the transaction")
		cases := []struct {
			name string
			code products.Code // "" for a plain error
			run  func() error
		}{
			{"duplicate email", products.BadUserInput, func() error {
				_, err := customers.New(m).Create(ctx, customers.Input{Name: "Kim Two", Email: "kim@example.org", Country: "DE", Segment: customers.SegmentConsumer})
				return err
			}},
			{"invalid country", products.BadUserInput, func() error {
				_, err := customers.New(m).Create(ctx, customers.Input{Name: "Nobody", Email: "nobody@example.org", Country: "Atlantis", Segment: customers.SegmentConsumer})
				return err
			}},
			{"update to a taken email", products.BadUserInput, func() error {
				_, err := customers.New(m).Update(ctx, ola.ID, map[string]any{"email": "kim@example.org"})
				return err
			}},
			{"update of a missing customer", products.NotFound, func() error {
				_, err := customers.New(m).Update(ctx, 999999, map[string]any{"name": "Ghost"})
				return err
			}},
			{"order of a missing item", products.NotFound, func() error {
				_, err := orders.New(m).Place(ctx, kim.ID, []orders.LineInput{{ItemID: mug.ID, Quantity: 1}, {ItemID: 999999, Quantity: 1}}, "EUR")
				return err
			}},
			{"unique violation in the database after a recorded insert", products.Conflict, func() error {
				_, err := m.Store("customers").Write(ctx, func(ctx context.Context, tx *products.Tx) error {
					ok := &customers.Customer{Name: "Fresh", Email: "fresh@example.org", Country: "DE", Segment: customers.SegmentConsumer, CreatedAt: tx.Now(), UpdatedAt: tx.Now()}
					if _, err := tx.NewInsert().Model(ok).Returning("id").Exec(ctx); err != nil {
						return err
					}
					if err := tx.Created(customers.Entity, ok.ID, ok); err != nil {
						return err
					}
					dup := &customers.Customer{Name: "Dup", Email: "kim@example.org", Country: "DE", Segment: customers.SegmentConsumer, CreatedAt: tx.Now(), UpdatedAt: tx.Now()}
					if _, err := tx.NewInsert().Model(dup).Returning("id").Exec(ctx); err != nil {
						return err
					}
					return tx.Created(customers.Entity, dup.ID, dup)
				})
				return err
			}},
			{"error returned inside Store.Write after insert, update and delete", "", func() error {
				_, err := m.Store("orders").Write(ctx, func(ctx context.Context, tx *products.Tx) error {
					o := &orders.Order{CustomerID: kim.ID, Status: orders.StatusPlaced, Total: products.Cents(100), Currency: "EUR", PlacedAt: tx.Now(), UpdatedAt: tx.Now()}
					if _, err := tx.NewInsert().Model(o).Returning("id").Exec(ctx); err != nil {
						return err
					}
					if err := tx.Created(orders.Entity, o.ID, o); err != nil {
						return err
					}
					changed := *o
					changed.Status = orders.StatusCancelled
					if _, err := tx.NewUpdate().Model(&changed).WherePK().Exec(ctx); err != nil {
						return err
					}
					if err := tx.Updated(orders.Entity, o.ID, o, &changed); err != nil {
						return err
					}
					if _, err := tx.NewDelete().Model(&changed).WherePK().Exec(ctx); err != nil {
						return err
					}
					if err := tx.Deleted(orders.Entity, o.ID, &changed); err != nil {
						return err
					}
					return errInside
				})
				if err != nil && !errors.Is(err, errInside) {
					return fmt.Errorf("got %v, want the error returned inside", err)
				}
				return err
			}},
			{"audit image that cannot be encoded", "", func() error {
				_, err := m.Store("customers").Write(ctx, func(ctx context.Context, tx *products.Tx) error {
					c := &customers.Customer{Name: "Image", Email: "image@example.org", Country: "DE", Segment: customers.SegmentConsumer, CreatedAt: tx.Now(), UpdatedAt: tx.Now()}
					if _, err := tx.NewInsert().Model(c).Returning("id").Exec(ctx); err != nil {
						return err
					}
					return tx.Created(customers.Entity, c.ID, map[string]any{"bad": func() {}})
				})
				return err
			}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				err := c.run()
				if err == nil {
					t.Fatal("mutation succeeded, want an error")
				}
				if got := products.ErrorCode(err); got != c.code {
					t.Errorf("error %v has code %q, want %q", err, got, c.code)
				}
				after := takeSnapshot(t, m)
				if fmt.Sprint(after) != fmt.Sprint(before) {
					t.Errorf("failed mutation changed the stores:\n before %+v\n after  %+v", before, after)
				}
				if n := commits.Load(); n != commitsBefore {
					t.Errorf("%d commit hooks ran, want %d", n, commitsBefore)
				}
			})
		}

		// Nothing reached Kafka: after one more good change the topics
		// hold exactly the good changes, with no gap in the positions.
		if _, err := customers.New(m).Update(ctx, kim.ID, map[string]any{"name": "Kim Lee-Park"}); err != nil {
			t.Fatal(err)
		}
		good++
		recs := consumeAtLeast(t, br.Addrs(), m.Stores, good, 10*time.Second)
		checkExactlyOnce(t, recs, auditLog(t, m.Stores))
		if len(recs) != good {
			t.Errorf("topics hold %d records, want %d", len(recs), good)
		}
	})
}
