package streaming

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/meshgate/meshgate/products"
)

// Cursor is a stream position: per product, the sequence of the last audit
// entry a subscriber has seen. Clients get it as an opaque string.
type Cursor map[string]int64

const cursorPrefix = "mg1."

// String encodes the cursor: the base64 of its JSON object, keys sorted,
// as encoding/json writes it. Every event a subscription delivers carries
// one, so the JSON is written here without encoding/json's reflection,
// map copy and sort of a one- or two-key map (a tenth of the server's CPU
// per delivery in BenchmarkFanout); a key needing JSON escapes goes
// through encoding/json.
func (c Cursor) String() string {
	var keyBuf [8]string
	keys := keyBuf[:0]
	for k := range c {
		if !plainKey(k) {
			return cursorJSON(c)
		}
		keys = append(keys, k)
	}
	if c == nil {
		return cursorJSON(c)
	}
	slices.Sort(keys)
	var buf [256]byte
	b := append(buf[:0], '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, '"', ':')
		b = strconv.AppendInt(b, c[k], 10)
	}
	b = append(b, '}')
	out := make([]byte, len(cursorPrefix)+base64.RawURLEncoding.EncodedLen(len(b)))
	copy(out, cursorPrefix)
	base64.RawURLEncoding.Encode(out[len(cursorPrefix):], b)
	return string(out)
}

// cursorJSON is String through encoding/json.
func cursorJSON(c Cursor) string {
	b, _ := json.Marshal(map[string]int64(c))
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// plainKey tells whether k is written in JSON as it is: printable ASCII
// without quotes, backslashes or the characters encoding/json escapes
// for HTML.
func plainKey(k string) bool {
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
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
