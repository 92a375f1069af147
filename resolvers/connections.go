package resolvers

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/99designs/gqlgen/graphql"

	"github.com/meshgate/meshgate/graph/model"
	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/engagement"
	"github.com/meshgate/meshgate/products/inventory"
	"github.com/meshgate/meshgate/products/orders"
	"github.com/meshgate/meshgate/products/sales"
)

// listArgs collects a connection field's arguments; the total is counted
// only when the query selects totalCount.
func listArgs(ctx context.Context, first *int, after *string, last *int, before *string, where map[string]any, orderBy []map[string]any) products.ListArgs {
	return products.ListArgs{
		First: first, After: after, Last: last, Before: before,
		Where: where, OrderBy: orderBy,
		WantTotal: selects(ctx, "totalCount"),
	}
}

// selects tells whether the field being resolved selects a subfield.
func selects(ctx context.Context, name string) bool {
	for _, f := range graphql.CollectFieldsCtx(ctx, nil) {
		if f.Name == name {
			return true
		}
	}
	return false
}

// connection turns a page into a GraphQL connection value, given the
// generated edge and connection constructors.
func connection[T, E, C any](p *products.Page[T], edge func(cursor string, node *T) E, conn func(edges []E, nodes []*T, info *products.PageInfo, total int) C) C {
	edges := make([]E, len(p.Nodes))
	for i, n := range p.Nodes {
		edges[i] = edge(p.Cursors[i], n)
	}
	return conn(edges, p.Nodes, &p.PageInfo, p.Total)
}

func customerConnection(p *products.Page[customers.Customer]) *model.CustomerConnection {
	return connection(p,
		func(c string, n *customers.Customer) *model.CustomerEdge {
			return &model.CustomerEdge{Cursor: c, Node: n}
		},
		func(e []*model.CustomerEdge, n []*customers.Customer, i *products.PageInfo, t int) *model.CustomerConnection {
			return &model.CustomerConnection{Edges: e, Nodes: n, PageInfo: i, TotalCount: t}
		})
}

func orderConnection(p *products.Page[orders.Order]) *model.OrderConnection {
	return connection(p,
		func(c string, n *orders.Order) *model.OrderEdge { return &model.OrderEdge{Cursor: c, Node: n} },
		func(e []*model.OrderEdge, n []*orders.Order, i *products.PageInfo, t int) *model.OrderConnection {
			return &model.OrderConnection{Edges: e, Nodes: n, PageInfo: i, TotalCount: t}
		})
}

func orderLineConnection(p *products.Page[orders.Line]) *model.OrderLineConnection {
	return connection(p,
		func(c string, n *orders.Line) *model.OrderLineEdge { return &model.OrderLineEdge{Cursor: c, Node: n} },
		func(e []*model.OrderLineEdge, n []*orders.Line, i *products.PageInfo, t int) *model.OrderLineConnection {
			return &model.OrderLineConnection{Edges: e, Nodes: n, PageInfo: i, TotalCount: t}
		})
}

func itemConnection(p *products.Page[inventory.Item]) *model.ItemConnection {
	return connection(p,
		func(c string, n *inventory.Item) *model.ItemEdge { return &model.ItemEdge{Cursor: c, Node: n} },
		func(e []*model.ItemEdge, n []*inventory.Item, i *products.PageInfo, t int) *model.ItemConnection {
			return &model.ItemConnection{Edges: e, Nodes: n, PageInfo: i, TotalCount: t}
		})
}

func interactionConnection(p *products.Page[engagement.Interaction]) *model.InteractionConnection {
	return connection(p,
		func(c string, n *engagement.Interaction) *model.InteractionEdge {
			return &model.InteractionEdge{Cursor: c, Node: n}
		},
		func(e []*model.InteractionEdge, n []*engagement.Interaction, i *products.PageInfo, t int) *model.InteractionConnection {
			return &model.InteractionConnection{Edges: e, Nodes: n, PageInfo: i, TotalCount: t}
		})
}

// getOrNil turns NOT_FOUND into a null result, as lookups by id answer.
func getOrNil[T any](v *T, err error) (*T, error) {
	if products.ErrorCode(err) == products.NotFound {
		return nil, nil
	}
	return v, err
}

// maxLines is the page size that returns every line of an order.
var maxLines = orders.MaxLines

func auditConnection(p *products.Page[products.AuditEntry]) *model.AuditEntryConnection {
	return connection(p,
		func(c string, n *products.AuditEntry) *model.AuditEntryEdge {
			return &model.AuditEntryEdge{Cursor: c, Node: n}
		},
		func(e []*model.AuditEntryEdge, n []*products.AuditEntry, i *products.PageInfo, t int) *model.AuditEntryConnection {
			return &model.AuditEntryConnection{Edges: e, Nodes: n, PageInfo: i, TotalCount: t}
		})
}

// history returns the audit entries of one row, batched per entity.
func history(ctx context.Context, entity string, key int64, first *int, after *string, last *int, before *string) (*model.AuditEntryConnection, error) {
	a := listArgs(ctx, first, after, last, before, map[string]any{"entity": map[string]any{"eq": entity}}, nil)
	p, err := loadersFrom(ctx).history[entity].load(ctx, key, a)
	if err != nil {
		return nil, err
	}
	return auditConnection(p), nil
}

// image decodes an audit entry's before or after image.
func image(s *string) (map[string]any, error) {
	if s == nil {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(*s), &m); err != nil {
		return nil, fmt.Errorf("decode audit image: %w", err)
	}
	return m, nil
}

func dailyRevenueConnection(p *products.Page[sales.DailyRevenue]) *model.DailyRevenueConnection {
	return connection(p,
		func(c string, n *sales.DailyRevenue) *model.DailyRevenueEdge {
			return &model.DailyRevenueEdge{Cursor: c, Node: n}
		},
		func(e []*model.DailyRevenueEdge, n []*sales.DailyRevenue, i *products.PageInfo, t int) *model.DailyRevenueConnection {
			return &model.DailyRevenueConnection{Edges: e, Nodes: n, PageInfo: i, TotalCount: t}
		})
}

func customerValueConnection(p *products.Page[sales.CustomerValue]) *model.CustomerValueConnection {
	return connection(p,
		func(c string, n *sales.CustomerValue) *model.CustomerValueEdge {
			return &model.CustomerValueEdge{Cursor: c, Node: n}
		},
		func(e []*model.CustomerValueEdge, n []*sales.CustomerValue, i *products.PageInfo, t int) *model.CustomerValueConnection {
			return &model.CustomerValueConnection{Edges: e, Nodes: n, PageInfo: i, TotalCount: t}
		})
}

func itemSalesConnection(p *products.Page[sales.ItemSales]) *model.ItemSalesConnection {
	return connection(p,
		func(c string, n *sales.ItemSales) *model.ItemSalesEdge {
			return &model.ItemSalesEdge{Cursor: c, Node: n}
		},
		func(e []*model.ItemSalesEdge, n []*sales.ItemSales, i *products.PageInfo, t int) *model.ItemSalesConnection {
			return &model.ItemSalesConnection{Edges: e, Nodes: n, PageInfo: i, TotalCount: t}
		})
}
