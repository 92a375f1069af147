package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func decode(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSameAnswerNormalisesPostGraphile(t *testing.T) {
	mesh := decode(t, `{"orders":{"nodes":[{"id":"17462","status":"RESERVED","total":545.98,"placedAt":"2026-10-31T22:49:12Z",
		"customer":{"name":"Dmitri","country":"IT"},"lines":[{"quantity":4,"item":{"sku":"SKU-1","price":5.1}}]}]}}`)
	pgl := decode(t, `{"allOrders":{"nodes":[{"rowId":"17462","status":"RESERVED","total":"54598","placedAt":"2026-10-31T22:49:12.000000+00:00",
		"customerByCustomerId":{"name":"Dmitri","country":"IT"},"orderLinesByOrderId":{"nodes":[{"quantity":"4","itemByItemId":{"sku":"SKU-1","price":"510"}}]}}]}}`)
	same, diff, err := sameAnswer(mesh, pgl)
	if err != nil || !same {
		t.Fatalf("same=%v diff=%q err=%v", same, diff, err)
	}
	other := decode(t, strings.Replace(`{"allOrders":{"nodes":[{"rowId":"17462","status":"RESERVED","total":"54598","placedAt":"2026-10-31T22:49:12.000000+00:00",
		"customerByCustomerId":{"name":"Dmitri","country":"IT"},"orderLinesByOrderId":{"nodes":[{"quantity":"4","itemByItemId":{"sku":"SKU-1","price":"510"}}]}}]}}`, `"510"`, `"511"`, 1))
	same, diff, err = sameAnswer(mesh, other)
	if err != nil || same || !strings.Contains(diff, ".orders[0].lines[0].item.price") {
		t.Fatalf("want a price difference, got same=%v diff=%q err=%v", same, diff, err)
	}
	if _, _, err := sameAnswer(decode(t, `{"orders":[{"total":1.005}]}`), pgl); err == nil {
		t.Fatal("fractions of a cent must be an error")
	}
}

func TestLiteralWritesParameters(t *testing.T) {
	a, b := "it's", "42"
	s := statement{SQL: `SELECT '$1 stays', $1, $2, $3 FROM t WHERE x = $10`, Params: []*string{&a, &b, nil, &b, &b, &b, &b, &b, &b, &b}}
	got, err := s.Literal()
	want := `SELECT '$1 stays', 'it''s', '42', NULL FROM t WHERE x = '42'`
	if err != nil || got != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
	s.Binary = true
	if _, err := s.Literal(); err == nil {
		t.Fatal("binary parameters cannot be written as literals")
	}
}

func TestWriteScriptStoresReturnedValues(t *testing.T) {
	id, seq := "4002", "16078"
	tx := []statement{
		{SQL: "BEGIN"},
		{SQL: `INSERT INTO "orders" ("id", "total") VALUES (DEFAULT, 4002) RETURNING id`, Cols: []string{"id"}, Rows: [][]*string{{&id}}},
		{SQL: `UPDATE mg_audit_seq SET value = value + 3 WHERE product = 'orders' RETURNING value`, Cols: []string{"value"}, Rows: [][]*string{{&seq}}},
		{SQL: `INSERT INTO "mg_audit_log" ("sequence", "key", "after") VALUES (16076, 4002, '{"id":4002}'), (16078, 11892, '{}')`},
		{SQL: "COMMIT"},
	}
	got, err := writeScript(tx)
	if err != nil {
		t.Fatal(err)
	}
	want := `BEGIN;
INSERT INTO "orders" ("id", "total") VALUES (DEFAULT, 4002) RETURNING id \gset s1_
UPDATE mg_audit_seq SET value = value + 3 WHERE product = 'orders' RETURNING value \gset s2_
INSERT INTO "mg_audit_log" ("sequence", "key", "after") VALUES ((:s2_value - 2), :s1_id, '{"id":4002}'), (:s2_value, 11892, '{}');
COMMIT;
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// TestReadScriptReplaysTheReadAudit: a read that records its reads of
// personal data replays at a fresh position each time (the position the
// counter returned is a variable), in the schema it ran in (every store
// has its own mg_* tables).
func TestReadScriptReplaysTheReadAudit(t *testing.T) {
	seq := "8"
	stmts := []statement{
		{SQL: `SELECT "customer"."name" FROM "customers" AS "customer" WHERE ("id" IN (8, 9))`, Path: "customers"},
		{SQL: `UPDATE mg_pii_read_seq SET value = value + 1 WHERE product = 'customers' RETURNING value`, Path: `"customers"`, Cols: []string{"value"}, Rows: [][]*string{{&seq}}},
		{SQL: `INSERT INTO "mg_pii_reads" ("sequence", "product", "reads") VALUES (8, 'customers', '[{"keys":[8,9]}]')`, Path: "customers, public"},
	}
	got, err := readScript(stmts)
	if err != nil {
		t.Fatal(err)
	}
	want := `SELECT "customer"."name" FROM "customers" AS "customer" WHERE ("id" IN (8, 9));
UPDATE "customers".mg_pii_read_seq SET value = value + 1 WHERE product = 'customers' RETURNING value \gset s1_
INSERT INTO "customers"."mg_pii_reads" ("sequence", "product", "reads") VALUES (:s1_value, 'customers', '[{"keys":[8,9]}]');
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func testPostgres(t *testing.T) string {
	dsn := os.Getenv("MESHGATE_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("set MESHGATE_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	}
	return dsn
}

// TestProxyCaptureReplaysInPgbench captures a write transaction through
// the protocol proxy from a real client (bun's driver, search_path in the
// DSN as meshgate sets it), turns it into a pgbench script and runs that
// script concurrently: every transaction commits and writes its rows.
func TestProxyCaptureReplaysInPgbench(t *testing.T) {
	base := testPostgres(t)
	pgbench := pgbenchPath()
	if _, err := exec.LookPath(pgbench); err != nil {
		t.Skip("pgbench is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var rnd [4]byte
	rand.Read(rnd[:])
	schema := "mgcmp_" + hex.EncodeToString(rnd[:])
	admin := openAdmin(base)
	t.Cleanup(func() {
		if _, err := admin.Exec(`DROP SCHEMA IF EXISTS ` + schema + ` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	for _, s := range []string{
		`CREATE SCHEMA ` + schema,
		`CREATE TABLE ` + schema + `.things (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL)`,
		`CREATE TABLE ` + schema + `.counter (name TEXT PRIMARY KEY, value BIGINT NOT NULL)`,
		`CREATE TABLE ` + schema + `.log (sequence BIGINT PRIMARY KEY, thing BIGINT NOT NULL, note TEXT)`,
		`INSERT INTO ` + schema + `.counter VALUES ('things', 5000)`,
	} {
		if _, err := admin.ExecContext(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	u, _ := url.Parse(base)
	proxy, err := startWireProxy(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	pu := *u
	pu.Host = proxy.Addr()
	q := pu.Query()
	q.Set("search_path", schema)
	// The simple protocol, as meshgate's stores use it (products/postgres.go).
	q.Set("default_query_exec_mode", "simple_protocol")
	pu.RawQuery = q.Encode()
	db, err := sql.Open("pgx", pu.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	mark := proxy.Mark()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var id, seq int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO things (name) VALUES ('a') RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRowContext(ctx, `UPDATE counter SET value = value + 2 WHERE name = 'things' RETURNING value`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	// bun writes arguments into the SQL text itself (integers unquoted), as
	// meshgate's stores send them.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO log VALUES (%d, %d, '{"id":1}'), (%d, %d, NULL)`, seq-1, id, seq, id)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	captured := proxy.Since(mark)
	if proxy.Sessions() < 1 {
		t.Fatal("no session counted")
	}
	var found bool
	for _, s := range captured {
		if strings.Contains(s.SQL, "INSERT INTO things") {
			found = true
			if s.Path != schema || len(s.Rows) != 1 || len(s.Cols) != 1 || s.Cols[0] != "id" {
				t.Fatalf("captured %+v", s)
			}
		}
	}
	if !found {
		t.Fatalf("insert not captured: %+v", captured)
	}
	txs, err := pickTransaction(captured, regexp.MustCompile(`INSERT INTO things`))
	if err != nil {
		t.Fatal(err)
	}
	script, err := writeScript(txs)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(script, `\gset`) || !strings.Contains(script, "(:s2_value - 1)") {
		t.Fatalf("script does not reuse returned values:\n%s", script)
	}
	file := filepath.Join(t.TempDir(), "tx.sql")
	os.WriteFile(file, []byte(script), 0o644)
	cmd := exec.CommandContext(ctx, pgbench, "-n", "-M", "simple", "-f", file, "-c", "4", "-j", "2", "-t", "25", base)
	cmd.Env = append(os.Environ(), "PGOPTIONS=-c search_path="+searchPath(txs))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("pgbench: %v\n%s\nscript:\n%s", err, out.String(), script)
	}
	var n int
	if err := admin.QueryRowContext(ctx, `SELECT count(*) FROM `+schema+`.log`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2+4*25*2 {
		t.Fatalf("%d log rows after pgbench, want %d\n%s", n, 2+4*25*2, out.String())
	}
}

func TestRequestStatementsLeavesOutBackground(t *testing.T) {
	var all []statement
	for _, sql := range []string{
		`SELECT "order"."id" FROM "orders" AS "order" LIMIT 51`,
		`BEGIN`, `SELECT pg_try_advisory_xact_lock(2258705971313534524)`, `COMMIT`,
		`SELECT "sequence" FROM "mg_audit_log" WHERE published_at IS NULL`,
		`SET search_path TO 'orders'`,
		`SELECT "line".* FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY "order_id" ORDER BY "id" ASC) AS mg_rank FROM "order_lines") AS "line"`,
	} {
		all = append(all, statement{SQL: sql})
	}
	work, setup := requestStatements(all)
	if len(work) != 2 || len(setup) != 1 || !strings.Contains(work[1].SQL, "order_lines") {
		t.Fatalf("work %v, setup %v", work, setup)
	}
}
