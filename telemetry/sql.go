package telemetry

import (
	"context"
	"database/sql"
	"errors"

	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// SQLHook is a bun query hook that counts each statement against the
// operation of its context (Operation.Statements) and, while tracing, makes
// a span of it. Spans name the statement's kind (SELECT, INSERT, …), never the statement's text: bun writes the values into
// it, personal data included.
type SQLHook struct{}

type sqlSpanKey struct{}

// BeforeQuery starts the statement's span.
func (h SQLHook) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		// Statements outside any traced work (background polls) make no
		// root spans of their own.
		return ctx
	}
	op := e.Operation()
	// The statement's span is not made the context's current span: bun
	// hands BEGIN's context on to the whole transaction, whose statements
	// (and the traceparent its changes record) belong to the operation.
	_, span := Tracer().Start(ctx, "db "+op, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system", dbSystem(e)), attribute.String("db.operation.name", op)))
	return context.WithValue(ctx, sqlSpanKey{}, span)
}

// AfterQuery counts the statement and ends its span.
func (h SQLHook) AfterQuery(ctx context.Context, e *bun.QueryEvent) {
	if op := OperationFrom(ctx); op != nil {
		op.statements.Add(1)
	}
	if span, ok := ctx.Value(sqlSpanKey{}).(trace.Span); ok {
		err := e.Err
		if errors.Is(err, sql.ErrNoRows) {
			err = nil
		}
		End(span, err)
	}
}

func dbSystem(e *bun.QueryEvent) string {
	if e.DB != nil && e.DB.Dialect().Name().String() == "sqlite" {
		return "sqlite"
	}
	return "postgresql"
}
