package products

import (
	"context"
	"database/sql/driver"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// readRetryConnector hands out pgx sessions whose failed reads on a broken
// session are retried by database/sql on another session (see
// readRetryConn): after a PostgreSQL restart every pooled session is dead,
// and the first statement on each would otherwise fail a request.
type readRetryConnector struct{ driver.Connector }

func (c readRetryConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if sc, ok := conn.(*stdlib.Conn); ok {
		return &readRetryConn{sc}, nil
	}
	return conn, nil
}

// readRetryConn reports a read that failed because the session broke as
// driver.ErrBadConn, which makes database/sql discard the session and run
// the statement again on another one (a new one on its last attempt). Only
// a lone SELECT outside a transaction qualifies: it changed nothing, so
// running it again is safe. A write, or anything inside a transaction,
// fails as it is: whether a write committed is unknown when its session
// broke, and only the caller may decide to repeat it.
type readRetryConn struct{ *stdlib.Conn }

func (c *readRetryConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	idle := c.Conn.Conn().PgConn().TxStatus() == 'I'
	rows, err := c.Conn.QueryContext(ctx, query, args)
	if err != nil && idle && ctx.Err() == nil && isRead(query) && Unreachable(err) {
		return nil, driver.ErrBadConn
	}
	return rows, err
}

// ExecContext does the same for a SELECT sent without reading its rows.
func (c *readRetryConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	idle := c.Conn.Conn().PgConn().TxStatus() == 'I'
	res, err := c.Conn.ExecContext(ctx, query, args)
	if err != nil && idle && ctx.Err() == nil && isRead(query) && Unreachable(err) {
		return nil, driver.ErrBadConn
	}
	return res, err
}

// isRead tells whether a statement is a plain SELECT (bun writes its reads
// so; writes start with INSERT, UPDATE, DELETE or WITH … and locks are
// taken in transactions).
func isRead(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n(")
	return len(q) >= 6 && strings.EqualFold(q[:6], "SELECT") && !strings.Contains(strings.ToUpper(q), "FOR UPDATE")
}

// PgxConn returns the session's pgx connection (for statements sent with
// pgx's own protocol calls, see Store.sequence).
func (c *readRetryConn) PgxConn() *pgx.Conn { return c.Conn.Conn() }
