package resolvers

// Authorization: what the caller of an operation may read and write, and
// the rows and fields it sees. The rules are derived once from the schema
// and the products' descriptors; nothing here names a product.
//
//   - A field whose type belongs to a product (an entity, or one of the
//     types of a product's schema files: its connections, aggregates,
//     groups, changes, …) needs <product>:read, unless its parent belongs to
//     the same product (it was checked there). A root field of Query or
//     Subscription that returns no product's type needs the read role of the
//     product whose schema file declares it (salesStats: sales).
//   - A mutation needs <product>:write of the product of its return type,
//     else of the product whose schema file declares it.
//   - Fields returning audit entries (auditLog, history, auditEntries) and
//     the read audit (piiReads) need audit:read, plus the read role of the
//     product (auditLog's and piiReads' product argument; history's parent).
//   - Dead letters (deadLetters, retryDeadLetters) need admin.
//   - The catalog, introspection (__schema, __type) and _service need
//     catalog:read; _entities needs the read role of each representation's
//     type (checked per type in findMany); changes and auditEntries are
//     restricted to the products the caller may read (see their resolvers).
//   - A personal (@pii) field is masked for callers without pii:read;
//     returned unmasked, it is recorded in the read audit (reads.go).
//
// A refused field is null with a FORBIDDEN error naming the missing role:
// the rest of the query is answered (partial data).

import (
	"context"
	"fmt"
	"path"
	"reflect"
	"strings"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/meshgate/meshgate/products"
)

// access is what one operation's caller may do, from its identity.
type access struct {
	id  *products.Identity
	pii bool
	r   *Resolver

	mu       sync.Mutex
	policies map[*products.Entity]*products.Condition // computed on first use; nil: not restricted
}

type accessKey struct{}

// WithAccess computes the caller's access once per operation from the
// identity in the context (and prepares a subscription's read audit).
// Install it with the server's AroundOperations.
func (r *Resolver) WithAccess(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	ctx = context.WithValue(ctx, accessKey{}, r.newAccess(products.IdentityFrom(ctx)))
	if op := graphql.GetOperationContext(ctx).Operation; r.ReadAudit && op != nil && op.Operation == ast.Subscription {
		ctx = r.watchSubscription(ctx)
	}
	return next(ctx)
}

func (r *Resolver) newAccess(id *products.Identity) *access {
	return &access{id: id, pii: id.HasRole(products.RolePII), r: r, policies: map[*products.Entity]*products.Condition{}}
}

// accessFrom returns the operation's access; without WithAccess (a resolver
// called some other way) it is computed from the context's identity, so
// that a caller without identity may do nothing.
func accessFrom(ctx context.Context, r *Resolver) *access {
	if a, ok := ctx.Value(accessKey{}).(*access); ok {
		return a
	}
	return r.newAccess(products.IdentityFrom(ctx))
}

// canRead tells whether the caller may read the product's data.
func (a *access) canRead(product string) bool { return a.id.HasRole(products.ReadRole(product)) }

// need returns FORBIDDEN unless the caller holds role, saying what for.
func (a *access) need(role, what string) error {
	if a.id.HasRole(role) {
		return nil
	}
	return &products.Error{Code: products.Forbidden, Message: fmt.Sprintf("%s needs the %s role", what, role),
		Extensions: map[string]any{"role": role}}
}

