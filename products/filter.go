package products

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// sqlExpr is a fragment of SQL with bun placeholders and its arguments.
// Fragments are built only from descriptor names and placeholders: user
// values always travel as arguments.
type sqlExpr struct {
	sql  strings.Builder
	args []any
}

func (x *sqlExpr) add(sql string, args ...any) {
	x.sql.WriteString(sql)
	x.args = append(x.args, args...)
}

func (x *sqlExpr) empty() bool { return x.sql.Len() == 0 }

// compiler turns GraphQL filter maps into SQL for one dialect.
type compiler struct {
	dialect dialect.Name
}

func compilerFor(db bun.IDB) compiler {
	return compiler{dialect: db.Dialect().Name()}
}

// where compiles an entity filter (and/or/not plus one filter per field).
// path names the argument for error messages, e.g. "where". The filter is
// first parsed into a cond, the form Match evaluates too, so that both
// paths share validation, coercion and the meaning of null inputs.
func (c compiler) where(x *sqlExpr, e *Entity, w map[string]any, path string) error {
	n, err := parseWhere(e, w, path)
	if err != nil {
		return err
	}
	c.condSQL(x, n)
	return nil
}

// condSQL writes a parsed filter. SQL's three-valued logic applies (a
// comparison with NULL is unknown, and so is its NOT; a row matches when
// the whole filter is true); Match evaluates the same logic in Go.
func (c compiler) condSQL(x *sqlExpr, n *cond) {
	switch n.kind {
	case condAll, condAny:
		if len(n.subs) == 0 {
			if n.kind == condAll {
				x.add("1=1")
			} else {
				x.add("1=0")
			}
			return
		}
		sep := " AND "
		if n.kind == condAny {
			sep = " OR "
		}
		x.add("(")
		for i, s := range n.subs {
			if i > 0 {
				x.add(sep)
			}
			c.condSQL(x, s)
		}
		x.add(")")
	case condNot:
		x.add("NOT (")
		c.condSQL(x, n.subs[0])
		x.add(")")
	case condPred:
		col := quoteIdent(c.dialect, n.field.Column)
		c.predSQL(x, operand{lhs: col, rhs: "?", t: n.field.Type}, n)
	}
}

// operand is the trusted SQL a predicate compares: lhs (a quoted column or
// an aggregate of one) against rhs, "?" or an expression of "?" (each
// value is bound to the "?" of its own copy of rhs).
type operand struct {
	lhs, rhs string
	t        FieldType
}

// MaxPatternLength bounds the text of contains and startsWith.
const MaxPatternLength = 1000

