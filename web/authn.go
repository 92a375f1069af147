package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/web/auth"
)

// devIdentity is every caller in dev mode: the gateway listens on loopback
// and no credential is configured.
var devIdentity = &products.Identity{Subject: "dev", Method: products.MethodDev, Roles: []string{"admin"}, Dev: true}

// authenticator turns bearer tokens into identities; nil means dev mode.
type authenticator interface {
	Authenticate(ctx context.Context, token string) (*products.Identity, error)
}

var _ authenticator = (*auth.Authenticator)(nil)

// bearer returns the token of an "Authorization: Bearer <token>" value; ok
// is false when the value is not of that form.
func bearer(h string) (token string, ok bool) {
	scheme, token, found := strings.Cut(strings.TrimSpace(h), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// authenticate puts the caller's identity in the request context. In dev
// mode (a == nil) that is the dev admin. Otherwise the request needs a
// valid "Authorization: Bearer" header, except a websocket upgrade without
// one: browsers cannot set headers on websockets, so those present their
// token in connection_init (see wsInit). Cookies are never read.
//
// Refused credentials count against the client IP's bucket in failures (if
// set): once it is empty, that IP's requests with credentials get 429
// before any signature is checked, so guessing keys or replaying forged
// tokens costs the gateway little.
func authenticate(a authenticator, failures *rateLimiter, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a == nil {
			next.ServeHTTP(w, r.WithContext(products.WithIdentity(r.Context(), devIdentity)))
			return
		}
		ip := clientKey(r, nil)
		if failures != nil && r.Header.Get("Authorization") != "" && failures.exhausted(ip) {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, string(products.LimitExceeded),
				"too many refused credentials from this address; retry later",
				map[string]any{"limit": "failedAuthPerSecond", "value": failures.perSecond()})
			return
		}
		h := r.Header.Get("Authorization")
		if h == "" {
			if isWebsocket(r) {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="meshgate"`)
			writeError(w, http.StatusUnauthorized, string(products.Unauthenticated),
				"authentication required: send Authorization: Bearer <token>", nil)
			return
		}
		token, ok := bearer(h)
		var id *products.Identity
		err := errors.New("the Authorization header must be: Bearer <token>")
		if ok {
			id, err = a.Authenticate(r.Context(), token)
		}
		if err != nil {
			if failures != nil {
				failures.allow(ip)
			}
			msg := errorMessage(err)
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="meshgate", error="invalid_token", error_description=%q`, msg))
			writeError(w, http.StatusUnauthorized, string(products.Unauthenticated), msg, nil)
			return
		}
		next.ServeHTTP(w, r.WithContext(products.WithIdentity(r.Context(), id)))
	})
}

// errorMessage is the client-facing message of an authentication error.
func errorMessage(err error) string {
	var pe *products.Error
	if errors.As(err, &pe) {
		return pe.Message
	}
	return "invalid credentials"
}

func isWebsocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// initToken finds the token in a connection_init payload. Clients put it in
// one of these shapes: {"Authorization": "Bearer …"} (also lower case),
// {"headers": {"Authorization": "Bearer …"}} or {"token": "…"}.
func initToken(p transport.InitPayload) (token string, present bool) {
	if h := p.Authorization(); h != "" {
		t, _ := bearer(h)
		return t, true
	}
	if hs, ok := p["headers"].(map[string]any); ok {
		for k, v := range hs {
			if s, ok := v.(string); ok && strings.EqualFold(k, "Authorization") {
				t, _ := bearer(s)
				return t, true
			}
		}
	}
	if t, ok := p["token"].(string); ok {
		return strings.TrimPrefix(t, "Bearer "), true
	}
	return "", false
}

// Websocket close codes of graphql-transport-ws (also used on the legacy
// graphql-ws subprotocol, whose own spec defines none).
const (
	closeBadRequest     = 4400 // invalid message
	closeUnauthorized   = 4401 // subscribe before connection_ack
	closeForbidden      = 4403 // credentials refused at init, or expired
	closeInitTimeout    = 4408 // no connection_init in time
	closeDuplicateID    = 4409 // subscriber for <id> already exists
	closeTooManyInits   = 4429 // too many initialisation requests
	closePolicyViolated = 1008 // RFC 6455: a message flood
)

// wsInit authenticates a websocket at connection_init. The token in the
// payload wins; without one, the upgrade request's own Authorization header
// (already checked by authenticate) counts; in dev mode the caller is the
// dev admin. A refusal closes the socket with 4403 and says why; an
// accepted identity that expires later closes it with 4403 then (see
// gorillaConn.expireAt), so a client reconnects with a fresh token.
func wsInit(a authenticator) func(context.Context, transport.InitPayload) (context.Context, error) {
	return func(ctx context.Context, p transport.InitPayload) (context.Context, error) {
		sess := sessionFrom(ctx)
		if a == nil {
			return products.WithIdentity(ctx, devIdentity), nil
		}
		id := products.IdentityFrom(ctx) // from the upgrade request's header, if any
		if token, present := initToken(p); present || id == nil {
			var err error
			if id, err = a.Authenticate(ctx, token); err != nil {
				msg := errorMessage(err)
				return ctx, &initRefusal{code: closeForbidden, reason: "Forbidden: " + msg, msg: msg}
			}
		}
		if sess != nil {
			sess.authenticated(ctx, id)
		}
		return products.WithIdentity(ctx, id), nil
	}
}

// initRefusal is a refused connection_init: the legacy protocol's
// connection_error says msg, then the socket closes with code and reason.
type initRefusal struct {
	code        int
	reason, msg string
}

func (e *initRefusal) Error() string { return e.msg }
