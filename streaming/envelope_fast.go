package streaming

import (
	"strconv"
	"unicode/utf8"

	"github.com/meshgate/meshgate/products"
)

// entryFast decodes a change event the way Entry does, for envelopes as
// Message writes them: only the envelope's and source block's own fields,
// the strings Entry keeps free of escapes, integers for the numbers it
// keeps, and a key {"id": n}. ok is false for anything else (then Entry
// decodes it with encoding/json): the result, when ok, is what
// encoding/json gives. The whole value is checked to be valid JSON.
func entryFast(key, value []byte) (a *products.AuditEntry, ok bool) {
	id, ok := fastKey(key)
	if !ok {
		return nil, false
	}
	p := &scanner{b: value}
	var env struct {
		before, after          []byte
		op, db, entity         string
		actor, requestID       string
		sequence, tsUs         int64
		haveSeq, haveTs, haveB bool
	}
	ok = p.object(func(k []byte) bool {
		switch string(k) {
		case "before":
			env.before, env.haveB = p.raw()
			return env.haveB
		case "after":
			var ok bool
			env.after, ok = p.raw()
			return ok
		case "op":
			return p.str(&env.op)
		case "actor":
			return p.str(&env.actor)
		case "requestId":
			return p.str(&env.requestID)
		case "ts_us":
			env.haveTs = p.int(&env.tsUs)
			return env.haveTs
		case "ts_ms":
			var n int64
			return p.int(&n)
		case "source":
			return p.object(func(k []byte) bool {
				switch string(k) {
				case "db":
					return p.str(&env.db)
				case "entity":
					return p.str(&env.entity)
				case "sequence":
					env.haveSeq = p.int(&env.sequence)
					return env.haveSeq
				case "connector", "version", "name", "table":
					var s string
					return p.str(&s)
				case "ts_ms", "ts_us":
					var n int64
					return p.int(&n)
				}
				return false
			})
		}
		return false
	})
	if !ok || !p.end() {
		return nil, false
	}
	// Entry says why when it is not a meshgate change event.
	return newEntry(env.sequence, env.db, env.entity, id, env.op, env.actor, env.requestID, env.tsUs, env.before, env.after)
}

// fastKey reads a key {"id":n} written by Message.
func fastKey(key []byte) (int64, bool) {
	const prefix = `{"id":`
	if len(key) < len(prefix)+2 || string(key[:len(prefix)]) != prefix || key[len(key)-1] != '}' {
		return 0, false
	}
	digits := key[len(prefix) : len(key)-1]
	if !plainInt(digits) {
		return 0, false
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	return n, err == nil
}

// plainInt tells whether b is a JSON integer without fraction or exponent.
func plainInt(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 || (b[0] == '0' && len(b) > 1) {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// scanner walks a JSON text, checking it as it goes.
type scanner struct {
	b []byte
	i int
}

func (p *scanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// end tells whether only white space is left.
func (p *scanner) end() bool {
	p.ws()
	return p.i == len(p.b)
}

// object reads an object, calling field with each key (which must read
// the value; false stops the scan). Keys with escapes are refused.
func (p *scanner) object(field func(key []byte) bool) bool {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return false
	}
	p.i++
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return true
	}
	for {
		p.ws()
		k, ok := p.plainString()
		if !ok {
			return false
		}
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return false
		}
		p.i++
		if !field(k) {
			return false
		}
		p.ws()
		if p.i >= len(p.b) {
			return false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}

// plainString reads a string without escapes or control characters and
// returns its contents.
func (p *scanner) plainString() ([]byte, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false
	}
	start := p.i + 1
	for j := start; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			p.i = j + 1
			return p.b[start:j], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// str reads a string without escapes into s (not valid UTF-8: refused, as
// encoding/json would replace the bytes).
func (p *scanner) str(s *string) bool {
	p.ws()
	b, ok := p.plainString()
	if !ok {
		return false
	}
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	*s = string(b)
	return true
}

// int reads a plain integer.
func (p *scanner) int(n *int64) bool {
	p.ws()
	start := p.i
	for p.i < len(p.b) && (p.b[p.i] == '-' || (p.b[p.i] >= '0' && p.b[p.i] <= '9')) {
		p.i++
	}
	if !plainInt(p.b[start:p.i]) {
		return false
	}
	v, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 64)
	*n = v
	return err == nil
}

// raw reads any JSON value and returns its text.
func (p *scanner) raw() ([]byte, bool) {
	p.ws()
	start := p.i
	if !p.value(0) {
		return nil, false
	}
	return p.b[start:p.i], true
}

// maxDepth bounds nesting (encoding/json allows 10,000; deeper values take
// the slow path).
const maxDepth = 1000

// value checks one JSON value.
func (p *scanner) value(depth int) bool {
	if depth > maxDepth {
		return false
	}
	p.ws()
	if p.i >= len(p.b) {
		return false
	}
	switch c := p.b[p.i]; {
	case c == '{':
		p.i++
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			return true
		}
		for {
			p.ws()
			if !p.string() {
				return false
			}
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return false
			}
			p.i++
			if !p.value(depth + 1) {
				return false
			}
			if more, ok := p.more('}'); !more {
				return ok
			}
		}
	case c == '[':
		p.i++
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			return true
		}
		for {
			if !p.value(depth + 1) {
				return false
			}
			if more, ok := p.more(']'); !more {
				return ok
			}
		}
	case c == '"':
		return p.string()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	default:
		return p.number()
	}
}

// more reads what follows a member of an object or an element of an
// array: a comma announces another (more), close ends the container (ok),
// anything else is malformed.
func (p *scanner) more(close byte) (more, ok bool) {
	p.ws()
	if p.i >= len(p.b) {
		return false, false
	}
	switch p.b[p.i] {
	case ',':
		p.i++
		return true, true
	case close:
		p.i++
		return false, true
	}
	return false, false
}

func (p *scanner) literal(s string) bool {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

// string checks a string: escapes as JSON has them, no control
// characters. (Bytes that are not UTF-8 are refused: encoding/json would
// keep them in a raw value, but the fast path need not.)
func (p *scanner) string() bool {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return false
	}
	p.i++
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return true
		case c == '\\':
			p.i++
			if p.i >= len(p.b) {
				return false
			}
			switch p.b[p.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i++
			case 'u':
				if len(p.b)-p.i < 5 {
					return false
				}
				for _, h := range p.b[p.i+1 : p.i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				p.i += 5
			default:
				return false
			}
		case c < 0x20:
			return false
		case c < 0x80:
			p.i++
		default:
			r, size := utf8.DecodeRune(p.b[p.i:])
			if r == utf8.RuneError && size <= 1 {
				return false
			}
			p.i += size
		}
	}
	return false
}

// number checks a JSON number.
func (p *scanner) number() bool {
	b, i := p.b, p.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	p.i = i
	return true
}
