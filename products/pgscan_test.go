package products

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products/pgtest"
)

// scanLine is a JSON value in a text column (bun's scanner reads it).
type scanLine struct {
	ItemID int64 `json:"itemId"`
	Short  bool  `json:"short,omitempty"`
}

// scanState is an enum like the models' (a named string).
type scanState string

// scanKind has a field of every kind the demo models read (plus a few
// more), all in nullable columns so that NULLs reach every scanner.
type scanKind struct {
	bun.BaseModel `bun:"table:scan_kinds"`

	ID     int64      `bun:"id,pk"`
	Parent int64      `bun:"parent"`
	N      int        `bun:"n"`
	I      int64      `bun:"i"`
	IP     *int64     `bun:"ip"`
	NP     *int       `bun:"np"`
	S      string     `bun:"s"`
	SP     *string    `bun:"sp"`
	E      scanState  `bun:"e"`
	V      string     `bun:"v,type:varchar(2000)"`
	F      float64    `bun:"f"`
	FP     *float64   `bun:"fp"`
	B      bool       `bun:"b"`
	BP     *bool      `bun:"bp"`
	T      time.Time  `bun:"t"`
	TP     *time.Time `bun:"tp"`
	D      Decimal    `bun:"d,type:BIGINT"`
	DP     *Decimal   `bun:"dp,type:BIGINT"`
	J      []scanLine `bun:"j,type:text"`
	Day    string     `bun:"day,type:date"`  // a date read into a string: bun's scanner
	Small  int        `bun:"small,type:int"` // int4 into int
	Window
}

var scanEntity = &Entity{Name: "ScanKind", Table: "scan_kinds", Fields: []*Field{
	{Name: "id", Column: "id", Type: TypeID, Sort: "ID"},
	{Name: "parent", Column: "parent", Type: TypeID},
	{Name: "s", Column: "s", Type: TypeString, Sort: "S"},
	{Name: "t", Column: "t", Type: TypeTime, Sort: "T"},
}}

