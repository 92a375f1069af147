package products

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
)

// CheckDSN checks the syntax of a product's store DSN as Open reads it,
// without opening anything or connecting anywhere ("meshgate config
// check"). The error names the product and says what a DSN looks like.
func CheckDSN(product, dsn string) error {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		u, err := url.Parse(dsn)
		if err != nil {
			return fmt.Errorf("%s store: bad DSN %s: %v; %s", product, redact(dsn), unwrapURLError(err), dsnHelp)
		}
		q := u.Query()
		if _, err := parsePool(q); err != nil {
			return fmt.Errorf("%s store: bad DSN %s: %v", product, redact(dsn), err)
		}
		u.RawQuery = q.Encode()
		if _, err := pgx.ParseConfig(u.String()); err != nil {
			// pgx's parse errors hide the password.
			return fmt.Errorf("%s store: bad DSN: %v; %s", product, err, dsnHelp)
		}
	case strings.HasPrefix(dsn, "sqlite:"), strings.HasPrefix(dsn, "file:"):
		path := strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "file:"), "//")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if path == "" {
			return fmt.Errorf("%s store: empty SQLite path; %s", product, dsnHelp)
		}
	default:
		return fmt.Errorf("%s store: unsupported DSN %q; %s", product, redact(dsn), dsnHelp)
	}
	return nil
}

// RedactDSN hides the password of a DSN, for messages.
func RedactDSN(dsn string) string { return redact(dsn) }
