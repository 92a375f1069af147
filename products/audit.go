package products

import (
	"time"

	"github.com/uptrace/bun"
)

// Op is the kind of change an audit entry records.
type Op string

// Operations.
const (
	OpCreate Op = "create"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
)

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

	Sequence    int64      `bun:"sequence,pk" json:"sequence"`
	Product     string     `bun:"product,notnull" json:"product"`
	Entity      string     `bun:"entity,notnull" json:"entity"`
	Key         int64      `bun:"key,notnull" json:"key"`
	Op          Op         `bun:"op,notnull" json:"op"`
	Before      *string    `bun:"before" json:"before"`
	After       *string    `bun:"after" json:"after"`
	Actor       string     `bun:"actor,notnull" json:"actor"`
	RequestID   string     `bun:"request_id,notnull" json:"requestId"`
	At          time.Time  `bun:"at,notnull" json:"at"`
	PublishedAt *time.Time `bun:"published_at" json:"-"`
}

type auditSeq struct {
	bun.BaseModel `bun:"table:mg_audit_seq"`

	Product string `bun:"product,pk"`
	Value   int64  `bun:"value,notnull"`
}
