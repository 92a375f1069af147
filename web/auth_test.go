package web_test

// Authentication through the real HTTP edge: JWTs (HS256, and RS256, ES256,
// EdDSA from a JWKS served by an httptest server), API keys, and the
// identity reaching the audit log as the actor.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/resolvers"
	"github.com/meshgate/meshgate/web"
	"github.com/meshgate/meshgate/web/auth"
)

const (
	testIssuer   = "https://idp.example.test/"
	testAudience = "meshgate-test"
	testSecret   = "0123456789abcdef0123456789abcdef-test-secret"
)

// edgeServer serves mesh through web.NewServer with cfg (the resolver is
// filled in) and closes it when the test ends.
func edgeServer(t *testing.T, mesh *products.Mesh, cfg web.Config) *httptest.Server {
	t.Helper()
	cfg.Resolver = &resolvers.Resolver{Data: mesh, Version: "test", BatchWait: 2 * time.Millisecond}
	cfg.Ready = mesh.Ping
	srv := httptest.NewServer(web.NewServer(cfg))
	t.Cleanup(srv.Close)
	return srv
}

// signer holds the test's signing keys, generated once.
type signer struct {
	rsa    *rsa.PrivateKey
	rsa2   *rsa.PrivateKey
	ec     *ecdsa.PrivateKey
	ed     ed25519.PrivateKey
	rsaPEM []byte // the RSA public key as PEM: what an attacker would use as an HMAC secret
}

var (
	keysOnce sync.Once
	keys     signer
)

func testKeys(t *testing.T) *signer {
	keysOnce.Do(func() {
		keys.rsa, _ = rsa.GenerateKey(rand.Reader, 2048)
		keys.rsa2, _ = rsa.GenerateKey(rand.Reader, 2048)
		keys.ec, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		_, keys.ed, _ = ed25519.GenerateKey(rand.Reader)
		der, _ := x509.MarshalPKIXPublicKey(&keys.rsa.PublicKey)
		keys.rsaPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	})
	return &keys
}

