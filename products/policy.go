package products

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// PolicyRule is a row policy as configured: callers holding Role see only
// the rows of Entity (a GraphQL type name) that match Where, a filter
// written like the entity's GraphQL where input. A value may be a claim of
// the caller's token, "$claims.<dotted path>", substituted per request:
//
//	{role: "sales-de", entity: "Customer", where: {country: {eq: "$claims.country"}}}
type PolicyRule struct {
	Role   string         `json:"role"`
	Entity string         `json:"entity"`
	Where  map[string]any `json:"where"`
}

// ClaimPrefix starts a where value that names a claim of the caller's token.
const ClaimPrefix = "$claims."

// Policies are the validated row policies of a mesh. Their meaning:
//
//   - the policies of an entity that name one of the caller's roles
//     combine with OR (a row is visible if any of them admits it);
//   - no applicable policy: the entity's rows are not restricted;
//   - an administrator (and the dev identity) is never restricted;
//   - a policy whose claim the caller's token lacks, or holds in a form the
//     field cannot take, admits no row (fail closed).
//
// The result is a Condition: the same parsed tree that the SQL compiler
// ANDs to the query's where and that Match evaluates on change images.
type Policies struct {
	byEntity map[*Entity][]PolicyRule
}

// NewPolicies validates rules against the products' entities: an unknown
// entity, field or operator, a value the field cannot take or a malformed
// claim reference is an error naming the rule.
func NewPolicies(ds []*Descriptor, rules []PolicyRule) (*Policies, error) {
	p := &Policies{byEntity: map[*Entity][]PolicyRule{}}
	for i, r := range rules {
		where := fmt.Sprintf("policy %d (role %q, entity %q)", i+1, r.Role, r.Entity)
		if strings.TrimSpace(r.Role) == "" {
			return nil, fmt.Errorf("%s: needs a role", where)
		}
		var e *Entity
		var names []string
		for _, d := range ds {
			for _, de := range d.Entities {
				names = append(names, de.Name)
				if de.Name == r.Entity {
					e = de
				}
			}
		}
		if e == nil {
			slices.Sort(names)
			return nil, fmt.Errorf("%s: unknown entity %q (entities: %s)", where, r.Entity, strings.Join(names, ", "))
		}
		if r.Where == nil {
			return nil, fmt.Errorf("%s: needs a where filter", where)
		}
		// A claim stands for any value of its field's type: check the
		// filter with a typed stand-in for each.
		resolved, err := substitute(e, r.Where, "where", func(f *Field, op, path string) (any, bool, error) {
			if !validClaimPath(path) {
				return nil, false, fmt.Errorf("%q is not a claim reference (%s<name>, dotted for nested claims)", ClaimPrefix+path, ClaimPrefix)
			}
			return standIn(f, op), true, nil
		})
		if err == nil {
			_, err = parseWhere(e, resolved, "where")
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		p.byEntity[e] = append(p.byEntity[e], r)
	}
	return p, nil
}

// Empty tells whether no policy is configured.
func (p *Policies) Empty() bool { return p == nil || len(p.byEntity) == 0 }

// For returns the restriction of the entity's rows for the caller, or nil
// when its rows are not restricted (no applicable policy, or an
// administrator). The Condition admits no row when every applicable
// policy lacks a claim.
func (p *Policies) For(id *Identity, e *Entity) *Condition {
	if p == nil || id.Admin() {
		return nil
	}
	var subs []*cond
	applies := false
	for _, r := range p.byEntity[e] {
		if !id.HasRole(r.Role) {
			continue
		}
		applies = true
		resolved, err := substitute(e, r.Where, "where", func(f *Field, op, path string) (any, bool, error) {
			v, ok := id.Claim(path)
			return v, ok, nil
		})
		if err != nil {
			continue // a missing or unusable claim: this policy admits nothing
		}
		n, err := parseWhere(e, resolved, "where")
		if err != nil {
			continue
		}
		subs = append(subs, n)
	}
	if !applies {
		return nil
	}
	return &Condition{e: e, root: &cond{kind: condAny, subs: subs}}
}

// errNoClaim marks a claim the caller's token does not have.
var errNoClaim = fmt.Errorf("claim missing")

// claimFunc returns the value of a claim reference (the path after
// "$claims.") for a filter on field f with operator op; ok false when the
// caller has no such claim.
type claimFunc func(f *Field, op, path string) (v any, ok bool, err error)

// substitute copies a policy's where filter with its claim references
// replaced and its JSON values (as YAML and JSON configuration give them)
// converted to what the compiler's coerce expects. Keys it does not know
// pass through unchanged for parseWhere to report.
func substitute(e *Entity, w map[string]any, path string, claim claimFunc) (map[string]any, error) {
	out := make(map[string]any, len(w))
	for k, v := range w {
		p := path + "." + k
		switch k {
		case "and", "or":
			list, ok := v.([]any)
			if !ok {
				return nil, Invalid(p, "must be a list of filters")
			}
			subs := make([]any, len(list))
			for i, item := range list {
				m, ok := item.(map[string]any)
				if !ok {
					return nil, Invalid(fmt.Sprintf("%s[%d]", p, i), "must be a filter")
				}
				s, err := substitute(e, m, fmt.Sprintf("%s[%d]", p, i), claim)
				if err != nil {
					return nil, err
				}
				subs[i] = s
			}
			out[k] = subs
		case "not":
			m, ok := v.(map[string]any)
			if !ok {
				return nil, Invalid(p, "must be a filter")
			}
			s, err := substitute(e, m, p, claim)
			if err != nil {
				return nil, err
			}
			out[k] = s
		default:
			f := e.Field(k)
			ops, ok := v.(map[string]any)
			if f == nil || !ok {
				out[k] = v // parseWhere says what is wrong
				continue
			}
			m := make(map[string]any, len(ops))
			for op, val := range ops {
				c, err := policyValue(f, op, val, p+"."+op, claim)
				if err != nil {
					return nil, err
				}
				m[op] = c
			}
			out[k] = m
		}
	}
	return out, nil
}

// policyValue substitutes and converts the value of one operator.
func policyValue(f *Field, op string, v any, path string, claim claimFunc) (any, error) {
	resolve := func(v any, op string) (any, error) {
		s, ok := v.(string)
		ref, isRef := strings.CutPrefix(s, ClaimPrefix)
		if !ok || !isRef {
			return v, nil
		}
		c, found, err := claim(f, op, ref)
		if err != nil {
			return nil, Invalid(path, "%s", err.Error())
		}
		if !found {
			return nil, errNoClaim
		}
		return c, nil
	}
	v, err := resolve(v, op)
	if err != nil {
		return nil, err
	}
	switch op {
	case "in", "notIn":
		list, ok := v.([]any)
		if !ok {
			if l, isStrings := v.([]string); isStrings {
				for _, s := range l {
					list = append(list, s)
				}
				ok = true
			}
		}
		if !ok {
			return nil, Invalid(path, "must be a list")
		}
		out := make([]any, 0, len(list))
		for i, item := range list {
			// A claim among the items stands for one value, or for all
			// the values of a list claim.
			item, err := resolve(item, "eq")
			if err != nil {
				return nil, err
			}
			items, isList := item.([]any)
			if !isList {
				items = []any{item}
			}
			for _, it := range items {
				c, err := jsonScalar(f, it, fmt.Sprintf("%s[%d]", path, i))
				if err != nil {
					return nil, err
				}
				out = append(out, c)
			}
		}
		return out, nil
	case "isNull":
		if _, ok := v.(bool); !ok {
			return nil, Invalid(path, "must be true or false")
		}
		return v, nil
	case "contains", "startsWith":
		if _, ok := v.(string); !ok {
			return nil, Invalid(path, "must be a string")
		}
		return v, nil
	case "eq", "ne", "gt", "gte", "lt", "lte":
		return jsonScalar(f, v, path)
	}
	return v, nil // an unknown operator: parseWhere reports it
}

// jsonScalar converts a JSON (or YAML) value to the Go type coerce takes
// for the field: int64 for ids and integers (ids may be strings, as GraphQL
// writes them), float64, a decimal as given, time.Time from RFC 3339 text,
// and strings, enum values checked against the enum.
func jsonScalar(f *Field, v any, path string) (any, error) {
	switch f.Type {
	case TypeID, TypeInt:
		switch n := v.(type) {
		case json.Number:
			if i, err := n.Int64(); err == nil {
				return i, nil
			}
		case float64:
			if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
				return int64(n), nil
			}
		case int:
			return int64(n), nil
		case int64:
			return n, nil
		case uint64:
			if n <= math.MaxInt64 {
				return int64(n), nil
			}
		case string:
			if f.Type == TypeID {
				if i, err := strconv.ParseInt(n, 10, 64); err == nil {
					return i, nil
				}
			}
		}
		return nil, Invalid(path, "must be an integer")
	case TypeFloat:
		switch n := v.(type) {
		case json.Number:
			if x, err := n.Float64(); err == nil {
				return x, nil
			}
		case float64:
			return n, nil
		case int:
			return float64(n), nil
		case int64:
			return float64(n), nil
		case uint64:
			return float64(n), nil
		}
		return nil, Invalid(path, "must be a number")
	case TypeDecimal:
		if n, ok := v.(uint64); ok {
			v = strconv.FormatUint(n, 10)
		}
		return DecimalInput(path, v)
	case TypeTime:
		switch t := v.(type) {
		case time.Time:
			return t, nil
		case string:
			tm, err := time.Parse(time.RFC3339Nano, t)
			if err != nil {
				return nil, Invalid(path, "must be an RFC 3339 time")
			}
			return tm, nil
		}
		return nil, Invalid(path, "must be an RFC 3339 time")
	case TypeEnum:
		s, ok := v.(string)
		if !ok || !f.Enum.Has(s) {
			return nil, Invalid(path, "must be a value of %s", f.Enum.Name)
		}
		return s, nil
	}
	if _, ok := v.(string); !ok {
		return nil, Invalid(path, "must be a string")
	}
	return v, nil
}

// standIn is a value of the field's type in the form a claim must take
// for op, used to validate policies before any token is seen.
func standIn(f *Field, op string) any {
	var v any
	switch f.Type {
	case TypeID, TypeInt:
		v = int64(0)
	case TypeFloat:
		v = 0.0
	case TypeDecimal:
		v = "0"
	case TypeTime:
		v = time.Unix(0, 0).UTC()
	case TypeEnum:
		v = f.Enum.Values[0].Name
	default:
		v = ""
	}
	switch op {
	case "in", "notIn":
		return []any{v}
	case "isNull":
		return false
	case "contains", "startsWith":
		return ""
	}
	return v
}

func validClaimPath(path string) bool {
	if path == "" {
		return false
	}
	for part := range strings.SplitSeq(path, ".") {
		if part == "" {
			return false
		}
	}
	return true
}
