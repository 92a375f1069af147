package web

import (
	"net/http"
	"slices"
	"strings"
)

// cors answers cross-origin requests from the allowed origins only (none by
// default; "*" allows any). Preflights (OPTIONS with
// Access-Control-Request-Method) are answered here: 204 for an allowed
// origin, 403 otherwise. Credentials (cookies) are never allowed: callers
// authenticate with the Authorization header, which a page can only send
// to an origin that allows it here.
func cors(origins []string, next http.Handler) http.Handler {
	any := slices.Contains(origins, "*")
	allowed := func(o string) bool {
		return any || slices.ContainsFunc(origins, func(a string) bool { return strings.EqualFold(strings.TrimSuffix(a, "/"), o) })
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Add("Vary", "Origin")
		ok := allowed(origin)
		if ok {
			if any {
				w.Header().Set("Access-Control-Allow-Origin", "*")
			} else {
				w.Header().Set("Access-Control-Allow-Origin", origin)
			}
			w.Header().Set("Access-Control-Expose-Headers", "X-Request-Id, Retry-After, WWW-Authenticate")
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if !ok {
				writeError(w, http.StatusForbidden, "FORBIDDEN", "origin "+origin+" is not allowed (--cors-origins)", nil)
				return
			}
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, X-Request-Id")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}