// jwks renders public keys as a JWKS document: kid → key.
func jwks(t *testing.T, pubs map[string]crypto.PublicKey) []byte {
	t.Helper()
	set := jwk.NewSet()
	for kid, pub := range pubs {
		k, err := jwk.Import(pub)
		if err != nil {
			t.Fatal(err)
		}
		k.Set(jwk.KeyIDKey, kid)
		set.AddKey(k)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwksServer serves a JWKS that the test can swap, and counts its reads.
type jwksServer struct {
	*httptest.Server
	doc   atomic.Pointer[[]byte]
	reads atomic.Int32
}

func newJWKSServer(t *testing.T, doc []byte) *jwksServer {
	s := &jwksServer{}
	s.doc.Store(&doc)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.reads.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(*s.doc.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// claims returns valid claims for subject at now, changed by the edits.
func claims(now time.Time, sub string, edits map[string]any) map[string]any {
	c := map[string]any{"iss": testIssuer, "aud": testAudience, "sub": sub,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "roles": []string{"orders:read"}}
	for k, v := range edits {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// hs256 signs claims with an HMAC secret (by hand: the attacks below need
// headers a library would not write).
func hs256(t *testing.T, secret []byte, header map[string]any, c map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(c)
	input := b64(h) + "." + b64(p)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + b64(mac.Sum(nil))
}

// signed signs claims with an asymmetric key through jwx.
func signed(t *testing.T, alg jwa.SignatureAlgorithm, key any, kid string, c map[string]any) string {
	t.Helper()
	p, _ := json.Marshal(c)
	h := jws.NewHeaders()
	h.Set(jws.KeyIDKey, kid)
	h.Set(jws.TypeKey, "JWT")
	tok, err := jws.Sign(p, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// call POSTs a query with a bearer token ("" for none) and returns the
// status, the WWW-Authenticate header and the decoded body.
func call(t *testing.T, srv *httptest.Server, token, query string, vars map[string]any) (int, http.Header, gqlResponse) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r gqlResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("HTTP %d: not GraphQL JSON: %s", resp.StatusCode, raw)
	}
	r.Status = resp.StatusCode
	return resp.StatusCode, resp.Header, r
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newAuth(t *testing.T, cfg auth.Config) *auth.Authenticator {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer, cfg.Audience = testIssuer, testAudience
	}
	a, err := auth.New(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestJWTAcceptedAndRefused(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	now := time.Now()
	js := newJWKSServer(t, jwks(t, map[string]crypto.PublicKey{
		"r1": &k.rsa.PublicKey, "e1": &k.ec.PublicKey, "d1": k.ed.Public(),
	}))
	a := newAuth(t, auth.Config{HS256Secret: testSecret, JWKSURL: js.URL, Leeway: 5 * time.Second, JWKSMinInterval: time.Hour})
	g := sharedGateway(t, sqliteBackend)
	srv := edgeServer(t, g.mesh, web.Config{Auth: a})
	const q = `{ mesh { products } }`

	good := map[string]string{
		"HS256":              hs256(t, []byte(testSecret), map[string]any{"alg": "HS256", "typ": "JWT"}, claims(now, "alice", nil)),
		"RS256":              signed(t, jwa.RS256(), k.rsa, "r1", claims(now, "alice", nil)),
		"PS256":              signed(t, jwa.PS256(), k.rsa, "r1", claims(now, "alice", nil)),
		"ES256":              signed(t, jwa.ES256(), k.ec, "e1", claims(now, "alice", nil)),
		"EdDSA":              signed(t, jwa.EdDSA(), k.ed, "d1", claims(now, "alice", nil)),
		"audience in a list": signed(t, jwa.RS256(), k.rsa, "r1", claims(now, "alice", map[string]any{"aud": []string{"other", testAudience}})),
		"within the leeway":  signed(t, jwa.RS256(), k.rsa, "r1", claims(now, "alice", map[string]any{"exp": now.Add(-2 * time.Second).Unix()})),
	}
	for name, tok := range good {
		t.Run("accepted/"+name, func(t *testing.T) {
			status, _, r := call(t, srv, tok, q, nil)
			if status != 200 || len(r.Errors) > 0 {
				t.Fatalf("HTTP %d %v", status, r.Errors)
			}
		})
	}

	hdr := func(alg, kid string) map[string]any { return map[string]any{"alg": alg, "kid": kid, "typ": "JWT"} }
	none := func(c map[string]any) string {
		h, _ := json.Marshal(map[string]any{"alg": "none", "typ": "JWT"})
		p, _ := json.Marshal(c)
		return b64(h) + "." + b64(p) + "."
	}
	bad := []struct{ name, token, want string }{
		{"expired", signed(t, jwa.RS256(), k.rsa, "r1", claims(now, "alice", map[string]any{"exp": now.Add(-time.Minute).Unix()})), "token expired"},
		{"not yet valid", signed(t, jwa.ES256(), k.ec, "e1", claims(now, "alice", map[string]any{"nbf": now.Add(time.Minute).Unix()})), "not valid yet"},
		{"wrongly signed", signed(t, jwa.RS256(), k.rsa2, "r1", claims(now, "alice", nil)), "signature does not verify"},
		{"wrong HS256 secret", hs256(t, []byte(strings.Repeat("x", 40)), hdr("HS256", ""), claims(now, "alice", nil)), "signature does not verify"},
		{"tampered claims", func() string {
			parts := strings.Split(signed(t, jwa.EdDSA(), k.ed, "d1", claims(now, "alice", nil)), ".")
			p, _ := json.Marshal(claims(now, "admin", map[string]any{"roles": []string{"admin"}}))
			return parts[0] + "." + b64(p) + "." + parts[2]
		}(), "signature does not verify"},
		{"wrong issuer", signed(t, jwa.RS256(), k.rsa, "r1", claims(now, "alice", map[string]any{"iss": "https://evil.example/"})), "unexpected issuer"},
		{"wrong audience", signed(t, jwa.RS256(), k.rsa, "r1", claims(now, "alice", map[string]any{"aud": "another-api"})), "another audience"},
		{"no exp", signed(t, jwa.RS256(), k.rsa, "r1", claims(now, "alice", map[string]any{"exp": nil})), "exp"},
		{"no subject", signed(t, jwa.RS256(), k.rsa, "r1", claims(now, "alice", map[string]any{"sub": nil})), "no sub claim"},
		{"alg none", none(claims(now, "alice", nil)), `algorithm "none" is not accepted`},
		{"alg none, signature kept", none(claims(now, "alice", nil)) + "c2ln", `"none" is not accepted`},
		{"HS256 signed with the RS256 public key", hs256(t, k.rsaPEM, hdr("HS256", "r1"), claims(now, "alice", nil)), "signature does not verify"},
		{"RS256 header on an HMAC token", hs256(t, []byte(testSecret), hdr("RS256", "r1"), claims(now, "alice", nil)), "signature does not verify"},
		{"ES256 header, RSA key id", signed(t, jwa.RS256(), k.rsa, "r1", claims(now, "alice", nil)) + "x", "signature does not verify"},
		{"unknown kid", signed(t, jwa.RS256(), k.rsa2, "r9", claims(now, "alice", nil)), `unknown key id "r9"`},
		{"HS384", hs256(t, []byte(testSecret), hdr("HS384", ""), claims(now, "alice", nil)), `algorithm "HS384" is not accepted`},
		{"garbage", "a.b.c", "malformed token header"},
		{"not a key", "mgk_nope", "unknown API key"},
	}
	for _, c := range bad {
		t.Run("refused/"+c.name, func(t *testing.T) {
			status, h, r := call(t, srv, c.token, q, nil)
			if status != http.StatusUnauthorized || len(r.Errors) != 1 || r.Errors[0].code() != "UNAUTHENTICATED" {
				t.Fatalf("HTTP %d %v, want 401 UNAUTHENTICATED", status, r.Errors)
			}
			if !strings.Contains(r.Errors[0].Message, c.want) {
				t.Errorf("message %q does not say %q", r.Errors[0].Message, c.want)
			}
			if w := h.Get("WWW-Authenticate"); !strings.HasPrefix(w, `Bearer realm="meshgate", error="invalid_token"`) {
				t.Errorf("WWW-Authenticate: %q", w)
			}
			if len(r.Data) > 0 && string(r.Data) != "null" {
				t.Errorf("data returned: %s", r.Data)
			}
		})
	}
	t.Run("refused/no token", func(t *testing.T) {
		status, h, r := call(t, srv, "", q, nil)
		if status != 401 || r.Errors[0].code() != "UNAUTHENTICATED" || h.Get("WWW-Authenticate") != `Bearer realm="meshgate"` {
			t.Fatalf("HTTP %d %v %q", status, r.Errors, h.Get("WWW-Authenticate"))
		}
	})
	t.Run("refused/basic auth", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/graphql?query="+url.QueryEscape(q), nil)
		req.SetBasicAuth("alice", "secret")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("HTTP %d", resp.StatusCode)
		}
	})
	t.Run("refused/cookie", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/graphql?query="+url.QueryEscape(q), nil)
		req.AddCookie(&http.Cookie{Name: "Authorization", Value: "Bearer " + good["RS256"]})
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("a cookie authenticated: HTTP %d", resp.StatusCode)
		}
	})
	t.Run("catalog needs authentication too", func(t *testing.T) {
		resp, err := srv.Client().Get(srv.URL + "/catalog/orders/odps.yaml")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("catalog without a token: HTTP %d", resp.StatusCode)
		}
	})
	t.Run("health, readiness and metrics stay open", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			resp, err := srv.Client().Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("%s: HTTP %d", path, resp.StatusCode)
			}
			if path == "/healthz" && strings.TrimSpace(string(b)) != `{"mode":"auth","status":"ok"}` {
				t.Errorf("/healthz: %s", b)
			}
		}
	})
}

