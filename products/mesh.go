package products

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// Mesh is a set of data products with their stores open: whatever a
// registration list holds (the demo mesh's is products/demo.Products).
// Products reach each other only through it, by product, entity and field
// names, never by importing each other's packages.
type Mesh struct {
	Products []*Product
	// Stores holds the products' stores, in the order of Products.
	Stores []*Store
}

// OpenMesh opens the store of every product; dsn returns the DSN of a
// product's store. It fails on products that reference unknown entities.
// On error, the stores opened so far are closed. The caller closes the mesh.
func OpenMesh(ctx context.Context, ps []*Product, dsn func(product string) string, hooks ...bun.QueryHook) (*Mesh, error) {
	if err := CheckReferences(ps); err != nil {
		return nil, err
	}
	m := &Mesh{Products: ps}
	for _, p := range ps {
		s, err := Open(ctx, &p.Descriptor, dsn(p.Name), p.Migrations, hooks...)
		if err != nil {
			m.Close()
			return nil, err
		}
		m.Stores = append(m.Stores, s)
	}
	return m, nil
}

// Store returns the store of the named product, or nil.
func (m *Mesh) Store(product string) *Store {
	for _, s := range m.Stores {
		if s.Product.Name == product {
			return s
		}
	}
	return nil
}

// Product returns the named product, or nil.
func (m *Mesh) Product(name string) *Product {
	for _, p := range m.Products {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Close closes every store.
func (m *Mesh) Close() error {
	var errs []error
	for _, s := range m.Stores {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// Ping checks that every store answers.
func (m *Mesh) Ping(ctx context.Context) error {
	for _, s := range m.Stores {
		if err := s.DB.PingContext(ctx); err != nil {
			return fmt.Errorf("%s store: %w", s.Product.Name, err)
		}
	}
	return nil
}

// Seeding is what a product's demo seed is given.
type Seeding struct {
	// Scale sizes the demo data: 1 is the default demo, 0.01 a tiny one.
	Scale float64
	// Start and End bound the times of the demo data (two years up to
	// 2026-11-01).
	Start, End time.Time
	Progress   Progress
}

// Size scales a count of the default demo (at least 1).
func (s Seeding) Size(base int) int { return max(1, int(float64(base)*s.Scale)) }

// Seed fills the products' empty stores with deterministic demo data, in
// registration order (a product's seed may read what the products before
// it wrote). A product is seeded when it has a Seed and its audit log is
// empty (seeds write through the write path, so they are audited too). It
// returns whether it seeded anything; a scale of 0 seeds nothing.
func (m *Mesh) Seed(ctx context.Context, scale float64, progress Progress) (bool, error) {
	if scale <= 0 {
		return false, nil
	}
	end := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	s := Seeding{Scale: scale, Start: end.AddDate(-2, 0, 0), End: end, Progress: progress}
	seeded := false
	for i, p := range m.Products {
		if p.Seed == nil {
			continue
		}
		latest, err := m.Stores[i].Latest(ctx)
		if err != nil {
			return seeded, fmt.Errorf("seed %s: %w", p.Name, err)
		}
		if latest > 0 {
			continue
		}
		if err := p.Seed(ctx, m, s); err != nil {
			return seeded, fmt.Errorf("seed %s: %w", p.Name, err)
		}
		seeded = true
	}
	return seeded, nil
}

// Entity returns an entity of a product of the mesh and the product's store.
func (m *Mesh) Entity(product, entity string) (*Store, *Entity, error) {
	s := m.Store(product)
	if s == nil {
		return nil, nil, fmt.Errorf("the mesh has no data product %q", product)
	}
	e := s.Product.Entity(entity)
	if e == nil {
		return nil, nil, fmt.Errorf("data product %s has no entity %q", product, entity)
	}
	return s, e, nil
}

// Rows reads the given fields (GraphQL names) of the rows of a product's
// entity that match where (the filter maps the GraphQL API takes, e.g.
// {"id": {"in": ids}}), ordered by id. Values have the Go types filters
// take: int64 for ids and references, int, float64, Decimal, string, time.Time;
// nil for null. A product reads another's data this way, by names: it
// never imports the other's package nor joins its tables.
func (m *Mesh) Rows(ctx context.Context, product, entity string, where map[string]any, fields ...string) ([]map[string]any, error) {
	s, e, err := m.Entity(product, entity)
	if err != nil {
		return nil, err
	}
	c := compilerFor(s.DB)
	q := s.DB.NewSelect().TableExpr(quoteIdent(c.dialect, e.Table)).OrderExpr(quoteIdent(c.dialect, "id"))
	fs := make([]*Field, len(fields))
	for i, name := range fields {
		f := e.Field(name)
		if f == nil || f.Derived || f.Type == TypeObject {
			return nil, fmt.Errorf("%s.%s has no scalar field %q", product, entity, name)
		}
		fs[i] = f
		q = q.ColumnExpr(quoteIdent(c.dialect, f.Column) + " AS " + quoteIdent(c.dialect, "f_"+f.Name))
	}
	if where != nil {
		var x sqlExpr
		if err := c.where(&x, e, where, "where"); err != nil {
			return nil, err
		}
		q = q.Where(x.sql.String(), x.args...)
	}
	var raw []map[string]any
	if err := q.Scan(ctx, &raw); err != nil {
		return nil, fmt.Errorf("read %s.%s: %w", product, entity, err)
	}
	out := make([]map[string]any, len(raw))
	for i, r := range raw {
		row := make(map[string]any, len(fs))
		for _, f := range fs {
			v, err := rowValue(f, r["f_"+f.Name])
			if err != nil {
				return nil, fmt.Errorf("read %s.%s.%s: %w", product, entity, f.Name, err)
			}
			row[f.Name] = v
		}
		out[i] = row
	}
	return out, nil
}

// Exists tells whether a product's entity has a row with the id.
func (m *Mesh) Exists(ctx context.Context, product, entity string, id int64) (bool, error) {
	rows, err := m.Rows(ctx, product, entity, map[string]any{"id": map[string]any{"eq": id}}, "id")
	return len(rows) > 0, err
}

// rowValue converts a value scanned into a map to the field's Go type.
func rowValue(f *Field, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch f.Type {
	case TypeTime:
		switch t := v.(type) {
		case time.Time:
			return t.UTC(), nil
		case string, []byte:
			s := strings.TrimSpace(fmt.Sprintf("%s", t))
			for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
				if tm, err := time.Parse(layout, s); err == nil {
					return tm.UTC(), nil
				}
			}
			return nil, fmt.Errorf("not a time: %q", s)
		}
		return nil, fmt.Errorf("not a time: %T", v)
	case TypeDecimal:
		var d Decimal
		if err := d.Scan(v); err != nil {
			return nil, err
		}
		return d, nil
	case TypeEnum, TypeString:
		switch s := v.(type) {
		case string:
			return s, nil
		case []byte:
			return string(s), nil
		}
		return fmt.Sprint(v), nil
	}
	return groupValue(f, v), nil
}
