package products

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/uptrace/bun"
)

// gadget is an entity with a string, an enum and a number to write policies
// on, stored in the test product's store (see forEachStore).
type gadget struct {
	bun.BaseModel `bun:"table:gadgets"`

	ID     int64  `bun:"id,pk,autoincrement" json:"id"`
	Region string `bun:"region,notnull" json:"region"`
	Kind   string `bun:"kind,notnull" json:"kind"`
	Size   int    `bun:"size,notnull" json:"size"`
	Owner  string `bun:"owner,notnull" json:"owner"`
}

var gadgetKinds = &Enum{Name: "GadgetKind", Values: []EnumValue{{Name: "SMALL"}, {Name: "LARGE"}}}

var gadgetEntity = &Entity{Name: "Gadget", Table: "gadgets", Fields: []*Field{
	{Name: "id", Column: "id", Type: TypeID, Sort: "ID"},
	{Name: "region", Column: "region", Type: TypeString, Group: "REGION"},
	{Name: "kind", Column: "kind", Type: TypeEnum, Enum: gadgetKinds, Group: "KIND"},
	{Name: "size", Column: "size", Type: TypeInt, Numeric: true},
	{Name: "owner", Column: "owner", Type: TypeString, PII: true, Sort: "OWNER", Group: "OWNER"},
}}

var gadgetProduct = &Descriptor{Name: "gadgets", Entities: []*Entity{gadgetEntity}}

func gadgetPolicies(t *testing.T, rules ...PolicyRule) *Policies {
	t.Helper()
	p, err := NewPolicies([]*Descriptor{gadgetProduct}, rules)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// jsonWhere decodes a policy's where as the configuration gives it.
func jsonWhere(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPolicySemantics(t *testing.T) {
	p := gadgetPolicies(t,
		PolicyRule{Role: "regional", Entity: "Gadget", Where: jsonWhere(t, `{"region": {"eq": "$claims.org.region"}}`)},
		PolicyRule{Role: "small", Entity: "Gadget", Where: jsonWhere(t, `{"and": [{"kind": {"eq": "SMALL"}}, {"size": {"lte": 10}}]}`)},
		PolicyRule{Role: "listed", Entity: "Gadget", Where: jsonWhere(t, `{"region": {"in": "$claims.regions"}}`)},
	)
	rows := []map[string]any{
		{"id": 1.0, "region": "north", "kind": "SMALL", "size": 5.0},
		{"id": 2.0, "region": "south", "kind": "SMALL", "size": 50.0},
		{"id": 3.0, "region": "south", "kind": "LARGE", "size": 5.0},
		{"id": 4.0, "region": "west", "kind": "SMALL", "size": 1.0},
	}
	visible := func(id *Identity) []int {
		c := p.For(id, gadgetEntity)
		if c == nil {
			return nil
		}
		var out []int
		for _, r := range rows {
			ok, err := c.Match(r)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				out = append(out, int(r["id"].(float64)))
			}
		}
		if out == nil {
			out = []int{}
		}
		return out
	}
	claims := map[string]any{"org": map[string]any{"region": "south"}, "regions": []any{"west", "north"}}
	for _, c := range []struct {
		name string
		id   *Identity
		want []int // nil: not restricted
	}{
		{"one policy, claim substituted", &Identity{Roles: []string{"regional"}, Claims: claims}, []int{2, 3}},
		{"policies combine with OR", &Identity{Roles: []string{"regional", "small"}, Claims: claims}, []int{1, 2, 3, 4}},
		{"a literal policy", &Identity{Roles: []string{"small"}}, []int{1, 4}},
		{"a list claim", &Identity{Roles: []string{"listed"}, Claims: claims}, []int{1, 4}},
		{"a missing claim admits nothing", &Identity{Roles: []string{"regional"}}, []int{}},
		{"a missing claim leaves the other policies", &Identity{Roles: []string{"regional", "small"}}, []int{1, 4}},
		{"a claim of the wrong type admits nothing", &Identity{Roles: []string{"regional"}, Claims: map[string]any{"org": map[string]any{"region": 7.0}}}, []int{}},
		{"no applicable policy", &Identity{Roles: []string{"gadgets:read"}, Claims: claims}, nil},
		{"admin", &Identity{Roles: []string{"regional", RoleAdmin}, Claims: claims}, nil},
		{"dev", &Identity{Dev: true}, nil},
	} {
		if got := visible(c.id); !slices.Equal(got, c.want) || (got == nil) != (c.want == nil) {
			t.Errorf("%s: rows %v, want %v", c.name, got, c.want)
		}
	}
	if p.Empty() || !(*Policies)(nil).Empty() {
		t.Error("Empty")
	}
}

func TestPolicyValidation(t *testing.T) {
	for where, msg := range map[string]string{
		`{"color": {"eq": "red"}}`:                   `cannot be filtered on "color"`,
		`{"region": {"matches": "n.*"}}`:             `unknown operator "matches"`,
		`{"size": {"gt": "$claims"}}`:                "", // not a reference: a literal string, which size cannot take
		`{"size": {"gt": "big"}}`:                    "must be an integer",
		`{"kind": {"eq": "HUGE"}}`:                   "must be a value of GadgetKind",
		`{"region": {"eq": "$claims.a..b"}}`:         "not a claim reference",
		`{"or": {"region": {"eq": "x"}}}`:            "must be a list of filters",
		`{"region": {"isNull": "$claims.flag"}}`:     "",
		`{"region": {"in": ["north", "$claims.r"]}}`: "",
	} {
		_, err := NewPolicies([]*Descriptor{gadgetProduct}, []PolicyRule{{Role: "r", Entity: "Gadget", Where: jsonWhere(t, where)}})
		switch {
		case where == `{"size": {"gt": "$claims"}}`:
			if err == nil || !strings.Contains(err.Error(), "must be an integer") {
				t.Errorf("%s: %v", where, err)
			}
		case msg == "" && err != nil:
			t.Errorf("%s: %v", where, err)
		case msg != "" && (err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), `policy 1 (role "r", entity "Gadget")`)):
			t.Errorf("%s: %v, want %q", where, err, msg)
		}
	}
}

