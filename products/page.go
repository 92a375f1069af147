package products

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"
)

// DefaultPageSize is the page size when neither first nor last is given;
// MaxPageSize bounds both.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// ListArgs are the Relay connection arguments plus filter and ordering, as
// they arrive from GraphQL.
type ListArgs struct {
	First, Last   *int
	After, Before *string
	Where         map[string]any
	OrderBy       []map[string]any
	// WantTotal asks for the number of matching rows over all pages.
	WantTotal bool
	// Cursors says which cursors the page needs (all by default).
	Cursors CursorNeed
	// Restrict, if set, is a row policy of the entity ANDed with Where:
	// rows outside it are neither listed nor counted.
	Restrict *Condition `json:"-"`
}

// CursorNeed says which cursors of a page are computed: encoding one costs
// about as much as writing its row, so a query that selects no edges gets
// none.
type CursorNeed int

// Cursor needs.
const (
	// AllCursors: every row's (edges are selected).
	AllCursors CursorNeed = iota
	// EndCursors: the first and last row's (only pageInfo is selected).
	EndCursors
	// NoCursors: none (neither edges nor pageInfo are selected).
	NoCursors
)

// PageInfo is Relay's page information.
type PageInfo struct {
	HasNextPage     bool    `json:"hasNextPage"`
	HasPreviousPage bool    `json:"hasPreviousPage"`
	StartCursor     *string `json:"startCursor"`
	EndCursor       *string `json:"endCursor"`
}

// Page is one page of a connection.
type Page[T any] struct {
	Nodes []*T
	// Cursors are the rows' cursors (nil unless ListArgs.Cursors is
	// AllCursors).
	Cursors  []string
	PageInfo PageInfo
	Total    int
}

// Window holds the values that batched (windowed) queries return beside each
// row. Models embed it; it is never written.
type Window struct {
	WindowRank  int `bun:"mg_rank,scanonly" json:"-"`
	WindowTotal int `bun:"mg_total,scanonly" json:"-"`
}

// WindowValues returns the window values of a row.
func (w *Window) WindowValues() *Window { return w }

// Windowed is a model that embeds Window.
type Windowed interface{ WindowValues() *Window }

type sortKey struct {
	f    *Field
	desc bool
}

// plan is a compiled ListArgs for one entity.
type plan struct {
	e       *Entity
	keys    []sortKey
	where   sqlExpr
	cursor  sqlExpr
	limit   int
	reverse bool // paging backwards with last/before
	args    ListArgs
}