func TestJWKSRotation(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	clk := &clock{t: time.Now()}
	js := newJWKSServer(t, jwks(t, map[string]crypto.PublicKey{"old": &k.rsa.PublicKey}))
	a := newAuth(t, auth.Config{JWKSURL: js.URL, JWKSMinInterval: time.Minute, JWKSMaxAge: time.Hour, Now: clk.now})
	g := sharedGateway(t, sqliteBackend)
	srv := edgeServer(t, g.mesh, web.Config{Auth: a})
	const q = `{ __typename }`
	ok := func(tok string) bool {
		status, _, _ := call(t, srv, tok, q, nil)
		return status == 200
	}
	if n := a.JWKSReads(); n != 1 {
		t.Fatalf("%d JWKS reads at start, want 1", n)
	}
	if !ok(signed(t, jwa.RS256(), k.rsa, "old", claims(clk.now(), "alice", nil))) {
		t.Fatal("token of the initial key refused")
	}

	// The identity provider rotates: a new key appears, tokens name it.
	js.doc.Store(ptr(jwks(t, map[string]crypto.PublicKey{"old": &k.rsa.PublicKey, "new": &k.rsa2.PublicKey})))
	newTok := func() string { return signed(t, jwa.RS256(), k.rsa2, "new", claims(clk.now(), "alice", nil)) }
	// Less than the minimum interval after the last read: not read again.
	if ok(newTok()) {
		t.Fatal("a key id unknown at the last read was accepted without a read")
	}
	clk.add(time.Minute + time.Second)
	if !ok(newTok()) {
		t.Fatal("token of the rotated-in key refused after the interval")
	}
	if n := a.JWKSReads(); n != 2 {
		t.Fatalf("%d JWKS reads, want 2", n)
	}

	// Tokens with made-up key ids do not make the gateway read the JWKS
	// more than once per interval.
	for i := range 50 {
		if ok(signed(t, jwa.RS256(), k.rsa2, fmt.Sprintf("made-up-%d", i), claims(clk.now(), "alice", nil))) {
			t.Fatal("token with a made-up kid accepted")
		}
	}
	if n := a.JWKSReads(); n != 2 {
		t.Fatalf("50 unknown kids caused %d JWKS reads in one interval, want none", n-2)
	}
	clk.add(time.Minute + time.Second)
	for i := range 20 {
		ok(signed(t, jwa.RS256(), k.rsa2, fmt.Sprintf("later-%d", i), claims(clk.now(), "alice", nil)))
	}
	if n := a.JWKSReads(); n != 3 {
		t.Fatalf("unknown kids after another interval: %d reads, want 3", n)
	}

	// The old key is retired: its tokens fail once the set is read again.
	js.doc.Store(ptr(jwks(t, map[string]crypto.PublicKey{"new": &k.rsa2.PublicKey})))
	clk.add(2 * time.Hour) // past the maximum age
	if ok(signed(t, jwa.RS256(), k.rsa, "old", claims(clk.now(), "alice", nil))) {
		t.Error("token of a retired key accepted after the set was read again")
	}
	if !ok(newTok()) {
		t.Error("token of the current key refused")
	}
	if int(js.reads.Load()) != a.JWKSReads() {
		t.Errorf("the JWKS server saw %d reads, the gateway counted %d", js.reads.Load(), a.JWKSReads())
	}
}

