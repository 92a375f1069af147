package products

import "context"

// Reaction is how a data product keeps itself in sync with others: the
// change events it consumes (entities of other products) and what it does
// with them. Each batch of changes gets a fresh Batch: Apply runs per
// change and Flush once at the end, inside the product's write
// transaction, so the writes are audited (and published) like any other.
// A change is applied at most once (see Tx.Consume), but changes of
// different entities and partitions may arrive in any order.
type Reaction struct {
	Inputs   []Input
	NewBatch func() Batch
}

// Batch applies changes within one transaction.
type Batch interface {
	Apply(ctx context.Context, tx *Tx, e *AuditEntry) error
	Flush(ctx context.Context, tx *Tx) error
}

// Each adapts a per-change function to a Batch with nothing to flush.
type Each func(ctx context.Context, tx *Tx, e *AuditEntry) error

// Apply calls the function.
func (f Each) Apply(ctx context.Context, tx *Tx, e *AuditEntry) error { return f(ctx, tx, e) }

// Flush does nothing.
func (Each) Flush(context.Context, *Tx) error { return nil }
