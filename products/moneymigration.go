package products

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// ConvertToCents is a migration for stores created before money was exact:
// it turns the named columns of model's table from floating point (REAL on
// SQLite, DOUBLE PRECISION on PostgreSQL) holding amounts into BIGINT
// holding cents, rounding each amount to the nearest cent (all amounts were
// written rounded to cents, so nothing is lost). Columns that already hold
// integers are left alone, so it is a no-op on stores created since.
//
// PostgreSQL alters the column type in place (ALTER COLUMN … TYPE bigint
// USING round(x * 100)), keeping indexes. SQLite cannot change a column's
// declared type, and a column declared REAL converts the integers stored
// in it back to floating point, so the table is rebuilt: created anew from
// model, filled from the old one, the old one dropped and the new one
// renamed, its indexes recreated. Both run in one transaction.
func ConvertToCents(ctx context.Context, db *bun.DB, model any, columns ...string) error {
	table := db.Table(reflect.TypeOf(model))
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var floats []string
		for _, col := range columns {
			isFloat, err := floatColumn(ctx, tx, table.Name, col)
			if err != nil {
				return fmt.Errorf("convert %s.%s to cents: %w", table.Name, col, err)
			}
			if isFloat {
				floats = append(floats, col)
			}
		}
		if len(floats) == 0 {
			return nil
		}
		if db.Dialect().Name() == dialect.PG {
			for _, col := range floats {
				if _, err := tx.ExecContext(ctx, "ALTER TABLE ? ALTER COLUMN ? TYPE bigint USING round(? * 100)::bigint",
					bun.Ident(table.Name), bun.Ident(col), bun.Ident(col)); err != nil {
					return fmt.Errorf("convert %s.%s to cents: %w", table.Name, col, err)
				}
			}
			return nil
		}
		return rebuildSQLite(ctx, tx, model, table.Name, floats)
	})
}

// floatColumn tells whether the table's column is declared with a
// floating-point type.
func floatColumn(ctx context.Context, tx bun.Tx, table, column string) (bool, error) {
	var typ string
	var err error
	if tx.Dialect().Name() == dialect.PG {
		err = tx.NewRaw("SELECT data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?",
			table, column).Scan(ctx, &typ)
	} else {
		err = tx.NewRaw("SELECT type FROM pragma_table_info(?) WHERE name = ?", table, column).Scan(ctx, &typ)
	}
	if err != nil {
		return false, err
	}
	switch strings.ToLower(typ) {
	case "real", "double precision", "double", "float", "numeric":
		return true, nil
	}
	return false, nil
}

func rebuildSQLite(ctx context.Context, tx bun.Tx, model any, table string, floats []string) error {
	var indexes []string
	if err := tx.NewRaw("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", table).
		Scan(ctx, &indexes); err != nil {
		return fmt.Errorf("rebuild %s: read indexes: %w", table, err)
	}
	tmp := table + "_mg_cents"
	if _, err := tx.NewCreateTable().Model(model).ModelTableExpr("?", bun.Ident(tmp)).Exec(ctx); err != nil {
		return fmt.Errorf("rebuild %s: %w", table, err)
	}
	var cols, exprs []string
	for _, f := range tx.Dialect().Tables().Get(reflect.TypeOf(model)).Fields {
		name := `"` + f.Name + `"`
		cols = append(cols, name)
		expr := name
		for _, c := range floats {
			if c == f.Name {
				expr = "CAST(round(" + name + " * 100) AS INTEGER)"
			}
		}
		exprs = append(exprs, expr)
	}
	stmts := []string{
		fmt.Sprintf(`INSERT INTO "%s" (%s) SELECT %s FROM "%s"`, tmp, strings.Join(cols, ", "), strings.Join(exprs, ", "), table),
		fmt.Sprintf(`DROP TABLE "%s"`, table),
		fmt.Sprintf(`ALTER TABLE "%s" RENAME TO "%s"`, tmp, table),
	}
	for _, s := range append(stmts, indexes...) {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("rebuild %s: %w", table, err)
		}
	}
	return nil
}
