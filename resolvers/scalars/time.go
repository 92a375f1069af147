package scalars

import (
	"io"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/meshgate/meshgate/products"
)

// MarshalTime writes a time as RFC 3339 in UTC with the precision it has.
func MarshalTime(t time.Time) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		io.WriteString(w, strconv.Quote(t.UTC().Format(time.RFC3339Nano)))
	})
}

// UnmarshalTime reads an RFC 3339 time; anything else is bad input.
func UnmarshalTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, products.Invalid("", "a time must be an RFC 3339 string such as 2026-01-31T12:00:00Z")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, products.Invalid("", "%q is not an RFC 3339 time such as 2026-01-31T12:00:00Z", s)
	}
	return t.UTC(), nil
}
