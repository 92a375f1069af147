package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// scenario is one side-by-side comparison.
type scenario struct {
	Name  string
	Title string
	// Bodies per system; PostGraphile's is empty where it has no peer query.
	Meshgate, PostGraphile body
	// checks returns pairs of fixed (meshgate, PostGraphile) bodies whose
	// answers must be equal before anything is timed.
	checks func() [][2]string
	// Replay: pgbench replays the statements meshgate issued for the
	// request (reads) or its write transaction (writes).
	Replay bool
	Write  bool
}

func gql(query string, vars map[string]any) string {
	b, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return string(b)
}

// luaString quotes s for Lua with a long bracket.
func luaString(s string) string { return "[==[" + s + "]==]" }

const (
	nestedMeshgate = `{ orders(first: 50, where: {status: {eq: RESERVED}}, orderBy: [{field: PLACED_AT, direction: DESC}]) { nodes { id status total placedAt customer { name country } lines { quantity item { sku price } } } } }`
	nestedPGL      = `{ allOrders(first: 50, condition: {status: "RESERVED"}, orderBy: [PLACED_AT_DESC]) { nodes { rowId status total placedAt customerByCustomerId { name country } orderLinesByOrderId { nodes { quantity itemByItemId { sku price } } } } } }`
	largeMeshgate  = `{ orders(first: 1000, orderBy: [{field: ID, direction: ASC}]) { nodes { id customerId status total currency placedAt updatedAt } } }`
	largePGL       = `{ allOrders(first: 1000, orderBy: [PRIMARY_KEY_ASC]) { nodes { rowId customerId status total currency placedAt updatedAt } } }`
	pointMeshgate  = `query($id: ID!) { order(id: $id) { id status total placedAt customer { name country } } }`
	pointPGL       = `query($id: BigInt!) { orderByRowId(rowId: $id) { rowId status total placedAt customerByCustomerId { name country } } }`
	placeMeshgate  = `mutation($c: ID!, $l: [OrderLineInput!]!) { placeOrder(customerId: $c, lines: $l) { id total } }`
)

// demo sizes at scale 1 (products/demo).
const (
	baseCustomers = 2000
	baseItems     = 500
	baseOrders    = 20000
)

func scaled(base int, scale float64) int { return max(1, int(float64(base)*scale)) }

func scenarios(scale float64) []*scenario {
	orders := scaled(baseOrders, scale)
	customers := scaled(baseCustomers, scale)
	items := scaled(baseItems, scale)
	pointLua := func(q string) string {
		pre, _ := json.Marshal(q)
		return fmt.Sprintf(`return '{"query":' .. %s .. ',"variables":{"id":"' .. math.random(1, %d) .. '"}}'`, luaString(string(pre)), orders)
	}
	placePre, _ := json.Marshal(placeMeshgate)
	return []*scenario{
		{
			Name: "nested-read", Title: "50 orders (status RESERVED, newest first) with customer and lines→item",
			Meshgate: body{Fixed: gql(nestedMeshgate, nil)}, PostGraphile: body{Fixed: gql(nestedPGL, nil)},
			checks: func() [][2]string { return [][2]string{{gql(nestedMeshgate, nil), gql(nestedPGL, nil)}} },
			Replay: true,
		},
		{
			Name: "large-result", Title: "1,000 orders × all scalar fields",
			Meshgate: body{Fixed: gql(largeMeshgate, nil)}, PostGraphile: body{Fixed: gql(largePGL, nil)},
			checks: func() [][2]string { return [][2]string{{gql(largeMeshgate, nil), gql(largePGL, nil)}} },
		},
		{
			Name: "point-lookup", Title: "order(id) with customer, random ids",
			Meshgate: body{Lua: pointLua(pointMeshgate)}, PostGraphile: body{Lua: pointLua(pointPGL)},
			checks: func() [][2]string {
				var out [][2]string
				for i := range 20 { // ids spread over the table, deterministic
					id := strconv.Itoa(1 + (i*7919)%orders)
					out = append(out, [2]string{gql(pointMeshgate, map[string]any{"id": id}), gql(pointPGL, map[string]any{"id": id})})
				}
				return out
			},
		},
		{
			Name: "place-order", Title: "placeOrder (1–3 lines, random customer and items)",
			Meshgate: body{Lua: fmt.Sprintf(`local n = math.random(1, 3)
  local first = math.random(1, %d)
  local ls = {}
  for i = 1, n do ls[i] = '{"itemId":"' .. (first + i - 1) .. '","quantity":' .. math.random(1, 3) .. '}' end
  return '{"query":' .. %s .. ',"variables":{"c":"' .. math.random(1, %d) .. '","l":[' .. table.concat(ls, ",") .. ']}}'`,
				max(1, items-3), luaString(string(placePre)), customers)},
			Replay: true, Write: true,
		},
	}
}

