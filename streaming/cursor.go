package streaming

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"strings"

	"github.com/meshgate/meshgate/products"
)

// Cursor is a stream position: per product, the sequence of the last audit
// entry a subscriber has seen. Clients get it as an opaque string.
type Cursor map[string]int64

const cursorPrefix = "mg1."

// String encodes the cursor.
func (c Cursor) String() string {
	b, _ := json.Marshal(map[string]int64(c))
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// Clone returns a copy.
func (c Cursor) Clone() Cursor { return maps.Clone(c) }

// ParseCursor decodes a cursor given by a client; a malformed one is
// BAD_USER_INPUT.
func ParseCursor(s string) (Cursor, error) {
	bad := products.Invalid("since", "not a stream cursor of this API; use the cursor of an event you received")
	raw, ok := strings.CutPrefix(s, cursorPrefix)
	if !ok {
		return nil, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return nil, bad
	}
	var c Cursor
	if err := json.Unmarshal(b, &c); err != nil || c == nil {
		return nil, bad
	}
	for _, v := range c {
		if v < 0 {
			return nil, bad
		}
	}
	return c, nil
}
