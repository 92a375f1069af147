// Package auth authenticates the callers of the gateway: API keys
// (configured by their SHA-256, never in plain text) and JWTs (HS256 with a
// shared secret; RS256/ES256/EdDSA and their siblings with keys from a
// JWKS file or URL). It turns a bearer token into a products.Identity.
//
// JWTs are verified with github.com/lestrrat-go/jwx/v3. The JWKS is kept
// by a small cache of our own (jwks.go) rather than jwx's jwk.Cache: the
// rule we need — read again on an unknown key id, but at most once per
// interval — is a few lines, and it needs no background goroutine whose
// lifetime the gateway would have to manage.
package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/meshgate/meshgate/products"
)

// MinSecretBytes is the shortest HS256 secret accepted (RFC 7518 §3.2: a
// key at least as long as the hash).
const MinSecretBytes = 32

// maxTokenBytes bounds a bearer token; real JWTs are a few KiB.
const maxTokenBytes = 16 << 10

// Config says which credentials the gateway accepts.
type Config struct {
	APIKeys []APIKey

	// HS256Secret verifies HS256 JWTs; empty: HS256 is refused.
	HS256Secret string
	// JWKSURL or JWKSFile holds the public keys of asymmetric JWTs
	// (RS256/384/512, PS256/384/512, ES256/384/512, EdDSA).
	JWKSURL  string
	JWKSFile string
	// Issuer and Audience must match the iss and aud claims; both are
	// required when JWTs are accepted.
	Issuer   string
	Audience string
	// RolesClaim is the (dotted) path of the claim that holds the roles: an
	// array of strings, or a string of roles separated by spaces or commas.
	RolesClaim string
	// SubjectClaim names the claim that identifies the caller ("sub").
	SubjectClaim string
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway time.Duration
	// JWKSMaxAge: the set is read again when older than this.
	JWKSMaxAge time.Duration
	// JWKSMinInterval: the set is never read more often than this, even
	// when tokens name unknown key ids.
	JWKSMinInterval time.Duration
	// HTTPClient fetches the JWKS URL (nil: a client with a 10 s timeout).
	HTTPClient *http.Client
	// Now is the clock (nil: time.Now); tests move it.
	Now func() time.Time
}

// JWT reports whether JWTs are accepted.
func (c Config) JWT() bool { return c.HS256Secret != "" || c.JWKSURL != "" || c.JWKSFile != "" }

// Configured reports whether any credential is configured; without one the
// gateway runs in dev mode or refuses to start.
func (c Config) Configured() bool { return len(c.APIKeys) > 0 || c.JWT() }

// Authenticator checks bearer tokens. It is safe for concurrent use.
type Authenticator struct {
	cfg  Config
	keys *keyTable
	jwks *keySet
	log  *slog.Logger
}

// New checks cfg and returns its Authenticator. With a JWKS file, the file
// is read now (an unreadable file is an error); a JWKS URL is read now too,
// but a failure is only logged: the identity provider may come up later.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Authenticator, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SubjectClaim == "" {
		cfg.SubjectClaim = "sub"
	}
	if cfg.RolesClaim == "" {
		cfg.RolesClaim = "roles"
	}
	if cfg.JWKSMaxAge <= 0 {
		cfg.JWKSMaxAge = time.Hour
	}
	if cfg.JWKSMinInterval <= 0 {
		cfg.JWKSMinInterval = 30 * time.Second
	}
	if cfg.Leeway < 0 || cfg.Leeway > 5*time.Minute {
		return nil, fmt.Errorf("JWT leeway must be between 0 and 5m, got %s", cfg.Leeway)
	}
	keys, err := newKeyTable(cfg.APIKeys)
	if err != nil {
		return nil, err
	}
	a := &Authenticator{cfg: cfg, keys: keys, log: log}
	if cfg.HS256Secret != "" && len(cfg.HS256Secret) < MinSecretBytes {
		return nil, fmt.Errorf("the HS256 secret must be at least %d bytes", MinSecretBytes)
	}
	if cfg.JWKSURL != "" && cfg.JWKSFile != "" {
		return nil, errors.New("configure a JWKS URL or a JWKS file, not both")
	}
	if cfg.JWT() && (cfg.Issuer == "" || cfg.Audience == "") {
		return nil, errors.New("JWTs need the expected issuer and audience (jwt-issuer, jwt-audience)")
	}
	if cfg.JWKSURL != "" || cfg.JWKSFile != "" {
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: 10 * time.Second}
		}
		a.jwks = &keySet{url: cfg.JWKSURL, file: cfg.JWKSFile, client: client, log: log,
			maxAge: cfg.JWKSMaxAge, minInterval: cfg.JWKSMinInterval, now: cfg.Now}
		if cfg.JWKSFile != "" {
			set, err := a.jwks.read(ctx)
			if err != nil {
				return nil, fmt.Errorf("JWKS file %s: %w", cfg.JWKSFile, err)
			}
			a.jwks.set, a.jwks.fetched, a.jwks.tried = set, cfg.Now(), cfg.Now()
		} else {
			a.jwks.keys(ctx, "")
		}
	}
	return a, nil
}

