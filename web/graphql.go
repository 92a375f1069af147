package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/meshgate/meshgate/graph"
	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/resolvers"
	"github.com/meshgate/meshgate/streaming"
)

// graphqlHandler assembles the GraphQL server: explicit transports (our own
// POST, GET and websocket (wsTransport, on gorilla/websocket), gqlgen's SSE), a
// parsed query cache, automatic persisted queries, introspection, the
// limits, one error presenter and panic recovery. In front of gqlgen, the
// body of a POST is read within its size and time limits.
func graphqlHandler(cfg Config, authn authenticator, limiter *rateLimiter, m *metrics) http.Handler {
	// Plain reads take the resolvers' fast path (resolvers.FastSchema);
	// everything else, and whatever it does not answer, gqlgen's executor.
	srv := handler.New(cfg.Resolver.FastSchema(graph.NewExecutableSchema(graph.Config{Resolvers: cfg.Resolver}), cfg.Resolver))
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.SSE{}) // before POST: it takes POSTs that accept text/event-stream
	srv.AddTransport(httpTransport{method: http.MethodGet, queryTimeout: cfg.QueryTimeout})
	srv.AddTransport(httpTransport{method: http.MethodPost, queryTimeout: cfg.QueryTimeout})
	readLimit := cfg.WSReadLimit
	gorilla := gorillaWebsocket{allowedOrigins: websocketOrigins(cfg), pingInterval: cfg.PingInterval,
		writeBuffer: cfg.WSWriteBuffer, initTimeout: cfg.WSInitTimeout, maxSubscriptions: cfg.MaxSubscriptions,
		messageRate: cfg.WSMessageRate, limiter: limiter, sockets: cfg.Websockets, writes: m.ops.websocketWrites}
	srv.AddTransport(wsTransport{ws: gorilla, init: wsInit(authn), keepAlive: 10 * time.Second, readLimit: readLimit, open: m.ops.websockets,
		shares: newShareGroups(cfg.Resolver, m.ops.subscriptionResponses)})
	cache := lru.New[*ast.QueryDocument](1000)
	srv.SetQueryCache(cache)
	// The parser's own token limit backs up the limits extension's count.
	if cfg.Limits.Tokens > 0 {
		srv.SetParserTokenLimit(cfg.Limits.Tokens)
	}
	srv.Use(extension.Introspection{})
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](1000)})
	// After APQ, which may fill in the query.
	srv.Use(limitsExtension{limits: cfg.Limits, cached: func(ctx context.Context, q string) bool {
		_, ok := cache.Get(ctx, q)
		return ok
	}})
	// First: the operation's name, span and statement count reach
	// everything below (loaders, resolvers, SQL).
	srv.AroundOperations(m.ops.around)
	srv.AroundResponses(m.ops.responses)
	srv.AroundOperations(cfg.Resolver.WithLoaders)
	srv.AroundOperations(resolvers.WithStreamState)
	// Authorization: the caller's roles and row policies, per operation;
	// every field checked (and personal fields masked or their reads
	// recorded); the read audit written per response.
	srv.AroundOperations(cfg.Resolver.WithAccess)
	srv.AroundFields(cfg.Resolver.Authorize)
	srv.AroundResponses(cfg.Resolver.PerResponse)
	if cfg.QueryTimeout > 0 {
		// Operations over websockets (HTTP ones have their deadline from
		// httpTransport already): every one but subscriptions.
		srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
			if op := graphql.GetOperationContext(ctx).Operation; op != nil && op.Operation == ast.Subscription {
				return next(ctx)
			}
			ctx, cancel := context.WithTimeout(ctx, cfg.QueryTimeout)
			h := next(ctx)
			return func(ctx context.Context) *graphql.Response {
				defer cancel()
				return h(ctx)
			}
		})
	}
	srv.SetErrorPresenter(presentError(cfg.Logger, cfg.QueryTimeout))
	srv.SetRecoverFunc(func(ctx context.Context, v any) error {
		cfg.Logger.ErrorContext(ctx, "panic in resolver",
			slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
		return errPanic
	})
	h := readBody(cfg.MaxBodyBytes, cfg.BodyReadTimeout, specStatus(srv))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method != http.MethodGet && r.Method != http.MethodPost && r.Method != http.MethodOptions:
			w.Header().Set("Allow", "GET, POST, OPTIONS")
			writeError(w, http.StatusMethodNotAllowed, badRequest, "use POST (or GET for queries)", nil)
			return
		case isWebsocket(r):
			if !gorilla.checkOrigin(r) {
				writeError(w, http.StatusForbidden, string(products.Forbidden),
					"websockets from origin "+r.Header.Get("Origin")+" are not allowed (--allowed-origins, --cors-origins)", nil)
				return
			}
			r = r.WithContext(withSession(r.Context()))
		}
		if r.Method != http.MethodPost || isWebsocket(r) {
			// No body to wait for: lift the server's read deadline, which
			// would otherwise cancel long queries and event streams
			// (readBody does the same for POST once the body is in).
			http.NewResponseController(w).SetReadDeadline(time.Time{})
		}
		h.ServeHTTP(w, r)
	})
}

var errPanic = errors.New("panic")

