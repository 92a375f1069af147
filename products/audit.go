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
// in Sequence order; the entries published are always a prefix of the log,
// 1…mg_outbox.through.
//
// Sequence is the entry's position in the product's log: gapless (1, 2, 3,
// …, nothing skipped, nothing twice) and in commit order as readers see it:
// a reader that has seen position N never later finds an entry below N that
// was not there before, and every entry up to the latest position is
// readable. How positions are assigned depends on the store:
//
//   - PostgreSQL: writers never wait for each other. A write transaction
//     appends its entries, unpositioned, to mg_audit_pending and commits.
//     Right after, a sequencing round (see Store.sequence) moves every
//     committed pending entry into mg_audit_log in one statement, numbering
//     them after the log's last position in the order they were appended,
//     and commits. Rounds of one store take turns (in process, and under
//     an advisory lock across instances), so each round's positions follow
//     the previous round's, and readers see a round's entries all at once,
//     when it commits. A change that waited for another's row lock appends
//     its entries after that one committed, so they are numbered after its
//     entries: per row, positions follow the order of the changes. Write
//     returns once its entries are positioned, so the log reads its writes.
//   - SQLite has one writer at a time: each write transaction takes the
//     next positions from the counter row (mg_audit_seq) and appends its
//     entries to the log directly.
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
	TraceParent string    `bun:"traceparent,nullzero" json:"-"`
	At          time.Time `bun:"at,notnull" json:"at"`
	// PublishedAt is no longer maintained (see mg_outbox.through); the
	// column stays for the migrations that created and indexed it.
	PublishedAt *time.Time `bun:"published_at" json:"-"`
	// Origin is the id the entry had in mg_audit_pending (PostgreSQL; 0
	// for entries positioned when written), so that a writer can find its
	// entries' positions when another instance's round assigned them.
	Origin int64 `bun:"origin,nullzero" json:"-"`
	// StreamCursor, set on entries delivered by a subscription, resumes
	// the stream after this entry.
	StreamCursor string `bun:"-" json:"-"`

	Window
}

// pendingEntry is an audit entry committed but not yet positioned
// (PostgreSQL): writers append to mg_audit_pending, and sequencing rounds
// move the entries to mg_audit_log. ID orders the entries of a store: it is
// taken from a sequence when the entry is appended.
type pendingEntry struct {
	bun.BaseModel `bun:"table:mg_audit_pending"`

	ID int64 `bun:"id,pk,autoincrement"`
	// Tx is the appending transaction's id (txid_current()), which keeps
	// one transaction's entries together in the log.
	Tx          int64     `bun:"tx,nullzero,notnull,default:txid_current()"`
	Product     string    `bun:"product,notnull"`
	Entity      string    `bun:"entity,notnull"`
	Key         int64     `bun:"key,notnull"`
	Op          Op        `bun:"op,notnull"`
	Before      *string   `bun:"before"`
	After       *string   `bun:"after"`
	Actor       string    `bun:"actor,notnull"`
	RequestID   string    `bun:"request_id,notnull"`
	TraceParent string    `bun:"traceparent,nullzero"`
	At          time.Time `bun:"at,notnull"`
}

// auditSeq is a product log's last position: on PostgreSQL advanced by
// the sequencing rounds, on SQLite by every write.
type auditSeq struct {
	bun.BaseModel `bun:"table:mg_audit_seq"`

	Product string `bun:"product,pk"`
	Value   int64  `bun:"value,notnull"`
}
