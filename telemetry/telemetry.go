// Package telemetry is meshgate's observability plumbing shared by the HTTP
// edge, the stores and the streaming side: what a request is (its
// operation, its SQL statements) for logs and metrics, log records that
// carry the request's identity, and OpenTelemetry tracing (off unless an
// OTLP endpoint is configured).
package telemetry

import (
	"context"
	"log/slog"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"

	"github.com/meshgate/meshgate/products"
)

// Operation is one GraphQL operation being served: its name for logs
// ("anonymous" without one) and the SQL statements it issued.
type Operation struct {
	Name       string
	statements atomic.Int64
}

// Statements returns how many SQL statements the operation issued so far.
func (o *Operation) Statements() int64 { return o.statements.Load() }

type operationKey struct{}

// WithOperation returns ctx carrying op: log records made with the context
// name the operation, and SQL statements issued with it are counted. If
// ctx belongs to an HTTP request (WithRequest), the request learns the
// operation's name too.
func WithOperation(ctx context.Context, op *Operation) context.Context {
	if r := RequestFrom(ctx); r != nil {
		r.operation.Store(&op.Name)
		if id := products.IdentityFrom(ctx); id != nil {
			r.subject.Store(&id.Subject)
		}
	}
	return context.WithValue(ctx, operationKey{}, op)
}

// OperationFrom returns the operation of ctx, or nil.
func OperationFrom(ctx context.Context) *Operation {
	op, _ := ctx.Value(operationKey{}).(*Operation)
	return op
}

// Request is an HTTP request's record of what it served, filled in by the
// handlers below it and read by the access log.
type Request struct {
	operation, subject atomic.Pointer[string]
}

// Subject returns the caller of the request's operation, or "".
func (r *Request) Subject() string {
	if p := r.subject.Load(); p != nil {
		return *p
	}
	return ""
}

// Operation returns the name of the GraphQL operation the request ran, or "".
func (r *Request) Operation() string {
	if p := r.operation.Load(); p != nil {
		return *p
	}
	return ""
}

type requestKey struct{}

// WithRequest returns ctx carrying a new Request.
func WithRequest(ctx context.Context) (context.Context, *Request) {
	r := &Request{}
	return context.WithValue(ctx, requestKey{}, r), r
}

// RequestFrom returns the request of ctx, or nil.
func RequestFrom(ctx context.Context) *Request {
	r, _ := ctx.Value(requestKey{}).(*Request)
	return r
}

// Logger returns l with its handler wrapped by LogHandler (l itself if it
// is already).
func Logger(l *slog.Logger) *slog.Logger {
	if _, ok := l.Handler().(contextHandler); ok {
		return l
	}
	return slog.New(LogHandler(l.Handler()))
}

// LogHandler wraps h so that every record logged with a request's context
// carries request_id, operation, subject (the caller's identity) and, when
// tracing, trace_id and span_id — whoever logs it.
func LogHandler(h slog.Handler) slog.Handler { return contextHandler{h} }

type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		has := map[string]bool{}
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "request_id", "operation", "subject":
				has[a.Key] = true
			}
			return true
		})
		if id := products.RequestIDFrom(ctx); id != "" && !has["request_id"] {
			r.AddAttrs(slog.String("request_id", id))
		}
		if !has["operation"] {
			if op := OperationFrom(ctx); op != nil {
				r.AddAttrs(slog.String("operation", op.Name))
			} else if req := RequestFrom(ctx); req != nil && req.Operation() != "" {
				r.AddAttrs(slog.String("operation", req.Operation()))
			}
		}
		if !has["subject"] {
			if id := products.IdentityFrom(ctx); id != nil && id.Subject != "" {
				r.AddAttrs(slog.String("subject", id.Subject))
			} else if req := RequestFrom(ctx); req != nil && req.Subject() != "" {
				r.AddAttrs(slog.String("subject", req.Subject()))
			}
		}
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(as)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}