func ptr[T any](v T) *T { return &v }

func TestJWKSFileAndRolesClaim(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	file := t.TempDir() + "/jwks.json"
	if err := os.WriteFile(file, jwks(t, map[string]crypto.PublicKey{"e1": &k.ec.PublicKey}), 0o600); err != nil {
		t.Fatal(err)
	}
	a := newAuth(t, auth.Config{JWKSFile: file, RolesClaim: "realm_access.roles"})
	now := time.Now()
	id, err := a.Authenticate(t.Context(), signed(t, jwa.ES256(), k.ec, "e1", claims(now, "bob", map[string]any{
		"realm_access": map[string]any{"roles": []string{"orders:read", "pii:read"}}, "country": "SE"})))
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "bob" || strings.Join(id.Roles, ",") != "orders:read,pii:read" || id.Method != "jwt" || id.Expiry.IsZero() {
		t.Errorf("identity %+v", id)
	}
	if c, _ := id.Claim("country"); c != "SE" {
		t.Errorf("claim country = %v", c)
	}
	if _, err := auth.New(t.Context(), auth.Config{JWKSFile: t.TempDir() + "/missing.json", Issuer: "i", Audience: "a"}, nil); err == nil {
		t.Error("a missing JWKS file was accepted at start")
	}
	for _, cfg := range []auth.Config{
		{HS256Secret: "short", Issuer: "i", Audience: "a"},
		{HS256Secret: testSecret},                                // no issuer or audience
		{APIKeys: []auth.APIKey{{Name: "x", Hash: "mgk_plain"}}}, // a key, not its hash
		{APIKeys: []auth.APIKey{{Name: "x", Hash: auth.HashKey("a")}, {Name: "x", Hash: auth.HashKey("b")}}},
	} {
		if _, err := auth.New(t.Context(), cfg, nil); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	key, hash := auth.NewKey()
	other, _ := auth.NewKey()
	keys, err := auth.ParseAPIKeys("etl=" + hash + "=orders:read,customers:read")
	if err != nil {
		t.Fatal(err)
	}
	a := newAuth(t, auth.Config{APIKeys: keys})
	g := sharedGateway(t, sqliteBackend)
	srv := edgeServer(t, g.mesh, web.Config{Auth: a})
	if status, _, r := call(t, srv, key, `{ __typename }`, nil); status != 200 || len(r.Errors) > 0 {
		t.Fatalf("good key: HTTP %d %v", status, r.Errors)
	}
	for name, tok := range map[string]string{
		"another key": other, "the hash itself": hash, "key with a suffix": key + "x", "prefix only": "mgk_", "empty-ish": " ",
	} {
		if status, _, r := call(t, srv, tok, `{ __typename }`, nil); status != 401 || r.Errors[0].code() != "UNAUTHENTICATED" {
			t.Errorf("%s: HTTP %d %v", name, status, r.Errors)
		}
	}
	id, err := a.Authenticate(t.Context(), key)
	if err != nil || id.Subject != "apikey:etl" || id.KeyName != "etl" || strings.Join(id.Roles, ",") != "orders:read,customers:read" {
		t.Errorf("identity %+v, %v", id, err)
	}
	if _, err := auth.ParseAPIKeys(`{"name": "bi", "hash": "` + hash + `", "roles": ["sales:read"]}`); err != nil {
		t.Errorf("JSON form: %v", err)
	}
	for _, bad := range []string{"etl", "etl=" + key, "etl=sha256:abc", "bad name=" + hash, `{"name": "x", "hash": "` + hash + `", "role": []}`} {
		if _, err := auth.ParseAPIKeys(bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), key) {
			t.Errorf("the error repeats the key: %v", err)
		}
	}
}

