package products

import (
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"
)

// cancelGrace is how long a cancelled statement's session waits for the
// server to confirm the cancel before it is dropped.
const cancelGrace = 2 * time.Second

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
	db := stdlib.OpenDB(*cfg)
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
