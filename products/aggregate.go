package products

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// AggregateArgs are the arguments of an entity's aggregate field.
type AggregateArgs struct {
	Where   map[string]any
	GroupBy []string       // values of the entity's GroupField enum
	Having  map[string]any // {count: IntFilter, sum: {field: FloatFilter}, …}
	// Restrict, if set, is a row policy of the entity ANDed with Where.
	Restrict *Condition
	// MaxGroups, if positive, bounds the groups returned: the statement
	// reads at most one more, and more than MaxGroups is LIMIT_EXCEEDED.
	MaxGroups int
}

// AggregateRow is one group of an aggregate: the values of the grouped
// fields (nil without groupBy), the row count, and per aggregate function
// the value for each numeric field (nil when the group has no values).
type AggregateRow struct {
	Group              map[string]any
	Count              int
	Sum, Avg, Min, Max map[string]any
}

var aggregateFuncs = []string{"sum", "avg", "min", "max"}

// Aggregate computes count and sum/avg/min/max of the numeric fields per
// group in one SQL statement (WHERE, GROUP BY and HAVING pushed down).
// Groups come ordered by their key.
func Aggregate(ctx context.Context, db bun.IDB, e *Entity, a AggregateArgs) ([]*AggregateRow, error) {
	c := compilerFor(db)
	q := db.NewSelect().TableExpr(quoteIdent(c.dialect, e.Table))
	var groups []*Field
	seen := map[*Field]bool{}
	for i, g := range a.GroupBy {
		f := e.byGroup(g)
		if f == nil {
			return nil, Invalid(fmt.Sprintf("groupBy[%d]", i), "%s cannot be grouped by %q", e.Name, g)
		}
		if seen[f] {
			continue
		}
		seen[f] = true
		groups = append(groups, f)
		expr := c.groupExpr(e, f)
		q = q.ColumnExpr(expr + " AS " + quoteIdent(c.dialect, "g_"+f.Name)).GroupExpr(expr).OrderExpr(expr)
	}
	q = q.ColumnExpr("COUNT(*) AS mg_count")
	nums := e.numeric()
	for _, f := range nums {
		col := quoteIdent(c.dialect, f.Column)
		if exact(f) {
			// Exact: integer sums (of cents for money); the average is
			// divided in Go from the sum and the count.
			for fn, expr := range map[string]string{"sum": "SUM", "n": "COUNT", "min": "MIN", "max": "MAX"} {
				q = q.ColumnExpr(expr + "(" + col + ") AS " + quoteIdent(c.dialect, fn+"_"+f.Name))
			}
			continue
		}
		for _, fn := range aggregateFuncs {
			q = q.ColumnExpr(c.aggExpr(fn, f) + " AS " + quoteIdent(c.dialect, fn+"_"+f.Name))
		}
	}
	var x sqlExpr
	if a.Where != nil {
		if err := c.where(&x, e, a.Where, "where"); err != nil {
			return nil, err
		}
	}
	if err := c.restrict(&x, e, a.Restrict); err != nil {
		return nil, err
	}
	if !x.empty() {
		q = q.Where(x.sql.String(), x.args...)
	}
	if len(a.Having) > 0 {
		var x sqlExpr
		if err := c.having(&x, e, a.Having); err != nil {
			return nil, err
		}
		q = q.Having(x.sql.String(), x.args...)
	}
	if a.MaxGroups > 0 {
		q = q.Limit(int64(a.MaxGroups) + 1)
	}
	var rows []map[string]any
	if err := q.Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("aggregate %s: %w", e.Name, err)
	}
	if a.MaxGroups > 0 && len(rows) > a.MaxGroups {
		return nil, &Error{Code: LimitExceeded,
			Message:    fmt.Sprintf("the aggregate has more than %d groups: group by fewer fields, filter with where, or narrow the groups with having", a.MaxGroups),
			Extensions: map[string]any{"limit": "groups", "value": a.MaxGroups}}
	}
	out := make([]*AggregateRow, 0, len(rows))
	for _, r := range rows {
		res := &AggregateRow{Count: int(toInt64(r["mg_count"]))}
		if len(groups) > 0 {
			res.Group = map[string]any{}
			for _, f := range groups {
				res.Group[f.Name] = groupValue(f, r["g_"+f.Name])
			}
		}
		for _, fn := range aggregateFuncs {
			m := map[string]any{}
			for _, f := range nums {
				if !exact(f) {
					m[f.Name] = toFloat(r[fn+"_"+f.Name])
					continue
				}
				v, err := exactAggregate(fn, f, r)
				if err != nil {
					return nil, fmt.Errorf("aggregate %s: %s of %s: %w", e.Name, fn, f.Name, err)
				}
				m[f.Name] = v
			}
			switch fn {
			case "sum":
				res.Sum = m
			case "avg":
				res.Avg = m
			case "min":
				res.Min = m
			case "max":
				res.Max = m
			}
		}
		out = append(out, res)
	}
	return out, nil
}

func (c compiler) groupExpr(e *Entity, f *Field) string {
	if f.DateOf == "" {
		return quoteIdent(c.dialect, f.Column)
	}
	col := quoteIdent(c.dialect, e.Field(f.DateOf).Column)
	if c.dialect == dialect.PG {
		return "to_char(" + col + " AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
	}
	return "substr(" + col + ", 1, 10)"
}

func (c compiler) aggExpr(fn string, f *Field) string {
	typ := "REAL"
	if c.dialect == dialect.PG {
		typ = "DOUBLE PRECISION"
	}
	return "CAST(" + strings.ToUpper(fn) + "(" + quoteIdent(c.dialect, f.Column) + ") AS " + typ + ")"
}

