package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/meshgate/meshgate/graph"
	"github.com/meshgate/meshgate/products"
)

// graphqlHandler assembles the GraphQL server: explicit transports, a parsed
// query cache, automatic persisted queries, introspection, a complexity
// limit, one error presenter and panic recovery.
func graphqlHandler(cfg Config, m *metrics) http.Handler {
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: cfg.Resolver}))
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.Use(extension.Introspection{})
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](1000)})
	limit := cfg.ComplexityLimit
	if limit <= 0 {
		limit = 5000
	}
	srv.Use(extension.FixedComplexityLimit(limit))
	srv.AroundOperations(cfg.Resolver.WithLoaders)
	if cfg.QueryTimeout > 0 {
		srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
			ctx, cancel := context.WithTimeout(ctx, cfg.QueryTimeout)
			h := next(ctx)
			return func(ctx context.Context) *graphql.Response {
				defer cancel()
				return h(ctx)
			}
		})
	}
	srv.SetErrorPresenter(presentError(cfg.Logger))
	srv.SetRecoverFunc(func(ctx context.Context, v any) error {
		cfg.Logger.ErrorContext(ctx, "panic in resolver",
			slog.Any("panic", v), slog.String("stack", string(debug.Stack())),
			slog.String("request_id", products.RequestIDFrom(ctx)))
		return errPanic
	})
	return http.MaxBytesHandler(specStatus(srv), cfg.MaxBodyBytes)
}

var errPanic = errors.New("panic")

// presentError is the one place where errors become GraphQL errors:
// expected failures (a products.Error anywhere in the chain) keep their
// message and carry extensions.code (and the offending field); gqlgen's own
// parse/validation errors keep their codes; anything else is logged with the
// request id and shown as "internal error (request <id>)".
func presentError(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gerr := graphql.DefaultErrorPresenter(ctx, err)
		var pe *products.Error
		if errors.As(err, &pe) {
			gerr.Message = pe.Message
			if pe.Field != "" {
				gerr.Message = pe.Field + ": " + pe.Message
			}
			if gerr.Extensions == nil {
				gerr.Extensions = map[string]any{}
			}
			gerr.Extensions["code"] = string(pe.Code)
			if pe.Field != "" {
				gerr.Extensions["field"] = pe.Field
			}
			return gerr
		}
		if gerr.Extensions["code"] != nil {
			return gerr
		}
		if errors.Is(err, context.DeadlineExceeded) {
			gerr.Message = "the query took longer than the server allows; narrow it or ask for fewer rows"
			gerr.Extensions = map[string]any{"code": string(products.LimitExceeded)}
			return gerr
		}
		id := products.RequestIDFrom(ctx)
		log.ErrorContext(ctx, "internal error", slog.String("request_id", id),
			slog.String("path", gerr.Path.String()), slog.String("error", err.Error()))
		gerr.Message = fmt.Sprintf("internal error (request %s)", id)
		gerr.Extensions = map[string]any{"code": "INTERNAL_SERVER_ERROR", "requestId": id}
		return gerr
	}
}

// specStatus adapts gqlgen's error responses to the GraphQL-over-HTTP spec:
// clients that accept only application/json get 200 instead of 422 (such
// responses SHOULD use 200 whatever the errors), and a request error answered
// as application/graphql-response+json carries no "data" entry.
func specStatus(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &specWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.buf != nil {
			var body map[string]json.RawMessage
			if err := json.Unmarshal(sw.buf.Bytes(), &body); err == nil && string(body["data"]) == "null" {
				delete(body, "data")
				if b, err := json.Marshal(body); err == nil {
					w.Write(b)
					return
				}
			}
			w.Write(sw.buf.Bytes())
		}
	})
}

type specWriter struct {
	http.ResponseWriter
	buf *bytes.Buffer
}

func (w *specWriter) WriteHeader(code int) {
	ct := w.Header().Get("Content-Type")
	switch {
	case code == http.StatusUnprocessableEntity && strings.HasPrefix(ct, "application/json"):
		code = http.StatusOK
	case code >= 400 && strings.HasPrefix(ct, "application/graphql-response+json"):
		w.buf = &bytes.Buffer{}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *specWriter) Write(b []byte) (int, error) {
	if w.buf != nil {
		return w.buf.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *specWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
