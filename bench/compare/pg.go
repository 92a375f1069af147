package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// benchDB is a database and a login role made for one run and dropped at
// its end. The role is not a superuser, so its CONNECTION LIMIT holds: the
// run cannot take every connection of a PostgreSQL server others share.
type benchDB struct {
	admin *sql.DB
	Name  string // database and role
	DSN   string // as the role, sslmode=disable
	Host  string // host:port
}

func openAdmin(dsn string) *sql.DB {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		panic(fmt.Sprintf("bench: admin DSN: %v", err)) // sql.Open only fails for an unknown driver
	}
	return db
}

func createBenchDB(ctx context.Context, adminDSN string, connLimit int) (*benchDB, error) {
	u, err := url.Parse(adminDSN)
	if err != nil {
		return nil, fmt.Errorf("bad -postgres DSN: %w", err)
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	name := "mgbench_" + hex.EncodeToString(rnd[:])
	admin := openAdmin(adminDSN)
	admin.SetMaxOpenConns(2)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := admin.ExecContext(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN CONNECTION LIMIT %d", name, connLimit)); err != nil {
		admin.Close()
		return nil, fmt.Errorf("create role (the -postgres user must be allowed to create roles and databases): %w", err)
	}
	b := &benchDB{admin: admin, Name: name, Host: u.Host}
	if _, err := admin.ExecContext(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s", name, name)); err != nil {
		b.Drop()
		return nil, fmt.Errorf("create database: %w", err)
	}
	d := *u
	d.User = url.User(name)
	d.Path = "/" + name
	d.RawQuery = "sslmode=disable"
	b.DSN = d.String()
	return b, nil
}

// Drop removes the database (ending its sessions) and the role.
func (b *benchDB) Drop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err1 := b.admin.ExecContext(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", b.Name))
	_, err2 := b.admin.ExecContext(ctx, fmt.Sprintf("DROP ROLE IF EXISTS %s", b.Name))
	b.admin.Close()
	if err1 != nil {
		return err1
	}
	return err2
}

// WithHost returns the role's DSN with another host:port (the capture proxy).
func (b *benchDB) WithHost(hostport string) string {
	u, _ := url.Parse(b.DSN)
	u.Host = hostport
	return u.String()
}

// dbStats are cumulative counters of the run's database.
type dbStats struct {
	Sessions int64
	Xacts    int64
}

// stats reads pg_stat_database for the run's database. Backends report
// their counters when they go idle, at most once a second, so callers wait
// a little after the load stops.
func (b *benchDB) stats(ctx context.Context) (dbStats, error) {
	var s dbStats
	err := b.admin.QueryRowContext(ctx, `SELECT sessions, xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1`, b.Name).Scan(&s.Sessions, &s.Xacts)
	return s, err
}

// analyze refreshes the planner statistics of every table of the run's
// database (as its owner), so that meshgate and PostGraphile are timed on
// tables analyzed as autovacuum would leave them, whatever the server's
// autovacuum setting (it is off on some CI machines) and whenever
// meshgate's own maintenance last ran.
func (b *benchDB) analyze(ctx context.Context) error {
	db := openAdmin(b.DSN)
	defer db.Close()
	_, err := db.ExecContext(ctx, "ANALYZE")
	return err
}

// openSessions returns how many sessions the run's role holds now.
func (b *benchDB) openSessions(ctx context.Context) (int, error) {
	var n int
	err := b.admin.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1`, b.Name).Scan(&n)
	return n, err
}

// serverVersion returns PostgreSQL's version string.
func (b *benchDB) serverVersion(ctx context.Context) string {
	var v string
	if err := b.admin.QueryRowContext(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "?"
	}
	return v
}

// tagsJSON returns the PostGraphile smart tags for the demo mesh: the
// cross-product foreign keys meshgate resolves through batch loaders, names
// without the schema prefix, and every other table of the schemas hidden
// (meshgate's bookkeeping: audit log, counters, migrations…).
func (b *benchDB) tagsJSON(ctx context.Context) (string, error) {
	db := openAdmin(b.DSN)
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT table_schema || '.' || table_name FROM information_schema.tables
		WHERE table_schema IN ('customers', 'orders', 'inventory') ORDER BY 1`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	keep := map[string]string{
		"customers.customers": `{"tags": {"name": "customers"}}`,
		"orders.orders":       `{"tags": {"name": "orders", "foreignKey": "(customer_id) references customers.customers (id)"}}`,
		"orders.order_lines":  `{"tags": {"name": "order_lines", "foreignKey": ["(order_id) references orders.orders (id)", "(item_id) references inventory.items (id)"]}}`,
		"inventory.items":     `{"tags": {"name": "items"}}`,
	}
	var parts []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return "", err
		}
		if keep[t] != "" {
			parts = append(parts, fmt.Sprintf("%q: %s", t, keep[t]))
			delete(keep, t)
		} else {
			parts = append(parts, fmt.Sprintf(`%q: {"tags": {"behavior": "-*"}}`, t))
		}
	}
	if len(keep) > 0 {
		return "", fmt.Errorf("tables missing in the run's database: %v", keep)
	}
	return "{\"version\": 1, \"config\": {\"class\": {\n  " + strings.Join(parts, ",\n  ") + "\n}}}\n", rows.Err()
}

// cloneSchema copies every table of schema (structure, indexes, defaults
// and rows) into a new schema named into, so that pgbench can replay a
// write transaction on tables like meshgate's without meshgate's relays
// publishing, and its consumers reacting to, pgbench's rows. Column
// defaults keep using the original sequences.
func (b *benchDB) cloneSchema(ctx context.Context, schema, into string) error {
	db := openAdmin(b.DSN)
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY 1`, schema)
	if err != nil {
		return err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, t)
	}
	rows.Close()
	if len(tables) == 0 {
		return fmt.Errorf("schema %s has no tables", schema)
	}
	stmts := []string{fmt.Sprintf(`DROP SCHEMA IF EXISTS %q CASCADE`, into), fmt.Sprintf(`CREATE SCHEMA %q`, into)}
	for _, t := range tables {
		stmts = append(stmts,
			fmt.Sprintf(`CREATE TABLE %q.%q (LIKE %q.%q INCLUDING ALL)`, into, t, schema, t),
			fmt.Sprintf(`INSERT INTO %q.%q SELECT * FROM %q.%q`, into, t, schema, t))
	}
	stmts = append(stmts, "ANALYZE")
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}
