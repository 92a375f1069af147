package products

import (
	"io"
	"strconv"
	"time"

	"github.com/uptrace/bun"
)

// Op is the kind of change an audit entry records.
type Op string

// Operations.
const (
	OpCreate Op = "CREATE"
	OpUpdate Op = "UPDATE"
	OpDelete Op = "DELETE"
)

// MarshalGQL writes the operation as a GraphQL enum value.
func (o Op) MarshalGQL(w io.Writer) { io.WriteString(w, strconv.Quote(string(o))) }

// UnmarshalGQL reads a GraphQL enum value.
func (o *Op) UnmarshalGQL(v any) error {
	s, ok := v.(string)
	switch Op(s) {
	case OpCreate, OpUpdate, OpDelete:
	default:
		ok = false
	}
	if !ok {
		return Invalid("op", "must be CREATE, UPDATE or DELETE")
	}
	*o = Op(s)
	return nil
}

// AuditEntity describes the audit log for queries. Its "id" is the sequence.
var AuditEntity = &Entity{
	Name: "AuditEntry", Table: "mg_audit_log",
	Description: "One change of one row of a data product.",
	Fields: []*Field{
		{Name: "id", Column: "sequence", Type: TypeInt, Sort: "SEQUENCE", Description: "Position in the product's log."},
		{Name: "entity", Column: "entity", Type: TypeString, Description: "Entity (GraphQL type) changed."},
		{Name: "key", Column: "key", Type: TypeID, Description: "Key of the changed row."},
		{Name: "op", Column: "op", Type: TypeEnum, Description: "CREATE, UPDATE or DELETE."},
		{Name: "actor", Column: "actor", Type: TypeString, Description: "Who made the change."},
		{Name: "requestId", Column: "request_id", Type: TypeString, Description: "Request that made the change."},
		{Name: "at", Column: "at", Type: TypeTime, Description: "When the change was committed."},
	},
}

// AuditEntry is one change of one row, written in the same transaction as
// the change. The audit log is also the outbox: the relay publishes entries
// in Sequence order and sets PublishedAt.
//
// Sequence is the entry's position in the product's log. It is assigned in
// commit order: every writing transaction increments the product's counter
// row (mg_audit_seq) as its last statement before COMMIT, which locks that
// row until the commit; the next writer therefore gets higher numbers and
// commits later. A reader that has seen position N can never later find a
// committed entry below N. (On SQLite writers are serialised anyway.)
type AuditEntry struct {
	bun.BaseModel `bun:"table:mg_audit_log"`

	Sequence  int64   `bun:"sequence,pk" json:"sequence"`
	Product   string  `bun:"product,notnull" json:"product"`
	Entity    string  `bun:"entity,notnull" json:"entity"`
	Key       int64   `bun:"key,notnull" json:"key"`
	Op        Op      `bun:"op,notnull" json:"op"`
	Before    *string `bun:"before" json:"before"`
	After     *string `bun:"after" json:"after"`
	Actor     string  `bun:"actor,notnull" json:"actor"`
	RequestID string  `bun:"request_id,notnull" json:"requestId"`
	// TraceParent is the W3C traceparent of the traced request that made
	// the change ("" when it was not traced); events carry it on Kafka.
	TraceParent string     `bun:"traceparent,nullzero" json:"-"`
	At          time.Time  `bun:"at,notnull" json:"at"`
	PublishedAt *time.Time `bun:"published_at" json:"-"`
	// StreamCursor, set on entries delivered by a subscription, resumes
	// the stream after this entry.
	StreamCursor string `bun:"-" json:"-"`

	Window
}

type auditSeq struct {
	bun.BaseModel `bun:"table:mg_audit_seq"`

	Product string `bun:"product,pk"`
	Value   int64  `bun:"value,notnull"`
}
