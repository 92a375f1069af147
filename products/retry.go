package products

import (
	"context"
	"database/sql/driver"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// readRetryConnector hands out pgx sessions whose failed reads on a broken
// session are retried by database/sql on another session (see
// readRetryConn): after a PostgreSQL restart every pooled session is dead,
// and the first statement on each would otherwise fail a request.
type readRetryConnector struct {
	driver.Connector
	drv *readRetryDriver
}

// prepare tells whether its sessions run reads with parameters as
// prepared statements (see paramsFor).
func newReadRetryConnector(c driver.Connector, prepare bool) readRetryConnector {
	return readRetryConnector{c, &readRetryDriver{c.Driver(), prepare}}
}

// Driver marks the pool as readRetryConnector's (see isFastPG).
func (c readRetryConnector) Driver() driver.Driver { return c.drv }

// readRetryDriver is the driver of a pool of readRetryConn sessions.
type readRetryDriver struct {
	driver.Driver
	prepare bool
}

func (c readRetryConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if sc, ok := conn.(*stdlib.Conn); ok {
		return &readRetryConn{Conn: sc, prepare: c.drv.prepare, prepared: map[uint64]*pgconn.StatementDescription{}, seen: map[uint64]struct{}{}}, nil
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
type readRetryConn struct {
	*stdlib.Conn
	// prepared holds the statements prepared on the session by
	// readPrepared, by the hash of their text (at most maxPrepared).
	prepared map[uint64]*pgconn.StatementDescription
	// prepare is the driver's: reads may run prepared.
	prepare bool
	// seen holds the hashes of the texts of reads without parameters the
	// session ran once (see repeated).
	seen map[uint64]struct{}
}

func (c *readRetryConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if s, ok := ctx.Value(pgScanKey{}).(*pgScan); ok && len(args) == 0 {
		return c.scan(ctx, s, query)
	}
	idle := c.Conn.Conn().PgConn().TxStatus() == 'I'
	rows, err := c.Conn.QueryContext(ctx, query, args)
	if err != nil && idle && ctx.Err() == nil && isRead(query) && Unreachable(err) {
		return nil, driver.ErrBadConn
	}
	return rows, err
}

// scan runs a read of selectRows on the session: its rows are decoded as
// they arrive (see pgScan) and database/sql gets none. A failure is
// reported as stdlib.Conn.QueryContext and QueryContext above report it,
// so that database/sql retries on another session what they retry.
func (c *readRetryConn) scan(ctx context.Context, s *pgScan, query string) (driver.Rows, error) {
	pc := c.Conn.Conn()
	if pc.IsClosed() {
		return nil, driver.ErrBadConn
	}
	s.ran = true
	idle := pc.PgConn().TxStatus() == 'I'
	err := s.run(ctx, c, query)
	if err == nil {
		return noRows{}, nil
	}
	if pgconn.SafeToRetry(err) || idle && ctx.Err() == nil && isRead(query) && Unreachable(err) {
		return nil, driver.ErrBadConn
	}
	return nil, err
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
