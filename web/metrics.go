package web

import (
	"context"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/ast"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshgate/meshgate/telemetry"
)

// DefaultMaxOperationNames is the default of Config.MaxOperationNames.
const DefaultMaxOperationNames = 200

// Operation names that are not the client's.
const (
	anonymousOperation = "anonymous" // an operation without a name
	otherOperation     = "other"     // a name beyond the cap
)

// operationNames bounds the operation names used as metric labels: names
// come only from parsed, validated documents (never from a request's
// operationName field on its own), and once max distinct names were seen,
// new ones count as "other", so hostile clients cannot grow the registry.
type operationNames struct {
	mu   sync.Mutex
	max  int
	seen map[string]bool
}

func newOperationNames(max int) *operationNames {
	if max <= 0 {
		max = DefaultMaxOperationNames
	}
	return &operationNames{max: max, seen: map[string]bool{}}
}

func (n *operationNames) label(op *ast.OperationDefinition) string {
	if op == nil || op.Name == "" {
		return anonymousOperation
	}
	name := op.Name
	if len(name) > 64 {
		return otherOperation
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.seen[name] {
		return name
	}
	if len(n.seen) >= n.max {
		return otherOperation
	}
	n.seen[name] = true
	return name
}

// operationMetrics are the per-operation figures of /metrics.
type operationMetrics struct {
	names      *operationNames
	operations *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	statements *prometheus.HistogramVec
	websockets prometheus.Gauge
	// subscriptionResponses counts the responses of subscription events
	// sent over websockets by how they were had (see shareGroups).
	subscriptionResponses *prometheus.CounterVec
	// websocketWrites counts the messages the websockets sent and the
	// writes that carried them (see wsOut).
	websocketWrites *wsWriteMetrics
}

func newOperationMetrics(reg prometheus.Registerer, maxNames int) *operationMetrics {
	m := &operationMetrics{
		names: newOperationNames(maxNames),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshgate_graphql_operations_total",
			Help: "GraphQL operations by operation name (\"anonymous\", \"other\" beyond --metrics-max-operations), type and outcome (ok or the first error's code).",
		}, []string{"operation", "type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meshgate_graphql_operation_duration_seconds",
			Help:    "Latency of GraphQL queries and mutations (parsed and validated to answered), by operation name and type.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"operation", "type"}),
		statements: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meshgate_graphql_sql_statements",
			Help:    "SQL statements one GraphQL query or mutation issued, by operation type.",
			Buckets: []float64{0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144},
		}, []string{"type"}),
		websockets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshgate_websocket_connections", Help: "Open websocket connections.",
		}),
		subscriptionResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshgate_subscription_responses_total",
			Help: "Responses to subscription events sent over websockets, by how they were had: computed for the subscriber, or shared (the bytes computed for another subscriber of the same operation with the same rights).",
		}, []string{"response"}),
		websocketWrites: &wsWriteMetrics{
			messages: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "meshgate_websocket_messages_total",
				Help: "Messages the server sent over websockets (control frames not counted).",
			}),
			writes: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "meshgate_websocket_writes_total",
				Help: "Writes (system calls) to websocket connections: each carries one message or control frame, or several messages of a subscription's events that were waiting together.",
			}),
		},
	}
	reg.MustRegister(m.operations, m.duration, m.statements, m.websockets, m.subscriptionResponses,
		m.websocketWrites.messages, m.websocketWrites.writes)
	return m
}

// outcome is "ok" or the code of the response's first error.
func outcome(resp *graphql.Response) string {
	if resp == nil {
		return "ok"
	}
	if len(resp.Errors) == 0 {
		return "ok"
	}
	if code, ok := resp.Errors[0].Extensions["code"].(string); ok && code != "" && len(code) <= 40 {
		return code
	}
	return "error"
}

// around is the operation middleware of the observability: it names the
// operation for logs (telemetry.WithOperation), counts its SQL statements,
// spans it while tracing, and records its outcome and latency.
func (m *operationMetrics) around(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	rc := graphql.GetOperationContext(ctx)
	name := m.names.label(rc.Operation)
	typ := string(rc.Operation.Operation)
	// Logs name the operation as the document does (GraphQL names are
	// [_A-Za-z0-9]); only the metrics' label is capped.
	logName := anonymousOperation
	if rc.Operation.Name != "" {
		logName = rc.Operation.Name[:min(len(rc.Operation.Name), 128)]
	}
	op := &telemetry.Operation{Name: logName}
	ctx = telemetry.WithOperation(ctx, op)
	spanName := typ
	if name != anonymousOperation {
		spanName += " " + name
	}
	ctx, span := telemetry.Tracer().Start(ctx, "graphql "+spanName, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("graphql.operation.type", typ), attribute.String("graphql.operation.name", name)))
	start := time.Now()
	h := next(ctx)
	var once sync.Once
	if rc.Operation.Operation == ast.Subscription {
		// Counted when it ends: by the error that ended it, else ok.
		return func(ctx context.Context) *graphql.Response {
			resp := h(ctx)
			if resp == nil || len(resp.Errors) > 0 {
				once.Do(func() {
					o := outcome(resp)
					m.operations.WithLabelValues(name, typ, o).Inc()
					span.SetAttributes(attribute.String("meshgate.outcome", o))
					span.End()
				})
			}
			return resp
		}
	}
	return func(ctx context.Context) *graphql.Response {
		resp := h(ctx)
		once.Do(func() {
			o := outcome(resp)
			m.operations.WithLabelValues(name, typ, o).Inc()
			m.duration.WithLabelValues(name, typ).Observe(time.Since(start).Seconds())
			m.statements.WithLabelValues(typ).Observe(float64(op.Statements()))
			span.SetAttributes(attribute.String("meshgate.outcome", o), attribute.Int64("meshgate.sql_statements", op.Statements()))
			if o != "ok" {
				span.SetAttributes(attribute.String("graphql.error.code", o))
			}
			span.End()
		})
		return resp
	}
}

// invalidOperation is the label of requests that never became an operation
// (unparsable, invalid): they are counted by their error's code.
const invalidOperation = "invalid"

// responses counts the requests refused before execution (gqlgen answers
// them without running the operation middleware).
func (m *operationMetrics) responses(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if !graphql.HasOperationContext(ctx) || graphql.GetOperationContext(ctx).Operation == nil {
		m.operations.WithLabelValues(invalidOperation, "unknown", outcome(resp)).Inc()
	}
	return resp
}