func (c compiler) plan(e *Entity, a ListArgs) (*plan, error) {
	p := &plan{e: e, args: a}
	if a.First != nil && a.Last != nil {
		return nil, Invalid("first", "give first or last, not both")
	}
	switch {
	case a.First != nil:
		p.limit = *a.First
		if p.limit < 0 {
			return nil, Invalid("first", "must not be negative")
		}
		if p.limit > MaxPageSize {
			return nil, &Error{Code: LimitExceeded, Field: "first", Message: fmt.Sprintf("at most %d per page", MaxPageSize)}
		}
	case a.Last != nil:
		p.limit = *a.Last
		p.reverse = true
		if p.limit < 0 {
			return nil, Invalid("last", "must not be negative")
		}
		if p.limit > MaxPageSize {
			return nil, &Error{Code: LimitExceeded, Field: "last", Message: fmt.Sprintf("at most %d per page", MaxPageSize)}
		}
	case a.Before != nil:
		p.limit = DefaultPageSize
		p.reverse = true
	default:
		p.limit = DefaultPageSize
	}
	seen := map[string]bool{}
	for i, ob := range a.OrderBy {
		path := fmt.Sprintf("orderBy[%d]", i)
		// Optional input fields arrive as pointers (direction is *string).
		name, _ := Deref(ob["field"]).(string)
		f := e.bySort(name)
		if f == nil {
			return nil, Invalid(path+".field", "%s cannot be sorted by %q", e.Name, name)
		}
		if seen[f.Name] {
			return nil, Invalid(path+".field", "%s is given twice", name)
		}
		seen[f.Name] = true
		dir, _ := Deref(ob["direction"]).(string)
		switch dir {
		case "", "ASC":
		case "DESC":
		default:
			return nil, Invalid(path+".direction", "must be ASC or DESC")
		}
		p.keys = append(p.keys, sortKey{f: f, desc: dir == "DESC"})
		if f.Name == "id" {
			break
		}
	}
	if !seen["id"] {
		p.keys = append(p.keys, sortKey{f: e.Field("id")})
	}
	if a.Where != nil {
		if err := c.where(&p.where, e, a.Where, "where"); err != nil {
			return nil, err
		}
	}
	if err := c.restrict(&p.where, e, a.Restrict); err != nil {
		return nil, err
	}
	if a.After != nil {
		if err := c.keyset(p, &p.cursor, *a.After, "after", false); err != nil {
			return nil, err
		}
	}
	if a.Before != nil {
		if !p.cursor.empty() {
			p.cursor.add(" AND ")
		}
		if err := c.keyset(p, &p.cursor, *a.Before, "before", true); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// filter restricts q to the plan's rows: its where filter and, with
// paged, its cursors.
func (p *plan) filter(q *bun.SelectQuery, paged bool) *bun.SelectQuery {
	if !p.where.empty() {
		q = q.Where(p.where.sql.String(), p.where.args...)
	}
	if paged && !p.cursor.empty() {
		q = q.Where(p.cursor.sql.String(), p.cursor.args...)
	}
	return q
}

// signature identifies an ordering so that a cursor is only accepted by a
// query sorted the same way.
func (p *plan) signature() string {
	var b strings.Builder
	b.WriteString(p.e.Name)
	for _, k := range p.keys {
		b.WriteByte(',')
		b.WriteString(k.f.Name)
		if k.desc {
			b.WriteString(" desc")
		}
	}
	return b.String()
}

type cursorData struct {
	S string `json:"s"`
	V []any  `json:"v"`
}

func (p *plan) encodeCursor(table *schema.Table, row any) (string, error) {
	vals := make([]any, len(p.keys))
	for i, k := range p.keys {
		v, err := columnValue(table, row, k.f.Column)
		if err != nil {
			return "", err
		}
		if t, ok := v.(time.Time); ok {
			v = t.UTC().Format(time.RFC3339Nano)
		}
		vals[i] = v
	}
	b, err := json.Marshal(cursorData{S: p.signature(), V: vals})
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// keyset adds the condition "rows strictly after (or before) the cursor in
// the plan's order", expanded for mixed directions:
// (k1 > v1) OR (k1 = v1 AND k2 > v2) OR …
func (c compiler) keyset(p *plan, x *sqlExpr, cursor, arg string, before bool) error {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return Invalid(arg, "not a cursor of this API")
	}
	var cd cursorData
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&cd); err != nil {
		return Invalid(arg, "not a cursor of this API")
	}
	if cd.S != p.signature() || len(cd.V) != len(p.keys) {
		return Invalid(arg, "the cursor belongs to another list or ordering; use cursors from the same query")
	}
	vals := make([]any, len(p.keys))
	for i, k := range p.keys {
		v, err := cursorValue(k.f.Type, cd.V[i])
		if err != nil {
			return Invalid(arg, "not a cursor of this API")
		}
		vals[i] = v
	}
	x.add("(")
	for i := range p.keys {
		if i > 0 {
			x.add(" OR ")
		}
		x.add("(")
		for j := 0; j < i; j++ {
			x.add(quoteIdent(c.dialect, p.keys[j].f.Column)+" = ? AND ", vals[j])
		}
		op := ">"
		if p.keys[i].desc != before {
			op = "<"
		}
		k := p.keys[i].f
		x.add(quoteIdent(c.dialect, k.Column)+c.collate(k.Type)+" "+op+" ?", vals[i])
		x.add(")")
	}
	x.add(")")
	return nil
}

func cursorValue(t FieldType, v any) (any, error) {
	switch t {
	case TypeID, TypeInt:
		n, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Errorf("not a number")
		}
		return n.Int64()
	case TypeFloat:
		n, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Errorf("not a number")
		}
		return n.Float64()
	case TypeDecimal:
		return imageValue(t, v)
	case TypeTime:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("not a time")
		}
		tm, err := time.Parse(time.RFC3339Nano, s)
		return tm.UTC(), err
	default:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("not a string")
		}
		return s, nil
	}
}

// orderSQL renders the plan's ORDER BY, reversed when paging backwards.
// Strings sort in byte order on every backend (see collate), the order
// the keyset conditions and string filters use.
func (c compiler) orderSQL(p *plan) string {
	parts := make([]string, len(p.keys))
	for i, k := range p.keys {
		desc := k.desc != p.reverse
		dir := "ASC"
		if desc {
			dir = "DESC"
		}
		parts[i] = quoteIdent(c.dialect, k.f.Column) + c.collate(k.f.Type) + " " + dir
	}
	return strings.Join(parts, ", ")
}

// List returns one page of an entity's rows: filter, order and keyset
// pagination all run in SQL. With WantTotal it issues a second statement
// counting the filtered rows.
func List[T any](ctx context.Context, db bun.IDB, e *Entity, a ListArgs) (*Page[T], error) {
	c := compilerFor(db)
	p, err := c.plan(e, a)
	if err != nil {
		return nil, err
	}
	var rows []*T
	q := db.NewSelect().Model(&rows)
	q = p.filter(q, true)
	q = q.OrderExpr(c.orderSQL(p)).Limit(int64(p.limit) + 1)
	if err := selectRows(ctx, db, q, &rows); err != nil {
		return nil, fmt.Errorf("list %s: %w", e.Name, err)
	}
	page, err := makePage(db, p, rows)
	if err != nil {
		return nil, err
	}
	if a.WantTotal {
		n, err := p.filter(db.NewSelect().TableExpr(quoteIdent(c.dialect, e.Table)), false).Count(ctx)
		if err != nil {
			return nil, fmt.Errorf("count %s: %w", e.Name, err)
		}
		page.Total = int(n)
	}
	return page, nil
}