var comparisons = map[string]string{"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}

// collate pins string comparisons to byte order (what Go's string
// comparison and SQLite's BINARY collation do) whatever the PostgreSQL
// database's collation.
func (c compiler) collate(t FieldType) string {
	if c.dialect == dialect.PG && (t == TypeString || t == TypeEnum) {
		return ` COLLATE "C"`
	}
	return ""
}

func (c compiler) predSQL(x *sqlExpr, o operand, n *cond) {
	switch n.op {
	case "eq", "ne":
		// Equality is byte equality under every deterministic collation
		// (the only kind a database's default can be), as with in: no
		// COLLATE, which would keep PostgreSQL from using an index of
		// the column (built in the column's collation).
		x.add(o.lhs+" "+comparisons[n.op]+" "+o.rhs, n.val)
	case "gt", "gte", "lt", "lte":
		x.add(o.lhs+c.collate(o.t)+" "+comparisons[n.op]+" "+o.rhs, n.val)
	case "in", "notIn":
		switch {
		case len(n.vals) == 0 && n.op == "in":
			x.add("1=0")
		case len(n.vals) == 0:
			x.add("1=1")
		default:
			if n.op == "in" {
				x.add(o.lhs + " IN (")
			} else {
				x.add(o.lhs + " NOT IN (")
			}
			for i, v := range n.vals {
				if i > 0 {
					x.add(", ")
				}
				x.add(o.rhs, v)
			}
			x.add(")")
		}
	case "contains", "startsWith":
		x.add(c.match(o.lhs, n.op == "startsWith"), c.pattern(n.val.(string), n.op == "startsWith"))
	case "isNull":
		if n.val.(bool) {
			x.add(o.lhs + " IS NULL")
		} else {
			x.add(o.lhs + " IS NOT NULL")
		}
	}
}

// filter compiles the operators of one field filter applied to o, for
// having conditions on aggregates (all must hold).
func (c compiler) filter(x *sqlExpr, o operand, fm map[string]any, path string) error {
	preds, err := parseOps(o.t, fm, path)
	if err != nil {
		return err
	}
	if len(preds) == 0 {
		x.add("1=1")
		return nil
	}
	x.add("(")
	for i, p := range preds {
		if i > 0 {
			x.add(" AND ")
		}
		c.predSQL(x, o, p)
	}
	x.add(")")
	return nil
}

// match returns a case-sensitive pattern match on both dialects: SQLite's
// LIKE ignores ASCII case, so SQLite uses GLOB.
func (c compiler) match(expr string, prefix bool) string {
	if c.dialect == dialect.SQLite {
		return expr + " GLOB ?"
	}
	return expr + " LIKE ?"
}

func (c compiler) pattern(s string, prefix bool) string {
	var b strings.Builder
	if c.dialect == dialect.SQLite {
		if !prefix {
			b.WriteByte('*')
		}
		for _, r := range s {
			switch r {
			case '*', '?', '[':
				b.WriteByte('[')
				b.WriteRune(r)
				b.WriteByte(']')
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte('*')
		return b.String()
	}
	if !prefix {
		b.WriteByte('%')
	}
	for _, r := range s {
		switch r {
		case '%', '_', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('%')
	return b.String()
}

// coerce checks a scalar filter value against the field type and normalises
// it to the Go type both the SQL arguments and Match use: int64 for ids and
// integers, float64, Decimal (money, exact cents), time.Time (UTC,
// microseconds, which is what the stores keep) and string.
func coerce(t FieldType, v any, path string) (any, error) {
	v = Deref(v)
	switch t {
	case TypeID:
		switch n := v.(type) {
		case int64:
			return n, nil
		case int:
			return int64(n), nil
		}
		return nil, Invalid(path, "must be a numeric ID")
	case TypeInt:
		switch n := v.(type) {
		case int:
			return int64(n), nil
		case int64:
			return n, nil
		}
		return nil, Invalid(path, "must be an integer")
	case TypeFloat:
		switch n := v.(type) {
		case float64:
			if math.IsNaN(n) || math.IsInf(n, 0) {
				return nil, Invalid(path, "must be a finite number")
			}
			return n, nil
		case int:
			return float64(n), nil
		case int64:
			return float64(n), nil
		}
		return nil, Invalid(path, "must be a number")
	case TypeDecimal:
		return DecimalInput(path, v)
	case TypeTime:
		if tm, ok := v.(time.Time); ok {
			if tm.Nanosecond()%1000 != 0 {
				return nil, Invalid(path, "times are kept to the microsecond; give at most 6 fractional digits")
			}
			return tm.UTC(), nil
		}
		return nil, Invalid(path, "must be a time")
	case TypeString, TypeEnum:
		if s, ok := v.(string); ok {
			if strings.IndexByte(s, 0) >= 0 {
				return nil, Invalid(path, "must not contain a NUL character")
			}
			return s, nil
		}
		return nil, Invalid(path, "must be a string")
	}
	return nil, Invalid(path, "unsupported value")
}

// coerceList coerces the values of a list filter. Lists arrive as slices
// of whatever gqlgen generated for the element type (e.g. []*time.Time).
func coerceList(t FieldType, v any, path string) ([]any, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice {
		return nil, Invalid(path, "must be a list")
	}
	out := make([]any, 0, rv.Len())
	for i := range rv.Len() {
		c, err := coerce(t, rv.Index(i).Interface(), fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// absent tells whether an input value was left out or given as null.
// Generated input maps carry a null list, object or scalar as a typed nil
// (e.g. []int64(nil)), which must not count as "in no values".
func absent(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func quoteIdent(d dialect.Name, name string) string {
	if d == dialect.MySQL {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}
