package products

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
