package web

import (
	"context"
	"fmt"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/lexer"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/meshgate/meshgate/products"
)

// Limits bound what one GraphQL operation may ask for. Each is refused
// with LIMIT_EXCEEDED and extensions {limit: <name>, value: <limit>,
// actual: <what was asked>}. A zero field takes its default
// (DefaultLimits); a negative one switches the limit off.
type Limits struct {
	// Tokens is the most lexical tokens in a document, counted before it is
	// parsed: no later step (parsing, validation) sees a larger one.
	Tokens int
	// Depth is the deepest nesting of fields (fragments expanded;
	// introspection fields, which IntrospectionDepth bounds, not counted).
	Depth int
	// Fields is the most field selections with fragments expanded.
	Fields int
	// RepeatedFields is the most fields with one response name merged into
	// one selection set: validation compares those pairwise.
	RepeatedFields int
	// Aliases is the most aliased fields in a document.
	Aliases int
	// RootFields is the most fields at the root of an operation.
	RootFields int
	// Directives is the most directives used in a document.
	Directives int
	// IntrospectionDepth is the deepest nesting of the introspection lists
	// fields, inputFields, interfaces and possibleTypes (graphql-js's rule).
	IntrospectionDepth int
	// Cost is the most an operation may cost (see cost.go).
	Cost int
	// ListSize is the size a list without first/last counts for in the cost.
	ListSize int
	// WhereDepth and WhereNodes bound each where/having argument: nesting of
	// input objects, and values in it (objects, list items, scalars).
	WhereDepth int
	WhereNodes int
}

// DefaultLimits are generous for every example in the README and the
// demo, and refuse the amplification attacks of issue 11.
func DefaultLimits() Limits {
	return Limits{
		Tokens: 5000, Depth: 12, Fields: 2000, RepeatedFields: 20, Aliases: 100, RootFields: 100,
		Directives: 50, IntrospectionDepth: 3, Cost: 50_000, ListSize: 10, WhereDepth: 10, WhereNodes: 2000,
	}
}

// withDefaults fills zero limits with the defaults.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	for _, p := range []struct{ v, d *int }{
		{&l.Tokens, &d.Tokens}, {&l.Depth, &d.Depth}, {&l.Fields, &d.Fields}, {&l.RepeatedFields, &d.RepeatedFields},
		{&l.Aliases, &d.Aliases}, {&l.RootFields, &d.RootFields}, {&l.Directives, &d.Directives},
		{&l.IntrospectionDepth, &d.IntrospectionDepth}, {&l.Cost, &d.Cost}, {&l.ListSize, &d.ListSize},
		{&l.WhereDepth, &d.WhereDepth}, {&l.WhereNodes, &d.WhereNodes},
	} {
		if *p.v == 0 {
			*p.v = *p.d
		}
	}
	return l
}

// limitError is the error of a limit that a request exceeds.
func limitError(name string, value any, actual int, message string) *gqlerror.Error {
	ext := map[string]any{"limit": name, "value": value}
	if actual > 0 {
		ext["actual"] = actual
	}
	return gqlErrorf(string(products.LimitExceeded), ext, "%s", message)
}

// limitsExtension enforces Limits inside gqlgen: the document's shape
// before validation (MutateOperationParameters), its cost and where
// arguments after validation, when variables are known
// (MutateOperationContext), and it reports the cost in every response
// (InterceptResponse).
type limitsExtension struct {
	limits Limits
	// cached tells whether a query is in gqlgen's parsed-query cache: such
	// a query passed these checks before (they depend on the text only).
	cached func(ctx context.Context, query string) bool
}

var (
	_ graphql.HandlerExtension          = limitsExtension{}
	_ graphql.OperationParameterMutator = limitsExtension{}
	_ graphql.OperationContextMutator   = limitsExtension{}
	_ graphql.ResponseInterceptor       = limitsExtension{}
)

func (limitsExtension) ExtensionName() string { return "Limits" }

func (limitsExtension) Validate(graphql.ExecutableSchema) error { return nil }

// costStat is where the operation's cost is kept between the checks and
// the response.
const costStat = "meshgate.cost"

func (e limitsExtension) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if p.Query == "" || (e.cached != nil && e.cached(ctx, p.Query)) {
		return nil
	}
	src := &ast.Source{Input: p.Query}
	if max := e.limits.Tokens; max > 0 {
		if n := countTokens(src, max); n > max {
			return limitError("tokens", max, 0, fmt.Sprintf("the document has more than %d tokens", max))
		}
	}
	doc, err := parser.ParseQuery(src)
	if err != nil {
		return nil // gqlgen parses it again and reports the syntax error
	}
	return checkShape(doc, p.OperationName, e.limits)
}

