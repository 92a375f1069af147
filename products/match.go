package products

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Match evaluates an entity filter (the same where maps the SQL compiler
// takes) on a row image decoded from JSON (field name → value), with the
// same semantics as the SQL: a comparison with null is false, contains and
// startsWith are case-sensitive. Used for live subscriptions, where the row
// is an event's image, not a table row.
func Match(e *Entity, where map[string]any, img map[string]any) (bool, error) {
	return matchWhere(e, where, img, "where")
}

func matchWhere(e *Entity, w map[string]any, img map[string]any, path string) (bool, error) {
	for _, k := range sortedKeys(w) {
		v := w[k]
		if v == nil {
			continue
		}
		p := path + "." + k
		switch k {
		case "and", "or":
			list, err := filterList(v, p)
			if err != nil {
				return false, err
			}
			any := false
			for i, sub := range list {
				ok, err := matchWhere(e, sub, img, fmt.Sprintf("%s[%d]", p, i))
				if err != nil {
					return false, err
				}
				if k == "and" && !ok {
					return false, nil
				}
				any = any || ok
			}
			if k == "or" && !any {
				return false, nil
			}
		case "not":
			sub, ok := v.(map[string]any)
			if !ok {
				return false, Invalid(p, "must be a filter")
			}
			ok, err := matchWhere(e, sub, img, p)
			if err != nil || ok {
				return false, err
			}
		default:
			f := e.Field(k)
			if f == nil || !f.Filterable() {
				return false, Invalid(p, "%s cannot be filtered on %q", e.Name, k)
			}
			fm, ok := v.(map[string]any)
			if !ok {
				return false, Invalid(p, "must be a filter object")
			}
			ok, err := matchField(f.Type, fm, img[f.Name], p)
			if err != nil || !ok {
				return false, err
			}
		}
	}
	return true, nil
}

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
		if !ok {
			return nil, Invalid(path, "must be a list of filters")
		}
		out[i] = m
	}
	return out, nil
}

func matchField(t FieldType, fm map[string]any, raw any, path string) (bool, error) {
	val, err := imageValue(t, raw)
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	for _, op := range sortedKeys(fm) {
		arg := Deref(fm[op])
		if arg == nil {
			continue
		}
		p := path + "." + op
		var ok bool
		switch op {
		case "isNull":
			b, isBool := arg.(bool)
			if !isBool {
				return false, Invalid(p, "must be a boolean")
			}
			ok = (val == nil) == b
		case "eq", "ne", "gt", "gte", "lt", "lte":
			want, err := coerce(t, arg, p)
			if err != nil {
				return false, err
			}
			if val == nil {
				return false, nil
			}
			c := compare(val, want)
			ok = map[string]bool{"eq": c == 0, "ne": c != 0, "gt": c > 0, "gte": c >= 0, "lt": c < 0, "lte": c <= 0}[op]
		case "in", "notIn":
			list, err := coerceList(t, arg, p)
			if err != nil {
				return false, err
			}
			if val == nil {
				return false, nil
			}
			found := false
			for _, want := range list {
				found = found || compare(val, want) == 0
			}
			ok = found == (op == "in")
		case "contains", "startsWith":
			s, isStr := arg.(string)
			if !isStr || t != TypeString {
				return false, Invalid(p, "only strings support %s", op)
			}
			v, isStr := val.(string)
			if !isStr {
				return false, nil
			}
			if op == "contains" {
				ok = strings.Contains(v, s)
			} else {
				ok = strings.HasPrefix(v, s)
			}
		default:
			return false, Invalid(p, "unknown operator %q", op)
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
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
		y := b.(int64)
		return cmp3(x < y, x > y)
	case float64:
		y := b.(float64)
		return cmp3(x < y, x > y)
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
