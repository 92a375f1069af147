package web_test

// The query API through the real HTTP handler: every filter operator,
// ordering with ties, pagination in both directions, page-size limits, bad
// cursors, aggregates and lookups. Expectations are computed from rows read
// straight from the stores (plain SQL) and filtered/sorted in Go, or with
// SQL written here, never with the code under test.

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/engagement"
	"github.com/meshgate/meshgate/products/inventory"
	"github.com/meshgate/meshgate/products/orders"
)

// listSpec names an entity's list field and input types.
type listSpec struct{ field, where, orderBy string }

var (
	customerList    = listSpec{"customers", "CustomerWhere", "CustomerOrderBy"}
	itemList        = listSpec{"items", "ItemWhere", "ItemOrderBy"}
	orderList       = listSpec{"orders", "OrderWhere", "OrderOrderBy"}
	lineList        = listSpec{"orderLines", "OrderLineWhere", "OrderLineOrderBy"}
	interactionList = listSpec{"interactions", "InteractionWhere", "InteractionOrderBy"}
)

func (s listSpec) query() string {
	return fmt.Sprintf(`query($where: %s, $orderBy: [%s!], $first: Int, $after: String, $last: Int, $before: String) {
  list: %s(where: $where, orderBy: $orderBy, first: $first, after: $after, last: $last, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id } }
    nodes { id }
  }
}`, s.where, s.orderBy, s.field)
}

// page is a decoded connection.
type page struct {
	TotalCount int `json:"totalCount"`
	PageInfo   struct {
		HasNextPage     bool    `json:"hasNextPage"`
		HasPreviousPage bool    `json:"hasPreviousPage"`
		StartCursor     *string `json:"startCursor"`
		EndCursor       *string `json:"endCursor"`
	} `json:"pageInfo"`
	Edges []struct {
		Cursor string `json:"cursor"`
		Node   struct {
			ID string `json:"id"`
		} `json:"node"`
	} `json:"edges"`
	Nodes []struct {
		ID string `json:"id"`
	} `json:"nodes"`
}

// ids returns the node ids of the page, checking that edges and nodes agree
// and that startCursor/endCursor are the first and last edge's cursors.
func (p page) ids(t *testing.T) []int64 {
	t.Helper()
	if len(p.Edges) != len(p.Nodes) {
		t.Fatalf("%d edges but %d nodes", len(p.Edges), len(p.Nodes))
	}
	out := make([]int64, len(p.Nodes))
	for i, n := range p.Nodes {
		if p.Edges[i].Node.ID != n.ID {
			t.Fatalf("edge %d is %s but node %d is %s", i, p.Edges[i].Node.ID, i, n.ID)
		}
		if p.Edges[i].Cursor == "" {
			t.Fatalf("edge %d has no cursor", i)
		}
		out[i] = atoi(t, n.ID)
	}
	if len(p.Edges) == 0 {
		if p.PageInfo.StartCursor != nil || p.PageInfo.EndCursor != nil {
			t.Errorf("empty page has cursors %v %v", p.PageInfo.StartCursor, p.PageInfo.EndCursor)
		}
	} else {
		if p.PageInfo.StartCursor == nil || *p.PageInfo.StartCursor != p.Edges[0].Cursor {
			t.Errorf("startCursor is not the first edge's cursor")
		}
		if p.PageInfo.EndCursor == nil || *p.PageInfo.EndCursor != p.Edges[len(p.Edges)-1].Cursor {
			t.Errorf("endCursor is not the last edge's cursor")
		}
	}
	return out
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("id %q: %v", s, err)
	}
	return n
}

// fetch runs the list query with the given arguments (absent ones omitted).
func fetch(t *testing.T, g *gateway, spec listSpec, args map[string]any) page {
	t.Helper()
	var out struct{ List page }
	g.query(t, spec.query(), args, &out)
	return out.List
}

// fetchAll pages forward through every matching row with the largest page size.
func fetchAll(t *testing.T, g *gateway, spec listSpec, where, orderBy any) ([]int64, int) {
	t.Helper()
	var ids []int64
	args := map[string]any{"where": where, "orderBy": orderBy, "first": products.MaxPageSize}
	for {
		p := fetch(t, g, spec, args)
		ids = append(ids, p.ids(t)...)
		if !p.PageInfo.HasNextPage {
			return ids, p.TotalCount
		}
		args["after"] = *p.PageInfo.EndCursor
	}
}

// where builders.
func fld(field, op string, v any) map[string]any {
	return map[string]any{field: map[string]any{op: v}}
}

func and(ws ...map[string]any) map[string]any { return map[string]any{"and": ws} }
func or(ws ...map[string]any) map[string]any  { return map[string]any{"or": ws} }
func not(w map[string]any) map[string]any     { return map[string]any{"not": w} }

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// filterCase is one where argument and the rows it must select.
type filterCase[T any] struct {
	name  string
	where map[string]any
	want  func(*T) bool
	// edge cases may select no row or every row; all others must
	// discriminate, so that a filter that is ignored cannot pass.
	edge bool
}

func checkFilters[T any](t *testing.T, g *gateway, spec listSpec, rows []*T, id func(*T) int64, cases []filterCase[T]) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var want []int64
			for _, r := range rows {
				if c.want(r) {
					want = append(want, id(r))
				}
			}
			if !c.edge && (len(want) == 0 || len(want) == len(rows)) {
				t.Fatalf("test data: the case selects %d of %d rows and proves nothing", len(want), len(rows))
			}
			got, total := fetchAll(t, g, spec, c.where, nil)
			if !slices.Equal(got, want) {
				t.Errorf("where %s\n got %v\nwant %v", mustJSON(c.where), got, want)
			}
			if total != len(want) {
				t.Errorf("totalCount = %d, want %d", total, len(want))
			}
		})
	}
}