// post sends a GraphQL request and returns the decoded answer; GraphQL
// errors are errors.
func post(ctx context.Context, url, body string) (any, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v struct {
		Data   any
		Errors []any
	}
	if err := dec.Decode(&v); err != nil {
		return nil, raw, fmt.Errorf("%s: HTTP %d, not JSON: %.300s", url, resp.StatusCode, raw)
	}
	if resp.StatusCode != 200 || len(v.Errors) > 0 || v.Data == nil {
		return nil, raw, fmt.Errorf("%s: HTTP %d: %.500s", url, resp.StatusCode, raw)
	}
	return v.Data, raw, nil
}

var (
	renames = map[string]string{
		"rowId": "id", "customerByCustomerId": "customer", "orderLinesByOrderId": "lines", "itemByItemId": "item",
		"allOrders": "orders", "orderByRowId": "order",
	}
	moneyKeys = map[string]bool{"total": true, "price": true, "unitPrice": true, "amount": true}
	timeKeys  = map[string]bool{"placedAt": true, "updatedAt": true, "createdAt": true}
)

// normalise makes an answer comparable across systems: PostGraphile's key
// names become meshgate's, connections ({nodes: […]}) become lists, money
// becomes integer cents (meshgate answers decimal units, PostGraphile the
// BIGINT cents column), times become UTC RFC 3339 and numbers strings.
func normalise(v any, key string, cents bool) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if n, ok := x["nodes"]; ok && len(x) == 1 {
			return normalise(n, key, cents)
		}
		out := map[string]any{}
		for k, e := range x {
			nk := k
			if r, ok := renames[k]; ok {
				nk = r
			}
			ne, err := normalise(e, nk, cents)
			if err != nil {
				return nil, err
			}
			out[nk] = ne
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			ne, err := normalise(e, key, cents)
			if err != nil {
				return nil, err
			}
			out[i] = ne
		}
		return out, nil
	case nil:
		return nil, nil
	}
	s := fmt.Sprint(v)
	switch {
	case moneyKeys[key]:
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			return nil, fmt.Errorf("%s: %q is not a number", key, s)
		}
		if !cents {
			r.Mul(r, big.NewRat(100, 1))
		}
		if !r.IsInt() {
			return nil, fmt.Errorf("%s: %q is not whole cents", key, s)
		}
		return r.Num().String(), nil
	case timeKeys[key]:
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		return t.UTC().Format(time.RFC3339Nano), nil
	}
	return s, nil
}

// sameAnswer checks that meshgate's and PostGraphile's answers hold the
// same rows with the same values, and returns a description of the first
// difference otherwise.
func sameAnswer(mesh, pgl any) (bool, string, error) {
	a, err := normalise(mesh, "", false)
	if err != nil {
		return false, "", fmt.Errorf("meshgate answer: %w", err)
	}
	b, err := normalise(pgl, "", true)
	if err != nil {
		return false, "", fmt.Errorf("PostGraphile answer: %w", err)
	}
	if reflect.DeepEqual(a, b) {
		return true, "", nil
	}
	return false, firstDiff("", a, b), nil
}

func firstDiff(path string, a, b any) string {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: %v vs %v", path, a, b)
		}
		keys := map[string]bool{}
		for k := range x {
			keys[k] = true
		}
		for k := range y {
			keys[k] = true
		}
		var ks []string
		for k := range keys {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			if !reflect.DeepEqual(x[k], y[k]) {
				return firstDiff(path+"."+k, x[k], y[k])
			}
		}
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return fmt.Sprintf("%s: %d rows vs %v", path, len(x), describeLen(b))
		}
		for i := range x {
			if !reflect.DeepEqual(x[i], y[i]) {
				return firstDiff(fmt.Sprintf("%s[%d]", path, i), x[i], y[i])
			}
		}
	}
	return fmt.Sprintf("%s: meshgate %v, PostGraphile %v", path, a, b)
}

func describeLen(v any) string {
	if l, ok := v.([]any); ok {
		return fmt.Sprintf("%d rows", len(l))
	}
	return fmt.Sprint(v)
}

// countRows counts the rows of an answer (for the report): the length of
// its first list, or 1 for a single object (a lookup that found its row).
func countRows(v any) int {
	if n, ok := firstList(v); ok {
		return n
	}
	if m, ok := v.(map[string]any); ok {
		for _, e := range m {
			if e != nil {
				return 1
			}
		}
	}
	return 0
}

