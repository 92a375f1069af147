// Package web is the HTTP edge of meshgate: routes, middleware and the
// GraphQL handler assembly.
package web

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshgate/meshgate/resolvers"
)

// Config is what the HTTP edge needs.
type Config struct {
	Resolver *resolvers.Resolver
	Logger   *slog.Logger
	// Ready reports whether the gateway can serve (stores reachable).
	Ready func(ctx context.Context) error
	// Limits.
	MaxBodyBytes    int64
	ComplexityLimit int
	QueryTimeout    time.Duration
	// AllowedOrigins may open websockets besides the gateway's own origin.
	AllowedOrigins []string
	// PingInterval, if set, pings websocket peers and drops those silent
	// for twice the interval.
	PingInterval time.Duration
	// Collectors are extra Prometheus metrics to serve on /metrics.
	Collectors []prometheus.Collector
	// WSWriteBuffer is each websocket's TCP send buffer in bytes (0: the
	// system default).
	WSWriteBuffer int
}

// NewServer returns the gateway's HTTP handler. All routes are here.
func NewServer(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(cfg.Collectors...)
	m := newMetrics(reg)

	mux := http.NewServeMux()
	mux.Handle("/graphql", graphqlHandler(cfg, m))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if cfg.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := cfg.Ready(ctx); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte("not ready: " + err.Error() + "\n"))
				return
			}
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	catalogRoutes(mux, cfg.Resolver)
	mux.Handle("/", uiHandler(uiRoot()))
	return requestID(accessLog(cfg.Logger, m, mux))
}
