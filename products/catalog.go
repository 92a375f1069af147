package products

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/uptrace/bun"
)

// Link is one edge of the mesh's lineage: a product consuming the change
// events of an entity of another product.
type Link struct {
	Consumer    string // consuming product
	Producer    string // product owning the entity
	Entity      string // GraphQL type of the consumed entity
	Description string // what the consumer does with the events
}

// Lineage derives the lineage of a mesh from its products' declared Inputs,
// in the order of ds and of each product's inputs. It fails on an input
// that names a product or entity missing from ds.
func Lineage(ds []*Descriptor) ([]Link, error) {
	byName := make(map[string]*Descriptor, len(ds))
	for _, d := range ds {
		byName[d.Name] = d
	}
	var out []Link
	for _, d := range ds {
		for _, in := range d.Inputs {
			p := byName[in.Product]
			if p == nil {
				return nil, fmt.Errorf("%s: input from unknown data product %q", d.Name, in.Product)
			}
			if p.Entity(in.Entity) == nil {
				return nil, fmt.Errorf("%s: input from %s names unknown entity %q", d.Name, in.Product, in.Entity)
			}
			out = append(out, Link{Consumer: d.Name, Producer: in.Product, Entity: in.Entity, Description: in.Description})
		}
	}
	return out, nil
}

// Freshness tells how recent a product's data is, from its audit log.
type Freshness struct {
	// Sequence is the position of the last change (0: none yet).
	Sequence int64
	// At is when the last change was committed; nil while the log is
	// empty.
	At *time.Time
}

// Freshness reads the position and time of the product's last change: the
// log's counter row and the entry at that position, found by primary key
// (sequences follow commit order), so it costs two point reads however long
// the log. (Backlog counts the changes not yet published.)
func (s *Store) Freshness(ctx context.Context) (Freshness, error) {
	latest, err := s.Latest(ctx)
	if err != nil {
		return Freshness{}, err
	}
	f := Freshness{Sequence: latest}
	if latest == 0 {
		return f, nil
	}
	var at time.Time
	err = s.DB.NewSelect().Model((*AuditEntry)(nil)).Column("at").Where("sequence = ?", latest).Scan(ctx, &at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return Freshness{}, fmt.Errorf("%s: freshness: %w", s.Product.Name, err)
	default:
		at = at.UTC()
		f.At = &at
	}
	return f, nil
}

// RowCount counts the rows of one of the product's entities.
func (s *Store) RowCount(ctx context.Context, e *Entity) (int64, error) {
	n, err := s.DB.NewSelect().TableExpr("?", bun.Ident(e.Table)).Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: count %s: %w", s.Product.Name, e.Name, err)
	}
	return int64(n), nil
}

// SQLType returns the SQL type of a field's column as the store's dialect
// creates it (e.g. BIGINT, VARCHAR, TIMESTAMPTZ), read from bun's table
// metadata of the entity's model; "" for derived fields or without a model.
func (s *Store) SQLType(e *Entity, f *Field) string {
	if e.Model == nil || f.Column == "" || f.Derived {
		return ""
	}
	t := s.DB.Dialect().Tables().Get(reflect.TypeOf(e.Model))
	col := t.LookupField(f.Column)
	if col == nil {
		return ""
	}
	return col.CreateTableSQLType
}
