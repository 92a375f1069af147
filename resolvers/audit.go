package resolvers

// Audit entries as the caller sees them, wherever they are read (auditLog,
// history, changes, auditEntries): images outside the caller's row policy
// are null, entries with neither image inside are left out, personal data
// is masked without pii:read and recorded in the read audit with it.

import (
	"context"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/streaming"
)

// entityOf returns the entity of a product, or nil.
func (r *Resolver) entityOf(product, entity string) *products.Entity {
	s := r.Data.Store(product)
	if s == nil {
		return nil
	}
	return s.Product.Entity(entity)
}

// productOfEntity returns the product of the entity named, or nil.
func (r *Resolver) productOfEntity(entity string) *products.Descriptor {
	for _, s := range r.Data.Stores {
		if s.Product.Entity(entity) != nil {
			return s.Product
		}
	}
	return nil
}

// changeScope returns the products a changes subscription covers (see
// readScope); entities of products the caller may not read are FORBIDDEN.
func (r *Resolver) changeScope(a *access, named, entities []string) ([]string, error) {
	scope, err := r.readScope(a, "products", named)
	if err != nil {
		return nil, err
	}
	for _, name := range entities {
		if d := r.productOfEntity(name); d != nil && !a.canRead(d.Name) {
			return nil, a.need(products.ReadRole(d.Name), "streaming changes of "+name)
		}
	}
	return scope, nil
}

// entryPolicy is the row policy restricting the caller's view of an
// entry's entity, or nil.
func (r *Resolver) entryPolicy(a *access, e *products.AuditEntry) *products.Condition {
	en := r.entityOf(e.Product, e.Entity)
	if en == nil {
		return nil
	}
	return a.policy(en)
}

// entryVisible tells whether the caller's row policies admit an entry.
func (r *Resolver) entryVisible(a *access, e *products.AuditEntry) bool {
	c := r.entryPolicy(a, e)
	return c == nil || entryIn(c, e)
}

// restrictEntries makes a stream of audit entries deliver only those the
// caller's row policies admit.
func (r *Resolver) restrictEntries(a *access, f *streaming.Filter) {
	if r.Policies.Empty() {
		return
	}
	restrictStream(f, func(e *products.AuditEntry) *products.Condition { return r.entryPolicy(a, e) })
}

// entryImage is the before or after image of an entry as the caller may
// see it: null outside its row policy, personal fields masked without
// pii:read (else recorded in the response's read log).
func (r *Resolver) entryImage(ctx context.Context, a *products.AuditEntry, img *string) (map[string]any, error) {
	m, err := image(img)
	if err != nil || m == nil {
		return nil, err
	}
	e := r.entityOf(a.Product, a.Entity)
	if e == nil {
		return m, nil
	}
	acc := accessFrom(ctx, r)
	if c := acc.policy(e); c != nil {
		if ok, err := c.Match(m); err != nil || !ok {
			return nil, err
		}
	}
	if !acc.pii {
		products.MaskImage(e, m)
		return m, nil
	}
	if log := readLogFrom(ctx); log != nil {
		if fields := products.PIIPresent(e, m); len(fields) > 0 {
			log.addFields(a.Product, e.Name, fields, a.Key)
		}
	}
	return m, nil
}

// entryCursor resumes a stream after the entry.
func entryCursor(a *products.AuditEntry) string {
	if a.StreamCursor != "" {
		return a.StreamCursor
	}
	return streaming.Cursor{a.Product: a.Sequence}.String()
}

// streamedEntry is an entry delivered by a stream, with its cursor.
func streamedEntry(ev streaming.Event) (*products.AuditEntry, error) {
	a := *ev.Entry
	a.StreamCursor = ev.Cursor.String()
	return &a, nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
