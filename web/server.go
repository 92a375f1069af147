// Package web is the HTTP edge of meshgate: routes, middleware and the
// GraphQL handler assembly.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/resolvers"
	"github.com/meshgate/meshgate/telemetry"
	"github.com/meshgate/meshgate/web/auth"
)

// Config is what the HTTP edge needs.
type Config struct {
	Resolver *resolvers.Resolver
	Logger   *slog.Logger
	// Ready reports whether the gateway can serve: nil, or the parts that
	// are down (*Down errors, joined).
	Ready func(ctx context.Context) error
	// Auth checks bearer tokens; nil means dev mode: every caller is the
	// dev admin. Only server.go decides that (loopback, nothing configured).
	Auth *auth.Authenticator
	// Limits of one GraphQL operation (zero fields: defaults).
	Limits Limits
	// MaxBodyBytes bounds a request body (413 beyond; default 1 MiB).
	MaxBodyBytes int64
	// BodyReadTimeout bounds reading a request body (408 beyond; default
	// 10 s; negative: none).
	BodyReadTimeout time.Duration
	// ComplexityLimit, if set, overrides Limits.Cost (older name).
	ComplexityLimit int
	// QueryTimeout bounds parsing, validating and executing one query or
	// mutation (0: none).
	QueryTimeout time.Duration
	// RateLimit is the requests (and websocket subscribes) per second of
	// one caller: an identity, or an IP when anonymous or in dev mode.
	// Bursts of RateBurst (default twice the rate) pass. 0: no limit.
	RateLimit float64
	RateBurst int
	// CORSOrigins may call the API from browsers ("*": any); none by
	// default. They may open websockets too.
	CORSOrigins []string
	// AllowedOrigins may open websockets besides the gateway's own origin.
	AllowedOrigins []string
	// MaxSubscriptions bounds the subscriptions of one websocket (default
	// 100; negative: none).
	MaxSubscriptions int
	// WSReadLimit bounds one websocket message from a client (default
	// 256 KiB).
	WSReadLimit int64
	// WSInitTimeout closes websockets without connection_init (4408;
	// default 10 s).
	WSInitTimeout time.Duration
	// WSMessageRate bounds the messages per second one websocket client
	// sends (default 100; negative: none).
	WSMessageRate float64
	// PingInterval, if set, pings websocket peers and drops those silent
	// for twice the interval.
	PingInterval time.Duration
	// Collectors are extra Prometheus metrics to serve on /metrics.
	Collectors []prometheus.Collector
	// WSWriteBuffer is each websocket's TCP send buffer in bytes (0: the
	// system default).
	WSWriteBuffer int
	// Websockets, if set, tracks the open websockets so that a graceful
	// shutdown can end them (Websockets.Shutdown).
	Websockets *Websockets
	// MaxOperationNames bounds the distinct operation names of the metrics
	// (default DefaultMaxOperationNames; later names count as "other").
	MaxOperationNames int
}

// NewServer returns the gateway's HTTP handler. All routes are here.
func NewServer(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Every log line of a request names it, its operation and its caller.
	cfg.Logger = telemetry.Logger(cfg.Logger)
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.BodyReadTimeout == 0 {
		cfg.BodyReadTimeout = 10 * time.Second
	}
	if cfg.MaxSubscriptions == 0 {
		cfg.MaxSubscriptions = 100
	}
	if cfg.WSReadLimit <= 0 {
		cfg.WSReadLimit = 256 << 10
	}
	if cfg.WSInitTimeout <= 0 {
		cfg.WSInitTimeout = 10 * time.Second
	}
	if cfg.WSMessageRate == 0 {
		cfg.WSMessageRate = 100
	}
	if cfg.ComplexityLimit > 0 {
		cfg.Limits.Cost = cfg.ComplexityLimit
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.Resolver.Log == nil {
		cfg.Resolver.Log = cfg.Logger
	}
	var limiter, failures *rateLimiter
	if cfg.RateLimit > 0 {
		limiter = newRateLimiter(cfg.RateLimit, cfg.RateBurst)
		failures = newRateLimiter(cfg.RateLimit, cfg.RateBurst)
	}
	var authn authenticator
	if cfg.Auth != nil {
		authn = cfg.Auth
	}
	mode := "dev"
	if authn != nil {
		mode = "auth"
	}
	guard := func(h http.Handler) http.Handler {
		return cors(cfg.CORSOrigins, authenticate(authn, failures, limitRate(limiter, h)))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(cfg.Collectors...)
	m := newMetrics(reg, cfg.MaxOperationNames)

	mux := http.NewServeMux()
	mux.Handle("/graphql", guard(graphqlHandler(cfg, authn, limiter, m)))
	health, _ := json.Marshal(map[string]string{"status": "ok", "mode": mode})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(health, '\n'))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if cfg.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := cfg.Ready(ctx); err != nil {
				body, _ := json.Marshal(map[string]any{"status": "not ready", "down": downComponents(err)})
				w.Header().Set("Retry-After", fmt.Sprint(products.RetryAfter))
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write(append(body, '\n'))
				return
			}
		}
		w.Write([]byte(`{"status":"ready"}` + "\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	catalog := http.NewServeMux()
	catalogRoutes(catalog, cfg.Resolver)
	mux.Handle("/catalog/", guard(requireRole(products.RoleCatalog, "the catalog downloads", catalog)))
	mux.Handle("/", uiHandler(uiRoot()))
	return requestID(accessLog(cfg.Logger, m, mux))
}

// Down is a part of the gateway that is not working: a store, Kafka, a
// relay. Config.Ready returns them (errors.Join of several), and /readyz
// names each with its error.
type Down struct {
	Component string // e.g. "store orders", "kafka", "relay orders"
	Err       error
}

func (d *Down) Error() string { return d.Component + ": " + d.Err.Error() }
func (d *Down) Unwrap() error { return d.Err }

// downComponents maps each *Down in err (joined or not) to its error;
// anything else is the gateway's.
func downComponents(err error) map[string]string {
	out := map[string]string{}
	var walk func(error)
	walk = func(err error) {
		var d *Down
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		if errors.As(err, &d) {
			out[d.Component] = d.Err.Error()
			return
		}
		out["gateway"] = err.Error()
	}
	walk(err)
	return out
}

// websocketOrigins are the origins that may open websockets besides the
// gateway's own: the allowed origins and the CORS origins.
func websocketOrigins(cfg Config) []string {
	return slices.Concat(cfg.AllowedOrigins, cfg.CORSOrigins)
}

// requireRole answers 403 FORBIDDEN to callers without role (after
// authentication put their identity in the context).
func requireRole(role, what string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !products.IdentityFrom(r.Context()).HasRole(role) {
			writeError(w, http.StatusForbidden, string(products.Forbidden), what+" need the "+role+" role", map[string]any{"role": role})
			return
		}
		next.ServeHTTP(w, r)
	})
}
