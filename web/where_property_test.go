package web_test

// Live filters agree with SQL, by property: random where trees over every
// filterable field of every entity of every product are run through the SQL
// path (products.List) and through products.Match on the rows' audit
// images (what the hub matches live subscriptions against), on rows built to
// hit the edge cases (NULLs, equal values, unicode, case twins, wildcard
// characters). The row sets must be equal, and a filter one path rejects
// the other must reject with the same code.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"pgregory.net/rapid"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/engagement"
	"github.com/meshgate/meshgate/products/inventory"
	"github.com/meshgate/meshgate/products/orders"
	"github.com/meshgate/meshgate/products/sales"
)

// Value pools shared by the rows and the filters, so that filters hit equal
// values, case twins and prefixes.
var (
	propStrings = []string{"", " ", "a", "A", "ab", "Ab", "abc", "b", "B", "Zoe", "zoe", "ZOE", "zoë", "Zoë", "é", "É", "e\u0301",
		"ß", "SS", "Ångström", "日本", "日本語", "😀", "a%b", "a_b", "a*b", "a?b", "[x]", "a[b]c", `back\slash`, "100%", "_", "%", "*", "?", "[", `\`,
		"EUR", "USD", "PLACED", "placed", "SKU-1", "sku-1", "DE", "de"}
	// filterOnly are strings only filters use: PostgreSQL text cannot
	// hold NUL, so no row has one; a filter with one is bad input.
	filterOnly = []string{"a\x00b", "\x00", "zz", "~", "\u00ff", "\uffff"}
	propInts   = []int64{-2147483648, -1, 0, 1, 2, 3, 7, 100, 2147483647}
	propIDs    = []int64{1, 2, 3, 5, 8, 13, 1 << 40}
	propFloats = []float64{-1, -0.5, 0, 0.1, 0.3, 0.1 + 0.2, 0.5, 1}
	propCents  = []int64{-100, -1, 0, 1, 99, 100, 1050, 31361, 1521862, 99999999999}
	propTimes  = []time.Time{
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 24, 16, 36, 29, 0, time.UTC),
		time.Date(2026, 11, 24, 16, 36, 29, 500_000_000, time.UTC),
		time.Date(2026, 11, 24, 16, 36, 29, 151_068_000, time.UTC),
		time.Date(2026, 11, 24, 16, 36, 29, 1000, time.UTC),
		time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC),
		time.Date(2099, 12, 31, 23, 59, 59, 999_999_000, time.UTC),
	}
)

// propEntity is one entity with its store and Go model, behind generic
// functions for its concrete type.
type propEntity struct {
	store  *products.Store
	e      *products.Entity
	skip   map[string]bool // fields whose image is not the column (see below)
	insert func(ctx context.Context, rows any) error
	model  reflect.Type
	list   func(ctx context.Context, where map[string]any) ([]int64, error)
}

func entityOf[T any](m *products.Mesh, product string, e *products.Entity) propEntity {
	s := m.Store(product)
	return propEntity{
		store: s, e: e, model: reflect.TypeFor[T](),
		insert: func(ctx context.Context, rows any) error {
			return products.Insert(ctx, s, e, rows.([]*T), nil)
		},
		list: func(ctx context.Context, where map[string]any) ([]int64, error) {
			first := products.MaxPageSize
			p, err := products.List[T](ctx, s.DB, e, products.ListArgs{First: &first, Where: where})
			if err != nil {
				return nil, err
			}
			table := s.DB.Dialect().Tables().Get(reflect.TypeFor[T]())
			var ids []int64
			for _, n := range p.Nodes {
				ids = append(ids, table.FieldMap["id"].Value(reflect.ValueOf(n).Elem()).Int())
			}
			return ids, nil
		},
	}
}

func propEntities(m *products.Mesh) []propEntity {
	res := entityOf[inventory.Reservation](m, "inventory", inventory.ReservationEntity)
	// A reservation's lines are a JSON array in its image and JSON text in
	// its column; they are not filterable through the API (there is no
	// ReservationWhere), so they are left out.
	res.skip = map[string]bool{"lines": true}
	return []propEntity{
		entityOf[customers.Customer](m, "customers", customers.Entity),
		entityOf[inventory.Item](m, "inventory", inventory.Entity),
		res,
		entityOf[orders.Order](m, "orders", orders.Entity),
		entityOf[orders.Line](m, "orders", orders.LineEntity),
		entityOf[engagement.Interaction](m, "engagement", engagement.Entity),
		entityOf[sales.DailyRevenue](m, "sales", sales.DailyEntity),
		entityOf[sales.CustomerValue](m, "sales", sales.CustomerValueEntity),
		entityOf[sales.ItemSales](m, "sales", sales.ItemSalesEntity),
	}
}

// filterable lists the fields a where can name, nullable ones three times
// (nulls are where SQL and Go logic part most easily).
func (pe propEntity) filterable() []*products.Field {
	var out []*products.Field
	for _, f := range pe.e.Fields {
		if !f.Derived && f.Column != "" && !pe.skip[f.Name] {
			out = append(out, f)
			if f.Nullable {
				out = append(out, f, f)
			}
		}
	}
	return out
}

// makeRows builds n rows of the entity from the pools: every nullable
// field is null in about a third of them; unique columns get a suffix.
func (pe propEntity) makeRows(r *rand.Rand, n int) any {
	table := pe.store.DB.Dialect().Tables().Get(pe.model)
	rows := reflect.MakeSlice(reflect.SliceOf(reflect.PointerTo(pe.model)), n, n)
	for i := range n {
		row := reflect.New(pe.model)
		for _, f := range pe.e.Fields {
			if f.Derived || f.Column == "" {
				continue
			}
			bf := table.FieldMap[f.Column]
			if bf == nil {
				continue
			}
			v := bf.Value(row.Elem())
			var val any
			switch {
			case f.Name == "id":
				val = int64(i + 1)
			case pe.skip[f.Name]:
				continue
			case f.Nullable && r.IntN(3) == 0:
				continue // NULL
			default:
				val = poolValue(r, f.Type)
			}
			if f.Column == "email" || f.Column == "sku" {
				val = fmt.Sprintf("%s#%d", val, i)
			}
			set(v, val)
		}
		rows.Index(i).Set(row)
	}
	return rows.Interface()
}

func poolValue(r *rand.Rand, t products.FieldType) any {
	switch t {
	case products.TypeID:
		return propIDs[r.IntN(len(propIDs))]
	case products.TypeInt:
		return propInts[r.IntN(len(propInts))]
	case products.TypeFloat:
		return propFloats[r.IntN(len(propFloats))]
	case products.TypeDecimal:
		return products.Cents(propCents[r.IntN(len(propCents))])
	case products.TypeTime:
		return propTimes[r.IntN(len(propTimes))]
	}
	return propStrings[r.IntN(len(propStrings))]
}

// set stores val in the model field v, allocating for pointers.
func set(v reflect.Value, val any) {
	if v.Kind() == reflect.Pointer {
		p := reflect.New(v.Type().Elem())
		set(p.Elem(), val)
		v.Set(p)
		return
	}
	rv := reflect.ValueOf(val)
	if rv.Type().ConvertibleTo(v.Type()) {
		v.Set(rv.Convert(v.Type()))
		return
	}
	panic(fmt.Sprintf("cannot set %s to %T", v.Type(), val))
}

// images returns the latest audit image of every row of the entity, decoded
// as the hub decodes change images.
func (pe propEntity) images(t *testing.T) map[int64]map[string]any {
	t.Helper()
	var entries []products.AuditEntry
	if err := pe.store.DB.NewSelect().Model(&entries).Where("entity = ?", pe.e.Name).OrderExpr("sequence").Scan(t.Context()); err != nil {
		t.Fatal(err)
	}
	out := map[int64]map[string]any{}
	for _, a := range entries {
		var m map[string]any
		if err := json.Unmarshal([]byte(*a.After), &m); err != nil {
			t.Fatal(err)
		}
		out[a.Key] = m
	}
	return out
}

// genFilter draws a where tree: fields of the entity with every operator,
// nulls (typed nils, as gqlgen hands them over), empty lists and nesting.
func genWhere(rt *rapid.T, fields []*products.Field, depth int, label string) map[string]any {
	w := map[string]any{}
	lo := 0
	if label == "where" {
		lo = 1 // the top level is rarely empty
	}
	n := rapid.IntRange(lo, 3).Draw(rt, label+".n")
	for i := range n {
		l := fmt.Sprintf("%s.%d", label, i)
		kinds := []string{"field", "field", "field", "field", "field", "field"}
		if depth > 0 {
			kinds = append(kinds, "and", "or", "or", "not", "not")
		}
		kinds = append(kinds, "null-and", "null-or", "null-not")
		switch k := rapid.SampledFrom(kinds).Draw(rt, l+".kind"); k {
		case "field":
			f := rapid.SampledFrom(fields).Draw(rt, l+".field")
			if rapid.IntRange(0, 9).Draw(rt, l+".nullfield") == 0 {
				w[f.Name] = map[string]any(nil)
			} else {
				w[f.Name] = genOps(rt, f, l)
			}
		case "and", "or":
			m := rapid.IntRange(0, 3).Draw(rt, l+".len")
			list := make([]map[string]any, m)
			for j := range list {
				list[j] = genWhere(rt, fields, depth-1, fmt.Sprintf("%s.%d", l, j))
			}
			w[k] = list
		case "not":
			w["not"] = genWhere(rt, fields, depth-1, l+".not")
		case "null-and", "null-or":
			w[strings.TrimPrefix(k, "null-")] = []map[string]any(nil)
		case "null-not":
			w["not"] = map[string]any(nil)
		}
	}
	return w
}

func genOps(rt *rapid.T, f *products.Field, label string) map[string]any {
	ops := []string{"eq", "ne", "gt", "gte", "lt", "lte", "in", "notIn", "isNull"}
	if f.Type == products.TypeString {
		ops = append(ops, "contains", "startsWith", "contains", "startsWith")
	}
	fm := map[string]any{}
	n := rapid.IntRange(1, 3).Draw(rt, label+".ops")
	for i := range n {
		l := fmt.Sprintf("%s.op%d", label, i)
		op := rapid.SampledFrom(ops).Draw(rt, l)
		null := rapid.IntRange(0, 7).Draw(rt, l+".null") == 0
		switch op {
		case "isNull":
			if null {
				fm[op] = (*bool)(nil)
			} else {
				fm[op] = rapid.Bool().Draw(rt, l+".b")
			}
		case "in", "notIn":
			fm[op] = genList(rt, f.Type, null, l)
		case "contains", "startsWith":
			if null {
				fm[op] = (*string)(nil)
			} else {
				fm[op] = genString(rt, l)
			}
		default:
			if null {
				fm[op] = nilOf(f.Type)
			} else {
				fm[op] = genValue(rt, f.Type, l)
			}
		}
	}
	return fm
}

// genValue draws a filter value of the Go type gqlgen gives for the field's
// GraphQL type.
func genValue(rt *rapid.T, t products.FieldType, label string) any {
	switch t {
	case products.TypeID:
		return rapid.SampledFrom(append(propIDs, 0, 4, -1)).Draw(rt, label+".id")
	case products.TypeInt:
		return int(rapid.SampledFrom(append(propInts, 4, -3)).Draw(rt, label+".int"))
	case products.TypeFloat:
		return rapid.SampledFrom(append(propFloats, 0.2, -0.25, 2)).Draw(rt, label+".float")
	case products.TypeDecimal:
		return products.Cents(rapid.SampledFrom(append(propCents, 50, 31360, 31362, -99)).Draw(rt, label+".cents"))
	case products.TypeTime:
		tm := rapid.SampledFrom(propTimes).Draw(rt, label+".time")
		return tm.Add(time.Duration(rapid.SampledFrom([]int{0, 0, 0, -1000, 1000, 1}).Draw(rt, label+".shift")))
	}
	return genString(rt, label)
}

func genString(rt *rapid.T, label string) string {
	if rapid.IntRange(0, 4).Draw(rt, label+".kind") == 0 {
		return rapid.SampledFrom(filterOnly).Draw(rt, label+".odd")
	}
	s := rapid.SampledFrom(propStrings).Draw(rt, label+".s")
	// Prefixes and infixes of pool values.
	if rs := []rune(s); len(rs) > 1 && rapid.Bool().Draw(rt, label+".cut") {
		i := rapid.IntRange(0, len(rs)-1).Draw(rt, label+".i")
		j := rapid.IntRange(i, len(rs)).Draw(rt, label+".j")
		s = string(rs[i:j])
	}
	return s
}

// genList draws a list as gqlgen types it ([]int64, []int, …), possibly
// empty or a typed nil.
func genList(rt *rapid.T, t products.FieldType, null bool, label string) any {
	n := rapid.IntRange(0, 3).Draw(rt, label+".len")
	var elem reflect.Type
	switch t {
	case products.TypeID:
		elem = reflect.TypeFor[int64]()
	case products.TypeInt:
		elem = reflect.TypeFor[int]()
	case products.TypeFloat:
		elem = reflect.TypeFor[float64]()
	case products.TypeDecimal:
		elem = reflect.TypeFor[products.Decimal]()
	case products.TypeTime:
		elem = reflect.TypeFor[time.Time]()
	default:
		elem = reflect.TypeFor[string]()
	}
	if null {
		return reflect.Zero(reflect.SliceOf(elem)).Interface()
	}
	list := reflect.MakeSlice(reflect.SliceOf(elem), 0, n)
	for i := range n {
		list = reflect.Append(list, reflect.ValueOf(genValue(rt, t, fmt.Sprintf("%s.%d", label, i))))
	}
	return list.Interface()
}

func nilOf(t products.FieldType) any {
	switch t {
	case products.TypeID:
		return (*int64)(nil)
	case products.TypeInt:
		return (*int)(nil)
	case products.TypeFloat:
		return (*float64)(nil)
	case products.TypeDecimal:
		return (*products.Decimal)(nil)
	case products.TypeTime:
		return (*time.Time)(nil)
	}
	return (*string)(nil)
}

// linguisticCollation makes every text column of the mesh's PostgreSQL
// schemas compare linguistically (ICU's root collation: "a" < "B" < "b"),
// as a database created with a non-C locale would: filters must still
// compare strings in byte order, like Go and SQLite.
func linguisticCollation(t *testing.T, ctx context.Context, m *products.Mesh) {
	t.Helper()
	for _, s := range m.Stores {
		var cols []struct {
			Table  string `bun:"table_name"`
			Column string `bun:"column_name"`
		}
		if err := s.DB.NewRaw(`SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND data_type IN ('character varying', 'text')`).Scan(ctx, &cols); err != nil {
			t.Fatal(err)
		}
		for _, c := range cols {
			if _, err := s.DB.ExecContext(ctx, `ALTER TABLE ? ALTER COLUMN ? TYPE varchar COLLATE "und-x-icu"`, bun.Ident(c.Table), bun.Ident(c.Column)); err != nil {
				t.Fatalf("collate %s.%s: %v", c.Table, c.Column, err)
			}
		}
	}
}

// TestWhereMatchesSQL is the property. -rapid.checks sets the number of
// filters per entity (default 100); MESHGATE_PROPERTY_ROWS the rows.
func TestWhereMatchesSQL(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := t.Context()
		stores := newStoreSet(t, backend)
		m, err := demo.Open(ctx, stores.dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		if backend == postgresBackend {
			linguisticCollation(t, ctx, m)
		}
		rowsPer := 40
		if n, err := strconv.Atoi(os.Getenv("MESHGATE_PROPERTY_ROWS")); err == nil && n > 0 {
			rowsPer = n
		}
		for _, pe := range propEntities(m) {
			t.Run(pe.e.Name, func(t *testing.T) {
				r := rand.New(rand.NewPCG(9, uint64(len(pe.e.Name))))
				if err := pe.insert(ctx, pe.makeRows(r, rowsPer)); err != nil {
					t.Fatal(err)
				}
				imgs := pe.images(t)
				if len(imgs) != rowsPer {
					t.Fatalf("%d images for %d rows", len(imgs), rowsPer)
				}
				fields := pe.filterable()
				var stats [4]int // bad input, none, some, all rows
				defer func() {
					t.Logf("%s: %d filters: %d bad input, %d select no row, %d some rows, %d every row", pe.e.Name, stats[0]+stats[1]+stats[2]+stats[3], stats[0], stats[1], stats[2], stats[3])
				}()
				rapid.Check(t, func(rt *rapid.T) {
					where := genWhere(rt, fields, 2, "where")
					sqlIDs, sqlErr := pe.list(ctx, where)
					cond, matchErr := products.ParseWhere(pe.e, where)
					var liveIDs []int64
					if matchErr == nil {
						for id, img := range imgs {
							ok, err := cond.Match(img)
							if err != nil {
								rt.Fatalf("Match on the image of %d: %v", id, err)
							}
							if ok {
								liveIDs = append(liveIDs, id)
							}
						}
					}
					if (sqlErr != nil) != (matchErr != nil) || products.ErrorCode(sqlErr) != products.ErrorCode(matchErr) {
						rt.Fatalf("where %s:\n SQL error: %v\n Match error: %v", show(where), sqlErr, matchErr)
					}
					if sqlErr != nil {
						if products.ErrorCode(sqlErr) != products.BadUserInput {
							rt.Fatalf("where %s: %v", show(where), sqlErr)
						}
						stats[0]++
						return
					}
					sort.Slice(sqlIDs, func(i, j int) bool { return sqlIDs[i] < sqlIDs[j] })
					slices.Sort(liveIDs)
					if !slices.Equal(sqlIDs, liveIDs) {
						rt.Fatalf("where %s:\n SQL   %v\n Match %v", show(where), sqlIDs, liveIDs)
					}
					switch len(sqlIDs) {
					case 0:
						stats[1]++
					case len(imgs):
						stats[3]++
					default:
						stats[2]++
					}
				})
			})
		}
	})
}

// show prints a where tree with typed nils and strings quoted.
func show(w any) string {
	switch v := w.(type) {
	case map[string]any:
		if v == nil {
			return "null"
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(v)) {
			parts = append(parts, k+": "+show(v[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case []map[string]any:
		if v == nil {
			return "null"
		}
		var parts []string
		for _, x := range v {
			parts = append(parts, show(x))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case string:
		return fmt.Sprintf("%q", v)
	case time.Time:
		return v.Format(time.RFC3339Nano)
	case products.Decimal:
		return v.String()
	}
	rv := reflect.ValueOf(w)
	if rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Slice {
		if rv.IsNil() {
			return "null"
		}
	}
	if rv.Kind() == reflect.Slice {
		var parts []string
		for i := range rv.Len() {
			parts = append(parts, show(rv.Index(i).Interface()))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(w)
}

// TestWhereBadStringsOverAPI: what the property checks on products.List,
// through GraphQL: a NUL byte in a filter string (PostgreSQL text cannot
// hold one; SQLite used to fail with an internal error) and a time finer
// than the stores keep are BAD_USER_INPUT naming the operator, on both
// backends, for lists and subscriptions alike.
func TestWhereBadStringsOverAPI(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		g := sharedGateway(t, backend)
		for _, c := range []struct{ field, where string }{
			{"where.name.eq", `{name: {eq: $s}}`},
			{"where.name.contains", `{name: {contains: $s}}`},
			{"where.or[0].email.startsWith", `{or: [{email: {startsWith: $s}}]}`},
			{"where.not.country.in[1]", `{not: {country: {in: ["DE", $s]}}}`},
		} {
			e := g.fail(t, "BAD_USER_INPUT", c.field, `query($s: String!) { customers(where: `+c.where+`) { nodes { id } } }`, map[string]any{"s": "a\x00b"})
			if !strings.Contains(e.Message, "NUL") {
				t.Errorf("%s: %q", c.where, e.Message)
			}
		}
		g.fail(t, "BAD_USER_INPUT", "where.placedAt.gt", `{ orders(where: {placedAt: {gt: "2026-01-01T00:00:00.0000001Z"}}) { nodes { id } } }`, nil)
		e := g.subscribeError(t, `subscription($s: String!) { customerChanged(where: {name: {eq: $s}}) { op } }`, map[string]any{"s": "\x00"})
		if e.code() != "BAD_USER_INPUT" || e.field() != "where.name.eq" {
			t.Errorf("subscription with a NUL in where: %s", mustJSON(e))
		}
	})
}

// subscribeError starts a subscription over server-sent events and returns
// the first error of its first event (a subscription over a plain POST is
// refused with BAD_REQUEST).
func (g *gateway) subscribeError(t *testing.T, query string, vars map[string]any) gqlError {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, g.srv.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := g.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("POST /graphql: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var r gqlResponse
		if err := json.Unmarshal([]byte(data), &r); err != nil {
			t.Fatalf("event is not GraphQL JSON: %v\n%s", err, data)
		}
		if len(r.Errors) == 0 {
			t.Fatalf("expected an error event, got %s", data)
		}
		return r.Errors[0]
	}
	t.Fatalf("the stream ended without an event (HTTP %d): %v", resp.StatusCode, sc.Err())
	return gqlError{}
}
