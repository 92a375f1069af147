package web_test

// Money is exact through the API: every order total paged through
// orders(...) and the aggregates of ordersAggregate and orderLinesAggregate
// add up, to the cent, to what the store's own SQL sums give, and the
// answers are written as exact decimal literals (no binary-float artefacts
// such as 15218.619999999999).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"testing"
)

var moneyLiteral = regexp.MustCompile(`^-?[0-9]+\.[0-9]{2}$`)

// decodeExact decodes a GraphQL answer keeping numbers as their literal
// text.
func decodeExact(t *testing.T, data json.RawMessage, out any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
}

// sqlText runs a query returning one integer-valued column per row as text
// (SQLite's integer SUM, PostgreSQL's numeric SUM), straight on a store.
func sqlText(t *testing.T, g *gateway, product, query string) []string {
	t.Helper()
	rows, err := g.store(product).DB.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// centsText writes a number of cents given as integer text as a decimal
// literal with two places.
func centsText(t *testing.T, s string) string {
	t.Helper()
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		t.Fatalf("%q is not a whole number of cents", s)
	}
	return new(big.Rat).SetFrac(n, big.NewInt(100)).FloatString(2)
}

// averageText is sum/count rounded half to even to 4 places, computed
// here with big.Rat.
func averageText(t *testing.T, sumCents, count string) string {
	t.Helper()
	r, ok := new(big.Rat).SetString(sumCents + "/" + count)
	if !ok {
		t.Fatalf("%s/%s", sumCents, count)
	}
	r.Quo(r, big.NewRat(100, 1))
	scaled := new(big.Rat).Mul(r, big.NewRat(10000, 1))
	q, rem := new(big.Int).QuoRem(scaled.Num(), scaled.Denom(), new(big.Int))
	twice := new(big.Int).Mul(new(big.Int).Abs(rem), big.NewInt(2))
	if c := twice.Cmp(scaled.Denom()); c > 0 || c == 0 && q.Bit(0) == 1 {
		q.Add(q, big.NewInt(int64(rem.Sign())))
	}
	return new(big.Rat).SetFrac(q, big.NewInt(10000)).FloatString(4)
}

