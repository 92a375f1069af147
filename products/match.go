package products

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// condKind is the kind of a node of a parsed filter.
type condKind int

const (
	condAll  condKind = iota // every sub holds (true when empty)
	condAny                  // at least one sub holds (false when empty)
	condNot                  // the one sub does not hold
	condPred                 // op on field holds
)

// cond is a where filter after validation and coercion: the one form that
// both the SQL compiler (condSQL) and Match (eval) read, so that they agree
// on which inputs are errors, what null inputs mean ("no condition": an
// absent or null and/or/not/field/operator is skipped), and on the values
// compared. The logic is SQL's three-valued one: a comparison with a null
// field is unknown, "not" of unknown is unknown, and a row matches only
// when the whole filter is true (so neither {phone: {eq: x}} nor its not
// selects a null phone; isNull does).
type cond struct {
	kind  condKind
	subs  []*cond
	field *Field
	op    string // eq ne gt gte lt lte in notIn contains startsWith isNull
	val   any    // coerced value; a string for contains/startsWith, a bool for isNull
	vals  []any  // coerced values of in/notIn
}

// parseWhere validates and coerces an entity filter as gqlgen hands it over
// (maps of coerced values, typed nils for nulls).
func parseWhere(e *Entity, w map[string]any, path string) (*cond, error) {
	all := &cond{kind: condAll}
	for _, k := range sortedKeys(w) {
		v := w[k]
		if absent(v) {
			continue
		}
		p := path + "." + k
		switch k {
		case "and", "or":
			list, err := filterList(v, p)
			if err != nil {
				return nil, err
			}
			n := &cond{kind: condAll}
			if k == "or" {
				n.kind = condAny
			}
			for i, sub := range list {
				s, err := parseWhere(e, sub, fmt.Sprintf("%s[%d]", p, i))
				if err != nil {
					return nil, err
				}
				n.subs = append(n.subs, s)
			}
			all.subs = append(all.subs, n)
		case "not":
			sub, ok := v.(map[string]any)
			if !ok {
				return nil, Invalid(p, "must be a filter")
			}
			s, err := parseWhere(e, sub, p)
			if err != nil {
				return nil, err
			}
			all.subs = append(all.subs, &cond{kind: condNot, subs: []*cond{s}})
		default:
			f := e.Field(k)
			if f == nil || !f.Filterable() {
				return nil, Invalid(p, "%s cannot be filtered on %q", e.Name, k)
			}
			fm, ok := v.(map[string]any)
			if !ok {
				return nil, Invalid(p, "must be a filter object")
			}
			preds, err := parseOps(f.Type, fm, p)
			if err != nil {
				return nil, err
			}
			for _, pr := range preds {
				pr.field = f
				all.subs = append(all.subs, pr)
			}
		}
	}
	return all, nil
}

// filterList reads the list of an and/or: gqlgen gives []map[string]any,
// other callers []any of maps.
func filterList(v any, path string) ([]map[string]any, error) {
	if l, ok := v.([]map[string]any); ok {
		return l, nil
	}
	l, ok := v.([]any)
	if !ok {
		return nil, Invalid(path, "must be a list of filters")
	}
	out := make([]map[string]any, len(l))
	for i, item := range l {
		m, ok := item.(map[string]any)
		if !ok || m == nil {
			return nil, Invalid(path, "must be a list of filters")
		}
		out[i] = m
	}
	return out, nil
}

// parseOps validates and coerces the operators of one field filter of type
// t, in a fixed order; absent or null operators are skipped.
func parseOps(t FieldType, fm map[string]any, path string) ([]*cond, error) {
	var out []*cond
	for _, op := range sortedKeys(fm) {
		v := Deref(fm[op])
		if absent(v) {
			continue
		}
		p := path + "." + op
		n := &cond{kind: condPred, op: op}
		switch op {
		case "eq", "ne", "gt", "gte", "lt", "lte":
			val, err := coerce(t, v, p)
			if err != nil {
				return nil, err
			}
			n.val = val
		case "in", "notIn":
			vals, err := coerceList(t, v, p)
			if err != nil {
				return nil, err
			}
			n.vals = vals
		case "contains", "startsWith":
			if t != TypeString {
				return nil, Invalid(p, "only strings support %s", op)
			}
			s, ok := v.(string)
			if !ok {
				return nil, Invalid(p, "must be a string")
			}
			if utf8.RuneCountInString(s) > MaxPatternLength {
				// SQLite rejects GLOB patterns above 50,000 bytes.
				return nil, Invalid(p, "must have at most %d characters", MaxPatternLength)
			}
			if strings.IndexByte(s, 0) >= 0 {
				return nil, Invalid(p, "must not contain a NUL character")
			}
			n.val = s
		case "isNull":
			b, ok := v.(bool)
			if !ok {
				return nil, Invalid(p, "must be a boolean")
			}
			n.val = b
		default:
			return nil, Invalid(p, "unknown operator %q", op)
		}
		out = append(out, n)
	}
	return out, nil
}

// Condition is a parsed entity filter, ready to be evaluated on row images
// many times (live subscriptions parse a subscriber's where once).
type Condition struct {
	e    *Entity
	root *cond
}

// Entity returns the entity the condition filters.
func (c *Condition) Entity() *Entity { return c.e }

