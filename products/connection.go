package products

import "time"

// Connection is a Relay connection of an entity's rows, the Go side of the
// GraphQL <Entity>Connection types (bound through type aliases).
type Connection[T any] struct {
	Edges      []*Edge[T] `json:"edges"`
	Nodes      []*T       `json:"nodes"`
	PageInfo   *PageInfo  `json:"pageInfo"`
	TotalCount int        `json:"totalCount"`
}

// Edge is a row with its cursor.
type Edge[T any] struct {
	Cursor string `json:"cursor"`
	Node   *T     `json:"node"`
}

// NewConnection turns a page into a connection; it has edges if the page
// has cursors (see ListArgs.Cursors).
func NewConnection[T any](p *Page[T]) *Connection[T] {
	var edges []*Edge[T]
	if len(p.Cursors) == len(p.Nodes) {
		edges = make([]*Edge[T], len(p.Nodes))
		for i, n := range p.Nodes {
			edges[i] = &Edge[T]{Cursor: p.Cursors[i], Node: n}
		}
	}
	return &Connection[T]{Edges: edges, Nodes: p.Nodes, PageInfo: &p.PageInfo, TotalCount: p.Total}
}

// Change is one change of an entity's row as subscriptions deliver it, the
// Go side of the GraphQL <Entity>Change types.
type Change[T any] struct {
	Op       Op        `json:"op"`
	Before   *T        `json:"before"`
	After    *T        `json:"after"`
	Cursor   string    `json:"cursor"`
	Actor    string    `json:"actor"`
	At       time.Time `json:"at"`
	Sequence int64     `json:"sequence"`
}
