package resolvers

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/uptrace/bun"
	"github.com/vikstrous/dataloadgen"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/engagement"
	"github.com/meshgate/meshgate/products/inventory"
	"github.com/meshgate/meshgate/products/orders"
	"github.com/meshgate/meshgate/products/sales"
)

// loaders batch the lookups of one GraphQL operation. They live as long as
// the operation and cache what they loaded for it.
type loaders struct {
	customer             *dataloadgen.Loader[int64, *customers.Customer]
	item                 *dataloadgen.Loader[int64, *inventory.Item]
	order                *dataloadgen.Loader[int64, *orders.Order]
	orderLines           *childLoader[orders.Line]
	customerOrders       *childLoader[orders.Order]
	customerInteractions *childLoader[engagement.Interaction]
	reservation          *dataloadgen.Loader[int64, *inventory.Reservation]
	customerValue        *dataloadgen.Loader[int64, *sales.CustomerValue]
	itemSales            *dataloadgen.Loader[int64, *sales.ItemSales]
	// history holds one audit-log loader per entity (GraphQL type name).
	history map[string]*childLoader[products.AuditEntry]
}

type loadersKey struct{}

// WithLoaders wraps the execution of one GraphQL operation with fresh batch
// loaders. Install it with the server's AroundOperations.
func (r *Resolver) WithLoaders(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	m := r.Data
	wait := r.BatchWait
	if wait <= 0 {
		wait = 2 * time.Millisecond
	}
	l := &loaders{
		customer:             byID[customers.Customer](m.Customers.DB, customers.Entity, wait),
		item:                 byID[inventory.Item](m.Inventory.DB, inventory.Entity, wait),
		order:                byID[orders.Order](m.Orders.DB, orders.Entity, wait),
		orderLines:           newChildLoader[orders.Line](m.Orders.DB, orders.LineEntity, "order_id", wait),
		customerOrders:       newChildLoader[orders.Order](m.Orders.DB, orders.Entity, "customer_id", wait),
		customerInteractions: newChildLoader[engagement.Interaction](m.Engagement.DB, engagement.Entity, "customer_id", wait),
		reservation:          byID[inventory.Reservation](m.Inventory.DB, inventory.ReservationEntity, wait),
		customerValue:        byID[sales.CustomerValue](m.Sales.DB, sales.CustomerValueEntity, wait),
		itemSales:            byID[sales.ItemSales](m.Sales.DB, sales.ItemSalesEntity, wait),
		history:              map[string]*childLoader[products.AuditEntry]{},
	}
	for _, s := range m.Stores {
		for _, e := range s.Product.Entities {
			l.history[e.Name] = newChildLoader[products.AuditEntry](s.DB, products.AuditEntity, "key", wait)
		}
	}
	return next(context.WithValue(ctx, loadersKey{}, l))
}

func loadersFrom(ctx context.Context) *loaders {
	return ctx.Value(loadersKey{}).(*loaders)
}

// byID batches lookups by primary key into one IN query; a missing row
// loads as nil.
func byID[T any](db bun.IDB, e *products.Entity, wait time.Duration) *dataloadgen.Loader[int64, *T] {
	return dataloadgen.NewLoader(func(ctx context.Context, ids []int64) ([]*T, []error) {
		rows, err := products.GetMany[T](ctx, db, e, ids)
		if err != nil {
			return nil, []error{err}
		}
		out := make([]*T, len(ids))
		for i, id := range ids {
			out[i] = rows[id]
		}
		return out, nil
	}, dataloadgen.WithWait(wait))
}

// childLoader batches connections below many parents (e.g. the orders of
// each customer): parents asking with the same arguments share one windowed
// statement.
type childLoader[T any] struct {
	loader *dataloadgen.Loader[childKey, *products.Page[T]]
	mu     sync.Mutex
	args   map[string]products.ListArgs
}

type childKey struct {
	args   string
	parent int64
}

func newChildLoader[T any, PT interface {
	*T
	products.Windowed
}](db bun.IDB, e *products.Entity, fk string, wait time.Duration) *childLoader[T] {
	c := &childLoader[T]{args: map[string]products.ListArgs{}}
	c.loader = dataloadgen.NewLoader(func(ctx context.Context, keys []childKey) ([]*products.Page[T], []error) {
		byArgs := map[string][]int64{}
		for _, k := range keys {
			byArgs[k.args] = append(byArgs[k.args], k.parent)
		}
		pages := map[childKey]*products.Page[T]{}
		for a, parents := range byArgs {
			c.mu.Lock()
			args := c.args[a]
			c.mu.Unlock()
			got, err := products.ListFor[T, PT](ctx, db, e, fk, parents, args)
			if err != nil {
				return nil, []error{err}
			}
			for p, pg := range got {
				pages[childKey{a, p}] = pg
			}
		}
		out := make([]*products.Page[T], len(keys))
		for i, k := range keys {
			out[i] = pages[k]
		}
		return out, nil
	}, dataloadgen.WithWait(wait))
	return c
}

// load returns the page of children of parent for the arguments.
func (c *childLoader[T]) load(ctx context.Context, parent int64, a products.ListArgs) (*products.Page[T], error) {
	b, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	key := string(b)
	c.mu.Lock()
	c.args[key] = a
	c.mu.Unlock()
	return c.loader.Load(ctx, childKey{key, parent})
}