// streamError presents the error that ended a subscription stream: a slow
// consumer gets SLOW_CONSUMER with the cursor to resume from.
func streamError(ctx context.Context, present graphql.ErrorPresenterFunc, err error) *gqlerror.Error {
	var slow *streaming.SlowConsumerError
	if errors.As(err, &slow) {
		return &gqlerror.Error{Message: slow.Error(), Extensions: map[string]any{
			"code": "SLOW_CONSUMER", "cursor": slow.Cursor.String(),
		}}
	}
	var down *streaming.UnavailableError
	if errors.As(err, &down) {
		ext := map[string]any{"code": string(products.Unavailable), "retryable": true, "retryAfter": products.RetryAfter}
		if down.Cursor != nil {
			ext["cursor"] = down.Cursor.String()
		}
		return &gqlerror.Error{Message: down.Error(), Extensions: ext}
	}
	return present(ctx, err)
}

// presentError is the one place where errors become GraphQL errors:
// expected failures (a products.Error anywhere in the chain) keep their
// message and carry extensions.code (and the offending field); gqlgen's own
// parse/validation errors keep their codes; anything else is logged with the
// request id and shown as "internal error (request <id>)".
func presentError(log *slog.Logger, queryTimeout time.Duration) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		// A subscription whose stream failed sends one empty event; the error
		// its null produces is reported as the failure itself.
		if failure := resolvers.StreamFailure(ctx); failure != nil {
			return streamError(ctx, presentError(log, queryTimeout), failure)
		}
		if down := (*streaming.UnavailableError)(nil); errors.As(err, &down) {
			log.WarnContext(ctx, "store unreachable; subscription ended", slog.String("error", err.Error()))
			return streamError(ctx, presentError(log, queryTimeout), err)
		}
		if products.Unreachable(err) {
			log.WarnContext(ctx, "store unreachable", slog.String("error", err.Error()))
			err = products.Unavailability(err)
		}
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
			for k, v := range pe.Extensions {
				if _, taken := gerr.Extensions[k]; !taken {
					gerr.Extensions[k] = v
				}
			}
			return gerr
		}
		if gerr.Extensions["code"] != nil {
			return gerr
		}
		if isArgumentError(ctx, err) {
			// A value gqlgen could not coerce into an argument's type
			// (e.g. the ID "abc"): the client's input is at fault.
			gerr.Extensions = map[string]any{"code": string(products.BadUserInput)}
			return gerr
		}
		if errors.Is(err, context.DeadlineExceeded) {
			gerr.Message = "the query took longer than the server allows; narrow it or ask for fewer rows"
			gerr.Extensions = map[string]any{"code": string(products.LimitExceeded), "limit": "queryTimeout", "value": queryTimeout.String()}
			return gerr
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			// The client went away (closed the connection, cancelled the
			// request): nothing failed on our side and nobody reads the answer.
			log.DebugContext(ctx, "request cancelled by the client", slog.String("path", gerr.Path.String()))
			gerr.Message = "the request was cancelled by the client"
			gerr.Extensions = map[string]any{"code": string(products.Cancelled)}
			return gerr
		}
		id := products.RequestIDFrom(ctx)
		log.ErrorContext(ctx, "internal error", slog.String("path", gerr.Path.String()), slog.String("error", err.Error()))
		gerr.Message = fmt.Sprintf("internal error (request %s)", id)
		gerr.Extensions = map[string]any{"code": "INTERNAL_SERVER_ERROR", "requestId": id}
		return gerr
	}
}

// unavailableStatus answers 503 with Retry-After when a response failed
// only because a store was unreachable: no field has a value and every
// error is UNAVAILABLE. A partial response (some fields answered) stays
// 200 and carries the code in its errors.
func unavailableStatus(w http.ResponseWriter, resp *graphql.Response) bool {
	if resp == nil || len(resp.Errors) == 0 {
		return false
	}
	for _, e := range resp.Errors {
		if code, _ := e.Extensions["code"].(string); code != string(products.Unavailable) {
			return false
		}
	}
	if len(resp.Data) > 0 && string(resp.Data) != "null" {
		var fields map[string]json.RawMessage
		if json.Unmarshal(resp.Data, &fields) != nil {
			return false
		}
		for _, v := range fields {
			if string(v) != "null" {
				return false
			}
		}
	}
	w.Header().Set("Retry-After", fmt.Sprint(products.RetryAfter))
	w.WriteHeader(http.StatusServiceUnavailable)
	return true
}

// isArgumentError tells whether err arose while gqlgen coerced the
// arguments of the field being resolved: such errors carry the field's path
// followed by the name of one of its arguments, while resolver errors carry
// the field's own path.
func isArgumentError(ctx context.Context, err error) bool {
	var ge *gqlerror.Error
	fc := graphql.GetFieldContext(ctx)
	if !errors.As(err, &ge) || fc == nil || fc.Field.Field == nil {
		return false
	}
	p := fc.Path()
	if len(ge.Path) <= len(p) {
		return false
	}
	name, ok := ge.Path[len(p)].(ast.PathName)
	return ok && fc.Field.Arguments.ForName(string(name)) != nil
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

// Hijack lets websocket upgrades through the wrapper.
func (w *specWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Flush lets streamed responses (server-sent events) through the wrapper.
func (w *specWriter) Flush() {
	if w.buf == nil {
		http.NewResponseController(w.ResponseWriter).Flush()
	}
}