func TestFilterCustomers(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		g := sharedGateway(t, backend)
		rows := loadAll[customers.Customer](t, g.mesh.Store("customers").DB)
		c1, cMid := rows[0], rows[len(rows)/2]
		created := make([]time.Time, len(rows))
		for i, r := range rows {
			created[i] = r.CreatedAt
		}
		slices.SortFunc(created, time.Time.Compare)
		midT := created[len(created)/2]
		extra := rows[len(rows)-1] // created through the API: microsecond timestamp
		var aPhone string
		for _, r := range rows {
			if r.Phone != nil {
				aPhone = *r.Phone
				break
			}
		}
		cases := []filterCase[customers.Customer]{
			// ID
			{name: "id/eq", where: fld("id", "eq", "5"), want: func(r *customers.Customer) bool { return r.ID == 5 }},
			{name: "id/eq number", where: fld("id", "eq", 7), want: func(r *customers.Customer) bool { return r.ID == 7 }},
			{name: "id/ne", where: fld("id", "ne", "5"), want: func(r *customers.Customer) bool { return r.ID != 5 }},
			{name: "id/gt", where: fld("id", "gt", "30"), want: func(r *customers.Customer) bool { return r.ID > 30 }},
			{name: "id/gte", where: fld("id", "gte", "30"), want: func(r *customers.Customer) bool { return r.ID >= 30 }},
			{name: "id/lt", where: fld("id", "lt", "3"), want: func(r *customers.Customer) bool { return r.ID < 3 }},
			{name: "id/lte", where: fld("id", "lte", "3"), want: func(r *customers.Customer) bool { return r.ID <= 3 }},
			{name: "id/range", where: map[string]any{"id": map[string]any{"gt": "5", "lte": "10"}}, want: func(r *customers.Customer) bool { return r.ID > 5 && r.ID <= 10 }},
			{name: "id/in", where: fld("id", "in", []any{"1", "3", "999999"}), want: func(r *customers.Customer) bool { return r.ID == 1 || r.ID == 3 }},
			{name: "id/notIn", where: fld("id", "notIn", []any{"1", "2", "3"}), want: func(r *customers.Customer) bool { return r.ID > 3 }},
			{name: "id/in empty", edge: true, where: fld("id", "in", []any{}), want: func(*customers.Customer) bool { return false }},
			{name: "id/notIn empty", edge: true, where: fld("id", "notIn", []any{}), want: func(*customers.Customer) bool { return true }},
			{name: "id/in null", edge: true, where: fld("id", "in", nil), want: func(*customers.Customer) bool { return true }},
			{name: "id/eq null", edge: true, where: fld("id", "eq", nil), want: func(*customers.Customer) bool { return true }},
			{name: "id/isNull true", edge: true, where: fld("id", "isNull", true), want: func(*customers.Customer) bool { return false }},
			{name: "id/isNull false", edge: true, where: fld("id", "isNull", false), want: func(*customers.Customer) bool { return true }},
			// strings: byte order, exact and pattern matches
			{name: "name/eq", where: fld("name", "eq", c1.Name), want: func(r *customers.Customer) bool { return r.Name == c1.Name }},
			{name: "name/ne", where: fld("name", "ne", c1.Name), want: func(r *customers.Customer) bool { return r.Name != c1.Name }},
			{name: "name/gt", where: fld("name", "gt", "M"), want: func(r *customers.Customer) bool { return r.Name > "M" }},
			{name: "name/gte", where: fld("name", "gte", cMid.Name), want: func(r *customers.Customer) bool { return r.Name >= cMid.Name }},
			{name: "name/lt", where: fld("name", "lt", "M"), want: func(r *customers.Customer) bool { return r.Name < "M" }},
			{name: "name/lte", where: fld("name", "lte", cMid.Name), want: func(r *customers.Customer) bool { return r.Name <= cMid.Name }},
			{name: "name/gt lower case sorts after upper", where: fld("name", "gt", "Zed"), want: func(r *customers.Customer) bool { return r.Name > "Zed" }},
			{name: "name/in", where: fld("name", "in", []any{c1.Name, cMid.Name, "Nobody"}), want: func(r *customers.Customer) bool { return r.Name == c1.Name || r.Name == cMid.Name }},
			{name: "name/notIn", where: fld("name", "notIn", []any{c1.Name, cMid.Name}), want: func(r *customers.Customer) bool { return r.Name != c1.Name && r.Name != cMid.Name }},
			{name: "name/contains", where: fld("name", "contains", "an"), want: func(r *customers.Customer) bool { return strings.Contains(r.Name, "an") }},
			{name: "name/contains is case-sensitive", where: fld("name", "contains", "An"), want: func(r *customers.Customer) bool { return strings.Contains(r.Name, "An") }},
			{name: "name/contains Zed", where: fld("name", "contains", "Zed"), want: func(r *customers.Customer) bool { return strings.Contains(r.Name, "Zed") }},
			{name: "name/contains zed", where: fld("name", "contains", "zed"), want: func(r *customers.Customer) bool { return strings.Contains(r.Name, "zed") }},
			{name: "name/contains ZED", edge: true, where: fld("name", "contains", "ZED"), want: func(*customers.Customer) bool { return false }},
			{name: "name/contains non-ASCII", where: fld("name", "contains", "é"), want: func(r *customers.Customer) bool { return strings.Contains(r.Name, "é") }},
			{name: "name/contains non-ASCII upper", edge: true, where: fld("name", "contains", "É"), want: func(r *customers.Customer) bool { return strings.Contains(r.Name, "É") }},
			{name: "name/contains empty", edge: true, where: fld("name", "contains", ""), want: func(*customers.Customer) bool { return true }},
			{name: "name/startsWith", where: fld("name", "startsWith", c1.Name[:3]), want: func(r *customers.Customer) bool { return strings.HasPrefix(r.Name, c1.Name[:3]) }},
			{name: "name/startsWith lower", where: fld("name", "startsWith", "zed"), want: func(r *customers.Customer) bool { return strings.HasPrefix(r.Name, "zed") }},
			{name: "name/startsWith is case-sensitive", where: fld("name", "startsWith", "Zed"), want: func(r *customers.Customer) bool { return strings.HasPrefix(r.Name, "Zed") }},
			{name: "name/startsWith is a prefix only", where: fld("name", "startsWith", "lower"), edge: true, want: func(r *customers.Customer) bool { return strings.HasPrefix(r.Name, "lower") }},
			{name: "name/contains %", where: fld("name", "contains", "%"), want: func(r *customers.Customer) bool { return strings.Contains(r.Name, "%") }},
			{name: "name/contains 0%", where: fld("name", "contains", "0% P"), want: func(r *customers.Customer) bool { return strings.Contains(r.Name, "0% P") }},
			{name: "name/contains _", where: fld("name", "contains", "_"), want: func(r *customers.Customer) bool { return strings.Contains(r.Name, "_") }},
			{name: "name/contains *", where: fld("name", "contains", "*"), want: func(r *customers.Customer) bool { return strings.Contains(r.Name, "*") }},
			{name: "name/contains ?", where: fld("name", "contains", "?"), want: func(r *customers.Customer) bool { return strings.Contains(r.Name, "?") }},
			{name: "name/contains [b", where: fld("name", "contains", "[b"), want: func(r *customers.Customer) bool { return strings.Contains(r.Name, "[b") }},
			{name: "name/contains ]", where: fld("name", "contains", "]"), want: func(r *customers.Customer) bool { return strings.Contains(r.Name, "]") }},
			{name: `name/contains \`, where: fld("name", "contains", `\`), want: func(r *customers.Customer) bool { return strings.Contains(r.Name, `\`) }},
			{name: `name/contains \s`, where: fld("name", "contains", `k\s`), want: func(r *customers.Customer) bool { return strings.Contains(r.Name, `k\s`) }},
			{name: "name/startsWith %", edge: true, where: fld("name", "startsWith", "%"), want: func(r *customers.Customer) bool { return strings.HasPrefix(r.Name, "%") }},
			{name: "name/startsWith *", edge: true, where: fld("name", "startsWith", "*"), want: func(r *customers.Customer) bool { return strings.HasPrefix(r.Name, "*") }},
			{name: "name/startsWith _", edge: true, where: fld("name", "startsWith", "_"), want: func(r *customers.Customer) bool { return strings.HasPrefix(r.Name, "_") }},
			{name: "email/contains", where: fld("email", "contains", "@example.org"), want: func(r *customers.Customer) bool { return strings.Contains(r.Email, "@example.org") }},
			// nullable string
			{name: "phone/isNull true", where: fld("phone", "isNull", true), want: func(r *customers.Customer) bool { return r.Phone == nil }},
			{name: "phone/isNull false", where: fld("phone", "isNull", false), want: func(r *customers.Customer) bool { return r.Phone != nil }},
			{name: "phone/eq", where: fld("phone", "eq", aPhone), want: func(r *customers.Customer) bool { return r.Phone != nil && *r.Phone == aPhone }},
			{name: "phone/ne excludes nulls", where: fld("phone", "ne", aPhone), want: func(r *customers.Customer) bool { return r.Phone != nil && *r.Phone != aPhone }},
			{name: "phone/startsWith", where: fld("phone", "startsWith", "+49"), want: func(r *customers.Customer) bool { return r.Phone != nil && strings.HasPrefix(*r.Phone, "+49") }},
			{name: "phone/isNull false and ne", where: map[string]any{"phone": map[string]any{"isNull": false, "ne": aPhone}}, want: func(r *customers.Customer) bool { return r.Phone != nil && *r.Phone != aPhone }},
			{name: "country/in", where: fld("country", "in", []any{"DE", "FR"}), want: func(r *customers.Customer) bool { return r.Country == "DE" || r.Country == "FR" }},
			{name: "country/notIn", where: fld("country", "notIn", []any{"DE", "FR"}), want: func(r *customers.Customer) bool { return r.Country != "DE" && r.Country != "FR" }},
			{name: "country/gte", where: fld("country", "gte", "NL"), want: func(r *customers.Customer) bool { return r.Country >= "NL" }},
			// enum
			{name: "segment/eq", where: fld("segment", "eq", "ENTERPRISE"), want: func(r *customers.Customer) bool { return r.Segment == "ENTERPRISE" }},
			{name: "segment/ne", where: fld("segment", "ne", "CONSUMER"), want: func(r *customers.Customer) bool { return r.Segment != "CONSUMER" }},
			{name: "segment/in", where: fld("segment", "in", []any{"ENTERPRISE", "SMALL_BUSINESS"}), want: func(r *customers.Customer) bool { return r.Segment != "CONSUMER" }},
			{name: "segment/notIn", where: fld("segment", "notIn", []any{"ENTERPRISE"}), want: func(r *customers.Customer) bool { return r.Segment != "ENTERPRISE" }},
			{name: "segment/isNull", edge: true, where: fld("segment", "isNull", true), want: func(*customers.Customer) bool { return false }},
			// time
			{name: "createdAt/gt", where: fld("createdAt", "gt", ts(midT)), want: func(r *customers.Customer) bool { return r.CreatedAt.After(midT) }},
			{name: "createdAt/gte", where: fld("createdAt", "gte", ts(midT)), want: func(r *customers.Customer) bool { return !r.CreatedAt.Before(midT) }},
			{name: "createdAt/lt", where: fld("createdAt", "lt", ts(midT)), want: func(r *customers.Customer) bool { return r.CreatedAt.Before(midT) }},
			{name: "createdAt/lte", where: fld("createdAt", "lte", ts(midT)), want: func(r *customers.Customer) bool { return !r.CreatedAt.After(midT) }},
			{name: "createdAt/eq", where: fld("createdAt", "eq", ts(midT)), want: func(r *customers.Customer) bool { return r.CreatedAt.Equal(midT) }},
			{name: "createdAt/eq with microseconds", where: fld("createdAt", "eq", ts(extra.CreatedAt)), want: func(r *customers.Customer) bool { return r.CreatedAt.Equal(extra.CreatedAt) }},
			{name: "createdAt/eq other offset", where: fld("createdAt", "eq", midT.In(time.FixedZone("X", 2*3600)).Format(time.RFC3339Nano)), want: func(r *customers.Customer) bool { return r.CreatedAt.Equal(midT) }},
			{name: "createdAt/ne", where: fld("createdAt", "ne", ts(midT)), want: func(r *customers.Customer) bool { return !r.CreatedAt.Equal(midT) }},
			{name: "createdAt/in", where: fld("createdAt", "in", []any{ts(created[0]), ts(created[3])}), want: func(r *customers.Customer) bool {
				return r.CreatedAt.Equal(created[0]) || r.CreatedAt.Equal(created[3])
			}},
			{name: "createdAt/notIn", where: fld("createdAt", "notIn", []any{ts(created[0])}), want: func(r *customers.Customer) bool { return !r.CreatedAt.Equal(created[0]) }},
			{name: "updatedAt/lt", where: fld("updatedAt", "lt", ts(midT)), want: func(r *customers.Customer) bool { return r.UpdatedAt.Before(midT) }},
			// combinations
			{name: "fields combine with and", where: map[string]any{"country": map[string]any{"eq": "DE"}, "segment": map[string]any{"eq": "CONSUMER"}}, want: func(r *customers.Customer) bool { return r.Country == "DE" && r.Segment == "CONSUMER" }},
			{name: "and", where: and(fld("country", "eq", "DE"), fld("segment", "eq", "CONSUMER")), want: func(r *customers.Customer) bool { return r.Country == "DE" && r.Segment == "CONSUMER" }},
			{name: "or", where: or(fld("country", "eq", "DE"), fld("segment", "eq", "ENTERPRISE")), want: func(r *customers.Customer) bool { return r.Country == "DE" || r.Segment == "ENTERPRISE" }},
			{name: "not", where: not(fld("country", "in", []any{"DE", "FR"})), want: func(r *customers.Customer) bool { return r.Country != "DE" && r.Country != "FR" }},
			{name: "not not", where: not(not(fld("country", "eq", "SE"))), want: func(r *customers.Customer) bool { return r.Country == "SE" }},
			{name: "not isNull", where: not(fld("phone", "isNull", true)), want: func(r *customers.Customer) bool { return r.Phone != nil }},
			{
				name:  "nested",
				where: or(and(fld("country", "eq", "DE"), not(fld("segment", "eq", "CONSUMER"))), fld("id", "lte", 3), and(fld("name", "startsWith", "Zed"), or(fld("country", "eq", "NL"), fld("segment", "eq", "ENTERPRISE")))),
				want: func(r *customers.Customer) bool {
					return (r.Country == "DE" && r.Segment != "CONSUMER") || r.ID <= 3 ||
						(strings.HasPrefix(r.Name, "Zed") && (r.Country == "NL" || r.Segment == "ENTERPRISE"))
				},
			},
			{name: "or beside a field", where: map[string]any{"country": map[string]any{"eq": "DE"}, "or": []any{fld("segment", "eq", "ENTERPRISE"), fld("id", "lt", 10)}}, want: func(r *customers.Customer) bool { return r.Country == "DE" && (r.Segment == "ENTERPRISE" || r.ID < 10) }},
			{name: "and empty", edge: true, where: map[string]any{"and": []any{}}, want: func(*customers.Customer) bool { return true }},
			{name: "or empty", edge: true, where: map[string]any{"or": []any{}}, want: func(*customers.Customer) bool { return false }},
			{name: "and null", edge: true, where: map[string]any{"and": nil}, want: func(*customers.Customer) bool { return true }},
			{name: "or null", edge: true, where: map[string]any{"or": nil}, want: func(*customers.Customer) bool { return true }},
			{name: "not null", edge: true, where: map[string]any{"not": nil}, want: func(*customers.Customer) bool { return true }},
			{name: "field null", edge: true, where: map[string]any{"name": nil}, want: func(*customers.Customer) bool { return true }},
			{name: "empty where", edge: true, where: map[string]any{}, want: func(*customers.Customer) bool { return true }},
			{name: "not empty where", edge: true, where: not(map[string]any{}), want: func(*customers.Customer) bool { return false }},
		}
		checkFilters(t, g, customerList, rows, func(r *customers.Customer) int64 { return r.ID }, cases)
	})
}

func TestFilterItemsOrdersLinesInteractions(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		g := sharedGateway(t, backend)
		t.Run("items", func(t *testing.T) {
			rows := loadAll[inventory.Item](t, g.mesh.Store("inventory").DB)
			prices := make([]products.Decimal, len(rows))
			for i, r := range rows {
				prices[i] = r.Price
			}
			slices.SortFunc(prices, products.Decimal.Cmp)
			mid := prices[len(prices)/2]
			it := rows[2]
			checkFilters(t, g, itemList, rows, func(r *inventory.Item) int64 { return r.ID }, []filterCase[inventory.Item]{
				{name: "price/gt", where: fld("price", "gt", mid), want: func(r *inventory.Item) bool { return r.Price.Cmp(mid) > 0 }},
				{name: "price/lte", where: fld("price", "lte", mid), want: func(r *inventory.Item) bool { return r.Price.Cmp(mid) <= 0 }},
				{name: "price/eq", where: fld("price", "eq", it.Price), want: func(r *inventory.Item) bool { return r.Price == it.Price }},
				{name: "price/in", where: fld("price", "in", []any{it.Price, prices[0]}), want: func(r *inventory.Item) bool { return r.Price == it.Price || r.Price == prices[0] }},
				{name: "price/int literal", where: fld("price", "gt", 50), want: func(r *inventory.Item) bool { return r.Price.Cmp(products.Cents(5000)) > 0 }},
				{name: "price/number literal", where: fld("price", "lte", 50.25), want: func(r *inventory.Item) bool { return r.Price.Cmp(products.Cents(5025)) <= 0 }},
				{name: "stock/gte", where: fld("stock", "gte", it.Stock), want: func(r *inventory.Item) bool { return r.Stock >= it.Stock }},
				{name: "stock/ne", where: fld("stock", "ne", it.Stock), want: func(r *inventory.Item) bool { return r.Stock != it.Stock }},
				{name: "stock/notIn", where: fld("stock", "notIn", []any{it.Stock, rows[0].Stock}), want: func(r *inventory.Item) bool { return r.Stock != it.Stock && r.Stock != rows[0].Stock }},
				{name: "sku/eq", where: fld("sku", "eq", "SKU-000003"), want: func(r *inventory.Item) bool { return r.SKU == "SKU-000003" }},
				{name: "sku/startsWith", where: fld("sku", "startsWith", "SKU-00000"), want: func(r *inventory.Item) bool { return strings.HasPrefix(r.SKU, "SKU-00000") }},
				{name: "category/in", where: fld("category", "in", []any{it.Category, "Nothing"}), want: func(r *inventory.Item) bool { return r.Category == it.Category }},
				{name: "name/contains", where: fld("name", "contains", strings.Fields(it.Name)[1]), want: func(r *inventory.Item) bool { return strings.Contains(r.Name, strings.Fields(it.Name)[1]) }},
			})
		})
		t.Run("orders", func(t *testing.T) {
			rows := loadAll[orders.Order](t, g.mesh.Store("orders").DB)
			mid := rows[len(rows)/2].PlacedAt
			checkFilters(t, g, orderList, rows, func(r *orders.Order) int64 { return r.ID }, []filterCase[orders.Order]{
				{name: "total/gt", where: fld("total", "gt", 500.5), want: func(r *orders.Order) bool { return r.Total.Cmp(products.Cents(50050)) > 0 }},
				{name: "total/lt", where: fld("total", "lt", 100), want: func(r *orders.Order) bool { return r.Total.Cmp(products.Cents(10000)) < 0 }},
				{name: "total/eq", where: fld("total", "eq", rows[9].Total), want: func(r *orders.Order) bool { return r.Total == rows[9].Total }},
				{name: "status/in", where: fld("status", "in", []any{"SHIPPED", "CANCELLED"}), want: func(r *orders.Order) bool { return r.Status == "SHIPPED" || r.Status == "CANCELLED" }},
				{name: "status/ne", where: fld("status", "ne", "SHIPPED"), want: func(r *orders.Order) bool { return r.Status != "SHIPPED" }},
				{name: "customerId/eq", where: fld("customerId", "eq", "7"), want: func(r *orders.Order) bool { return r.CustomerID == 7 }},
				{name: "customerId/in", where: fld("customerId", "in", []any{"1", "2", "3"}), want: func(r *orders.Order) bool { return r.CustomerID <= 3 }},
				{name: "currency/eq", edge: true, where: fld("currency", "eq", "EUR"), want: func(r *orders.Order) bool { return r.Currency == "EUR" }},
				{name: "placedAt/gte", where: fld("placedAt", "gte", ts(mid)), want: func(r *orders.Order) bool { return !r.PlacedAt.Before(mid) }},
				{name: "placedAt and status", where: and(fld("placedAt", "lt", ts(mid)), fld("status", "eq", "SHIPPED")), want: func(r *orders.Order) bool { return r.PlacedAt.Before(mid) && r.Status == "SHIPPED" }},
			})
		})
		t.Run("orderLines", func(t *testing.T) {
			rows := loadAll[orders.Line](t, g.mesh.Store("orders").DB)
			checkFilters(t, g, lineList, rows, func(r *orders.Line) int64 { return r.ID }, []filterCase[orders.Line]{
				{name: "quantity/eq", where: fld("quantity", "eq", 2), want: func(r *orders.Line) bool { return r.Quantity == 2 }},
				{name: "quantity/in", where: fld("quantity", "in", []any{1, 4}), want: func(r *orders.Line) bool { return r.Quantity == 1 || r.Quantity == 4 }},
				{name: "quantity/gt", where: fld("quantity", "gt", 2), want: func(r *orders.Line) bool { return r.Quantity > 2 }},
				{name: "amount/gt", where: fld("amount", "gt", 200), want: func(r *orders.Line) bool { return r.Amount.Cmp(products.Cents(20000)) > 0 }},
				{name: "unitPrice/lt", where: fld("unitPrice", "lt", 10), want: func(r *orders.Line) bool { return r.UnitPrice.Cmp(products.Cents(1000)) < 0 }},
				{name: "orderId/lte", where: fld("orderId", "lte", "10"), want: func(r *orders.Line) bool { return r.OrderID <= 10 }},
				{name: "itemId/notIn", where: fld("itemId", "notIn", []any{"1", "2", "3"}), want: func(r *orders.Line) bool { return r.ItemID > 3 }},
			})
		})
		t.Run("interactions", func(t *testing.T) {
			rows := loadAll[engagement.Interaction](t, g.mesh.Store("engagement").DB)
			mid := rows[len(rows)/2].OccurredAt
			s := rows[4].Sentiment
			checkFilters(t, g, interactionList, rows, func(r *engagement.Interaction) int64 { return r.ID }, []filterCase[engagement.Interaction]{
				{name: "sentiment/lt", where: fld("sentiment", "lt", 0), want: func(r *engagement.Interaction) bool { return r.Sentiment < 0 }},
				{name: "sentiment/gte", where: fld("sentiment", "gte", 0.5), want: func(r *engagement.Interaction) bool { return r.Sentiment >= 0.5 }},
				{name: "sentiment/eq", where: fld("sentiment", "eq", s), want: func(r *engagement.Interaction) bool { return r.Sentiment == s }},
				{name: "note/isNull true", where: fld("note", "isNull", true), want: func(r *engagement.Interaction) bool { return r.Note == nil }},
				{name: "note/isNull false", where: fld("note", "isNull", false), want: func(r *engagement.Interaction) bool { return r.Note != nil }},
				{name: "note/contains", where: fld("note", "contains", "discount"), want: func(r *engagement.Interaction) bool { return r.Note != nil && strings.Contains(*r.Note, "discount") }},
				{name: "note/startsWith", where: fld("note", "startsWith", "happy"), want: func(r *engagement.Interaction) bool { return r.Note != nil && strings.HasPrefix(*r.Note, "happy") }},
				{name: "note/not contains keeps no nulls", where: not(fld("note", "contains", "discount")), want: func(r *engagement.Interaction) bool { return r.Note != nil && !strings.Contains(*r.Note, "discount") }},
				{name: "channel/eq", where: fld("channel", "eq", "EMAIL"), want: func(r *engagement.Interaction) bool { return r.Channel == "EMAIL" }},
				{name: "channel/in", where: fld("channel", "in", []any{"CHAT", "WEB"}), want: func(r *engagement.Interaction) bool { return r.Channel == "CHAT" || r.Channel == "WEB" }},
				{name: "kind/notIn", where: fld("kind", "notIn", []any{"INQUIRY", "COMPLAINT"}), want: func(r *engagement.Interaction) bool { return r.Kind != "INQUIRY" && r.Kind != "COMPLAINT" }},
				{name: "occurredAt/gt", where: fld("occurredAt", "gt", ts(mid)), want: func(r *engagement.Interaction) bool { return r.OccurredAt.After(mid) }},
				{name: "customerId/eq", where: fld("customerId", "eq", "3"), want: func(r *engagement.Interaction) bool { return r.CustomerID == 3 }},
			})
		})
	})
}

// sortKeys maps an entity's sort enum values to comparisons of its rows.
type sortKeys[T any] map[string]func(a, b *T) int

// expectOrder sorts rows like the API promises: by the given keys, ties
// broken by id ascending; keys after ID do not matter.
func expectOrder[T any](rows []*T, keys sortKeys[T], orderBy []map[string]any, id func(*T) int64) []int64 {
	sorted := slices.Clone(rows)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		for _, ob := range orderBy {
			f := ob["field"].(string)
			c := keys[f](a, b)
			if ob["direction"] == "DESC" {
				c = -c
			}
			if c != 0 {
				return c < 0
			}
			if f == "ID" {
				return false
			}
		}
		return id(a) < id(b)
	})
	out := make([]int64, len(sorted))
	for i, r := range sorted {
		out[i] = id(r)
	}
	return out
}

func by(field string, dir ...string) map[string]any {
	m := map[string]any{"field": field}
	if len(dir) > 0 {
		m["direction"] = dir[0]
	}
	return m
}

// orderCase is one ordering (optionally over a filter) and the page size
// used to walk it in both directions.
type orderCase struct {
	name    string
	orderBy []map[string]any
	where   map[string]any
	size    int
}

func checkOrdering[T any](t *testing.T, g *gateway, spec listSpec, rows []*T, keys sortKeys[T], id func(*T) int64, filter func(*T) bool, cases []orderCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var subset []*T
			for _, r := range rows {
				if c.where == nil || filter(r) {
					subset = append(subset, r)
				}
			}
			want := expectOrder(subset, keys, c.orderBy, id)
			if len(want) > products.MaxPageSize {
				t.Fatalf("test data: %d rows do not fit one page", len(want))
			}
			one := fetch(t, g, spec, map[string]any{"where": c.where, "orderBy": c.orderBy, "first": products.MaxPageSize})
			if got := one.ids(t); !slices.Equal(got, want) {
				t.Fatalf("one page:\n got %v\nwant %v", got, want)
			}
			if one.TotalCount != len(want) || one.PageInfo.HasNextPage || one.PageInfo.HasPreviousPage {
				t.Errorf("one page: totalCount %d hasNext %v hasPrevious %v, want %d false false",
					one.TotalCount, one.PageInfo.HasNextPage, one.PageInfo.HasPreviousPage, len(want))
			}
			if got := pageForward(t, g, spec, c.where, c.orderBy, c.size, len(want)); !slices.Equal(got, want) {
				t.Errorf("forward in pages of %d:\n got %v\nwant %v", c.size, got, want)
			}
			if got := pageBackward(t, g, spec, c.where, c.orderBy, c.size, len(want)); !slices.Equal(got, want) {
				t.Errorf("backward in pages of %d:\n got %v\nwant %v", c.size, got, want)
			}
		})
	}
}

// pageForward walks a list with first/after and checks every page's
// pageInfo and totalCount on the way.
func pageForward(t *testing.T, g *gateway, spec listSpec, where any, orderBy any, size, total int) []int64 {
	t.Helper()
	var ids []int64
	args := map[string]any{"where": where, "orderBy": orderBy, "first": size}
	for i := 0; ; i++ {
		if i > total+1 {
			t.Fatalf("forward paging does not end")
		}
		p := fetch(t, g, spec, args)
		got := p.ids(t)
		ids = append(ids, got...)
		if p.TotalCount != total {
			t.Errorf("page %d: totalCount %d, want %d", i, p.TotalCount, total)
		}
		if p.PageInfo.HasPreviousPage != (i > 0) {
			t.Errorf("page %d: hasPreviousPage %v", i, p.PageInfo.HasPreviousPage)
		}
		if !p.PageInfo.HasNextPage {
			if len(ids) != total {
				t.Errorf("forward paging stopped after %d of %d rows", len(ids), total)
			}
			if len(got) == 0 && total > 0 {
				t.Errorf("page %d is empty: hasNextPage was true on a full last page", i)
			}
			return ids
		}
		if len(got) != size {
			t.Fatalf("page %d has %d rows and a next page; want %d", i, len(got), size)
		}
		args["after"] = *p.PageInfo.EndCursor
	}
}

// pageBackward walks a list from its end with last/before.
func pageBackward(t *testing.T, g *gateway, spec listSpec, where any, orderBy any, size, total int) []int64 {
	t.Helper()
	var ids []int64
	args := map[string]any{"where": where, "orderBy": orderBy, "last": size}
	for i := 0; ; i++ {
		if i > total+1 {
			t.Fatalf("backward paging does not end")
		}
		p := fetch(t, g, spec, args)
		got := p.ids(t)
		ids = append(slices.Clone(got), ids...)
		if p.TotalCount != total {
			t.Errorf("page -%d: totalCount %d, want %d", i, p.TotalCount, total)
		}
		if p.PageInfo.HasNextPage != (i > 0) {
			t.Errorf("page -%d: hasNextPage %v", i, p.PageInfo.HasNextPage)
		}
		if !p.PageInfo.HasPreviousPage {
			if len(ids) != total {
				t.Errorf("backward paging stopped after %d of %d rows", len(ids), total)
			}
			return ids
		}
		if len(got) != size {
			t.Fatalf("page -%d has %d rows and a previous page; want %d", i, len(got), size)
		}
		args["before"] = *p.PageInfo.StartCursor
	}
}

var (
	customerKeys = sortKeys[customers.Customer]{
		"ID":         func(a, b *customers.Customer) int { return cmp.Compare(a.ID, b.ID) },
		"NAME":       func(a, b *customers.Customer) int { return strings.Compare(a.Name, b.Name) },
		"EMAIL":      func(a, b *customers.Customer) int { return strings.Compare(a.Email, b.Email) },
		"COUNTRY":    func(a, b *customers.Customer) int { return strings.Compare(a.Country, b.Country) },
		"SEGMENT":    func(a, b *customers.Customer) int { return strings.Compare(a.Segment, b.Segment) },
		"CREATED_AT": func(a, b *customers.Customer) int { return a.CreatedAt.Compare(b.CreatedAt) },
		"UPDATED_AT": func(a, b *customers.Customer) int { return a.UpdatedAt.Compare(b.UpdatedAt) },
	}
	orderKeys = sortKeys[orders.Order]{
		"ID":          func(a, b *orders.Order) int { return cmp.Compare(a.ID, b.ID) },
		"CUSTOMER_ID": func(a, b *orders.Order) int { return cmp.Compare(a.CustomerID, b.CustomerID) },
		"STATUS":      func(a, b *orders.Order) int { return strings.Compare(a.Status, b.Status) },
		"TOTAL":       func(a, b *orders.Order) int { return a.Total.Cmp(b.Total) },
		"CURRENCY":    func(a, b *orders.Order) int { return strings.Compare(a.Currency, b.Currency) },
		"PLACED_AT":   func(a, b *orders.Order) int { return a.PlacedAt.Compare(b.PlacedAt) },
		"UPDATED_AT":  func(a, b *orders.Order) int { return a.UpdatedAt.Compare(b.UpdatedAt) },
	}
	itemKeys = sortKeys[inventory.Item]{
		"ID":         func(a, b *inventory.Item) int { return cmp.Compare(a.ID, b.ID) },
		"SKU":        func(a, b *inventory.Item) int { return strings.Compare(a.SKU, b.SKU) },
		"NAME":       func(a, b *inventory.Item) int { return strings.Compare(a.Name, b.Name) },
		"CATEGORY":   func(a, b *inventory.Item) int { return strings.Compare(a.Category, b.Category) },
		"PRICE":      func(a, b *inventory.Item) int { return a.Price.Cmp(b.Price) },
		"STOCK":      func(a, b *inventory.Item) int { return cmp.Compare(a.Stock, b.Stock) },
		"CREATED_AT": func(a, b *inventory.Item) int { return a.CreatedAt.Compare(b.CreatedAt) },
		"UPDATED_AT": func(a, b *inventory.Item) int { return a.UpdatedAt.Compare(b.UpdatedAt) },
	}
	lineKeys = sortKeys[orders.Line]{
		"ID":         func(a, b *orders.Line) int { return cmp.Compare(a.ID, b.ID) },
		"ORDER_ID":   func(a, b *orders.Line) int { return cmp.Compare(a.OrderID, b.OrderID) },
		"ITEM_ID":    func(a, b *orders.Line) int { return cmp.Compare(a.ItemID, b.ItemID) },
		"QUANTITY":   func(a, b *orders.Line) int { return cmp.Compare(a.Quantity, b.Quantity) },
		"UNIT_PRICE": func(a, b *orders.Line) int { return a.UnitPrice.Cmp(b.UnitPrice) },
		"AMOUNT":     func(a, b *orders.Line) int { return a.Amount.Cmp(b.Amount) },
	}
	interactionKeys = sortKeys[engagement.Interaction]{
		"ID":          func(a, b *engagement.Interaction) int { return cmp.Compare(a.ID, b.ID) },
		"CUSTOMER_ID": func(a, b *engagement.Interaction) int { return cmp.Compare(a.CustomerID, b.CustomerID) },
		"CHANNEL":     func(a, b *engagement.Interaction) int { return strings.Compare(a.Channel, b.Channel) },
		"KIND":        func(a, b *engagement.Interaction) int { return strings.Compare(a.Kind, b.Kind) },
		"SENTIMENT":   func(a, b *engagement.Interaction) int { return cmp.Compare(a.Sentiment, b.Sentiment) },
		"OCCURRED_AT": func(a, b *engagement.Interaction) int { return a.OccurredAt.Compare(b.OccurredAt) },
	}
)

func TestOrderingAndPagination(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		g := sharedGateway(t, backend)
		t.Run("customers", func(t *testing.T) {
			rows := loadAll[customers.Customer](t, g.mesh.Store("customers").DB)
			checkOrdering(t, g, customerList, rows, customerKeys, func(r *customers.Customer) int64 { return r.ID },
				func(r *customers.Customer) bool { return r.Country != "DE" },
				[]orderCase{
					{name: "default is id", size: 10},
					{name: "country", orderBy: []map[string]any{by("COUNTRY")}, size: 5},
					{name: "country desc", orderBy: []map[string]any{by("COUNTRY", "DESC")}, size: 7},
					{name: "country asc name desc", orderBy: []map[string]any{by("COUNTRY", "ASC"), by("NAME", "DESC")}, size: 6},
					{name: "segment desc createdAt", orderBy: []map[string]any{by("SEGMENT", "DESC"), by("CREATED_AT")}, size: 7},
					{name: "name", orderBy: []map[string]any{by("NAME")}, size: 8},
					{name: "name desc", orderBy: []map[string]any{by("NAME", "DESC")}, size: 9},
					{name: "id desc", orderBy: []map[string]any{by("ID", "DESC")}, size: 10},
					{name: "keys after id are ignored", orderBy: []map[string]any{by("COUNTRY"), by("ID", "DESC"), by("NAME")}, size: 8},
					{name: "email desc", orderBy: []map[string]any{by("EMAIL", "DESC")}, size: 9},
					{name: "updatedAt desc", orderBy: []map[string]any{by("UPDATED_AT", "DESC")}, size: 11},
					{name: "segment country name desc", orderBy: []map[string]any{by("SEGMENT"), by("COUNTRY", "DESC"), by("NAME", "DESC")}, size: 6},
					{name: "filtered", where: fld("country", "ne", "DE"), orderBy: []map[string]any{by("SEGMENT", "DESC"), by("COUNTRY")}, size: 4},
				})
		})
		t.Run("orders", func(t *testing.T) {
			rows := loadAll[orders.Order](t, g.mesh.Store("orders").DB)
			checkOrdering(t, g, orderList, rows, orderKeys, func(r *orders.Order) int64 { return r.ID },
				func(r *orders.Order) bool { return r.Status == "SHIPPED" || r.Status == "CANCELLED" },
				[]orderCase{
					{name: "status total desc", orderBy: []map[string]any{by("STATUS"), by("TOTAL", "DESC")}, size: 37},
					{name: "customer desc placedAt", orderBy: []map[string]any{by("CUSTOMER_ID", "DESC"), by("PLACED_AT")}, size: 50},
					{name: "total", orderBy: []map[string]any{by("TOTAL")}, size: 61},
					{name: "currency status desc", orderBy: []map[string]any{by("CURRENCY"), by("STATUS", "DESC")}, size: 45},
					{name: "filtered", where: fld("status", "in", []any{"SHIPPED", "CANCELLED"}), orderBy: []map[string]any{by("CUSTOMER_ID"), by("TOTAL", "DESC")}, size: 13},
				})
		})
		t.Run("items", func(t *testing.T) {
			rows := loadAll[inventory.Item](t, g.mesh.Store("inventory").DB)
			checkOrdering(t, g, itemList, rows, itemKeys, func(r *inventory.Item) int64 { return r.ID }, nil,
				[]orderCase{
					{name: "category price desc", orderBy: []map[string]any{by("CATEGORY"), by("PRICE", "DESC")}, size: 3},
					{name: "all tied", orderBy: []map[string]any{by("CREATED_AT", "DESC")}, size: 4},
					{name: "stock desc", orderBy: []map[string]any{by("STOCK", "DESC")}, size: 2},
					{name: "one per page", orderBy: []map[string]any{by("CATEGORY", "DESC")}, size: 1},
					{name: "name sku", orderBy: []map[string]any{by("NAME"), by("SKU", "DESC")}, size: 3},
				})
		})
		t.Run("orderLines", func(t *testing.T) {
			rows := loadAll[orders.Line](t, g.mesh.Store("orders").DB)
			w := fld("orderId", "lte", "60")
			keep := func(r *orders.Line) bool { return r.OrderID <= 60 }
			checkOrdering(t, g, lineList, rows, lineKeys, func(r *orders.Line) int64 { return r.ID }, keep,
				[]orderCase{
					{name: "quantity desc amount", where: w, orderBy: []map[string]any{by("QUANTITY", "DESC"), by("AMOUNT")}, size: 17},
					{name: "item unitPrice desc", where: w, orderBy: []map[string]any{by("ITEM_ID"), by("UNIT_PRICE", "DESC")}, size: 20},
				})
		})
		t.Run("interactions", func(t *testing.T) {
			rows := loadAll[engagement.Interaction](t, g.mesh.Store("engagement").DB)
			checkOrdering(t, g, interactionList, rows, interactionKeys, func(r *engagement.Interaction) int64 { return r.ID }, nil,
				[]orderCase{
					{name: "channel sentiment desc", orderBy: []map[string]any{by("CHANNEL"), by("SENTIMENT", "DESC")}, size: 23},
					{name: "occurredAt desc", orderBy: []map[string]any{by("OCCURRED_AT", "DESC")}, size: 30},
					{name: "kind desc customer occurredAt", orderBy: []map[string]any{by("KIND", "DESC"), by("CUSTOMER_ID"), by("OCCURRED_AT")}, size: 19},
				})
		})
	})
}

func TestPaginationEdges(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		g := sharedGateway(t, backend)
		rows := loadAll[customers.Customer](t, g.mesh.Store("customers").DB)
		orderBy := []map[string]any{by("COUNTRY"), by("NAME", "DESC")}
		want := expectOrder(rows, customerKeys, orderBy, func(r *customers.Customer) int64 { return r.ID })
		all := fetch(t, g, customerList, map[string]any{"orderBy": orderBy, "first": products.MaxPageSize})
		cursor := func(i int) string { return all.Edges[i].Cursor }
		n := len(want)

		t.Run("first 0", func(t *testing.T) {
			p := fetch(t, g, customerList, map[string]any{"orderBy": orderBy, "first": 0})
			if len(p.ids(t)) != 0 || !p.PageInfo.HasNextPage || p.PageInfo.HasPreviousPage || p.TotalCount != n {
				t.Errorf("first 0: %+v", p.PageInfo)
			}
		})
		t.Run("last 0", func(t *testing.T) {
			p := fetch(t, g, customerList, map[string]any{"orderBy": orderBy, "last": 0})
			if len(p.ids(t)) != 0 || !p.PageInfo.HasPreviousPage || p.PageInfo.HasNextPage {
				t.Errorf("last 0: %+v", p.PageInfo)
			}
		})
		t.Run("after the end", func(t *testing.T) {
			p := fetch(t, g, customerList, map[string]any{"orderBy": orderBy, "first": 5, "after": cursor(n - 1)})
			if len(p.ids(t)) != 0 || p.PageInfo.HasNextPage || !p.PageInfo.HasPreviousPage || p.TotalCount != n {
				t.Errorf("after the last row: %+v total %d", p.PageInfo, p.TotalCount)
			}
		})
		t.Run("before the start", func(t *testing.T) {
			p := fetch(t, g, customerList, map[string]any{"orderBy": orderBy, "last": 5, "before": cursor(0)})
			if len(p.ids(t)) != 0 || p.PageInfo.HasPreviousPage || !p.PageInfo.HasNextPage {
				t.Errorf("before the first row: %+v", p.PageInfo)
			}
		})
		t.Run("between two cursors", func(t *testing.T) {
			p := fetch(t, g, customerList, map[string]any{"orderBy": orderBy, "first": 100, "after": cursor(5), "before": cursor(15)})
			if got := p.ids(t); !slices.Equal(got, want[6:15]) {
				t.Errorf("got %v, want %v", got, want[6:15])
			}
			p = fetch(t, g, customerList, map[string]any{"orderBy": orderBy, "last": 4, "after": cursor(5), "before": cursor(15)})
			if got := p.ids(t); !slices.Equal(got, want[11:15]) || !p.PageInfo.HasPreviousPage {
				t.Errorf("last 4 between: got %v (%+v), want %v", got, p.PageInfo, want[11:15])
			}
		})
		t.Run("before without last", func(t *testing.T) {
			p := fetch(t, g, customerList, map[string]any{"orderBy": orderBy, "before": cursor(n - 1)})
			if got := p.ids(t); !slices.Equal(got, want[:n-1]) || p.PageInfo.HasPreviousPage || !p.PageInfo.HasNextPage {
				t.Errorf("got %v (%+v), want %v", got, p.PageInfo, want[:n-1])
			}
		})
		t.Run("default page size", func(t *testing.T) {
			p := fetch(t, g, orderList, map[string]any{})
			if len(p.ids(t)) != products.DefaultPageSize || !p.PageInfo.HasNextPage {
				t.Errorf("no first/last: %d rows, hasNext %v", len(p.Nodes), p.PageInfo.HasNextPage)
			}
		})
		t.Run("cursor survives a change of direction", func(t *testing.T) {
			fw := fetch(t, g, customerList, map[string]any{"orderBy": orderBy, "first": 10})
			bw := fetch(t, g, customerList, map[string]any{"orderBy": orderBy, "last": 3, "before": *fw.PageInfo.EndCursor})
			if got := bw.ids(t); !slices.Equal(got, want[6:9]) {
				t.Errorf("got %v, want %v", got, want[6:9])
			}
		})
	})
}

// TestNestedPagination pages through a customer's orders (a batched,
// windowed connection) in both directions and checks the first page of
// several customers at once.
func TestNestedPagination(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		g := sharedGateway(t, backend)
		all := loadAll[orders.Order](t, g.mesh.Store("orders").DB)
		const q = `query($id: ID!, $first: Int, $after: String, $last: Int, $before: String, $where: OrderWhere) {
  customer(id: $id) { list: orders(first: $first, after: $after, last: $last, before: $before, where: $where, orderBy: [{field: TOTAL, direction: DESC}]) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { id } } nodes { id } } }
}`
		orderBy := []map[string]any{by("TOTAL", "DESC")}
		// The customers with the most orders, and with the most orders not shipped.
		most := func(keep func(*orders.Order) bool) int64 {
			n := map[int64]int{}
			for _, o := range all {
				if keep(o) {
					n[o.CustomerID]++
				}
			}
			best := int64(0)
			for id, c := range n {
				if c > n[best] || c == n[best] && id < best {
					best = id
				}
			}
			return best
		}
		notShipped := func(o *orders.Order) bool { return o.Status != "SHIPPED" }
		for _, c := range []struct {
			id    int64
			where map[string]any
		}{
			{id: 3},
			{id: most(func(*orders.Order) bool { return true })},
			{id: most(notShipped), where: fld("status", "ne", "SHIPPED")},
		} {
			t.Run(fmt.Sprint(c.id, c.where != nil), func(t *testing.T) {
				var mine []*orders.Order
				for _, o := range all {
					if o.CustomerID == c.id && (c.where == nil || o.Status != "SHIPPED") {
						mine = append(mine, o)
					}
				}
				want := expectOrder(mine, orderKeys, orderBy, func(r *orders.Order) int64 { return r.ID })
				if len(want) < 5 {
					t.Fatalf("test data: customer %d has only %d orders", c.id, len(want))
				}
				get := func(args map[string]any) page {
					args["id"] = c.id
					args["where"] = c.where
					var out struct{ Customer struct{ List page } }
					g.query(t, q, args, &out)
					return out.Customer.List
				}
				var fw []int64
				args := map[string]any{"first": 2}
				for i := 0; ; i++ {
					p := get(args)
					fw = append(fw, p.ids(t)...)
					if p.TotalCount != len(want) || p.PageInfo.HasPreviousPage != (i > 0) {
						t.Errorf("forward page %d: totalCount %d hasPrevious %v", i, p.TotalCount, p.PageInfo.HasPreviousPage)
					}
					if !p.PageInfo.HasNextPage {
						break
					}
					args = map[string]any{"first": 2, "after": *p.PageInfo.EndCursor}
				}
				if !slices.Equal(fw, want) {
					t.Errorf("forward: got %v, want %v", fw, want)
				}
				var bw []int64
				args = map[string]any{"last": 2}
				for i := 0; ; i++ {
					p := get(args)
					bw = append(p.ids(t), bw...)
					if p.TotalCount != len(want) || p.PageInfo.HasNextPage != (i > 0) {
						t.Errorf("backward page %d: totalCount %d hasNext %v", i, p.TotalCount, p.PageInfo.HasNextPage)
					}
					if !p.PageInfo.HasPreviousPage {
						break
					}
					args = map[string]any{"last": 2, "before": *p.PageInfo.StartCursor}
				}
				if !slices.Equal(bw, want) {
					t.Errorf("backward: got %v, want %v", bw, want)
				}
			})
		}
		// Without totalCount, PostgreSQL reads each parent's page with a
		// LATERAL subquery instead of numbering every row.
		for _, totals := range []bool{true, false} {
			name, tc := "many parents", "totalCount "
			if !totals {
				name, tc = "many parents without totals", ""
			}
			t.Run(name, func(t *testing.T) {
				var out struct {
					Customers struct {
						Nodes []struct {
							ID     string
							Orders page
							Last   page
						}
					}
				}
				g.query(t, `{ customers(first: 12) { nodes { id
  orders(first: 3, orderBy: [{field: TOTAL, direction: DESC}]) { `+tc+`pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { id } } nodes { id } }
  last: orders(last: 2) { `+tc+`pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { id } } nodes { id } } } } }`, nil, &out)
				if len(out.Customers.Nodes) != 12 {
					t.Fatalf("%d customers", len(out.Customers.Nodes))
				}
				for _, c := range out.Customers.Nodes {
					id := atoi(t, c.ID)
					var mine []*orders.Order
					for _, o := range all {
						if o.CustomerID == id {
							mine = append(mine, o)
						}
					}
					want := expectOrder(mine, orderKeys, orderBy, func(r *orders.Order) int64 { return r.ID })
					byID := expectOrder(mine, orderKeys, nil, func(r *orders.Order) int64 { return r.ID })
					total := 0
					if totals {
						total = len(want)
					}
					if got := c.Orders.ids(t); !slices.Equal(got, want[:min(3, len(want))]) || c.Orders.TotalCount != total || c.Orders.PageInfo.HasNextPage != (len(want) > 3) {
						t.Errorf("customer %d: first 3 %v total %d next %v; want %v of %d", id, got, c.Orders.TotalCount, c.Orders.PageInfo.HasNextPage, want[:min(3, len(want))], len(want))
					}
					if got := c.Last.ids(t); !slices.Equal(got, byID[max(0, len(byID)-2):]) || c.Last.TotalCount != total || c.Last.PageInfo.HasPreviousPage != (len(want) > 2) {
						t.Errorf("customer %d: last 2 %v, want %v", id, got, byID[max(0, len(byID)-2):])
					}
				}
			})
		}
	})
}

func TestPaginationBadInput(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		g := sharedGateway(t, backend)
		byCountry := fetch(t, g, customerList, map[string]any{"orderBy": []map[string]any{by("COUNTRY")}, "first": 2})
		byName := fetch(t, g, customerList, map[string]any{"orderBy": []map[string]any{by("NAME")}, "first": 2})
		item := fetch(t, g, itemList, map[string]any{"first": 2})
		plain := fetch(t, g, customerList, map[string]any{"first": 2})
		countryCursor := *byCountry.PageInfo.EndCursor
		b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
		cases := []struct {
			name, code, field string
			args              map[string]any
		}{
			{"garbage cursor", "BAD_USER_INPUT", "after", map[string]any{"first": 2, "after": "not a cursor!"}},
			{"garbage before", "BAD_USER_INPUT", "before", map[string]any{"last": 2, "before": "%%%"}},
			{"base64 of garbage", "BAD_USER_INPUT", "after", map[string]any{"first": 2, "after": b64("hello")}},
			{"empty cursor", "BAD_USER_INPUT", "after", map[string]any{"first": 2, "after": ""}},
			{"cursor of another ordering", "BAD_USER_INPUT", "after", map[string]any{"first": 2, "after": countryCursor, "orderBy": []map[string]any{by("NAME")}}},
			{"cursor of another direction", "BAD_USER_INPUT", "after", map[string]any{"first": 2, "after": countryCursor, "orderBy": []map[string]any{by("COUNTRY", "DESC")}}},
			{"name cursor without ordering", "BAD_USER_INPUT", "before", map[string]any{"last": 2, "before": *byName.PageInfo.EndCursor}},
			{"cursor of another entity", "BAD_USER_INPUT", "after", map[string]any{"first": 2, "after": *item.PageInfo.EndCursor}},
			{"tampered value type", "BAD_USER_INPUT", "after", map[string]any{"first": 2, "after": b64(`{"s":"Customer,id","v":["x"]}`)}},
			{"tampered value count", "BAD_USER_INPUT", "after", map[string]any{"first": 2, "after": b64(`{"s":"Customer,id","v":[1,2]}`)}},
			{"first and last", "BAD_USER_INPUT", "first", map[string]any{"first": 2, "last": 2}},
			{"negative first", "BAD_USER_INPUT", "first", map[string]any{"first": -1}},
			{"negative last", "BAD_USER_INPUT", "last", map[string]any{"last": -5}},
			{"first above the maximum", "LIMIT_EXCEEDED", "first", map[string]any{"first": products.MaxPageSize + 1}},
			{"last above the maximum", "LIMIT_EXCEEDED", "last", map[string]any{"last": products.MaxPageSize + 1}},
			{"huge first", "LIMIT_EXCEEDED", "first", map[string]any{"first": math.MaxInt32}},
			{"same field twice", "BAD_USER_INPUT", "orderBy[1].field", map[string]any{"first": 2, "orderBy": []map[string]any{by("NAME"), by("NAME", "DESC")}}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				g.fail(t, c.code, c.field, customerList.query(), c.args)
			})
		}
		t.Run("plain cursor still works", func(t *testing.T) {
			p := fetch(t, g, customerList, map[string]any{"first": 2, "after": *plain.PageInfo.EndCursor})
			if got := p.ids(t); !slices.Equal(got, []int64{3, 4}) {
				t.Errorf("got %v", got)
			}
		})
		t.Run("nested bad cursor", func(t *testing.T) {
			g.fail(t, "BAD_USER_INPUT", "after", `{ customers(first: 2) { nodes { orders(first: 2, after: "nope") { nodes { id } } } } }`, nil)
		})
		t.Run("nested page too large", func(t *testing.T) {
			g.fail(t, "LIMIT_EXCEEDED", "first", fmt.Sprintf(`{ customers(first: 2) { nodes { interactions(first: %d) { nodes { id } } } } }`, products.MaxPageSize+1), nil)
		})
	})
}

// TestRequestBadInput covers input that GraphQL itself rejects: every such
// request gets an error with a code, never data and never an internal error.
func TestRequestBadInput(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		g := sharedGateway(t, backend)
		cases := []struct{ name, query, code string }{
			{"unknown field", `{ customers { nodes { shoeSize } } }`, "GRAPHQL_VALIDATION_FAILED"},
			{"where on a missing field", `{ customers(where: {shoeSize: {eq: 1}}) { nodes { id } } }`, "GRAPHQL_VALIDATION_FAILED"},
			{"orderBy on a non-sortable field", `{ customers(orderBy: [{field: PHONE}]) { nodes { id } } }`, "GRAPHQL_VALIDATION_FAILED"},
			{"groupBy on a non-groupable field", `{ customersAggregate(groupBy: [NAME]) { count } }`, "GRAPHQL_VALIDATION_FAILED"},
			{"contains on an id", `{ customers(where: {id: {contains: "1"}}) { nodes { id } } }`, "GRAPHQL_VALIDATION_FAILED"},
			{"wrong value type", `{ customers(first: "ten") { nodes { id } } }`, "GRAPHQL_VALIDATION_FAILED"},
			{"bad enum value", `{ orders(where: {status: {eq: LOST}}) { nodes { id } } }`, "GRAPHQL_VALIDATION_FAILED"},
			{"syntax error", `{ customers(first: 1 { nodes { id } } }`, "GRAPHQL_PARSE_FAILED"},
			{"malformed time", `{ customers(where: {createdAt: {gt: "yesterday"}}) { nodes { id } } }`, "BAD_USER_INPUT"},
			{"malformed id in a filter", `{ customers(where: {id: {eq: "abc"}}) { nodes { id } } }`, "BAD_USER_INPUT"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				g.fail(t, c.code, "", c.query, nil)
			})
		}
		t.Run("very long pattern", func(t *testing.T) {
			long := strings.Repeat("x", 200_000)
			g.fail(t, "BAD_USER_INPUT", "where.name.contains", customerList.query(), map[string]any{"where": fld("name", "contains", long), "first": 5})
			g.fail(t, "BAD_USER_INPUT", "where.name.startsWith", customerList.query(), map[string]any{"where": fld("name", "startsWith", long), "first": 5})
			p := fetch(t, g, customerList, map[string]any{"where": fld("name", "contains", strings.Repeat("[", products.MaxPatternLength)), "first": 5})
			if len(p.ids(t)) != 0 {
				t.Errorf("a pattern of %d brackets matched", products.MaxPatternLength)
			}
		})
		t.Run("very long string", func(t *testing.T) {
			long := strings.Repeat("x", 200_000)
			p := fetch(t, g, customerList, map[string]any{"where": fld("name", "eq", long), "first": 5})
			if len(p.ids(t)) != 0 || p.TotalCount != 0 {
				t.Errorf("a 200,000 character name matched %d rows", p.TotalCount)
			}
		})
		t.Run("malformed JSON", func(t *testing.T) {
			r := g.postRaw(t, "application/json", []byte(`{"query": "{ customers { nodes { id } } }"`))
			if len(r.Errors) == 0 || r.Status != 400 {
				t.Errorf("HTTP %d, errors %v", r.Status, r.Errors)
			}
		})
		t.Run("wrong content type", func(t *testing.T) {
			r := g.postRaw(t, "text/plain", []byte(`{"query": "{ customers { nodes { id } } }"}`))
			if len(r.Errors) == 0 || r.Status < 400 {
				t.Errorf("HTTP %d, errors %v", r.Status, r.Errors)
			}
		})
	})
}

func TestLookups(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		g := sharedGateway(t, backend)
		c := loadAll[customers.Customer](t, g.mesh.Store("customers").DB)[4]
		o := loadAll[orders.Order](t, g.mesh.Store("orders").DB)[10]
		l := loadAll[orders.Line](t, g.mesh.Store("orders").DB)[20]
		it := loadAll[inventory.Item](t, g.mesh.Store("inventory").DB)[3]
		in := loadAll[engagement.Interaction](t, g.mesh.Store("engagement").DB)[7]
		var out struct {
			Customer struct {
				ID, Name, Email, Country, Segment, CreatedAt string
				Phone                                        *string
			}
			Order struct {
				ID, CustomerID, Status, Currency, PlacedAt string
				Total                                      products.Decimal
			}
			OrderLine struct {
				ID, OrderID, ItemID string
				Quantity            int
				UnitPrice, Amount   products.Decimal
			}
			Item struct {
				ID, SKU, Name, Category string
				Price                   products.Decimal
				Stock                   int
			}
			Interaction struct {
				ID, CustomerID, Channel, Kind, OccurredAt string
				Sentiment                                 float64
				Note                                      *string
			}
		}
		g.query(t, `query($c: ID!, $o: ID!, $l: ID!, $i: ID!, $n: ID!) {
  customer(id: $c) { id name email country segment createdAt phone }
  order(id: $o) { id customerId status currency placedAt total }
  orderLine(id: $l) { id orderId itemId quantity unitPrice amount }
  item(id: $i) { id sku name category price stock }
  interaction(id: $n) { id customerId channel kind occurredAt sentiment note }
}`, map[string]any{"c": c.ID, "o": fmt.Sprint(o.ID), "l": l.ID, "i": it.ID, "n": in.ID}, &out)
		if got := out.Customer; got.ID != fmt.Sprint(c.ID) || got.Name != c.Name || got.Email != c.Email || got.Country != c.Country ||
			got.Segment != c.Segment || got.CreatedAt != ts(c.CreatedAt) || fmt.Sprint(got.Phone != nil) != fmt.Sprint(c.Phone != nil) {
			t.Errorf("customer: got %+v, want %+v", got, c)
		}
		if got := out.Order; got.ID != fmt.Sprint(o.ID) || got.CustomerID != fmt.Sprint(o.CustomerID) || got.Status != o.Status ||
			got.Total != o.Total || got.Currency != o.Currency || got.PlacedAt != ts(o.PlacedAt) {
			t.Errorf("order: got %+v, want %+v", got, o)
		}
		if got := out.OrderLine; got.ID != fmt.Sprint(l.ID) || got.OrderID != fmt.Sprint(l.OrderID) || got.ItemID != fmt.Sprint(l.ItemID) ||
			got.Quantity != l.Quantity || got.UnitPrice != l.UnitPrice || got.Amount != l.Amount {
			t.Errorf("order line: got %+v, want %+v", got, l)
		}
		if got := out.Item; got.ID != fmt.Sprint(it.ID) || got.SKU != it.SKU || got.Name != it.Name || got.Category != it.Category ||
			got.Price != it.Price || got.Stock != it.Stock {
			t.Errorf("item: got %+v, want %+v", got, it)
		}
		if got := out.Interaction; got.ID != fmt.Sprint(in.ID) || got.CustomerID != fmt.Sprint(in.CustomerID) || got.Channel != in.Channel ||
			got.Kind != in.Kind || got.Sentiment != in.Sentiment || got.OccurredAt != ts(in.OccurredAt) || deref(got.Note) != deref(in.Note) {
			t.Errorf("interaction: got %+v, want %+v", got, in)
		}

		t.Run("unknown ids are null", func(t *testing.T) {
			r := g.post(t, `{ customer(id: 999999) { id } order(id: "999999") { id } orderLine(id: 999999) { id } item(id: 0) { id } interaction(id: -1) { id } }`, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("errors: %v", r.Errors)
			}
			if string(r.Data) != `{"customer":null,"order":null,"orderLine":null,"item":null,"interaction":null}` {
				t.Errorf("data: %s", r.Data)
			}
		})
		for _, q := range []struct{ name, query string }{
			{"customer", `{ customer(id: "abc") { id } }`},
			{"order", `{ order(id: "1x") { id } }`},
			{"orderLine", `{ orderLine(id: "") { id } }`},
			{"item", `{ item(id: "9999999999999999999999") { id } }`},
			{"interaction", `{ interaction(id: "1.5") { id } }`},
		} {
			t.Run("malformed id/"+q.name, func(t *testing.T) {
				g.fail(t, "BAD_USER_INPUT", "", q.query, nil)
			})
		}
		t.Run("malformed id in a variable", func(t *testing.T) {
			g.fail(t, "BAD_USER_INPUT", "", `query($id: ID!) { customer(id: $id) { id } }`, map[string]any{"id": "abc"})
		})
		t.Run("malformed id beside a good field", func(t *testing.T) {
			r := g.post(t, `{ good: customer(id: 1) { id } bad: customer(id: "abc") { id } }`, nil)
			if len(r.Errors) != 1 || r.Errors[0].code() != "BAD_USER_INPUT" || string(r.Data) != `{"good":{"id":"1"},"bad":null}` {
				t.Errorf("errors %v data %s", r.Errors, r.Data)
			}
		})
	})
}

// aggRow is a decoded aggregate row. Numbers are nil when SQL gives NULL.
type aggRow struct {
	Group map[string]any      `json:"group"`
	Count int                 `json:"count"`
	Sum   map[string]*float64 `json:"sum"`
	Avg   map[string]*float64 `json:"avg"`
	Min   map[string]*float64 `json:"min"`
	Max   map[string]*float64 `json:"max"`
}

// want is an expected aggregate row for one numeric field.
type aggWant struct {
	key                []string
	count              int
	sum, avg, min, max float64
}

// near compares approximately: averages of exact fields are rounded to 4
// places (exactness is checked by TestMoneyIsExact).
func near(a, b float64) bool {
	return math.Abs(a-b) <= math.Max(5.1e-5, 1e-6*math.Max(math.Abs(a), math.Abs(b)))
}

// checkAgg compares rows to want (in order) for the numeric field num; the
// group key of a row is read from the given group fields.
func checkAgg(t *testing.T, got []aggRow, want []aggWant, num string, keys ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d groups, want %d\n got %s", len(got), len(want), mustJSON(got))
	}
	for i, w := range want {
		r := got[i]
		var key []string
		for _, k := range keys {
			key = append(key, fmt.Sprint(r.Group[k]))
		}
		if !slices.Equal(key, w.key) || r.Count != w.count {
			t.Errorf("group %d: key %v count %d, want %v %d", i, key, r.Count, w.key, w.count)
			continue
		}
		if num == "" {
			continue
		}
		for _, f := range []struct {
			name string
			got  *float64
			want float64
		}{{"sum", r.Sum[num], w.sum}, {"avg", r.Avg[num], w.avg}, {"min", r.Min[num], w.min}, {"max", r.Max[num], w.max}} {
			if f.got == nil || !near(*f.got, f.want) {
				t.Errorf("group %v: %s(%s) = %v, want %v", w.key, f.name, num, f.got, f.want)
			}
		}
	}
}

// groupInGo aggregates rows by key in Go, ordered by key.
func groupInGo[T any](rows []*T, key func(*T) []string, val func(*T) float64, having func(aggWant) bool) []aggWant {
	groups := map[string]*aggWant{}
	for _, r := range rows {
		k := key(r)
		id := strings.Join(k, "\x00")
		g := groups[id]
		v := val(r)
		if g == nil {
			g = &aggWant{key: k, min: v, max: v}
			groups[id] = g
		}
		g.count++
		g.sum += v
		g.min = math.Min(g.min, v)
		g.max = math.Max(g.max, v)
	}
	var out []aggWant
	for _, g := range groups {
		g.avg = g.sum / float64(g.count)
		if having == nil || having(*g) {
			out = append(out, *g)
		}
	}
	slices.SortFunc(out, func(a, b aggWant) int { return slices.Compare(a.key, b.key) })
	return out
}

// sqlAgg runs an aggregate written here in plain SQL on a store: the query
// selects k1[, k2], n, s, a, mn, mx.
func sqlAgg(t *testing.T, g *gateway, product, query string, args ...any) []aggWant {
	t.Helper()
	rows, err := g.store(product).DB.QueryContext(t.Context(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []aggWant
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var w aggWant
		nk := len(cols) - 5
		for i := 0; i < nk; i++ {
			w.key = append(w.key, sqlString(vals[i]))
		}
		w.count = int(sqlFloat(t, vals[nk]))
		w.sum, w.avg, w.min, w.max = sqlFloat(t, vals[nk+1]), sqlFloat(t, vals[nk+2]), sqlFloat(t, vals[nk+3]), sqlFloat(t, vals[nk+4])
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sqlString(v any) string {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return fmt.Sprint(v)
}

func sqlFloat(t *testing.T, v any) float64 {
	t.Helper()
	switch n := v.(type) {
	case int64:
		return float64(n)
	case float64:
		return n
	case []byte:
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			t.Fatalf("number %q: %v", n, err)
		}
		return f
	case string:
		f, err := strconv.ParseFloat(n, 64)
		if err != nil {
			t.Fatalf("number %q: %v", n, err)
		}
		return f
	}
	t.Fatalf("unexpected SQL value %T %v", v, v)
	return 0
}

func TestAggregates(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		g := sharedGateway(t, backend)
		agg := func(t *testing.T, query string, vars map[string]any) []aggRow {
			t.Helper()
			var out map[string][]aggRow
			g.query(t, query, vars, &out)
			return out["a"]
		}
		const orderAgg = `query($g: [OrderGroupField!], $h: OrderHaving, $w: OrderWhere) {
  a: ordersAggregate(groupBy: $g, having: $h, where: $w) { group { customerId status currency placedDate } count sum { total } avg { total } min { total } max { total } } }`

		t.Run("orders overall", func(t *testing.T) {
			want := sqlAgg(t, g, "orders", `SELECT COUNT(*), SUM(total)/100.0, AVG(total)/100.0, MIN(total)/100.0, MAX(total)/100.0 FROM orders`)
			got := agg(t, orderAgg, nil)
			if got[0].Group != nil {
				t.Errorf("group without groupBy: %v", got[0].Group)
			}
			checkAgg(t, got, want, "total")
		})
		t.Run("orders filtered", func(t *testing.T) {
			want := sqlAgg(t, g, "orders", `SELECT COUNT(*), SUM(total)/100.0, AVG(total)/100.0, MIN(total)/100.0, MAX(total)/100.0 FROM orders WHERE total > ? AND status <> ?`, 25000, "SHIPPED")
			checkAgg(t, agg(t, orderAgg, map[string]any{"w": and(fld("total", "gt", 250), fld("status", "ne", "SHIPPED"))}), want, "total")
		})
		t.Run("orders empty", func(t *testing.T) {
			got := agg(t, orderAgg, map[string]any{"w": fld("id", "lt", 0)})
			if len(got) != 1 || got[0].Count != 0 || got[0].Sum["total"] != nil || got[0].Avg["total"] != nil || got[0].Min["total"] != nil || got[0].Max["total"] != nil {
				t.Errorf("aggregate of no rows: %s", mustJSON(got))
			}
		})
		t.Run("orders by status", func(t *testing.T) {
			want := sqlAgg(t, g, "orders", `SELECT status, COUNT(*), SUM(total)/100.0, AVG(total)/100.0, MIN(total)/100.0, MAX(total)/100.0 FROM orders GROUP BY status ORDER BY status`)
			checkAgg(t, agg(t, orderAgg, map[string]any{"g": []string{"STATUS"}}), want, "total", "status")
		})
		t.Run("orders by customer and status having count", func(t *testing.T) {
			want := sqlAgg(t, g, "orders", `SELECT customer_id, status, COUNT(*), SUM(total)/100.0, AVG(total)/100.0, MIN(total)/100.0, MAX(total)/100.0
FROM orders GROUP BY customer_id, status HAVING COUNT(*) >= ? ORDER BY customer_id, status`, 3)
			if len(want) < 3 {
				t.Fatalf("test data: %d groups", len(want))
			}
			checkAgg(t, agg(t, orderAgg, map[string]any{"g": []string{"CUSTOMER_ID", "STATUS"}, "h": map[string]any{"count": map[string]any{"gte": 3}}}), want, "total", "customerId", "status")
		})
		t.Run("orders by customer having sum", func(t *testing.T) {
			want := sqlAgg(t, g, "orders", `SELECT customer_id, COUNT(*), SUM(total)/100.0, AVG(total)/100.0, MIN(total)/100.0, MAX(total)/100.0
FROM orders GROUP BY customer_id HAVING SUM(total) > ? AND COUNT(*) < ? ORDER BY customer_id`, 400000, 12)
			if len(want) < 2 {
				t.Fatalf("test data: %d groups", len(want))
			}
			got := agg(t, orderAgg, map[string]any{"g": []string{"CUSTOMER_ID"}, "h": map[string]any{"sum": map[string]any{"total": map[string]any{"gt": 4000}}, "count": map[string]any{"lt": 12}}})
			checkAgg(t, got, want, "total", "customerId")
		})
		t.Run("orders having avg and max", func(t *testing.T) {
			want := sqlAgg(t, g, "orders", `SELECT customer_id, COUNT(*), SUM(total)/100.0, AVG(total)/100.0, MIN(total)/100.0, MAX(total)/100.0
FROM orders GROUP BY customer_id HAVING AVG(total) >= ? AND MAX(total) < ? AND MIN(total) > ? ORDER BY customer_id`, 40000, 200000, 1000)
			if len(want) < 1 {
				t.Fatalf("test data: %d groups", len(want))
			}
			got := agg(t, orderAgg, map[string]any{"g": []string{"CUSTOMER_ID"}, "h": map[string]any{
				"avg": map[string]any{"total": map[string]any{"gte": 400}},
				"max": map[string]any{"total": map[string]any{"lt": 2000}},
				"min": map[string]any{"total": map[string]any{"gt": 10}},
			}})
			checkAgg(t, got, want, "total", "customerId")
		})
		rows := loadAll[orders.Order](t, g.mesh.Store("orders").DB)
		day := func(o *orders.Order) string { return o.PlacedAt.UTC().Format(time.DateOnly) }
		total := func(o *orders.Order) float64 { return float64(o.Total.Units()) / 100 }
		t.Run("orders by placed date", func(t *testing.T) {
			var shipped []*orders.Order
			for _, o := range rows {
				if o.Status == "SHIPPED" {
					shipped = append(shipped, o)
				}
			}
			want := groupInGo(shipped, func(o *orders.Order) []string { return []string{day(o)} }, total, nil)
			checkAgg(t, agg(t, orderAgg, map[string]any{"g": []string{"PLACED_DATE"}, "w": fld("status", "eq", "SHIPPED")}), want, "total", "placedDate")
		})
		t.Run("orders by status and placed date having count", func(t *testing.T) {
			want := groupInGo(rows, func(o *orders.Order) []string { return []string{o.Status, day(o)} }, total, func(w aggWant) bool { return w.count >= 2 })
			if len(want) < 2 {
				t.Fatalf("test data: %d groups", len(want))
			}
			checkAgg(t, agg(t, orderAgg, map[string]any{"g": []string{"STATUS", "PLACED_DATE"}, "h": map[string]any{"count": map[string]any{"gte": 2}}}), want, "total", "status", "placedDate")
		})
		t.Run("duplicate groupBy", func(t *testing.T) {
			want := sqlAgg(t, g, "orders", `SELECT status, COUNT(*), SUM(total)/100.0, AVG(total)/100.0, MIN(total)/100.0, MAX(total)/100.0 FROM orders GROUP BY status ORDER BY status`)
			checkAgg(t, agg(t, orderAgg, map[string]any{"g": []string{"STATUS", "STATUS"}}), want, "total", "status")
		})
		t.Run("order lines by item having sum", func(t *testing.T) {
			const q = `query($h: OrderLineHaving) { a: orderLinesAggregate(groupBy: [ITEM_ID], having: $h) { group { itemId orderId } count sum { amount quantity } avg { amount quantity } min { amount quantity } max { amount quantity } } }`
			for _, num := range []struct{ field, col string }{{"amount", "amount"}, {"quantity", "quantity"}} {
				if num.field == "amount" {
					num.col = "amount/100.0" // cents
				}
				want := sqlAgg(t, g, "orders", `SELECT item_id, COUNT(*), SUM(`+num.col+`), AVG(`+num.col+`), MIN(`+num.col+`), MAX(`+num.col+`)
FROM order_lines GROUP BY item_id HAVING SUM(amount) > ? ORDER BY item_id`, 3000000)
				if len(want) < 2 {
					t.Fatalf("test data: %d groups", len(want))
				}
				got := agg(t, q, map[string]any{"h": map[string]any{"sum": map[string]any{"amount": map[string]any{"gt": 30000}}}})
				checkAgg(t, got, want, num.field, "itemId")
				for _, r := range got {
					if r.Group["orderId"] != nil {
						t.Errorf("orderId of a group by item: %v", r.Group["orderId"])
					}
				}
			}
		})
		t.Run("items by category", func(t *testing.T) {
			want := sqlAgg(t, g, "inventory", `SELECT category, COUNT(*), SUM(price)/100.0, AVG(price)/100.0, MIN(price)/100.0, MAX(price)/100.0 FROM items GROUP BY category ORDER BY category`)
			got := agg(t, `{ a: itemsAggregate(groupBy: [CATEGORY]) { group { category } count sum { price stock } avg { price stock } min { price stock } max { price stock } } }`, nil)
			checkAgg(t, got, want, "price", "category")
			want = sqlAgg(t, g, "inventory", `SELECT category, COUNT(*), SUM(stock), AVG(stock), MIN(stock), MAX(stock) FROM items GROUP BY category ORDER BY category`)
			checkAgg(t, got, want, "stock", "category")
		})
		t.Run("customers by country and segment having count", func(t *testing.T) {
			all := loadAll[customers.Customer](t, g.mesh.Store("customers").DB)
			want := groupInGo(all, func(c *customers.Customer) []string { return []string{c.Country, c.Segment} }, func(*customers.Customer) float64 { return 0 },
				func(w aggWant) bool { return w.count >= 2 })
			got := agg(t, `{ a: customersAggregate(groupBy: [COUNTRY, SEGMENT], having: {count: {gte: 2}}) { group { country segment } count } }`, nil)
			checkAgg(t, got, want, "", "country", "segment")
		})
		t.Run("interactions by channel and day", func(t *testing.T) {
			all := loadAll[engagement.Interaction](t, g.mesh.Store("engagement").DB)
			want := groupInGo(all, func(r *engagement.Interaction) []string {
				return []string{r.Channel, r.OccurredAt.UTC().Format(time.DateOnly)}
			},
				func(r *engagement.Interaction) float64 { return r.Sentiment }, nil)
			got := agg(t, `{ a: interactionsAggregate(groupBy: [CHANNEL, OCCURRED_DATE]) { group { channel occurredDate } count sum { sentiment } avg { sentiment } min { sentiment } max { sentiment } } }`, nil)
			checkAgg(t, got, want, "sentiment", "channel", "occurredDate")
		})
		t.Run("interactions by kind having avg", func(t *testing.T) {
			want := sqlAgg(t, g, "engagement", `SELECT kind, COUNT(*), SUM(sentiment), AVG(sentiment), MIN(sentiment), MAX(sentiment)
FROM interactions WHERE channel <> ? GROUP BY kind HAVING AVG(sentiment) > ? ORDER BY kind`, "EMAIL", -0.05)
			if len(want) < 1 {
				t.Fatalf("test data: no groups")
			}
			got := agg(t, `{ a: interactionsAggregate(where: {channel: {ne: EMAIL}}, groupBy: [KIND], having: {avg: {sentiment: {gt: -0.05}}}) { group { kind } count sum { sentiment } avg { sentiment } min { sentiment } max { sentiment } } }`, nil)
			checkAgg(t, got, want, "sentiment", "kind")
		})
	})
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