// TestPolicySQLAgreesWithMatch: a policy restricts lists, counts,
// lookups, aggregates and ListKeep in SQL to exactly the rows Match admits.
func TestPolicySQLAgreesWithMatch(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.DB.NewCreateTable().Model((*gadget)(nil)).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		var all []*gadget
		for i := range 40 {
			g := &gadget{Region: []string{"north", "south", "west"}[i%3], Kind: []string{"SMALL", "LARGE"}[i%2], Size: i, Owner: fmt.Sprint("o", i)}
			if _, err := s.DB.NewInsert().Model(g).Returning("id").Exec(ctx); err != nil {
				t.Fatal(err)
			}
			all = append(all, g)
		}
		p := gadgetPolicies(t, PolicyRule{Role: "r", Entity: "Gadget",
			Where: jsonWhere(t, `{"or": [{"region": {"eq": "$claims.region"}}, {"and": [{"kind": {"eq": "LARGE"}}, {"size": {"gte": 30}}]}]}`)})
		pol := p.For(&Identity{Roles: []string{"r"}, Claims: map[string]any{"region": "west"}}, gadgetEntity)
		var want []int64
		for _, g := range all {
			b, _ := json.Marshal(g)
			var img map[string]any
			json.Unmarshal(b, &img)
			if ok, err := pol.Match(img); err != nil {
				t.Fatal(err)
			} else if ok {
				want = append(want, g.ID)
			}
		}
		if len(want) == 0 || len(want) == len(all) {
			t.Fatalf("a policy admitting %d of %d rows tests nothing", len(want), len(all))
		}
		ids := func(rows []*gadget) []int64 {
			var out []int64
			for _, r := range rows {
				out = append(out, r.ID)
			}
			slices.Sort(out)
			return out
		}
		n := 1000
		page, err := List[gadget](ctx, s.DB, gadgetEntity, ListArgs{First: &n, Restrict: pol, WantTotal: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(page.Nodes); !slices.Equal(got, want) || page.Total != len(want) {
			t.Errorf("List: %v (total %d), want %v", got, page.Total, want)
		}
		// The user's where is ANDed.
		page, err = List[gadget](ctx, s.DB, gadgetEntity, ListArgs{First: &n, Restrict: pol, Where: map[string]any{"kind": map[string]any{"eq": "SMALL"}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range page.Nodes {
			if g.Kind != "SMALL" || !slices.Contains(want, g.ID) {
				t.Errorf("List with where: %+v", g)
			}
		}
		allIDs := make([]int64, len(all))
		for i, g := range all {
			allIDs[i] = g.ID
		}
		found, err := Lookup[gadget](ctx, s.DB, gadgetEntity, "id", allIDs, pol)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for id := range found {
			got = append(got, id)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("Lookup: %v, want %v", got, want)
		}
		agg, err := Aggregate(ctx, s.DB, gadgetEntity, AggregateArgs{Restrict: pol})
		if err != nil {
			t.Fatal(err)
		}
		if agg[0].Count != len(want) {
			t.Errorf("Aggregate: %d, want %d", agg[0].Count, len(want))
		}
		// ListKeep with the same condition in Go, paged by 3 both ways.
		keep := func(g *gadget) (bool, error) { return slices.Contains(want, g.ID), nil }
		for _, backward := range []bool{false, true} {
			var paged []int64
			var cursor *string
			for range 100 {
				three := 3
				a := ListArgs{First: &three, After: cursor, WantTotal: true}
				if backward {
					a = ListArgs{Last: &three, Before: cursor, WantTotal: true}
				}
				pg, err := ListKeep(ctx, s.DB, gadgetEntity, a, keep)
				if err != nil {
					t.Fatal(err)
				}
				if pg.Total != len(want) {
					t.Fatalf("ListKeep total %d, want %d", pg.Total, len(want))
				}
				for _, g := range pg.Nodes {
					paged = append(paged, g.ID)
				}
				if backward && !pg.PageInfo.HasPreviousPage || !backward && !pg.PageInfo.HasNextPage {
					break
				}
				if backward {
					cursor = pg.PageInfo.StartCursor
				} else {
					cursor = pg.PageInfo.EndCursor
				}
			}
			slices.Sort(paged)
			if !slices.Equal(paged, want) {
				t.Errorf("ListKeep (backward %v): %v, want %v", backward, paged, want)
			}
		}
	})
}

// sqlLog records the statements a store runs.
type sqlLog struct {
	mu    sync.Mutex
	stmts []string
}

func (l *sqlLog) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (l *sqlLog) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stmts = append(l.stmts, e.Query)
}

// TestAggregateGroupLimit: more groups than MaxGroups is LIMIT_EXCEEDED,
// found by reading one group more than allowed (LIMIT n+1), not all.
func TestAggregateGroupLimit(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.DB.NewCreateTable().Model((*gadget)(nil)).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			if _, err := s.DB.NewInsert().Model(&gadget{Region: fmt.Sprint("r", i), Kind: "SMALL", Size: i}).Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
		log := &sqlLog{}
		db := s.DB.WithQueryHook(log)
		_, err := Aggregate(ctx, db, gadgetEntity, AggregateArgs{GroupBy: []string{"REGION"}, MaxGroups: 4})
		var e *Error
		if !errors.As(err, &e) || e.Code != LimitExceeded || e.Extensions["limit"] != "groups" || e.Extensions["value"] != 4 {
			t.Fatalf("err %v (%+v)", err, e)
		}
		if len(log.stmts) != 1 || !strings.Contains(log.stmts[0], "LIMIT 5") {
			t.Errorf("statements %q, want one with LIMIT 5", log.stmts)
		}
		rows, err := Aggregate(ctx, db, gadgetEntity, AggregateArgs{GroupBy: []string{"KIND"}, MaxGroups: 4})
		if err != nil || len(rows) != 1 {
			t.Errorf("one group: %v %v", rows, err)
		}
	})
}