func TestMoneyIsExact(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		g := sharedGateway(t, backend)
		want := sqlText(t, g, "orders", `SELECT SUM(total) FROM orders`)[0]
		count := sqlText(t, g, "orders", `SELECT COUNT(*) FROM orders`)[0]

		t.Run("paged sum", func(t *testing.T) {
			sum := new(big.Rat)
			n := 0
			var after any
			for {
				r := g.post(t, `query($after: String) { orders(first: 150, after: $after) { nodes { total } pageInfo { hasNextPage endCursor } } }`,
					map[string]any{"after": after})
				if len(r.Errors) > 0 {
					t.Fatalf("errors: %v", r.Errors)
				}
				var out struct {
					Orders struct {
						Nodes    []struct{ Total json.Number }
						PageInfo struct {
							HasNextPage bool
							EndCursor   string
						}
					}
				}
				decodeExact(t, r.Data, &out)
				for _, o := range out.Orders.Nodes {
					if !moneyLiteral.MatchString(o.Total.String()) {
						t.Fatalf("total %s is not an exact amount with two decimals", o.Total)
					}
					d, ok := new(big.Rat).SetString(o.Total.String())
					if !ok {
						t.Fatalf("total %s", o.Total)
					}
					sum.Add(sum, d)
					n++
				}
				if !out.Orders.PageInfo.HasNextPage {
					break
				}
				after = out.Orders.PageInfo.EndCursor
			}
			if fmt.Sprint(n) != count || sum.FloatString(2) != centsText(t, want) {
				t.Errorf("API: %d orders totalling %s; store: %s orders totalling %s", n, sum, count, centsText(t, want))
			}
		})

		t.Run("aggregate", func(t *testing.T) {
			r := g.post(t, `{ ordersAggregate { count sum { total } avg { total } min { total } max { total } } }`, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("errors: %v", r.Errors)
			}
			text := string(r.Data)
			minimum := sqlText(t, g, "orders", `SELECT MIN(total) FROM orders`)[0]
			maximum := sqlText(t, g, "orders", `SELECT MAX(total) FROM orders`)[0]
			wantText := fmt.Sprintf(`{"ordersAggregate":[{"count":%s,"sum":{"total":%s},"avg":{"total":%s},"min":{"total":%s},"max":{"total":%s}}]}`,
				count, centsText(t, want), averageText(t, want, count), centsText(t, minimum), centsText(t, maximum))
			if text != wantText {
				t.Errorf("answer\n %s\nwant\n %s", text, wantText)
			}
		})

		t.Run("grouped and having", func(t *testing.T) {
			wantRows := sqlText(t, g, "orders", `SELECT status || ' ' || CAST(COUNT(*) AS TEXT) || ' ' || CAST(SUM(total) AS TEXT) FROM orders GROUP BY status HAVING SUM(total) > 100000 ORDER BY status`)
			if len(wantRows) < 2 {
				t.Fatalf("test data: %d groups", len(wantRows))
			}
			r := g.post(t, `{ ordersAggregate(groupBy: [STATUS], having: {sum: {total: {gt: "1000.00"}}}) { group { status } count sum { total } avg { total } } }`, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("errors: %v", r.Errors)
			}
			var out struct {
				OrdersAggregate []struct {
					Group struct{ Status string }
					Count json.Number
					Sum   struct{ Total json.Number }
					Avg   struct{ Total json.Number }
				}
			}
			decodeExact(t, r.Data, &out)
			var got []string
			for _, a := range out.OrdersAggregate {
				got = append(got, fmt.Sprintf("%s %s %s", a.Group.Status, a.Count, a.Sum.Total))
				f := strings.Fields(wantRowFor(wantRows, a.Group.Status))
				if len(f) == 3 && a.Avg.Total.String() != averageText(t, f[2], f[1]) {
					t.Errorf("%s: avg %s, want %s", a.Group.Status, a.Avg.Total, averageText(t, f[2], f[1]))
				}
			}
			var wantText []string
			for _, w := range wantRows {
				f := strings.Fields(w)
				wantText = append(wantText, fmt.Sprintf("%s %s %s", f[0], f[1], centsText(t, f[2])))
			}
			if strings.Join(got, "\n") != strings.Join(wantText, "\n") {
				t.Errorf("groups\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantText, "\n"))
			}
		})

		t.Run("having on averages and integers", func(t *testing.T) {
			// Exact comparisons: avg as sum against value × count, integer
			// aggregates scaled to cents.
			mins := sqlText(t, g, "inventory", `SELECT CAST(MIN(stock) AS TEXT) FROM items GROUP BY category ORDER BY category`)
			inMins := mins[0] + ", " + mins[len(mins)-1]
			for _, c := range []struct{ having, sql string }{
				{`{avg: {stock: {gt: 500.5}}}`, `HAVING AVG(stock) > 500.5`},
				{`{avg: {price: {gte: "30.25"}}}`, `HAVING AVG(price) >= 3025`},
				{`{sum: {stock: {lt: 1500}}, max: {price: {lte: 100}}}`, `HAVING SUM(stock) < 1500 AND MAX(price) <= 10000`},
				{`{min: {stock: {in: [` + inMins + `]}}, count: {gte: 1}}`, `HAVING MIN(stock) IN (` + inMins + `)`},
				{`{avg: {stock: {notIn: ["500.00"]}}}`, `HAVING AVG(stock) <> 500`},
			} {
				want := sqlText(t, g, "inventory", `SELECT category FROM items GROUP BY category `+c.sql+` ORDER BY category`)
				r := g.post(t, `{ itemsAggregate(groupBy: [CATEGORY], having: `+c.having+`) { group { category } } }`, nil)
				var out struct {
					ItemsAggregate []struct{ Group struct{ Category string } }
				}
				decodeExact(t, r.Data, &out)
				var got []string
				for _, a := range out.ItemsAggregate {
					got = append(got, a.Group.Category)
				}
				if len(r.Errors) > 0 || strings.Join(got, ",") != strings.Join(want, ",") {
					t.Errorf("having %s: %v %v, want %v", c.having, got, r.Errors, want)
				}
			}
		})

		t.Run("line sums", func(t *testing.T) {
			amount := sqlText(t, g, "orders", `SELECT SUM(amount) FROM order_lines`)[0]
			units := sqlText(t, g, "orders", `SELECT SUM(quantity) FROM order_lines`)[0]
			r := g.post(t, `{ orderLinesAggregate { sum { amount quantity } } }`, nil)
			wantText := fmt.Sprintf(`{"orderLinesAggregate":[{"sum":{"amount":%s,"quantity":%s}}]}`, centsText(t, amount), units)
			if len(r.Errors) > 0 || string(r.Data) != wantText {
				t.Errorf("answer %s (errors %v), want %s", r.Data, r.Errors, wantText)
			}
			if amount != want {
				t.Errorf("lines sum to %s cents, orders to %s", amount, want)
			}
		})
	})
}

func wantRowFor(rows []string, status string) string {
	for _, r := range rows {
		if strings.HasPrefix(r, status+" ") {
			return r
		}
	}
	return ""
}

// TestDecimalInput: amounts are read exactly from every input form and bad
// ones are BAD_USER_INPUT, in filters as in mutations.
func TestDecimalInput(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		g := sharedGateway(t, backend)
		o := sqlText(t, g, "orders", `SELECT CAST(total AS TEXT) FROM orders WHERE id = 1`)[0]
		lit := centsText(t, o)
		for _, form := range []string{lit, `"` + lit + `"`, "$v"} {
			q := `query($v: Decimal) { orders(where: {id: {eq: 1}, total: {eq: ` + form + `}}) { nodes { id total } } }`
			if form != "$v" {
				q = strings.Replace(q, "($v: Decimal)", "", 1)
			}
			r := g.post(t, q, map[string]any{"v": json.Number(lit)})
			if len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"total":`+lit) {
				t.Errorf("%s: %s %v", form, r.Data, r.Errors)
			}
		}
		for _, bad := range []string{`1.005`, `"1.005"`, `"NaN"`, `"Infinity"`, `"1e400"`, `"12345678901234"`, `"1,5"`, `true`} {
			g.fail(t, "BAD_USER_INPUT", "", `{ orders(where: {total: {gt: `+bad+`}}) { nodes { id } } }`, nil)
		}
		g.fail(t, "BAD_USER_INPUT", "", `query($v: Decimal) { orders(where: {total: {gt: $v}}) { nodes { id } } }`, map[string]any{"v": json.Number("0.001")})
	})
}