// TestActorIsTheSubject: a mutation made with an API key or a JWT is
// audited under the caller's subject.
func TestActorIsTheSubject(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		g := newGateway(t, backend, gatewayOptions{scale: -1})
		key, hash := auth.NewKey()
		roles := []string{"customers:write", "customers:read", "audit:read"}
		a := newAuth(t, auth.Config{HS256Secret: testSecret, APIKeys: []auth.APIKey{{Name: "etl", Hash: hash, Roles: roles}}})
		srv := edgeServer(t, g.mesh, web.Config{Auth: a})
		jwtTok := hs256(t, []byte(testSecret), map[string]any{"alg": "HS256"}, claims(time.Now(), "alice@example.org", map[string]any{"roles": roles}))
		for tok, want := range map[string]string{key: "apikey:etl", jwtTok: "alice@example.org"} {
			status, _, r := call(t, srv, tok, `mutation($in: CreateCustomerInput!) { createCustomer(input: $in) { id history { nodes { actor } } } }`,
				map[string]any{"in": map[string]any{"name": "Ann", "email": strings.NewReplacer(":", ".", "@", ".").Replace(want) + "@example.org", "country": "SE", "segment": "CONSUMER"}})
			if status != 200 || len(r.Errors) > 0 {
				t.Fatalf("HTTP %d %v", status, r.Errors)
			}
			var out struct {
				CreateCustomer struct {
					ID      string
					History struct{ Nodes []struct{ Actor string } }
				}
			}
			json.Unmarshal(r.Data, &out)
			var actor string
			if err := g.store("customers").DB.QueryRowContext(t.Context(), // bun writes each dialect's placeholders
				`SELECT actor FROM mg_audit_log WHERE key = ? ORDER BY sequence DESC LIMIT 1`, atoi(t, out.CreateCustomer.ID)).Scan(&actor); err != nil {
				t.Fatal(err)
			}
			if actor != want {
				t.Errorf("audit actor %q, want %q", actor, want)
			}
			if h := out.CreateCustomer.History.Nodes; len(h) != 1 || h[0].Actor != want {
				t.Errorf("history %+v, want actor %q", h, want)
			}
		}
	})
}

// TestRefusedCredentialsAreRateLimited: an address that keeps presenting
// bad credentials is answered 429 before any check, even with a good one.
func TestRefusedCredentialsAreRateLimited(t *testing.T) {
	t.Parallel()
	key, hash := auth.NewKey()
	a := newAuth(t, auth.Config{APIKeys: []auth.APIKey{{Name: "etl", Hash: hash}}})
	g := sharedGateway(t, sqliteBackend)
	srv := edgeServer(t, g.mesh, web.Config{Auth: a, RateLimit: 1, RateBurst: 3})
	var got []int
	for _, tok := range []string{"mgk_bad1", "mgk_bad2", "mgk_bad3", key, "mgk_bad4"} {
		status, _, _ := call(t, srv, tok, `{ __typename }`, nil)
		got = append(got, status)
	}
	if fmt.Sprint(got) != "[401 401 401 429 429]" {
		t.Errorf("statuses %v, want three 401 then 429", got)
	}
	status, h, r := call(t, srv, key, `{ __typename }`, nil)
	if status != 429 || h.Get("Retry-After") == "" || r.Errors[0].Extensions["limit"] != "failedAuthPerSecond" {
		t.Errorf("HTTP %d %v", status, r.Errors)
	}
}