// JWKSReads tells how many times the JWKS was read (tests check the bound).
func (a *Authenticator) JWKSReads() int {
	if a.jwks == nil {
		return 0
	}
	a.jwks.mu.Lock()
	defer a.jwks.mu.Unlock()
	return a.jwks.fetches
}

// unauthenticated is the error for every refused credential. The message
// says what is wrong with the token, never anything about configured keys.
func unauthenticated(format string, args ...any) error {
	return products.Errorf(products.Unauthenticated, format, args...)
}

// Authenticate returns the identity a bearer token proves: an API key if
// the token is not a JWT (no two dots), else a JWT. It blocks only when a
// JWKS must be read (bounded by ctx and a 10 s timeout). Every refusal is a
// *products.Error with code UNAUTHENTICATED.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (*products.Identity, error) {
	if token == "" {
		return nil, unauthenticated("missing credentials")
	}
	if len(token) > maxTokenBytes {
		return nil, unauthenticated("token longer than %d bytes", maxTokenBytes)
	}
	if strings.Count(token, ".") != 2 {
		k, ok := a.keys.find(token)
		if !ok {
			return nil, unauthenticated("unknown API key")
		}
		return &products.Identity{Subject: "apikey:" + k.Name, Method: products.MethodAPIKey, KeyName: k.Name,
			Roles: append([]string(nil), k.Roles...)}, nil
	}
	return a.jwt(ctx, token)
}

// header is the part of a JWS header that picks the key.
type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// asymmetric lists the accepted public-key algorithms and the key each
// needs. Anything else — "none", HS384, a typo — is refused.
var asymmetric = map[string]func(any) bool{
	"RS256": isRSA, "RS384": isRSA, "RS512": isRSA,
	"PS256": isRSA, "PS384": isRSA, "PS512": isRSA,
	"ES256": isCurve(elliptic.P256()), "ES384": isCurve(elliptic.P384()), "ES512": isCurve(elliptic.P521()),
	"EdDSA": isEd25519,
}

func isRSA(k any) bool {
	r, ok := k.(*rsa.PublicKey)
	return ok && r.N.BitLen() >= 2048
}

func isCurve(c elliptic.Curve) func(any) bool {
	return func(k any) bool { e, ok := k.(*ecdsa.PublicKey); return ok && e.Curve == c }
}

func isEd25519(k any) bool { _, ok := k.(ed25519.PublicKey); return ok }

// publicKey returns the raw public key of a JWK, refusing private and
// symmetric keys.
func publicKey(key jwk.Key) (any, bool) {
	var raw any
	if err := jwk.Export(key, &raw); err != nil {
		return nil, false
	}
	switch k := raw.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return k, true
	}
	return nil, false
}

