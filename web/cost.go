package web

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/meshgate/meshgate/products"
)

// operationCost estimates how many values an operation can make the
// gateway resolve, and checks its where/having arguments. It runs after
// validation, when fields have their definitions and variables their
// values:
//
//   - every field costs 1 each time it can be resolved;
//   - a connection field (one with first/last arguments) multiplies its list
//     children (nodes, edges) by first or last, or by products.DefaultPageSize
//     when neither is given (the page size it then serves);
//   - any other list field multiplies its children by Limits.ListSize;
//     _entities by the number of representations;
//   - __schema and __type cost 1 whatever they select (they read the schema
//     in memory; IntrospectionDepth bounds their nesting).
//
// So customers(first: 1000) { nodes { orders(first: 1000) { nodes { id } } } }
// costs about a million and is refused before any SQL runs.
func operationCost(oc *graphql.OperationContext, lim Limits) (int, *gqlerror.Error) {
	if oc.Operation == nil {
		return 0, nil
	}
	c := &coster{vars: oc.Variables, lim: lim}
	c.set(oc.Operation.SelectionSet, 1, 0)
	if c.err != nil {
		return c.total, c.err
	}
	if max := lim.Cost; max > 0 && c.total > max {
		return c.total, limitError("cost", max, c.total, fmt.Sprintf(
			"the query may resolve %d values, at most %d allowed: ask for fewer rows (first/last) or fewer nested lists", c.total, max))
	}
	return c.total, nil
}

// costCap keeps the arithmetic far from overflow; anything above is refused.
const costCap = math.MaxInt32

type coster struct {
	vars  map[string]any
	lim   Limits
	total int
	err   *gqlerror.Error
}

func mul(a, b int) int {
	if a > 0 && b > costCap/a {
		return costCap
	}
	return min(a*b, costCap)
}

func (c *coster) add(n int) { c.total = min(c.total+n, costCap) }

// set costs a selection set whose fields are each resolved mult times;
// page is the page size of the connection that owns it (0 if none).
func (c *coster) set(sel ast.SelectionSet, mult, page int) {
	for _, s := range sel {
		if c.err != nil {
			return
		}
		switch s := s.(type) {
		case *ast.InlineFragment:
			c.set(s.SelectionSet, mult, page)
		case *ast.FragmentSpread:
			if s.Definition != nil {
				c.set(s.Definition.SelectionSet, mult, page)
			}
		case *ast.Field:
			c.field(s, mult, page)
		}
	}
}

func (c *coster) field(f *ast.Field, mult, page int) {
	if strings.HasPrefix(f.Name, "__") && f.Name != "__typename" {
		c.add(1)
		c.set(f.SelectionSet, 0, 0) // mult 0: count nothing below, but walk it
		return
	}
	c.add(mult)
	if f.Definition == nil || len(f.SelectionSet) == 0 {
		return
	}
	var args map[string]any
	defs := f.Definition.Arguments
	if defs.ForName("first") != nil || defs.ForName("where") != nil || defs.ForName("having") != nil ||
		defs.ForName("representations") != nil {
		args = f.ArgumentMap(c.vars)
	}
	for _, name := range []string{"where", "having"} {
		if v, ok := args[name]; ok && v != nil {
			c.checkWhere(name, v)
		}
	}
	childMult := mult
	if f.Definition.Type.Elem != nil { // a list
		n := page
		if n == 0 {
			n = c.lim.ListSize
			if reps, ok := args["representations"].([]any); ok {
				n = len(reps)
			}
		}
		childMult = mul(mult, n)
	}
	childPage := 0
	if defs.ForName("first") != nil || defs.ForName("last") != nil {
		childPage = products.DefaultPageSize
		if n, ok := intArg(args["first"]); ok {
			childPage = n
		} else if n, ok := intArg(args["last"]); ok {
			childPage = n
		}
	}
	c.set(f.SelectionSet, childMult, childPage)
}

// intArg reads a page size, whether a literal (int64) or a variable
// (json.Number). It is clamped to [0, products.MaxPageSize]: the resolver
// refuses anything outside with a precise error (field "first").
func intArg(v any) (int, bool) {
	var n int64
	switch v := v.(type) {
	case int64:
		n = v
	case int:
		n = int64(v)
	case json.Number:
		i, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return 0, false
		}
		n = i
	case float64:
		n = int64(v)
	default:
		return 0, false
	}
	return int(max(0, min(n, products.MaxPageSize))), true
}

// checkWhere bounds one where/having value: nesting of input objects and
// the number of values in it.
func (c *coster) checkWhere(arg string, v any) {
	nodes, depth := 0, 0
	var walk func(v any, d int)
	walk = func(v any, d int) {
		nodes++
		switch v := v.(type) {
		case map[string]any:
			d++
			depth = max(depth, d)
			for _, x := range v {
				walk(x, d)
			}
		case []any:
			for _, x := range v {
				walk(x, d)
			}
		}
	}
	walk(v, 0)
	if max := c.lim.WhereDepth; max > 0 && depth > max {
		c.err = limitError("whereDepth", max, depth, fmt.Sprintf("%s nests %d levels deep, at most %d allowed", arg, depth, max))
		return
	}
	if max := c.lim.WhereNodes; max > 0 && nodes > max {
		c.err = limitError("whereNodes", max, nodes, fmt.Sprintf("%s holds %d values, at most %d allowed", arg, nodes, max))
	}
}
