package products

import (
	"context"
	"fmt"
	"reflect"

	"github.com/uptrace/bun"
)

// GetManyBy returns the rows whose field (a unique column holding an int64,
// e.g. a reference) has one of the values, in one statement, keyed by that
// value. Missing values are absent from the map.
func GetManyBy[T any](ctx context.Context, db bun.IDB, e *Entity, field string, values []int64) (map[int64]*T, error) {
	return Lookup[T](ctx, db, e, field, values, nil)
}

// Lookup is GetManyBy (field "id" looks up by key) restricted by a row
// policy of the entity, if not nil: rows outside it are missing.
func Lookup[T any](ctx context.Context, db bun.IDB, e *Entity, field string, values []int64, restrict *Condition) (map[int64]*T, error) {
	f := e.Field(field)
	if f == nil || f.Derived || f.Type != TypeID {
		return nil, fmt.Errorf("get %s by %s: not a key or reference of the entity", e.Name, field)
	}
	out := make(map[int64]*T, len(values))
	if len(values) == 0 {
		return out, nil
	}
	var rows []*T
	q := db.NewSelect().Model(&rows)
	var params *readParams
	if restrict == nil {
		q, params = whereKeys[T](db, q, f.Column, values)
	} else {
		q = q.Where("? IN (?)", bun.Ident(f.Column), bun.List(values))
		c := compilerFor(db)
		var x sqlExpr
		if err := c.restrict(&x, e, restrict); err != nil {
			return nil, err
		}
		q = q.Where(x.sql.String(), x.args...)
	}
	if err := selectRowsWith(ctx, db, q, &rows, params); err != nil {
		return nil, fmt.Errorf("get %s by %s: %w", e.Name, field, err)
	}
	keyOf, err := int64Of[T](db.Dialect().Tables().Get(reflect.TypeFor[T]()), f.Column)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if k, ok := keyOf(r); ok {
			out[k] = r
		}
	}
	return out, nil
}

// whereKeys restricts q to the rows whose column holds one of keys: as one
// array parameter where reads of T run prepared (the statement's text is
// then the same whatever the keys), else with the keys written in.
func whereKeys[T any](db bun.IDB, q *bun.SelectQuery, column string, keys []int64) (*bun.SelectQuery, *readParams) {
	if params := paramsFor[T](db, q); params != nil {
		return q.Where("? = ANY (?)", bun.Ident(column), params.keys(keys)), params
	}
	return q.Where("? IN (?)", bun.Ident(column), bun.List(keys)), nil
}