// jwt verifies a compact JWS JWT. The key is chosen by the header's alg:
// HS256 only with the configured secret; an asymmetric alg only with a JWKS
// key of the matching type (so an RSA public key can never serve as an
// HMAC secret: no algorithm confusion), whose own alg, if it has one,
// must match too.
func (a *Authenticator) jwt(ctx context.Context, token string) (*products.Identity, error) {
	if !a.cfg.JWT() {
		return nil, unauthenticated("JWTs are not accepted here")
	}
	parts := strings.Split(token, ".")
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	var h header
	if err != nil || json.Unmarshal(hb, &h) != nil {
		return nil, unauthenticated("malformed token header")
	}
	type candidate struct {
		alg jwa.SignatureAlgorithm
		key any
	}
	var candidates []candidate
	switch {
	case h.Alg == "HS256":
		if a.cfg.HS256Secret == "" {
			return nil, unauthenticated("algorithm HS256 is not accepted")
		}
		candidates = append(candidates, candidate{jwa.HS256(), []byte(a.cfg.HS256Secret)})
	case asymmetric[h.Alg] != nil:
		if a.jwks == nil {
			return nil, unauthenticated("algorithm %s is not accepted", h.Alg)
		}
		alg, _ := jwa.LookupSignatureAlgorithm(h.Alg)
		keys, err := a.jwks.keys(ctx, h.Kid)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if ka, ok := k.Algorithm(); ok && ka.String() != h.Alg {
				continue
			}
			raw, ok := publicKey(k)
			if ok && asymmetric[h.Alg](raw) {
				candidates = append(candidates, candidate{alg, raw})
			}
		}
		if len(candidates) == 0 {
			if h.Kid == "" {
				return nil, unauthenticated("no key for algorithm %s", h.Alg)
			}
			return nil, unauthenticated("unknown key id %q", h.Kid)
		}
	default:
		return nil, unauthenticated("algorithm %q is not accepted", h.Alg)
	}
	opts := []jwt.ParseOption{
		jwt.WithValidate(true),
		jwt.WithAcceptableSkew(a.cfg.Leeway),
		jwt.WithClock(jwt.ClockFunc(a.cfg.Now)),
		jwt.WithIssuer(a.cfg.Issuer),
		jwt.WithAudience(a.cfg.Audience),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
	}
	var tok jwt.Token
	for _, c := range candidates {
		if tok, err = jwt.ParseString(token, append(opts, jwt.WithKey(c.alg, c.key))...); err == nil {
			break
		}
		if !isSignatureError(err) {
			break // a claim is wrong: another key will not change that
		}
	}
	if err != nil {
		return nil, tokenError(err)
	}
	// The claims as plain JSON, for roles, subject and later rules.
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	if err != nil || json.Unmarshal(pb, &claims) != nil {
		return nil, unauthenticated("malformed token claims")
	}
	sub, _ := products.ClaimAt(claims, a.cfg.SubjectClaim)
	subject, _ := sub.(string)
	if subject == "" {
		return nil, unauthenticated("token has no %s claim", a.cfg.SubjectClaim)
	}
	exp, _ := tok.Expiration()
	return &products.Identity{Subject: subject, Method: products.MethodJWT, Roles: roles(claims, a.cfg.RolesClaim),
		Claims: claims, Expiry: exp}, nil
}

// roles reads the roles claim: an array of strings or one string of roles
// separated by spaces or commas. Anything else grants no role.
func roles(claims map[string]any, path string) []string {
	v, _ := products.ClaimAt(claims, path)
	var out []string
	switch v := v.(type) {
	case []any:
		for _, r := range v {
			if s, ok := r.(string); ok && s != "" {
				out = append(out, s)
			}
		}
	case string:
		out = strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' })
	}
	return out
}

func isSignatureError(err error) bool {
	return !errors.Is(err, jwt.ValidateError())
}

// tokenError says why a verified-or-not token is refused.
func tokenError(err error) error {
	switch {
	case errors.Is(err, jwt.TokenExpiredError()):
		return unauthenticated("token expired")
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return unauthenticated("token not valid yet (nbf)")
	case errors.Is(err, jwt.InvalidIssuerError()):
		return unauthenticated("token from an unexpected issuer")
	case errors.Is(err, jwt.InvalidAudienceError()):
		return unauthenticated("token for another audience")
	case errors.Is(err, jwt.MissingRequiredClaimError()):
		return unauthenticated("token lacks a required claim (exp)")
	case errors.Is(err, jwt.InvalidIssuedAtError()):
		return unauthenticated("token issued in the future (iat)")
	case errors.Is(err, jwt.ValidateError()):
		return unauthenticated("token claims are not valid")
	}
	return unauthenticated("token signature does not verify")
}

// Describe says what is configured, without secrets, for the start banner.
func (c Config) Describe() string {
	var parts []string
	if n := len(c.APIKeys); n > 0 {
		parts = append(parts, fmt.Sprintf("%d API keys", n))
	}
	switch {
	case c.JWKSURL != "":
		parts = append(parts, "JWTs from "+c.Issuer+" (JWKS "+c.JWKSURL+")")
	case c.JWKSFile != "":
		parts = append(parts, "JWTs from "+c.Issuer+" (JWKS file "+c.JWKSFile+")")
	}
	if c.HS256Secret != "" {
		parts = append(parts, "HS256 JWTs from "+c.Issuer)
	}
	return strings.Join(parts, ", ")
}
