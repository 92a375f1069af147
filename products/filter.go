package products

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

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
// path names the argument for error messages, e.g. "where".
func (c compiler) where(x *sqlExpr, e *Entity, w map[string]any, path string) error {
	keys := sortedKeys(w)
	parts := 0
	x.add("(")
	sep := func() {
		if parts > 0 {
			x.add(" AND ")
		}
		parts++
	}
	for _, k := range keys {
		v := w[k]
		if absent(v) {
			continue
		}
		p := path + "." + k
		switch k {
		case "and", "or":
			list, _ := v.([]map[string]any)
			if list == nil {
				if anyList, ok := v.([]any); ok {
					for _, item := range anyList {
						m, ok := item.(map[string]any)
						if !ok {
							return Invalid(p, "must be a list of filters")
						}
						list = append(list, m)
					}
				}
			}
			sep()
			if len(list) == 0 {
				if k == "and" {
					x.add("1=1")
				} else {
					x.add("1=0")
				}
				continue
			}
			x.add("(")
			for i, sub := range list {
				if i > 0 {
					x.add(map[string]string{"and": " AND ", "or": " OR "}[k])
				}
				if err := c.where(x, e, sub, fmt.Sprintf("%s[%d]", p, i)); err != nil {
					return err
				}
			}
			x.add(")")
		case "not":
			sub, ok := v.(map[string]any)
			if !ok {
				return Invalid(p, "must be a filter")
			}
			sep()
			x.add("NOT ")
			if err := c.where(x, e, sub, p); err != nil {
				return err
			}
		default:
			f := e.Field(k)
			if f == nil || !f.Filterable() {
				return Invalid(p, "%s cannot be filtered on %q", e.Name, k)
			}
			fm, ok := v.(map[string]any)
			if !ok {
				return Invalid(p, "must be a filter object")
			}
			sep()
			if err := c.filter(x, quoteIdent(c.dialect, f.Column), f.Type, fm, p); err != nil {
				return err
			}
		}
	}
	if parts == 0 {
		x.add("1=1")
	}
	x.add(")")
	return nil
}

// MaxPatternLength bounds the text of contains and startsWith.
const MaxPatternLength = 1000

var comparisons = map[string]string{"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}

// filter compiles the operators of one field filter applied to expr, a
// trusted SQL expression (a quoted column or an aggregate of one).
func (c compiler) filter(x *sqlExpr, expr string, t FieldType, fm map[string]any, path string) error {
	ops := sortedKeys(fm)
	n := 0
	x.add("(")
	for _, op := range ops {
		v := Deref(fm[op])
		if absent(v) {
			continue
		}
		p := path + "." + op
		if n > 0 {
			x.add(" AND ")
		}
		n++
		switch op {
		case "eq", "ne", "gt", "gte", "lt", "lte":
			val, err := coerce(t, v, p)
			if err != nil {
				return err
			}
			x.add(expr+" "+comparisons[op]+" ?", val)
		case "in", "notIn":
			vals, err := coerceList(t, v, p)
			if err != nil {
				return err
			}
			switch {
			case len(vals) == 0 && op == "in":
				x.add("1=0")
			case len(vals) == 0:
				x.add("1=1")
			case op == "in":
				x.add(expr+" IN (?)", bun.List(vals))
			default:
				x.add(expr+" NOT IN (?)", bun.List(vals))
			}
		case "contains", "startsWith":
			if t != TypeString {
				return Invalid(p, "only strings support %s", op)
			}
			s, ok := v.(string)
			if !ok {
				return Invalid(p, "must be a string")
			}
			if utf8.RuneCountInString(s) > MaxPatternLength {
				// SQLite rejects GLOB patterns above 50,000 bytes.
				return Invalid(p, "must have at most %d characters", MaxPatternLength)
			}
			x.add(c.match(expr, op == "startsWith"), c.pattern(s, op == "startsWith"))
		case "isNull":
			b, ok := v.(bool)
			if !ok {
				return Invalid(p, "must be a boolean")
			}
			if b {
				x.add(expr + " IS NULL")
			} else {
				x.add(expr + " IS NOT NULL")
			}
		default:
			return Invalid(p, "unknown operator %q", op)
		}
	}
	if n == 0 {
		x.add("1=1")
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

// coerce checks a scalar filter value against the field type and normalises it.
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
			return n, nil
		case int:
			return float64(n), nil
		case int64:
			return float64(n), nil
		}
		return nil, Invalid(path, "must be a number")
	case TypeTime:
		if tm, ok := v.(time.Time); ok {
			return tm.UTC(), nil
		}
		return nil, Invalid(path, "must be a time")
	case TypeString, TypeEnum:
		if s, ok := v.(string); ok {
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