// countTokens lexes src and returns the number of tokens, stopping once it
// exceeds max (a lexical error stops it too: the parser reports it).
func countTokens(src *ast.Source, max int) int {
	lx := lexer.New(src)
	n := 0
	for n <= max {
		tok, err := lx.ReadToken()
		if err != nil || tok.Kind == lexer.EOF {
			break
		}
		n++
	}
	return n
}

func (e limitsExtension) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	cost, err := operationCost(oc, e.limits)
	oc.Stats.SetExtension(costStat, cost)
	return err
}

func (e limitsExtension) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	if graphql.HasOperationContext(ctx) {
		requested, _ := graphql.GetOperationContext(ctx).Stats.GetExtension(costStat).(int)
		graphql.RegisterExtension(ctx, "cost", map[string]any{"requested": requested, "limit": e.limits.Cost})
	}
	return next(ctx)
}

// shape walks a parsed document before validation, expanding fragments,
// and stops at the first limit exceeded. Every count is bounded by the
// Fields limit, so fragments that spread each other many times over (or
// in a cycle, which validation reports afterwards) cannot make it run
// long.
type shape struct {
	doc       *ast.QueryDocument
	lim       Limits
	fields    int
	visiting  map[string]bool
	err       *gqlerror.Error
	fragments map[string]*ast.FragmentDefinition
}