// policy returns the row policy restricting the caller's reads of e, or nil.
func (a *access) policy(e *products.Entity) *products.Condition {
	if a.r.Policies.Empty() {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.policies[e]
	if !ok {
		c = a.r.Policies.For(a.id, e)
		a.policies[e] = c
	}
	return c
}

// restricted tells whether a row policy restricts any entity of the
// product for the caller.
func (a *access) restricted(d *products.Descriptor) bool {
	for _, e := range d.Entities {
		if a.policy(e) != nil {
			return true
		}
	}
	return false
}

// unrestricted refuses a product's figures computed over all its rows
// (such as salesStats) to a caller whom a row policy restricts on any of
// the product's entities: the figures would include rows it may not see.
func unrestricted(ctx context.Context, r *Resolver, d *products.Descriptor, what string) error {
	if accessFrom(ctx, r).restricted(d) {
		return products.Forbid("", "%s sums every row of %s; a row policy restricts what you may read of it", what, d.Name)
	}
	return nil
}

// refusePII refuses a where filter, ordering or grouping on personal data
// for a caller without pii:read.
func (a *access) refusePII(e *products.Entity, where map[string]any, orderBy []map[string]any, groupBy []string) error {
	if a.pii {
		return nil
	}
	at, f := products.PIIUse(e, where, orderBy, groupBy)
	if f == nil {
		return nil
	}
	err := products.Forbid(at, "%s.%s holds personal data: filtering, sorting or grouping on it needs the %s role", e.Name, f.Name, products.RolePII)
	err.Extensions = map[string]any{"role": products.RolePII}
	return err
}

// fieldRule is what resolving one field of the schema needs.
type fieldRule struct {
	read  string // the product whose read role it needs
	write string // the product whose write role it needs (mutations)
	role  string // another role it needs
	// productArg names the argument holding a product whose read role it
	// needs too (auditLog, piiReads).
	productArg string
	// pii is the personal field of entity (of product) the field resolves.
	pii     *products.Field
	entity  *products.Entity
	product string
}

// rules maps the schema's field definitions to what they need; fields
// needing nothing are absent.
type rules struct {
	byField  map[*ast.FieldDefinition]*fieldRule
	byName   map[string]map[string]*fieldRule // object → field, for definitions outside the schema's map (introspection)
	products map[string]bool
}

// rulesOf derives the rules from the composed schema and the mesh's
// products (once per resolver).
func (r *Resolver) rulesOf() *rules {
	r.rulesOnce.Do(func() { r.rules = deriveRules(Schema(), r.Data) })
	return r.rules
}

// auditTypes are the mesh's types carrying audit entries.
var auditTypes = map[string]bool{"AuditEntry": true, "AuditEntryConnection": true}

func deriveRules(s *ast.Schema, mesh *products.Mesh) *rules {
	rs := &rules{byField: map[*ast.FieldDefinition]*fieldRule{}, byName: map[string]map[string]*fieldRule{}, products: map[string]bool{}}
	entities := map[string]*products.Entity{}
	entityProduct := map[string]string{}
	for _, p := range mesh.Products {
		rs.products[p.Name] = true
		for _, e := range p.Entities {
			entities[e.Name] = e
			entityProduct[e.Name] = p.Name
		}
	}
	// The product a type belongs to: its @entity directive, else the
	// product whose schema file declares it.
	typeProduct := func(def *ast.Definition) string {
		if def == nil {
			return ""
		}
		if d := def.Directives.ForName("entity"); d != nil {
			if a := d.Arguments.ForName("product"); a != nil && a.Value != nil {
				return a.Value.Raw
			}
		}
		return rs.fileProduct(def.Position)
	}
	roots := map[string]bool{}
	for _, t := range []*ast.Definition{s.Query, s.Mutation, s.Subscription} {
		if t != nil {
			roots[t.Name] = true
		}
	}
	for _, def := range s.Types {
		if def.Kind != ast.Object || strings.HasPrefix(def.Name, "__") {
			continue
		}
		parent := typeProduct(def)
		for _, fd := range def.Fields {
			ru := &fieldRule{}
			ret := typeProduct(s.Types[fd.Type.Name()])
			switch {
			case s.Mutation != nil && def.Name == s.Mutation.Name:
				ru.write = ret
				if ru.write == "" {
					ru.write = rs.fileProduct(fd.Position)
				}
			case roots[def.Name]:
				ru.read = ret
				if ru.read == "" {
					ru.read = rs.fileProduct(fd.Position)
				}
			case ret != parent:
				ru.read = ret
			}
			if auditTypes[fd.Type.Name()] {
				ru.role = products.RoleAudit
			}
			if roots[def.Name] {
				switch fd.Name {
				case "catalog", "_service":
					ru.role = products.RoleCatalog
				case "auditLog":
					ru.productArg = "product"
				case "piiReads":
					ru.role, ru.productArg = products.RoleAudit, "product"
				case "deadLetters", "retryDeadLetters":
					// Dead letters hold whole change events, of any
					// product, personal data included.
					ru.role = products.RoleAdmin
				}
			}
			if e := entities[def.Name]; e != nil {
				if f := e.Field(fd.Name); f != nil && f.PII {
					ru.pii, ru.entity, ru.product = f, e, entityProduct[def.Name]
				}
			}
			if *ru != (fieldRule{}) {
				rs.byField[fd] = ru
				if rs.byName[def.Name] == nil {
					rs.byName[def.Name] = map[string]*fieldRule{}
				}
				rs.byName[def.Name][fd.Name] = ru
			}
		}
	}
	// Introspection reads the whole schema.
	if s.Query != nil {
		for _, name := range []string{"__schema", "__type"} {
			if rs.byName[s.Query.Name] == nil {
				rs.byName[s.Query.Name] = map[string]*fieldRule{}
			}
			rs.byName[s.Query.Name][name] = &fieldRule{role: products.RoleCatalog}
		}
	}
	return rs
}

// fileProduct is the product whose schema file (schema/<product>.graphqls
// or schema/<product>.gen.graphqls) holds a definition, or "".
func (rs *rules) fileProduct(pos *ast.Position) string {
	if pos == nil || pos.Src == nil {
		return ""
	}
	name := strings.TrimSuffix(strings.TrimSuffix(path.Base(pos.Src.Name), ".graphqls"), ".gen")
	if rs.products[name] {
		return name
	}
	return ""
}

func (rs *rules) of(fc *graphql.FieldContext) *fieldRule {
	if ru, ok := rs.byField[fc.Field.Definition]; ok {
		return ru
	}
	if strings.HasPrefix(fc.Field.Name, "__") {
		return rs.byName[fc.Object][fc.Field.Name]
	}
	return nil
}

// Authorize is the field middleware enforcing the rules (install it with
// the server's AroundFields): it refuses fields the caller may not
// resolve, masks personal fields for callers without pii:read, and records
// those returned unmasked for the read audit.
func (r *Resolver) Authorize(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Field.Field == nil {
		return next(ctx)
	}
	ru := r.rulesOf().of(fc)
	if ru == nil {
		return next(ctx)
	}
	a := accessFrom(ctx, r)
	if err := ru.check(a, fc); err != nil {
		return nil, err
	}
	if ru.pii == nil {
		return next(ctx)
	}
	v, err := next(ctx)
	if err != nil || v == nil {
		return v, err
	}
	if !a.pii {
		return mask(v), nil
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return v, nil
	}
	if log := readLogFrom(ctx); log != nil {
		if key, ok := parentKey(fc); ok {
			log.add(ru.product, ru.entity.Name, ru.pii.Name, key)
		}
	}
	return v, nil
}

func (ru *fieldRule) check(a *access, fc *graphql.FieldContext) error {
	name := fc.Object + "." + fc.Field.Name
	if ru.role != "" {
		if err := a.need(ru.role, name); err != nil {
			return err
		}
	}
	if ru.read != "" {
		if err := a.need(products.ReadRole(ru.read), name); err != nil {
			return err
		}
	}
	if ru.write != "" {
		if err := a.need(products.WriteRole(ru.write), name); err != nil {
			return err
		}
	}
	if ru.productArg != "" {
		if p, ok := products.Deref(fc.Args[ru.productArg]).(string); ok {
			if err := a.need(products.ReadRole(p), name+"("+ru.productArg+": "+p+")"); err != nil {
				return err
			}
		}
	}
	return nil
}

// mask returns the masked form of a personal field's value of the Go type
// gqlgen expects: "***" for strings (a pointer to it for nullable ones),
// nil for anything else (such fields are nullable, see products.Validate).
func mask(v any) any {
	switch v.(type) {
	case string:
		return products.Masked
	case *string:
		m := products.Masked
		return &m
	}
	return nil
}

// parentKey reads the key (the ID field) of the object whose field is
// being resolved, from the nearest parent field context with a result (the
// list item or the field that returned the object).
func parentKey(fc *graphql.FieldContext) (int64, bool) {
	for p := fc.Parent; p != nil; p = p.Parent {
		if p.Result == nil {
			continue
		}
		v := reflect.ValueOf(p.Result)
		for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
			if v.IsNil() {
				return 0, false
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return 0, false
		}
		id := v.FieldByName("ID")
		if !id.IsValid() || id.Kind() != reflect.Int64 {
			return 0, false
		}
		return id.Int(), true
	}
	return 0, false
}
