package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// KeyPrefix starts every API key that NewKey makes, so that keys are easy
// to recognise in secret scanners and never look like a JWT.
const KeyPrefix = "mgk_"

// APIKey is one configured API key: a name, the SHA-256 of the key (never
// the key itself) and the roles it grants.
type APIKey struct {
	Name  string   `json:"name"`
	Hash  string   `json:"hash"` // "sha256:<64 hex digits>"
	Roles []string `json:"roles"`
}

var validKeyName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// NewKey returns a new random API key (256 bits from crypto/rand) and the
// hash to configure for it.
func NewKey() (key, hash string) {
	var b [32]byte
	rand.Read(b[:])
	key = KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, HashKey(key)
}

// HashKey returns the configured form of a key's hash. A plain SHA-256 is
// enough (no salt, no stretching) because keys carry 256 random bits: there
// is nothing to guess from a dictionary.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParseAPIKeys reads API keys from a setting: a JSON object (as the YAML
// config file gives them) or one or more entries
// "name=sha256:<hex>[=role,role…]" separated by spaces or semicolons (as
// flags and environment variables give them).
func ParseAPIKeys(s string) ([]APIKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "{") {
		var k APIKey
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&k); err != nil {
			return nil, fmt.Errorf("API key %s: want {name, hash, roles}: %w", s, err)
		}
		return []APIKey{k}, k.check()
	}
	var out []APIKey
	for entry := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == ';' || r == ' ' || r == '\n' || r == '\t' }) {
		parts := strings.Split(entry, "=")
		if len(parts) < 2 || len(parts) > 3 {
			return nil, fmt.Errorf("API key %q: want name=sha256:<hex>[=role,role…] (see: meshgate apikey new)", redact(entry))
		}
		k := APIKey{Name: parts[0], Hash: parts[1]}
		if len(parts) == 3 {
			for r := range strings.SplitSeq(parts[2], ",") {
				if r = strings.TrimSpace(r); r != "" {
					k.Roles = append(k.Roles, r)
				}
			}
		}
		if err := k.check(); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// redact hides what might be a pasted key rather than its hash.
func redact(entry string) string {
	if i := strings.Index(entry, "="); i >= 0 {
		return entry[:i] + "=…"
	}
	return "…"
}

func (k APIKey) check() error {
	if !validKeyName.MatchString(k.Name) {
		return fmt.Errorf("API key name %q: use 1-64 letters, digits, '.', '_' or '-'", k.Name)
	}
	hexSum, ok := strings.CutPrefix(k.Hash, "sha256:")
	if b, err := hex.DecodeString(hexSum); !ok || err != nil || len(b) != sha256.Size {
		if strings.HasPrefix(k.Hash, KeyPrefix) {
			return fmt.Errorf("API key %q: that is the key itself; configure its hash (sha256:…), as printed by meshgate apikey new", k.Name)
		}
		return fmt.Errorf("API key %q: hash must be sha256:<64 hex digits>", k.Name)
	}
	for _, r := range k.Roles {
		if r == "" || strings.ContainsAny(r, " ;=") {
			return fmt.Errorf("API key %q: bad role %q", k.Name, r)
		}
	}
	return nil
}

// keyTable finds the configured key whose hash matches a presented key.
type keyTable struct {
	keys   []APIKey
	hashes [][]byte
}

func newKeyTable(keys []APIKey) (*keyTable, error) {
	t := &keyTable{}
	seen := map[string]bool{}
	for _, k := range keys {
		if err := k.check(); err != nil {
			return nil, err
		}
		if seen[k.Name] {
			return nil, fmt.Errorf("API key name %q is configured twice", k.Name)
		}
		seen[k.Name] = true
		b, _ := hex.DecodeString(strings.TrimPrefix(k.Hash, "sha256:"))
		t.keys = append(t.keys, k)
		t.hashes = append(t.hashes, b)
	}
	return t, nil
}

// find compares the presented key's hash with every configured hash in
// constant time (no early exit), so timing tells nothing about which keys
// exist.
func (t *keyTable) find(presented string) (APIKey, bool) {
	sum := sha256.Sum256([]byte(presented))
	found := -1
	for i, h := range t.hashes {
		if subtle.ConstantTimeCompare(sum[:], h) == 1 {
			found = i
		}
	}
	if found < 0 {
		return APIKey{}, false
	}
	return t.keys[found], true
}