func firstList(v any) (int, bool) {
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			if n, ok := firstList(e); ok {
				return n, true
			}
		}
	case []any:
		return len(x), true
	}
	return 0, false
}

var (
	// bookkeeping matches what the relays and consumers beside a request
	// send: statements on meshgate's own tables, transaction control (a
	// read request runs none) and the relays' advisory locks; and pgx's
	// "-- ping", its check of a pooled session idle for over a second
	// before reuse (a sequential capture sees it, a loaded gateway not).
	bookkeeping = regexp.MustCompile(`(?i)\bmg_(audit|consumed|source|migrations|framework|outbox)|^\s*(BEGIN|COMMIT|ROLLBACK|START TRANSACTION|END)\b|pg_(try_)?advisory|^\s*-- ping\s*$`)
	sessionSet  = regexp.MustCompile(`(?i)^\s*SET\s`)
)

// requestStatements splits the statements captured while a read request
// ran into the request's work and the session setup of connections opened
// meanwhile (SET …). Statements on meshgate's bookkeeping tables (audit
// log, consumer positions, migrations: mg_…), transaction control and
// advisory locks come from the relays and consumers running beside it and
// are left out.
func requestStatements(all []statement) (work, setup []statement) {
	for _, s := range all {
		switch {
		case bookkeeping.MatchString(s.SQL):
		case sessionSet.MatchString(s.SQL):
			setup = append(setup, s)
		default:
			work = append(work, s)
		}
	}
	return work, setup
}

