package products

import (
	"database/sql"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"
)

// Pool settings of a PostgreSQL store. Each product store has a pool of its
// own; a DSN may set them with the query parameters named below (the names
// pgx's own pool uses), e.g. postgres://…/mesh?pool_max_conns=16.
const (
	// DefaultMaxConns is the default of pool_max_conns: the most sessions a
	// store keeps open, busy or idle. On 2 cores BenchmarkPoolRead shows no
	// difference between 4 and 32 that stands out of the noise; 8 leaves
	// the five demo products of two instances under PostgreSQL's default
	// max_connections of 100.
	DefaultMaxConns = 8
	// DefaultConnMaxLifetime (pool_max_conn_lifetime) retires sessions
	// after a while, so that a server fail-over or a changed DNS entry is
	// picked up and no backend grows forever.
	DefaultConnMaxLifetime = 30 * time.Minute
	// DefaultConnMaxIdleTime (pool_max_conn_idle_time) closes sessions
	// that stay unused this long after a burst.
	DefaultConnMaxIdleTime = 5 * time.Minute
)

// cancelGrace is how long a cancelled statement's session waits for the
// server to confirm the cancel before it is dropped.
const cancelGrace = 2 * time.Second

// poolParams are the DSN query parameters Open reads for the pool; they
// are removed before the DSN reaches the driver.
var poolParams = []string{"pool_max_conns", "pool_max_conn_lifetime", "pool_max_conn_idle_time", "prepared_reads"}

// pgPool is a parsed pool configuration.
type pgPool struct {
	maxConns    int
	maxLifetime time.Duration
	maxIdleTime time.Duration
	// prepare (prepared_reads, default true): the reads whose text is the
	// same for every request of a shape (rows by keys, a parent's
	// children without filters) run as statements prepared once per
	// session. false for a connection pooler that does not keep a
	// session's prepared statements (PgBouncer before 1.21 in
	// transaction mode).
	prepare bool
}

// parsePool reads (and removes) the pool parameters of q.
func parsePool(q url.Values) (pgPool, error) {
	p := pgPool{maxConns: DefaultMaxConns, maxLifetime: DefaultConnMaxLifetime, maxIdleTime: DefaultConnMaxIdleTime, prepare: true}
	if v := q.Get("prepared_reads"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return p, fmt.Errorf("prepared_reads must be true or false, got %q", v)
		}
		p.prepare = b
	}
	if v := q.Get("pool_max_conns"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			// One session is not enough: a migration holds one for its
			// lock while it migrates on another.
			return p, fmt.Errorf("pool_max_conns must be a whole number of at least 2, got %q", v)
		}
		p.maxConns = n
	}
	for _, d := range []struct {
		name string
		to   *time.Duration
	}{{"pool_max_conn_lifetime", &p.maxLifetime}, {"pool_max_conn_idle_time", &p.maxIdleTime}} {
		if v := q.Get(d.name); v != "" {
			t, err := time.ParseDuration(v)
			if err != nil || t < 0 {
				return p, fmt.Errorf("%s must be a duration such as 30m (0 = unlimited), got %q", d.name, v)
			}
			*d.to = t
		}
	}
	for _, k := range poolParams {
		q.Del(k)
	}
	return p, nil
}

// openPostgres opens a pool of sessions described by dsn (a postgres:// URL)
// through pgx's database/sql adapter. Every session starts with the
// store's schema as its search_path (a startup parameter: no extra round
// trip per session); without search_path in the DSN the schema is named
// after the product. It returns the pool and the schema; nothing is
// contacted yet. The caller closes the pool.
func openPostgres(product, dsn string) (*sql.DB, string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, "", fmt.Errorf("bad DSN %s: %v", redact(dsn), unwrapURLError(err))
	}
	q := u.Query()
	pool, err := parsePool(q)
	if err != nil {
		return nil, "", fmt.Errorf("bad DSN %s: %v", redact(dsn), err)
	}
	schema := firstSchema(q.Get("search_path"))
	if schema == "" {
		schema = product
		q.Set("search_path", `"`+strings.ReplaceAll(product, `"`, `""`)+`"`)
	}
	// bun sends every statement with its arguments already in the SQL
	// text, so statements rarely repeat and pgx's default (prepare and
	// cache each new text) would cost a round trip and a server-side
	// statement per query. The simple protocol sends each in one round
	// trip, as pgbench -M simple does. A DSN may choose otherwise.
	if !q.Has("default_query_exec_mode") {
		q.Set("default_query_exec_mode", "simple_protocol")
	}
	u.RawQuery = q.Encode()
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		// pgx's parse errors hide the password.
		return nil, "", fmt.Errorf("bad DSN: %v", err)
	}
	// A cancelled or expired context cancels the statement on the server
	// (a lock wait, a long query) and keeps the session; only a server
	// that does not answer the cancel within cancelGrace loses it. pgx's
	// default would drop the session at once and leave the statement
	// running on the server until it next writes to the socket.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: cancelGrace}
	}
	// Reads that meet a session broken by a server restart run again on
	// another session instead of failing the request (readRetryConn).
	db := sql.OpenDB(newReadRetryConnector(stdlib.GetConnector(*cfg), pool.prepare))
	db.SetMaxOpenConns(pool.maxConns)
	db.SetMaxIdleConns(pool.maxConns)
	db.SetConnMaxLifetime(pool.maxLifetime)
	db.SetConnMaxIdleTime(pool.maxIdleTime)
	return db, schema, nil
}

// firstSchema returns the first schema of a search_path value (unquoted),
// or "".
func firstSchema(searchPath string) string {
	first, _, _ := strings.Cut(searchPath, ",")
	first = strings.TrimSpace(first)
	if len(first) >= 2 && first[0] == '"' && first[len(first)-1] == '"' {
		first = strings.ReplaceAll(first[1:len(first)-1], `""`, `"`)
	}
	return first
}

// unwrapURLError drops url.Error's repetition of the (unredacted) URL.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