// exact tells whether a numeric field is aggregated exactly (integers and
// money) rather than in floating point.
func exact(f *Field) bool { return f.Type == TypeInt || f.Type == TypeDecimal }

// places is the scale of an exact field's stored integers: cents for money.
func places(f *Field) int {
	if f.Type == TypeDecimal {
		return MoneyPlaces
	}
	return 0
}

// havingOperand is what a having condition on fn of f compares. Exact
// fields compare exactly with a Decimal given in cents: the aggregate is
// scaled to cents, and an average is compared as its sum against the
// value times the count (avg > v ⇔ sum > v·n), so no division is needed.
func (c compiler) havingOperand(fn string, f *Field) operand {
	if !exact(f) {
		return operand{lhs: c.aggExpr(fn, f), rhs: "?", t: TypeFloat}
	}
	col := quoteIdent(c.dialect, f.Column)
	scale := ""
	if p := places(f); p < MoneyPlaces {
		scale = " * " + pow10(MoneyPlaces-p).String()
	}
	switch fn {
	case "avg":
		return operand{lhs: "SUM(" + col + ")" + scale, rhs: "? * COUNT(" + col + ")", t: TypeDecimal}
	default:
		return operand{lhs: strings.ToUpper(fn) + "(" + col + ")" + scale, rhs: "?", t: TypeDecimal}
	}
}

// exactAggregate reads fn of an exact field from an aggregate row: sums,
// minimums and maximums at the field's scale, averages as the exact
// quotient of sum and count rounded half to even to AveragePlaces places.
// It returns nil when the group has no values.
func exactAggregate(fn string, f *Field, r map[string]any) (any, error) {
	col := fn
	if fn == "avg" {
		col = "sum"
	}
	v, err := sqlInteger(r[col+"_"+f.Name])
	if err != nil || v == nil {
		return nil, err
	}
	if fn == "avg" {
		n, err := sqlInteger(r["n_"+f.Name])
		if err != nil || n == nil || n.Sign() == 0 {
			return nil, err
		}
		return quotient(v, places(f), n.Int64(), AveragePlaces)
	}
	if !v.IsInt64() {
		return nil, fmt.Errorf("%s does not fit 64 bits", v)
	}
	return NewDecimal(v.Int64(), places(f)), nil
}

// sqlInteger reads an integer result of SQL (SQLite gives int64,
// PostgreSQL's SUM of bigint a numeric as text); nil for NULL.
func sqlInteger(v any) (*big.Int, error) {
	switch n := v.(type) {
	case nil:
		return nil, nil
	case int64:
		return big.NewInt(n), nil
	case int32:
		return big.NewInt(int64(n)), nil
	case int:
		return big.NewInt(int64(n)), nil
	case []byte:
		return sqlInteger(string(n))
	case string:
		i, ok := new(big.Int).SetString(n, 10)
		if !ok {
			return nil, fmt.Errorf("%q is not an integer", n)
		}
		return i, nil
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return big.NewInt(int64(n)), nil
		}
	}
	return nil, fmt.Errorf("unexpected %T %v where an integer was expected", v, v)
}

func (c compiler) having(x *sqlExpr, e *Entity, h map[string]any) error {
	x.add("(")
	n := 0
	and := func() {
		if n > 0 {
			x.add(" AND ")
		}
		n++
	}
	for _, k := range sortedKeys(h) {
		v := h[k]
		if absent(v) {
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			return Invalid("having."+k, "must be an object")
		}
		if k == "count" {
			and()
			if err := c.filter(x, operand{lhs: "COUNT(*)", rhs: "?", t: TypeInt}, m, "having.count"); err != nil {
				return err
			}
			continue
		}
		known := false
		for _, fn := range aggregateFuncs {
			known = known || fn == k
		}
		if !known {
			return Invalid("having."+k, "unknown aggregate")
		}
		for _, name := range sortedKeys(m) {
			fm, ok := m[name].(map[string]any)
			if absent(m[name]) {
				continue
			}
			f := e.Field(name)
			if !ok || f == nil || !f.Numeric {
				return Invalid("having."+k+"."+name, "not a numeric field of %s", e.Name)
			}
			and()
			if err := c.filter(x, c.havingOperand(k, f), fm, "having."+k+"."+name); err != nil {
				return err
			}
		}
	}
	if n == 0 {
		x.add("1=1")
	}
	x.add(")")
	return nil
}

func groupValue(f *Field, v any) any {
	if v == nil {
		return nil
	}
	switch f.Type {
	case TypeID, TypeInt:
		n := toInt64(v)
		if f.Type == TypeInt {
			return int(n)
		}
		return n
	case TypeFloat:
		return toFloat(v)
	case TypeTime:
		if t, ok := v.(time.Time); ok {
			return t.UTC()
		}
	}
	switch s := v.(type) {
	case []byte:
		return string(s)
	case string:
		return s
	}
	return fmt.Sprint(v)
}

func toInt64(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case int:
		return int64(n)
	case int32:
		return int64(n)
	case float64:
		return int64(n)
	case []byte:
		i, _ := strconv.ParseInt(string(n), 10, 64)
		return i
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}

func toFloat(v any) any {
	switch n := v.(type) {
	case nil:
		return nil
	case float64:
		return n
	case float32:
		return float64(n)
	case int64:
		return float64(n)
	case []byte:
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			return nil
		}
		return f
	case string:
		f, err := strconv.ParseFloat(n, 64)
		if err != nil {
			return nil
		}
		return f
	}
	return nil
}