// searchPath returns the schemas the statements ran in (their
// connections' search_path), in order of first use, for pgbench's
// PGOPTIONS: meshgate's stores each set their own schema; the tables the
// replayed statements name are unique across these.
func searchPath(stmts []statement) string {
	var out []string
	for _, s := range stmts {
		for _, p := range strings.Split(s.Path, ",") {
			if p = strings.TrimSpace(p); p != "" && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return strings.Join(out, ",")
}

// readScript writes the statements of one read request as a pgbench
// script, parameters written as literals. A read can write too (the PII
// read audit takes the next position of a counter row, RETURNING it, and
// inserts the record at it): a one-row RETURNING is stored with \gset, and
// later integer literals equal to it (outside string literals) become the
// variable, so that every replay inserts at a fresh position.
func readScript(stmts []statement) (string, error) {
	var b strings.Builder
	vars := map[int64]string{}
	for i, s := range stmts {
		sql, err := s.Literal()
		if err != nil {
			return "", err
		}
		sql = oneLine(sql)
		// meshgate's own tables (mg_*) exist in every store's schema:
		// name the one the statement ran in, pgbench's search_path holds
		// them all.
		if schema, _, _ := strings.Cut(s.Path, ","); strings.TrimSpace(schema) != "" {
			sql = ownTable.ReplaceAllString(sql, `${1} "`+strings.Trim(strings.TrimSpace(schema), `"`)+`".${2}`)
		}
		if len(vars) > 0 {
			sql = mapLiterals(sql, func(lit int64) (string, bool) {
				v, ok := vars[lit]
				return ":" + v, ok
			})
		}
		if len(s.Rows) == 1 && len(s.Cols) > 0 && strings.Contains(strings.ToUpper(sql), "RETURNING") {
			prefix := fmt.Sprintf("s%d_", i)
			for j, c := range s.Cols {
				if j < len(s.Rows[0]) && s.Rows[0][j] != nil {
					if v, err := strconv.ParseInt(*s.Rows[0][j], 10, 64); err == nil {
						vars[v] = prefix + ident.ReplaceAllString(strings.ToLower(c), "_")
					}
				}
			}
			b.WriteString(sql + " \\gset " + prefix + "\n")
			continue
		}
		b.WriteString(sql + ";\n")
	}
	return b.String(), nil
}

func oneLine(sql string) string {
	return strings.Join(strings.Fields(strings.TrimRight(strings.TrimSpace(sql), ";")), " ")
}

var insertOrder = regexp.MustCompile(`(?i)insert\s+into\s+("?orders"?\.)?"?orders"?\s`)

// writeTransaction picks, from the statements captured while one
// placeOrder ran, the orders store's write transaction: from the BEGIN
// before the order insert to the COMMIT after it, on its connection.
func writeTransaction(all []statement) ([]statement, error) {
	return pickTransaction(all, insertOrder)
}

// pickTransaction returns the transaction (BEGIN … COMMIT on one
// connection) holding the first statement that matches re.
func pickTransaction(all []statement, re *regexp.Regexp) ([]statement, error) {
	at := -1
	for i, s := range all {
		if re.MatchString(s.SQL) {
			at = i
			break
		}
	}
	if at < 0 {
		return nil, fmt.Errorf("no statement matching %s among the %d captured", re, len(all))
	}
	conn := all[at].Conn
	var same []statement
	pos := -1
	for i, s := range all {
		if s.Conn == conn {
			if i == at {
				pos = len(same)
			}
			same = append(same, s)
		}
	}
	first, last := -1, -1
	for i := pos; i >= 0; i-- {
		if isTxStart(same[i].SQL) {
			first = i
			break
		}
	}
	for i := pos; i < len(same); i++ {
		if isTxEnd(same[i].SQL) {
			last = i
			break
		}
	}
	if first < 0 || last < 0 {
		return nil, fmt.Errorf("the statement matching %s is not inside BEGIN … COMMIT on its connection", re)
	}
	return same[first : last+1], nil
}

func isTxStart(sql string) bool {
	s := strings.ToUpper(strings.TrimSpace(sql))
	return strings.HasPrefix(s, "BEGIN") || strings.HasPrefix(s, "START TRANSACTION")
}

func isTxEnd(sql string) bool {
	s := strings.ToUpper(strings.TrimSpace(sql))
	return strings.HasPrefix(s, "COMMIT") || strings.HasPrefix(s, "END")
}

// ownTable matches an unqualified name of one of meshgate's own tables
// after FROM, INTO, UPDATE or JOIN.
var ownTable = regexp.MustCompile(`(?i)\b(FROM|INTO|UPDATE|JOIN)\s+("?mg_[a-z0-9_]+"?)`)

var ident = regexp.MustCompile(`[^a-z0-9_]`)

// writeScript turns a captured write transaction into a pgbench script
// that can run many times: a value a statement returned (one row:
// RETURNING id, the audit counter…) is stored with \gset, and later
// integer literals equal to it, or up to 63 below it (positions handed out
// in a block), outside string literals, become expressions of it.
func writeScript(tx []statement) (string, error) {
	type variable struct {
		name  string
		value int64
	}
	var vars []variable
	var b strings.Builder
	for i, s := range tx {
		sql, err := s.Literal()
		if err != nil {
			return "", err
		}
		sql = oneLine(sql)
		sql = mapLiterals(sql, func(lit int64) (string, bool) {
			for k := len(vars) - 1; k >= 0; k-- { // exact matches first, newest first
				if vars[k].value == lit {
					return ":" + vars[k].name, true
				}
			}
			for k := len(vars) - 1; k >= 0; k-- {
				if d := vars[k].value - lit; d > 0 && d < 64 {
					return fmt.Sprintf("(:%s - %d)", vars[k].name, d), true
				}
			}
			return "", false
		})
		if len(s.Rows) == 1 && len(s.Cols) > 0 && strings.Contains(strings.ToUpper(sql), "RETURNING") {
			prefix := fmt.Sprintf("s%d_", i)
			for j, c := range s.Cols {
				if j < len(s.Rows[0]) && s.Rows[0][j] != nil {
					if v, err := strconv.ParseInt(*s.Rows[0][j], 10, 64); err == nil && v >= 1000 {
						vars = append(vars, variable{prefix + ident.ReplaceAllString(strings.ToLower(c), "_"), v})
					}
				}
			}
			b.WriteString(sql + " \\gset " + prefix + "\n")
			continue
		}
		b.WriteString(sql + ";\n")
	}
	return b.String(), nil
}

// mapLiterals replaces the integer literals of sql that are outside string
// literals and quoted identifiers, where f says so.
func mapLiterals(sql string, f func(int64) (string, bool)) string {
	var b strings.Builder
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(sql) {
				if sql[j] == c {
					if j+1 < len(sql) && sql[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			b.WriteString(sql[i:min(j+1, len(sql))])
			i = j
		case c >= '0' && c <= '9' && (i == 0 || !isWord(sql[i-1])):
			j := i
			for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' {
				j++
			}
			if j < len(sql) && (isWord(sql[j]) || sql[j] == '.') {
				b.WriteString(sql[i:j])
				i = j - 1
				continue
			}
			v, err := strconv.ParseInt(sql[i:j], 10, 64)
			if r, ok := f(v); err == nil && ok {
				b.WriteString(r)
			} else {
				b.WriteString(sql[i:j])
			}
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isWord(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
