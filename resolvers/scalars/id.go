// Package scalars holds the Go side of custom GraphQL scalar bindings that
// gqlgen does not ship. The generated code in graph/ calls it.
package scalars

import (
	"encoding/json"
	"io"
	"strconv"

	"github.com/99designs/gqlgen/graphql"

	"github.com/meshgate/meshgate/products"
)

// MarshalID64 writes a numeric key as a GraphQL ID, which the spec
// serialises as a string.
func MarshalID64(id int64) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		io.WriteString(w, `"`+strconv.FormatInt(id, 10)+`"`)
	})
}

// UnmarshalID64 accepts a GraphQL ID given as a string or an integer and
// returns it as int64; anything else is bad input.
func UnmarshalID64(v any) (int64, error) {
	switch v := v.(type) {
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, products.Invalid("", "%q is not an id of this API (ids are decimal integers)", v)
		}
		return n, nil
	case int:
		return int64(v), nil
	case int64:
		return v, nil
	case json.Number:
		n, err := v.Int64()
		if err != nil {
			return 0, products.Invalid("", "%s is not an id of this API (ids are decimal integers)", v)
		}
		return n, nil
	}
	return 0, products.Invalid("", "%T is not an id of this API (ids are decimal integers)", v)
}