// scanRows are rows with edge values of every column: NULLs, extremes,
// unicode, long strings, special floats, times with odd offsets and
// precision.
var scanRows = []string{
	// Only the keys: NULL in every other column (d and dp too; d's is read
	// by TestFastScanErrors).
	`(1, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
	`(2, 1, 0, 0, 0, 0, '', '', '', '', 0, 0, false, false, '2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00', 0, 0, '[]', '2026-01-01', 0)`,
	`(3, 1, -1, 9223372036854775807, -9223372036854775808, 2147483647, 'héllo wörld ✓ 😀 中文 "quoted" \ back', 'ünïcode ☃', 'RESERVED', 'x',
	  -0.0, 1e-320, true, true, '2026-06-30 23:59:59.999999+02', '2000-02-29 12:34:56.5+05:30', 9223372036854775807, -9223372036854775808,
	  '[{"itemId":7,"short":true},{"itemId":8}]', '0001-01-01', -2147483648)`,
	`(4, 2, 42, -9223372036854775808, 1, -1, repeat('long ✓ ', 200), repeat('x', 5000), 'PLACED', repeat('é', 700),
	  'NaN', 'Infinity', false, NULL, '1900-01-01 00:00:00+00', '0001-01-01 00:00:00+00', -1, 1, NULL, '9999-12-31', 1)`,
	`(5, 2, 7, 1, NULL, NULL, ' lead and trail ', NULL, 'X', E'tab\there\nnewline', '-Infinity', 1.7976931348623157e308, true, NULL,
	  '9999-12-31 23:59:59.999999+00', '0044-03-15 12:00:00+00 BC', 31337, NULL, '[{"itemId":-1}]', NULL, NULL)`,
	`(6, 3, 1, 2, 3, 4, 'a', 'b', 'c', 'd', 0.1, 0.30000000000000004, false, true, '1969-12-31 23:59:59.000001+00', '2026-03-29 02:30:00+00',
	  123456789, 987654321, '[]', '2024-02-29', 5)`,
}

const scanColumns = `(id, parent, n, i, ip, np, s, sp, e, v, f, fp, b, bp, t, tp, d, dp, j, day, small)`

// openScanStores opens the test store on PostgreSQL with the scan_kinds
// rows, once per session time zone (the zones' offsets have half hours,
// and before 1900… local mean time with seconds).
func openScanStores(t *testing.T) map[string]*Store {
	t.Helper()
	dsn := pgtest.New(t).DSN(testProduct.Name)
	ctx := context.Background()
	first := openTestStore(t, dsn)
	if _, err := first.DB.NewCreateTable().Model((*scanKind)(nil)).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := first.DB.ExecContext(ctx, "INSERT INTO scan_kinds "+scanColumns+" VALUES "+strings.Join(scanRows, ", ")); err != nil {
		t.Fatal(err)
	}
	out := map[string]*Store{"default": first}
	for _, tz := range []string{"UTC", "Asia/Kolkata", "America/St_Johns", "Europe/Amsterdam", "Pacific/Chatham"} {
		s, err := Open(ctx, testProduct, dsn+"&timezone="+tz, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out[tz] = s
	}
	return out
}

// bothWays runs read with bun's scanning and with the fast one and
// returns both results.
func bothWays[R any](t *testing.T, s *Store, read func() (R, error)) (bunGot, fastGot R, bunErr, fastErr error) {
	t.Helper()
	if rowPlanOf[scanKind](s.DB) == nil || !isFastPG(s.DB) {
		t.Fatal("the PostgreSQL store does not read scan_kinds the fast way")
	}
	bunScans.Store(true)
	bunGot, bunErr = read()
	bunScans.Store(false)
	fastGot, fastErr = read()
	return
}

// TestFastScanMatchesBun: every field kind reads the same value (NULLs,
// extremes, unicode, time zones and precision, decimals) through the fast
// scanner as through bun's, in every read of the package (List, ListFor,
// Lookup, Get, GetMany), in every session time zone.
func TestFastScanMatchesBun(t *testing.T) {
	stores := openScanStores(t)
	ctx := context.Background()
	// The fields the models use decode fast, the others go to bun's
	// scanner.
	want := map[string]fieldKind{"id": kindInt, "parent": kindInt, "n": kindInt, "i": kindInt, "ip": kindInt, "np": kindInt,
		"s": kindString, "sp": kindString, "e": kindString, "v": kindString, "f": kindFloat, "fp": kindFloat, "b": kindBool,
		"bp": kindBool, "t": kindTime, "tp": kindTime, "d": kindDecimal, "dp": kindSlow, "j": kindSlow, "day": kindString,
		"small": kindInt, "mg_rank": kindInt, "mg_total": kindInt}
	plan := rowPlanOf[scanKind](stores["default"].DB)
	for col, k := range want {
		f := plan.table.LookupField(col)
		if f == nil {
			t.Fatalf("no field %s", col)
		}
		if got := planField(f, plan.typ).kind; got != k {
			t.Errorf("field %s: kind %d, want %d", col, got, k)
		}
	}
	for tz, s := range stores {
		t.Run(tz, func(t *testing.T) {
			// The reads run on a DB with a hook, which must see the same
			// statements both ways.
			log := &statementLog{}
			db := s.DB.WithQueryHook(log)
			check := func(what string, read func() (any, error)) {
				t.Helper()
				b, f, be, fe := bothWays(t, s, read)
				if be != nil || fe != nil {
					t.Fatalf("%s: bun: %v, fast: %v", what, be, fe)
				}
				if !same(reflect.ValueOf(b), reflect.ValueOf(f)) {
					t.Errorf("%s differs:\nbun:  %s\nfast: %s", what, dump(b), dump(f))
				}
				stmts := log.take()
				if n := len(stmts); n > 0 && n%2 == 0 {
					for i := range stmts[:n/2] {
						if strings.Contains(stmts[n/2+i], "$1::") { // run prepared
							stmts[i] = asPrepared(stmts[i])
						}
					}
				}
				if n := len(stmts); n == 0 || n%2 != 0 || !reflect.DeepEqual(stmts[:n/2], stmts[n/2:]) {
					t.Errorf("%s: the hook saw different statements:\nbun:  %q\nfast: %q", what, stmts[:n/2], stmts[n/2:])
				}
			}
			notNullD := ListArgs{Where: map[string]any{"id": map[string]any{"ne": int64(1)}}}
			for _, a := range []ListArgs{notNullD, {First: ptr(2)}, {Last: ptr(3), OrderBy: []map[string]any{{"field": "T", "direction": "DESC"}}}} {
				a := a
				a.Where = notNullD.Where
				check(fmt.Sprintf("List %+v", a), func() (any, error) { return List[scanKind](ctx, db, scanEntity, a) })
			}
			check("ListKeep", func() (any, error) {
				return ListKeep(ctx, db, scanEntity, notNullD, func(r *scanKind) (bool, error) { return r.ID%2 == 0, nil })
			})
			check("ListFor (window)", func() (any, error) {
				return ListFor[scanKind](ctx, db, scanEntity, "parent", []int64{2, 3, 4}, ListArgs{WantTotal: true})
			})
			check("ListFor (lateral)", func() (any, error) {
				return ListFor[scanKind](ctx, db, scanEntity, "parent", []int64{1, 2, 3, 2, 4}, ListArgs{First: ptr(1), Where: notNullD.Where})
			})
			check("ListFor (lateral, prepared)", func() (any, error) {
				return ListFor[scanKind](ctx, db, scanEntity, "parent", []int64{2, 3, 4, 2, 5}, ListArgs{First: ptr(2)})
			})
			check("Lookup", func() (any, error) {
				return Lookup[scanKind](ctx, db, scanEntity, "id", []int64{2, 3, 4, 5, 6, 99}, nil)
			})
			check("GetMany", func() (any, error) { return GetMany[scanKind](ctx, db, scanEntity, []int64{3, 6}) })
			for id := int64(2); id <= 7; id++ {
				check(fmt.Sprintf("Get %d", id), func() (any, error) {
					r, err := Get[scanKind](ctx, db, scanEntity, id)
					if ErrorCode(err) == NotFound {
						return err.Error(), nil
					}
					return r, err
				})
			}
			// In a transaction too.
			check("GetManyForUpdate", func() (any, error) {
				var out map[int64]*scanKind
				err := db.RunInTx(ctx, nil, func(ctx context.Context, btx bun.Tx) error {
					var err error
					out, err = GetManyForUpdate[scanKind](ctx, &Tx{Tx: btx}, scanEntity, []int64{2, 5})
					return err
				})
				return out, err
			})
		})
	}
}

func ptr[V any](v V) *V { return &v }

// same is reflect.DeepEqual, except that NaN equals NaN (and 0 does not
// equal -0) and times must have the very same *time.Location.
func same(a, b reflect.Value) bool {
	if a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Float32, reflect.Float64:
		x, y := a.Float(), b.Float()
		return x != x && y != y || x == y && math.Signbit(x) == math.Signbit(y)
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() || a.Type() == reflect.TypeFor[*time.Location]() {
			return a.Pointer() == b.Pointer()
		}
		return same(a.Elem(), b.Elem())
	case reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return same(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if !same(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !same(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			if !same(a.MapIndex(k), b.MapIndex(k)) {
				return false
			}
		}
		return true
	case reflect.String:
		return a.String() == b.String()
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	}
	panic("same: " + a.Kind().String())
}

// dump prints rows field by field (pointers followed).
func dump(v any) string {
	var b strings.Builder
	var walk func(reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() {
				b.WriteString("nil")
				return
			}
			b.WriteString("&")
			walk(v.Elem())
		case reflect.Map:
			for _, k := range v.MapKeys() {
				fmt.Fprintf(&b, "%v: ", k)
				walk(v.MapIndex(k))
				b.WriteString("\n")
			}
		case reflect.Slice:
			if v.Type().Elem().Kind() == reflect.Pointer {
				for i := range v.Len() {
					walk(v.Index(i))
					b.WriteString("\n")
				}
				return
			}
			fmt.Fprintf(&b, "%#v", v.Interface())
		case reflect.Struct:
			if t, ok := v.Interface().(time.Time); ok {
				fmt.Fprintf(&b, "%s (%p)", t.Format(time.RFC3339Nano), t.Location())
				return
			}
			b.WriteString("{")
			for i := range v.NumField() {
				if !v.Type().Field(i).IsExported() {
					continue
				}
				fmt.Fprintf(&b, "%s:", v.Type().Field(i).Name)
				walk(v.Field(i))
				b.WriteString(" ")
			}
			b.WriteString("}")
		default:
			fmt.Fprintf(&b, "%#v", v.Interface())
		}
	}
	walk(reflect.ValueOf(v))
	return b.String()
}

// TestFastScanErrors: values bun cannot read (a NULL decimal, an infinite
// time, a column the model lacks) fail the same way on both paths, wrapped
// like database/sql wraps them; a column named _… is ignored.
func TestFastScanErrors(t *testing.T) {
	s := openScanStores(t)["default"]
	ctx := context.Background()
	read := func(q func(*bun.SelectQuery) *bun.SelectQuery) func() ([]*scanKind, error) {
		return func() ([]*scanKind, error) {
			var rows []*scanKind
			err := selectRows(ctx, s.DB, q(s.DB.NewSelect().Model(&rows).Order("id")), &rows)
			return rows, err
		}
	}
	for _, c := range []struct {
		name string
		q    func(*bun.SelectQuery) *bun.SelectQuery
		want string // in the error; "" for none
	}{
		{"NULL decimal", func(q *bun.SelectQuery) *bun.SelectQuery { return q.Where("id = 1") }, `name "d": cannot read <nil> <nil> as cents`},
		{"infinite time", func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.ExcludeColumn("t").ColumnExpr("'infinity'::timestamptz AS t").Where("id = 2")
		}, `name "t"`},
		{"unknown column", func(q *bun.SelectQuery) *bun.SelectQuery { return q.ColumnExpr("1 AS extra").Where("id = 2") },
			`does not have column "extra"`},
		{"ignored column", func(q *bun.SelectQuery) *bun.SelectQuery { return q.ColumnExpr("1 AS _extra").Where("id = 2") }, ""},
		{"model__column", func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.ExcludeColumn("s").ColumnExpr("'zz' AS scan_kind__s").Where("id = 2")
		}, ""},
		{"bad JSON", func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.ExcludeColumn("j").ColumnExpr("'[' AS j").Where("id = 2")
		}, `name "j"`},
		{"text into an int", func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.ExcludeColumn("n").ColumnExpr("'x' AS n").Where("id = 2")
		}, `name "n"`},
		{"SQL error", func(q *bun.SelectQuery) *bun.SelectQuery { return q.Where("nope = 1") }, `column "nope" does not exist`},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, f, be, fe := bothWays(t, s, read(c.q))
			if c.want == "" {
				if be != nil || fe != nil {
					t.Fatalf("bun: %v, fast: %v", be, fe)
				}
				if !same(reflect.ValueOf(b), reflect.ValueOf(f)) {
					t.Fatalf("differs:\nbun:  %s\nfast: %s", dump(b), dump(f))
				}
				return
			}
			if be == nil || fe == nil || be.Error() != fe.Error() || !strings.Contains(fe.Error(), c.want) {
				t.Fatalf("bun: %v\nfast: %v\nwant both the same, with %q", be, fe, c.want)
			}
		})
	}
	// List wraps the error as before.
	bunScans.Store(false)
	_, err := List[scanKind](ctx, s.DB, scanEntity, ListArgs{})
	if err == nil || !strings.HasPrefix(err.Error(), "list ScanKind: sql: Scan error on column index") {
		t.Fatalf("List: %v", err)
	}
}

// asPrepared writes a statement bun ran with its keys written in as the
// fast way runs it prepared (see paramsFor): the keys a parameter.
func asPrepared(stmt string) string {
	stmt = inKeys.ReplaceAllString(stmt, `("$1" = ANY ($$1::bigint[]))`)
	stmt = byKey.ReplaceAllString(stmt, `("id" = $$1::bigint)`)
	return keyArray.ReplaceAllString(stmt, `unnest($$1::bigint[])`)
}

var (
	inKeys   = regexp.MustCompile(`\("(\w+)" IN \([0-9, ]+\)\)`)
	byKey    = regexp.MustCompile(`\("id" = [0-9]+\)`)
	keyArray = regexp.MustCompile(`unnest\('\{[0-9,]*\}'::bigint\[\]\)`)
)

// statementLog records the statements its store runs.
type statementLog struct {
	mu    sync.Mutex
	stmts []string
	dbs   []*bun.DB
	ops   []string
}

// take returns the statements recorded since the last take.
func (l *statementLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.stmts
	l.stmts, l.dbs, l.ops = nil, nil, nil
	return out
}

func (l *statementLog) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}
func (l *statementLog) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stmts = append(l.stmts, e.Query)
	l.dbs = append(l.dbs, e.DB)
	l.ops = append(l.ops, e.Operation())
}

// TestFastScanHooksAndCancel: the store's query hooks see a fast read with
// the statement bun would run and the store's DB; a cancelled read stops
// the statement on the server and leaves the pool usable.
func TestFastScanHooksAndCancel(t *testing.T) {
	s := openScanStores(t)["default"]
	ctx := context.Background()
	log := &statementLog{}
	db := s.DB.WithQueryHook(log)
	var rows []*scanKind
	q := db.NewSelect().Model(&rows).Where("id > ?", 1).Order("id")
	text := q.String()
	if err := selectRows(ctx, db, q, &rows); err != nil || len(rows) != 5 {
		t.Fatalf("%d rows, %v", len(rows), err)
	}
	if len(log.stmts) != 1 || log.stmts[0] != text || log.dbs[0] != db || log.ops[0] != "SELECT" {
		t.Fatalf("hook saw %q (%v, %v), want once %q", log.stmts, log.dbs, log.ops, text)
	}

	// A read past its deadline fails as bun's does (the server's
	// cancellation), soon.
	start := time.Now()
	_, _, bunErr, fastErr := bothWays(t, s, func() ([]*scanKind, error) {
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		var slow []*scanKind
		err := selectRows(cctx, s.DB, s.DB.NewSelect().Model(&slow).Where("pg_sleep(30) IS NOT NULL"), &slow)
		return slow, err
	})
	if fastErr == nil || bunErr == nil || fastErr.Error() != bunErr.Error() || !strings.Contains(fastErr.Error(), "57014") {
		t.Fatalf("a read past its deadline: %v, with bun's scanning: %v", fastErr, bunErr)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the cancelled reads took %s", d)
	}
	var running int
	if err := s.DB.NewRaw("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND state = 'active' AND pid <> pg_backend_pid()").
		Scan(ctx, &running); err != nil {
		t.Fatal(err)
	}
	if running != 0 {
		t.Errorf("%d cancelled statements still run on the server", running)
	}
	for range 4 {
		if _, err := List[scanKind](ctx, s.DB, scanEntity, ListArgs{Where: map[string]any{"id": map[string]any{"ne": int64(1)}}}); err != nil {
			t.Fatalf("after the cancel: %v", err)
		}
	}
}