func TestMaskAndPIIUse(t *testing.T) {
	img := `{"id":7,"region":"north","owner":"Olga","size":12345678901234567,"price":"313.61"}`
	got, err := MaskImageJSON(gadgetEntity, &img)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(*got))
	dec.UseNumber()
	dec.Decode(&m)
	if m["owner"] != Masked || m["region"] != "north" || fmt.Sprint(m["size"]) != "12345678901234567" || m["price"] != "313.61" {
		t.Errorf("masked image %s", *got)
	}
	if same, _ := MaskImageJSON(widgetEntity, &img); same != &img {
		t.Error("an entity without personal data changed the image")
	}
	for _, c := range []struct {
		where   map[string]any
		orderBy []map[string]any
		groupBy []string
		want    string
	}{
		{map[string]any{"region": map[string]any{"eq": "x"}}, nil, nil, ""},
		{map[string]any{"and": []any{map[string]any{"region": map[string]any{"eq": "x"}}, map[string]any{"not": map[string]any{"owner": map[string]any{"eq": "x"}}}}}, nil, nil, "where.and[1].not.owner"},
		{nil, []map[string]any{{"field": "ID"}, {"field": "OWNER"}}, nil, "orderBy[1].field"},
		{nil, nil, []string{"KIND", "OWNER"}, "groupBy[1]"},
	} {
		if got, _ := PIIUse(gadgetEntity, c.where, c.orderBy, c.groupBy); got != c.want {
			t.Errorf("PIIUse(%v, %v, %v) = %q, want %q", c.where, c.orderBy, c.groupBy, got, c.want)
		}
	}
}