func checkShape(doc *ast.QueryDocument, opName string, lim Limits) *gqlerror.Error {
	s := &shape{doc: doc, lim: lim, visiting: map[string]bool{}, fragments: map[string]*ast.FragmentDefinition{}}
	for _, f := range doc.Fragments {
		s.fragments[f.Name] = f
	}
	// Aliases and directives are counted over the text of the document.
	aliases, directives := 0, 0
	var walkText func(set ast.SelectionSet)
	walkText = func(set ast.SelectionSet) {
		for _, sel := range set {
			switch sel := sel.(type) {
			case *ast.Field:
				if sel.Alias != "" && sel.Alias != sel.Name {
					aliases++
				}
				directives += len(sel.Directives)
				walkText(sel.SelectionSet)
			case *ast.InlineFragment:
				directives += len(sel.Directives)
				walkText(sel.SelectionSet)
			case *ast.FragmentSpread:
				directives += len(sel.Directives)
			}
		}
	}
	for _, op := range doc.Operations {
		directives += len(op.Directives)
		for _, v := range op.VariableDefinitions {
			directives += len(v.Directives)
		}
		walkText(op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		directives += len(f.Directives)
		walkText(f.SelectionSet)
	}
	if max := lim.Aliases; max > 0 && aliases > max {
		return limitError("aliases", max, aliases, fmt.Sprintf("%d aliases, at most %d allowed", aliases, max))
	}
	if max := lim.Directives; max > 0 && directives > max {
		return limitError("directives", max, directives, fmt.Sprintf("%d directives, at most %d allowed", directives, max))
	}

	// The other limits apply to the operation that runs (or every one,
	// when the name does not pick one: validation reports that).
	for _, op := range doc.Operations {
		if opName != "" && op.Name != opName {
			continue
		}
		for _, v := range op.VariableDefinitions {
			if v.DefaultValue != nil {
				s.checkArguments(ast.ArgumentList{{Name: "$" + v.Variable, Value: v.DefaultValue}})
			}
		}
		if s.checkDirectives(op.Directives); s.err != nil {
			return s.err
		}
		roots := s.merged([]ast.SelectionSet{op.SelectionSet}, 1)
		if s.err != nil {
			return s.err
		}
		if max := lim.RootFields; max > 0 && roots > max {
			return limitError("rootFields", max, roots, fmt.Sprintf("%d root fields, at most %d allowed", roots, max))
		}
	}
	return nil
}

// inputDepth is how deeply argument literals may nest objects and lists
// before validation, whose rules on values cost the square of the nesting:
// twice the where depth and then some, so that every where within
// WhereDepth passes (it is checked exactly after validation).
func (l Limits) inputDepth() int {
	if l.WhereDepth <= 0 {
		return 0
	}
	return 2*l.WhereDepth + 2
}

// checkArguments bounds the nesting of argument literals.
func (s *shape) checkArguments(args ast.ArgumentList) {
	max := s.lim.inputDepth()
	if max <= 0 {
		return
	}
	for _, a := range args {
		if d := valueDepth(a.Value, max+1); d > max {
			s.err = limitError("inputDepth", max, 0, fmt.Sprintf("the argument %s nests objects and lists deeper than %d", a.Name, max))
			return
		}
	}
}

func (s *shape) checkDirectives(ds ast.DirectiveList) {
	for _, d := range ds {
		if s.checkArguments(d.Arguments); s.err != nil {
			return
		}
	}
}

// valueDepth is the nesting of objects and lists in v, counted up to stop.
func valueDepth(v *ast.Value, stop int) int {
	if v == nil || (v.Kind != ast.ObjectValue && v.Kind != ast.ListValue) {
		return 0
	}
	d := 0
	for _, c := range v.Children {
		if d = max(d, valueDepth(c.Value, stop-1)); d >= stop {
			break
		}
	}
	return d + 1
}

// merged checks the selection sets that GraphQL merges into one (those of
// the fields sharing a response name, with fragments expanded) at depth,
// and returns how many fields they select. depth is the depth of the
// fields in sets (1 at the root); introspection is -1 outside
// introspection, else the nesting of its lists. Every selection visited
// (field, inline fragment, fragment spread) counts against the Fields
// limit, which therefore bounds the walk.
func (s *shape) merged(sets []ast.SelectionSet, depth int) int {
	return s.mergedIn(sets, depth, -1)
}

func (s *shape) mergedIn(sets []ast.SelectionSet, depth, introspection int) int {
	byName := map[string][]*ast.Field{}
	var order []string
	var collect func(set ast.SelectionSet)
	collect = func(set ast.SelectionSet) {
		for _, sel := range set {
			if s.err != nil {
				return
			}
			s.fields++
			if max := s.lim.Fields; max > 0 && s.fields > max {
				s.err = limitError("fields", max, 0, fmt.Sprintf("more than %d selections (fragments expanded)", max))
				return
			}
			switch sel := sel.(type) {
			case *ast.Field:
				if s.checkArguments(sel.Arguments); s.err != nil {
					return
				}
				if s.checkDirectives(sel.Directives); s.err != nil {
					return
				}
				name := sel.Alias
				if name == "" {
					name = sel.Name
				}
				if _, ok := byName[name]; !ok {
					order = append(order, name)
				}
				byName[name] = append(byName[name], sel)
				if max := s.lim.RepeatedFields; max > 0 && len(byName[name]) > max {
					s.err = limitError("repeatedFields", max, 0,
						fmt.Sprintf("the field %q is selected more than %d times in one selection set", name, max))
					return
				}
			case *ast.InlineFragment:
				if s.checkDirectives(sel.Directives); s.err != nil {
					return
				}
				collect(sel.SelectionSet)
			case *ast.FragmentSpread:
				if s.checkDirectives(sel.Directives); s.err != nil {
					return
				}
				f := s.fragments[sel.Name]
				if f == nil || s.visiting[sel.Name] {
					continue // unknown or cyclic: validation says so
				}
				s.visiting[sel.Name] = true
				collect(f.SelectionSet)
				s.visiting[sel.Name] = false
			}
		}
	}
	for _, set := range sets {
		collect(set)
	}
	if s.err != nil {
		return 0
	}
	n := 0
	for _, name := range order {
		fields := byName[name]
		n += len(fields)
		var children []ast.SelectionSet
		for _, f := range fields {
			if len(f.SelectionSet) > 0 {
				children = append(children, f.SelectionSet)
			}
		}
		if len(children) == 0 {
			continue
		}
		fieldName := fields[0].Name
		childDepth, childIntro := depth+1, introspection
		switch {
		case introspection >= 0 || strings.HasPrefix(fieldName, "__"):
			childDepth = depth // introspection is bounded by its own rule
			if childIntro < 0 {
				childIntro = 0
			}
			switch fieldName {
			case "fields", "inputFields", "interfaces", "possibleTypes":
				childIntro++
				if max := s.lim.IntrospectionDepth; max > 0 && childIntro > max {
					s.err = limitError("introspectionDepth", max, childIntro,
						fmt.Sprintf("introspection nests %q deeper than %d", fieldName, max))
					return 0
				}
			}
		default:
			if max := s.lim.Depth; max > 0 && childDepth > max {
				s.err = limitError("depth", max, childDepth, fmt.Sprintf("the query is nested deeper than %d fields", max))
				return 0
			}
		}
		s.mergedIn(children, childDepth, childIntro)
		if s.err != nil {
			return 0
		}
	}
	return n
}
