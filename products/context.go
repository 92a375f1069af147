package products

import (
	"context"
	"strings"
	"time"
)

// Anonymous is the actor recorded when a request carries no identity.
const Anonymous = "anonymous"

// How an identity was established.
const (
	MethodJWT    = "jwt"
	MethodAPIKey = "apikey"
	MethodDev    = "dev"
)

// Identity is the authenticated caller of a request: who it is, how it
// proved it, its roles and (for JWTs) its claims. The web edge puts it in
// the context; authorization, row policies and audits read it from there.
// An Identity is never changed once it is in a context.
type Identity struct {
	// Subject is the actor recorded in audit entries and change events:
	// the JWT's subject claim, "apikey:<name>" for API keys, "dev" in dev
	// mode.
	Subject string
	// Method is MethodJWT, MethodAPIKey or MethodDev.
	Method string
	// KeyName is the configured name of the API key ("" for JWTs).
	KeyName string
	// Roles granted to the caller (from the configured claim of a JWT, or
	// the API key's configuration).
	Roles []string
	// Claims are the JWT's claims as decoded JSON (nil for API keys), for
	// rules such as row policies that substitute "$claims.x".
	Claims map[string]any
	// Expiry is when the credential stops being valid; zero if never.
	Expiry time.Time
	// Dev marks the dev-mode identity (loopback, no auth configured): it
	// holds every role.
	Dev bool
}

// Claim returns the claim at a dotted path ("realm_access.roles"), or
// false if there is none.
func (id *Identity) Claim(path string) (any, bool) {
	if id == nil || id.Claims == nil {
		return nil, false
	}
	return ClaimAt(id.Claims, path)
}

// ClaimAt follows a dotted path through nested JSON objects.
func ClaimAt(claims map[string]any, path string) (any, bool) {
	var cur any = claims
	for part := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

type actorKey struct{}
type identityKey struct{}
type requestIDKey struct{}

// WithIdentity returns ctx carrying the caller's identity.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the caller's identity, or nil when the request is
// not authenticated (work started by the gateway itself, such as the
// reactions of one product to another's changes).
func IdentityFrom(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}

// WithActor returns ctx carrying an actor name for work that has no
// authenticated identity (tests, internal jobs).
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor that audit entries and change events record:
// the identity's subject, else the name given by WithActor, else Anonymous.
func ActorFrom(ctx context.Context) string {
	if id := IdentityFrom(ctx); id != nil && id.Subject != "" {
		return id.Subject
	}
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return Anonymous
}

// WithRequestID returns ctx carrying the request id that logs and audit entries record.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the request id in ctx, or "".
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
