package products

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Transient tells whether err is a failure of the store rather than of the
// work asked of it, one that the same work may not meet when tried again
// later: the server unreachable, restarting or out of connections, a
// connection broken, a lock, statement or context timeout, a serialization
// failure or deadlock (PostgreSQL), a busy or locked database (SQLite), or
// an UNAVAILABLE error: what Unreachable tells, and the waits and conflicts
// on top. Reactions retry such failures for as long as they
// last (a store outage is not a poison event). Like violationOf it reads
// the drivers' error codes, never message texts.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	if ErrorCode(err) == Unavailable || Unreachable(err) {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch {
		case strings.HasPrefix(pg.Code, "40"), // transaction rollback: serialization failure, deadlock
			strings.HasPrefix(pg.Code, "53"), // insufficient resources: too many connections, out of memory, disk full
			pg.Code == "57P04",               // database dropped (the other 57P codes are Unreachable)
			pg.Code == "55P03",               // lock not available (lock_timeout)
			pg.Code == "57014":               // query cancelled (statement_timeout)
			return true
		}
		return false
	}
	if pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return true
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		switch lite.Code() & 0xff { // the primary result code
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
			sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOMEM:
			return true
		}
	}
	return false
}
