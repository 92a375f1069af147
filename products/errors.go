package products

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Code classifies an expected failure. The web layer turns it into the
// GraphQL error's extensions.code; anything without a code is internal.
type Code string

// Error codes shared by every data product.
const (
	BadUserInput    Code = "BAD_USER_INPUT"
	NotFound        Code = "NOT_FOUND"
	Conflict        Code = "CONFLICT"
	Unauthenticated Code = "UNAUTHENTICATED"
	Forbidden       Code = "FORBIDDEN"
	LimitExceeded   Code = "LIMIT_EXCEEDED"
	Unavailable     Code = "UNAVAILABLE"
	// Cancelled: the client went away before the answer was ready.
	Cancelled Code = "CANCELLED"
)

// Error is an expected failure with a code, a message meant for the client
// and, for bad input, the input field at fault (e.g. "input.email").
type Error struct {
	Code    Code
	Message string
	Field   string
	// Extensions are further facts for the client's error extensions, e.g.
	// {"limit": "groups", "value": 10000} for LIMIT_EXCEEDED.
	Extensions map[string]any
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Message)
	}
	return e.Message
}

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Forbid refuses what the caller's roles do not allow; field, if not
// empty, names the input at fault (e.g. "where.email").
func Forbid(field, format string, args ...any) *Error {
	return &Error{Code: Forbidden, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Invalid reports bad input in the named field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: BadUserInput, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or "".
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// violation is the kind of integrity constraint a database error reports.
type violation int

const (
	noViolation violation = iota
	uniqueViolation
	primaryKeyViolation
	foreignKeyViolation
)

// violationOf classifies err by the driver's error code, never by message
// text: PostgreSQL's SQLSTATE (23505 unique, 23503 foreign key) through
// pgx's *pgconn.PgError, and SQLite's extended result codes through the
// *sqlite.Error of modernc.org/sqlite, the driver sqliteshim registers on
// the platforms meshgate builds for. PostgreSQL reports a primary key's
// violation as 23505 too; it is told apart by the constraint's name, which
// PostgreSQL makes <table>_pkey for an unnamed primary key (bun's
// migrations name none).
func violationOf(err error) violation {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch {
		case pg.Code == "23505" && pg.ConstraintName == pg.TableName+"_pkey":
			return primaryKeyViolation
		case pg.Code == "23505":
			return uniqueViolation
		case pg.Code == "23503":
			return foreignKeyViolation
		}
		return noViolation
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		switch lite.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return uniqueViolation
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return primaryKeyViolation
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return foreignKeyViolation
		}
	}
	return noViolation
}

// Unreachable tells whether err says that a store could not be reached or
// dropped the session: the server refused or reset the connection, closed
// it (a restart's admin shutdown, SQLSTATE 57P01; crash shutdown 57P02;
// "cannot connect now" while it starts, 57P03; class 08, connection
// exception), or the pool found its session broken. Such failures are the
// store's, not the request's: clients may retry them (UNAVAILABLE). A
// cancelled or expired context is not one, whatever the driver made of it.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return strings.HasPrefix(pg.Code, "08") || pg.Code == "57P01" || pg.Code == "57P02" || pg.Code == "57P03"
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// RetryAfter is the wait, in seconds, that UNAVAILABLE answers suggest to
// clients (HTTP Retry-After, extensions.retryAfter).
const RetryAfter = 2

// Unavailability returns err as an UNAVAILABLE *Error when Unreachable(err),
// else err itself. The cause stays in the chain for logs.
func Unavailability(err error) error {
	if !Unreachable(err) || ErrorCode(err) != "" {
		return err
	}
	return &unavailableError{coded: &Error{Code: Unavailable,
		Message:    "a data store is unreachable (restarting or cut off); retry in a few seconds",
		Extensions: map[string]any{"retryable": true, "retryAfter": RetryAfter}}, cause: err}
}

// unavailableError is an UNAVAILABLE *Error that keeps its cause.
type unavailableError struct {
	coded *Error
	cause error
}

func (e *unavailableError) Error() string   { return e.coded.Message + ": " + e.cause.Error() }
func (e *unavailableError) Unwrap() []error { return []error{e.coded, e.cause} }