// keepChunk is how many rows ListKeep reads per statement.
const keepChunk = 500

// ListKeep is List with a condition that SQL cannot evaluate, checked in Go
// on each row (row policies on the images of audit entries): rows are read
// in the page's order, keepChunk per statement, until the page (plus its
// look-ahead row) is full or no row is left; the keyset cursors stay
// those of the rows kept. With WantTotal every row matching the where
// filter is read once more to count those kept.
func ListKeep[T any](ctx context.Context, db bun.IDB, e *Entity, a ListArgs, keep func(*T) (bool, error)) (*Page[T], error) {
	c := compilerFor(db)
	p, err := c.plan(e, a)
	if err != nil {
		return nil, err
	}
	table := db.Dialect().Tables().Get(reflect.TypeFor[T]())
	// scan reads the chunk after last (in the plan's direction), within the
	// page's cursors when paged.
	scan := func(last *T, paged bool) ([]*T, error) {
		var rows []*T
		q := p.filter(db.NewSelect().Model(&rows), paged)
		if last != nil {
			cur, err := p.encodeCursor(table, last)
			if err != nil {
				return nil, err
			}
			var x sqlExpr
			if err := c.keyset(p, &x, cur, "after", p.reverse); err != nil {
				return nil, err
			}
			q = q.Where(x.sql.String(), x.args...)
		}
		if err := selectRows(ctx, db, q.OrderExpr(c.orderSQL(p)).Limit(keepChunk), &rows); err != nil {
			return nil, fmt.Errorf("list %s: %w", e.Name, err)
		}
		return rows, nil
	}
	// eachKept passes every row keep accepts to use, chunk by chunk, until
	// use says it has enough or no row is left.
	eachKept := func(paged bool, use func(*T) (enough bool)) error {
		var last *T
		for {
			rows, err := scan(last, paged)
			if err != nil {
				return err
			}
			for _, r := range rows {
				ok, err := keep(r)
				if err != nil {
					return err
				}
				if ok && use(r) {
					return nil
				}
			}
			if len(rows) < keepChunk {
				return nil
			}
			last = rows[len(rows)-1]
		}
	}
	var kept []*T
	if err := eachKept(true, func(r *T) bool { kept = append(kept, r); return len(kept) > p.limit }); err != nil {
		return nil, err
	}
	page, err := makePage(db, p, kept)
	if err != nil {
		return nil, err
	}
	if a.WantTotal {
		if err := eachKept(false, func(*T) bool { page.Total++; return false }); err != nil {
			return nil, err
		}
	}
	return page, nil
}

// makePage trims the look-ahead row, restores the order of a backward page
// and computes cursors and page info.
func makePage[T any](db bun.IDB, p *plan, rows []*T) (*Page[T], error) {
	more := len(rows) > p.limit
	if more {
		rows = rows[:p.limit]
	}
	if p.reverse {
		for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
			rows[i], rows[j] = rows[j], rows[i]
		}
	}
	pg := &Page[T]{Nodes: rows}
	if p.args.Cursors != NoCursors && len(rows) > 0 {
		table := db.Dialect().Tables().Get(reflect.TypeFor[T]())
		cursor := func(r *T) (string, error) {
			c, err := p.encodeCursor(table, r)
			if err != nil {
				return "", fmt.Errorf("cursor for %s: %w", p.e.Name, err)
			}
			return c, nil
		}
		if p.args.Cursors == AllCursors {
			pg.Cursors = make([]string, len(rows))
			for i, r := range rows {
				c, err := cursor(r)
				if err != nil {
					return nil, err
				}
				pg.Cursors[i] = c
			}
			pg.PageInfo.StartCursor = &pg.Cursors[0]
			pg.PageInfo.EndCursor = &pg.Cursors[len(rows)-1]
		} else {
			start, err := cursor(rows[0])
			if err != nil {
				return nil, err
			}
			end, err := cursor(rows[len(rows)-1])
			if err != nil {
				return nil, err
			}
			pg.PageInfo.StartCursor, pg.PageInfo.EndCursor = &start, &end
		}
	}
	if p.reverse {
		pg.PageInfo.HasPreviousPage = more
		pg.PageInfo.HasNextPage = p.args.Before != nil
	} else {
		pg.PageInfo.HasNextPage = more
		pg.PageInfo.HasPreviousPage = p.args.After != nil
	}
	return pg, nil
}

// columnValue reads a column's value out of a model through bun's metadata.
func columnValue(table *schema.Table, row any, column string) (any, error) {
	f, ok := table.FieldMap[column]
	if !ok {
		return nil, fmt.Errorf("%s has no column %s", table.TypeName, column)
	}
	return f.Value(reflect.ValueOf(row).Elem()).Interface(), nil
}
