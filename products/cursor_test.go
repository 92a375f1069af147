package products

import (
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
)

type cursorRow struct {
	bun.BaseModel `bun:"table:cursor_rows"`

	ID    int64     `bun:"id,pk"`
	Name  string    `bun:"name"`
	Score float64   `bun:"score"`
	Rank  int       `bun:"rank"`
	At    time.Time `bun:"at"`
}

var cursorEntity = &Entity{
	Name: "Row", Table: "cursor_rows",
	Fields: []*Field{
		{Name: "id", Column: "id", Type: TypeID, Sort: "ID"},
		{Name: "name", Column: "name", Type: TypeString, Sort: "NAME"},
		{Name: "score", Column: "score", Type: TypeFloat, Sort: "SCORE"},
		{Name: "rank", Column: "rank", Type: TypeInt, Sort: "RANK"},
		{Name: "at", Column: "at", Type: TypeTime, Sort: "AT"},
	},
}

func desc(s string) *string { return &s }

// TestCursorRoundTrip encodes a row's cursor and decodes it into the
// keyset condition: every key's value comes back with its type, and the
// condition expands mixed directions correctly.
func TestCursorRoundTrip(t *testing.T) {
	row := &cursorRow{ID: 42, Name: `O'Brien "x"`, Score: 0.1 + 0.2, Rank: -3, At: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.FixedZone("X", 3600))}
	orderBy := []map[string]any{
		{"field": "NAME", "direction": desc("DESC")},
		{"field": "SCORE"},
		{"field": "RANK", "direction": "ASC"},
		{"field": "AT", "direction": desc("DESC")},
	}
	for _, d := range []dialect.Name{dialect.SQLite, dialect.PG} {
		c := compiler{dialect: d}
		tables := sqlitedialect.New().Tables()
		if d == dialect.PG {
			tables = pgdialect.New().Tables()
		}
		p, err := c.plan(cursorEntity, ListArgs{OrderBy: orderBy})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.signature(); got != "Row,name desc,score,rank,at desc,id" {
			t.Errorf("signature %q", got)
		}
		cur, err := p.encodeCursor(tables.Get(reflect.TypeFor[cursorRow]()), row)
		if err != nil {
			t.Fatal(err)
		}
		var after sqlExpr
		if err := c.keyset(p, &after, cur, "after", false); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		wantArgs := []any{row.Name, row.Name, row.Score, row.Name, row.Score, int64(row.Rank),
			row.Name, row.Score, int64(row.Rank), row.At.UTC(), row.Name, row.Score, int64(row.Rank), row.At.UTC(), row.ID}
		if !reflect.DeepEqual(after.args, wantArgs) {
			t.Errorf("%s: args\n got %#v\nwant %#v", d, after.args, wantArgs)
		}
		// PostgreSQL compares and sorts strings in byte order, like SQLite.
		collate := ""
		if d == dialect.PG {
			collate = ` COLLATE "C"`
		}
		wantSQL := `(("name"` + collate + ` < ?) OR ("name" = ? AND "score" > ?) OR ("name" = ? AND "score" = ? AND "rank" > ?) OR ` +
			`("name" = ? AND "score" = ? AND "rank" = ? AND "at" < ?) OR ("name" = ? AND "score" = ? AND "rank" = ? AND "at" = ? AND "id" > ?))`
		if got := after.sql.String(); got != wantSQL {
			t.Errorf("%s: after\n got %s\nwant %s", d, got, wantSQL)
		}
		var before sqlExpr
		if err := c.keyset(p, &before, cur, "before", true); err != nil {
			t.Fatal(err)
		}
		if got := before.sql.String(); !strings.HasPrefix(got, `(("name"`+collate+` > ?) OR ("name" = ? AND "score" < ?)`) || !strings.HasSuffix(got, `"id" < ?))`) {
			t.Errorf("%s: before %s", d, got)
		}
		if got := c.orderSQL(p); got != `"name"`+collate+` DESC, "score" ASC, "rank" ASC, "at" DESC, "id" ASC` {
			t.Errorf("%s: order %s", d, got)
		}
		p.reverse = true
		if got := c.orderSQL(p); got != `"name"`+collate+` ASC, "score" DESC, "rank" DESC, "at" ASC, "id" DESC` {
			t.Errorf("%s: reversed order %s", d, got)
		}
	}
}