// restrict ANDs a row policy of entity e to the filter in x.
func (c compiler) restrict(x *sqlExpr, e *Entity, r *Condition) error {
	if r == nil {
		return nil
	}
	if r.e != e {
		return fmt.Errorf("a row policy of %s cannot restrict %s", r.e.Name, e.Name)
	}
	if !x.empty() {
		x.add(" AND ")
	}
	x.add("(")
	c.condSQL(x, r.root)
	x.add(")")
	return nil
}

// ParseWhere validates an entity filter (the where maps the SQL compiler
// takes); errors are BAD_USER_INPUT, the same the SQL path reports.
func ParseWhere(e *Entity, where map[string]any) (*Condition, error) {
	n, err := parseWhere(e, where, "where")
	if err != nil {
		return nil, err
	}
	return &Condition{e: e, root: n}, nil
}

// Match evaluates the filter on a row image decoded from JSON (field name
// → value, as in audit entries and change events) with the semantics of the
// SQL compiler. An error means the image does not fit the entity.
func (c *Condition) Match(img map[string]any) (bool, error) {
	v, err := c.root.eval(img)
	return v == yes, err
}

// Match evaluates an entity filter on a row image decoded from JSON; see
// ParseWhere and Condition.Match.
func Match(e *Entity, where map[string]any, img map[string]any) (bool, error) {
	c, err := ParseWhere(e, where)
	if err != nil {
		return false, err
	}
	return c.Match(img)
}

// truth is a value of SQL's three-valued logic.
type truth int8

const (
	no truth = iota
	unknown
	yes
)

func truthOf(b bool) truth {
	if b {
		return yes
	}
	return no
}

// eval evaluates the node like SQL: AND is the minimum and OR the maximum
// of no < unknown < yes, NOT swaps yes and no.
func (n *cond) eval(img map[string]any) (truth, error) {
	switch n.kind {
	case condAll, condAny:
		out := truthOf(n.kind == condAll)
		for _, s := range n.subs {
			v, err := s.eval(img)
			if err != nil {
				return no, err
			}
			if n.kind == condAll {
				out = min(out, v)
			} else {
				out = max(out, v)
			}
		}
		return out, nil
	case condNot:
		v, err := n.subs[0].eval(img)
		return yes - v, err
	}
	val, err := imageValue(n.field.Type, img[n.field.Name])
	if err != nil {
		return no, fmt.Errorf("image field %s: %w", n.field.Name, err)
	}
	switch {
	case n.op == "isNull":
		return truthOf((val == nil) == n.val.(bool)), nil
	case (n.op == "in" || n.op == "notIn") && len(n.vals) == 0:
		// The SQL is the constant 1=0 or 1=1, whatever the value.
		return truthOf(n.op == "notIn"), nil
	case val == nil:
		return unknown, nil
	}
	switch n.op {
	case "in", "notIn":
		found := false
		for _, want := range n.vals {
			found = found || compare(val, want) == 0
		}
		return truthOf(found == (n.op == "in")), nil
	case "contains":
		return truthOf(strings.Contains(val.(string), n.val.(string))), nil
	case "startsWith":
		return truthOf(strings.HasPrefix(val.(string), n.val.(string))), nil
	}
	c := compare(val, n.val)
	switch n.op {
	case "eq":
		return truthOf(c == 0), nil
	case "ne":
		return truthOf(c != 0), nil
	case "gt":
		return truthOf(c > 0), nil
	case "gte":
		return truthOf(c >= 0), nil
	case "lt":
		return truthOf(c < 0), nil
	}
	return truthOf(c <= 0), nil // lte
}

// imageValue converts a JSON-decoded value to the Go type coerce produces.
func imageValue(t FieldType, raw any) (any, error) {
	if raw == nil {
		return nil, nil
	}
	switch t {
	case TypeID, TypeInt:
		switch n := raw.(type) {
		case float64:
			return int64(n), nil
		case json.Number:
			return n.Int64()
		}
	case TypeFloat:
		switch n := raw.(type) {
		case float64:
			return n, nil
		case json.Number:
			return n.Float64()
		}
	case TypeDecimal:
		// Images hold money as strings; those written before money was
		// exact hold JSON numbers, read back through their shortest text.
		var s string
		switch n := raw.(type) {
		case string:
			s = n
		case json.Number:
			s = string(n)
		case float64:
			s = strconv.FormatFloat(n, 'f', -1, 64)
		default:
			return nil, fmt.Errorf("unexpected %T in image", raw)
		}
		var d Decimal
		if err := d.UnmarshalJSON([]byte(strconv.Quote(s))); err != nil {
			return nil, err
		}
		return d, nil
	case TypeTime:
		if s, ok := raw.(string); ok {
			tm, err := time.Parse(time.RFC3339Nano, s)
			return tm.UTC(), err
		}
	default:
		if s, ok := raw.(string); ok {
			return s, nil
		}
	}
	return nil, fmt.Errorf("unexpected %T in image", raw)
}

func compare(a, b any) int {
	switch x := a.(type) {
	case int64:
		return cmpInt(x, b.(int64))
	case float64:
		y := b.(float64)
		return cmp3(x < y, x > y)
	case Decimal:
		return x.Cmp(b.(Decimal))
	case string:
		return strings.Compare(x, b.(string))
	case time.Time:
		return x.Compare(b.(time.Time))
	}
	return 0
}

func cmp3(less, greater bool) int {
	switch {
	case less:
		return -1
	case greater:
		return 1
	}
	return 0
}