func TestCursorRejected(t *testing.T) {
	c := compiler{dialect: dialect.SQLite}
	byName, _ := c.plan(cursorEntity, ListArgs{OrderBy: []map[string]any{{"field": "NAME"}}})
	tables := sqlitedialect.New().Tables()
	good, err := byName.encodeCursor(tables.Get(reflect.TypeFor[cursorRow]()), &cursorRow{ID: 1, Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	byScore, _ := c.plan(cursorEntity, ListArgs{OrderBy: []map[string]any{{"field": "SCORE"}}})
	byID, _ := c.plan(cursorEntity, ListArgs{})
	for _, tc := range []struct {
		name   string
		p      *plan
		cursor string
	}{
		{"not base64", byName, "***"},
		{"not JSON", byName, b64("nope")},
		{"other ordering", byScore, good},
		{"other entity", byID, b64(`{"s":"Other,id","v":[1]}`)},
		{"too few values", byName, b64(`{"s":"Row,name,id","v":["a"]}`)},
		{"wrong type for id", byID, b64(`{"s":"Row,id","v":["1"]}`)},
		{"fraction for id", byID, b64(`{"s":"Row,id","v":[1.5]}`)},
		{"number for name", byName, b64(`{"s":"Row,name,id","v":[1,1]}`)},
		{"bad time", func() *plan {
			p, _ := c.plan(cursorEntity, ListArgs{OrderBy: []map[string]any{{"field": "AT"}}})
			return p
		}(), b64(`{"s":"Row,at,id","v":["yesterday",1]}`)},
	} {
		var x sqlExpr
		err := c.keyset(tc.p, &x, tc.cursor, "after", false)
		if ErrorCode(err) != BadUserInput {
			t.Errorf("%s: %v, want BAD_USER_INPUT", tc.name, err)
		}
	}
}

func TestPlanArguments(t *testing.T) {
	c := compiler{dialect: dialect.SQLite}
	n := func(v int) *int { return &v }
	for _, tc := range []struct {
		name  string
		args  ListArgs
		code  Code
		field string
	}{
		{"first and last", ListArgs{First: n(1), Last: n(1)}, BadUserInput, "first"},
		{"negative first", ListArgs{First: n(-1)}, BadUserInput, "first"},
		{"negative last", ListArgs{Last: n(-1)}, BadUserInput, "last"},
		{"first too large", ListArgs{First: n(MaxPageSize + 1)}, LimitExceeded, "first"},
		{"last too large", ListArgs{Last: n(MaxPageSize + 1)}, LimitExceeded, "last"},
		{"unknown sort field", ListArgs{OrderBy: []map[string]any{{"field": "SHOE"}}}, BadUserInput, "orderBy[0].field"},
		{"bad direction", ListArgs{OrderBy: []map[string]any{{"field": "NAME", "direction": desc("UP")}}}, BadUserInput, "orderBy[0].direction"},
		{"field twice", ListArgs{OrderBy: []map[string]any{{"field": "NAME"}, {"field": "NAME"}}}, BadUserInput, "orderBy[1].field"},
		{"where on unknown field", ListArgs{Where: map[string]any{"shoe": map[string]any{"eq": "x"}}}, BadUserInput, "where.shoe"},
		{"contains on a number", ListArgs{Where: map[string]any{"rank": map[string]any{"contains": "1"}}}, BadUserInput, "where.rank.contains"},
		{"pattern too long", ListArgs{Where: map[string]any{"name": map[string]any{"startsWith": strings.Repeat("é", MaxPatternLength+1)}}}, BadUserInput, "where.name.startsWith"},
		{"bad list element", ListArgs{Where: map[string]any{"rank": map[string]any{"in": []any{1, "x"}}}}, BadUserInput, "where.rank.in[1]"},
	} {
		_, err := c.plan(cursorEntity, tc.args)
		var e *Error
		if err == nil || ErrorCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
			continue
		}
		if errors.As(err, &e); e.Field != tc.field {
			t.Errorf("%s: field %q, want %q", tc.name, e.Field, tc.field)
		}
	}
	if p, err := c.plan(cursorEntity, ListArgs{First: n(MaxPageSize)}); err != nil || p.limit != MaxPageSize {
		t.Errorf("first = max: %v", err)
	}
	if p, _ := c.plan(cursorEntity, ListArgs{}); p.limit != DefaultPageSize || p.reverse {
		t.Errorf("default: limit %d reverse %v", p.limit, p.reverse)
	}
}

// TestWhereNulls: a filter given as null (a typed nil in the generated
// input map) means "no condition", never "matches nothing".
func TestWhereNulls(t *testing.T) {
	c := compiler{dialect: dialect.SQLite}
	for _, tc := range []struct {
		name string
		w    map[string]any
		want string
	}{
		{"or null", map[string]any{"or": []map[string]any(nil)}, "1=1"},
		{"and null", map[string]any{"and": []map[string]any(nil)}, "1=1"},
		{"not null", map[string]any{"not": map[string]any(nil)}, "1=1"},
		{"field null", map[string]any{"name": map[string]any(nil)}, "1=1"},
		{"in null", map[string]any{"id": map[string]any{"in": []int64(nil)}}, "1=1"},
		{"eq null", map[string]any{"id": map[string]any{"eq": (*int64)(nil)}}, "1=1"},
		{"in empty", map[string]any{"id": map[string]any{"in": []int64{}}}, "(1=0)"},
		{"notIn empty", map[string]any{"id": map[string]any{"notIn": []int64{}}}, "(1=1)"},
		{"or empty", map[string]any{"or": []map[string]any{}}, "(1=0)"},
		{"and empty", map[string]any{"and": []map[string]any{}}, "(1=1)"},
	} {
		var x sqlExpr
		if err := c.where(&x, cursorEntity, tc.w, "where"); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := x.sql.String(); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
		// Live subscriptions read the filter the same way.
		img := map[string]any{"id": 1.0, "name": "x", "score": 1.0, "rank": 1.0, "at": "2026-01-01T00:00:00Z"}
		if ok, err := Match(cursorEntity, tc.w, img); err != nil || ok != (tc.want != "(1=0)") {
			t.Errorf("%s: Match = %v, %v", tc.name, ok, err)
		}
	}
}

// TestListTypes: list filters accept the slice types gqlgen generates.
func TestListTypes(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := "a"
	for _, tc := range []struct {
		t    FieldType
		list any
	}{
		{TypeID, []int64{1, 2}},
		{TypeInt, []int{1, 2}},
		{TypeFloat, []float64{1, 2}},
		{TypeString, []string{"a", "b"}},
		{TypeString, []*string{&s, &s}},
		{TypeTime, []*time.Time{&at, &at}},
		{TypeTime, []time.Time{at, at}},
		{TypeEnum, []any{"A", "B"}},
	} {
		got, err := coerceList(tc.t, tc.list, "in")
		if err != nil || len(got) != 2 {
			t.Errorf("%T: %v %v", tc.list, got, err)
		}
	}
	if _, err := coerceList(TypeInt, 5, "in"); ErrorCode(err) != BadUserInput {
		t.Errorf("not a list: %v", err)
	}
}

// TestPatterns: wildcard characters of LIKE and GLOB match literally.
func TestPatterns(t *testing.T) {
	for _, tc := range []struct {
		d      dialect.Name
		s      string
		prefix bool
		want   string
	}{
		{dialect.SQLite, "a*b?c[d]", false, "*a[*]b[?]c[[]d]*"},
		{dialect.SQLite, "ab", true, "ab*"},
		{dialect.PG, `50%_\`, false, `%50\%\_\\%`},
		{dialect.PG, "ab", true, "ab%"},
	} {
		if got := (compiler{dialect: tc.d}).pattern(tc.s, tc.prefix); got != tc.want {
			t.Errorf("%s %q prefix=%v: %q, want %q", tc.d, tc.s, tc.prefix, got, tc.want)
		}
	}
}
