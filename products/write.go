package products

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// Tx is a write transaction of one product store. Writers change rows with
// the embedded bun.Tx and report each change with Created, Updated or
// Deleted; Write turns the reports into audit entries in the same
// transaction.
type Tx struct {
	bun.Tx
	store   *Store
	changes []AuditEntry
	now     time.Time
	cause   string
	keys    map[keyRef]*keyState // see LoadNewest
}

// Cause attributes the changes recorded from now on to the request id of
// the event that caused them (reactions: the source change's request id),
// instead of the request id in the context of Write.
func (t *Tx) Cause(requestID string) { t.cause = requestID }

// CauseID is the request id set by Cause ("": the request id in the
// context of Write). A batch that records its changes in Flush takes it
// for each change in Apply, to record the change with its own cause.
func (t *Tx) CauseID() string { return t.cause }

// Now is the transaction's timestamp (UTC, microseconds), used for the
// rows' timestamps and the audit entries alike.
func (t *Tx) Now() time.Time { return t.now }

// Created records that a row was inserted.
func (t *Tx) Created(e *Entity, key int64, after any) error {
	return t.record(e, key, OpCreate, nil, after)
}

// Updated records that a row changed from before to after.
func (t *Tx) Updated(e *Entity, key int64, before, after any) error {
	return t.record(e, key, OpUpdate, before, after)
}

// Deleted records that a row was deleted.
func (t *Tx) Deleted(e *Entity, key int64, before any) error {
	return t.record(e, key, OpDelete, before, nil)
}

func (t *Tx) record(e *Entity, key int64, op Op, before, after any) error {
	img := func(v any) (*string, error) {
		if v == nil {
			return nil, nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("audit image of %s: %w", e.Name, err)
		}
		s := string(b)
		return &s, nil
	}
	b, err := img(before)
	if err != nil {
		return err
	}
	a, err := img(after)
	if err != nil {
		return err
	}
	t.changes = append(t.changes, AuditEntry{
		Product: t.store.Product.Name, Entity: e.Name, Key: key, Op: op,
		Before: b, After: a, RequestID: t.cause,
	})
	return nil
}

// Write runs fn in one transaction of the store and, in the same
// transaction, appends one audit entry per change fn recorded. It returns
// the entries with their positions in the log (see AuditEntry for how they
// are assigned in commit order without making writers wait for each other
// on PostgreSQL). If fn or anything after it fails, nothing is written.
// Hooks registered with OnCommit run once the entries are in the log.
//
// On PostgreSQL the entries are positioned by a sequencing round right
// after the commit, which Write waits for (whatever ctx says: the change
// is committed). Should that round fail (the store became unreachable in
// between), Write still reports success, with Sequence 0: the entries are
// committed and the next round positions them (the relay runs one when it
// finds entries pending for a while).
func (s *Store) Write(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) ([]AuditEntry, error) {
	if s.sqlite {
		return s.writeSQLite(ctx, fn)
	}
	floor := s.seq.floor()
	var entries []AuditEntry
	var ids []int64
	err := s.DB.RunInTx(ctx, nil, func(ctx context.Context, btx bun.Tx) error {
		tx := &Tx{Tx: btx, store: s, now: time.Now().UTC().Truncate(time.Microsecond)}
		if err := fn(ctx, tx); err != nil {
			return err
		}
		if len(tx.changes) == 0 {
			return nil
		}
		tx.stamp(ctx)
		var err error
		if ids, err = appendPending(ctx, btx, tx.changes); err != nil {
			return err
		}
		entries = tx.changes
		return nil
	})
	if err != nil {
		return nil, mapStoreError(err)
	}
	if len(entries) == 0 {
		return nil, nil
	}
	if seqs, err := s.seq.await(context.WithoutCancel(ctx), ids, floor); err == nil {
		for i := range entries {
			entries[i].Sequence = seqs[i]
		}
	}
	s.committed()
	return entries, nil
}

// writeSQLite is Write on SQLite, where writers take turns: the entries
// take the next positions of the counter row and go to the log directly.
func (s *Store) writeSQLite(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) ([]AuditEntry, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	var entries []AuditEntry
	err := s.DB.RunInTx(ctx, nil, func(ctx context.Context, btx bun.Tx) error {
		tx := &Tx{Tx: btx, store: s, now: time.Now().UTC().Truncate(time.Microsecond)}
		if err := fn(ctx, tx); err != nil {
			return err
		}
		if len(tx.changes) == 0 {
			return nil
		}
		last, err := s.advance(ctx, btx, int64(len(tx.changes)))
		if err != nil {
			return err
		}
		tx.stamp(ctx)
		first := last - int64(len(tx.changes)) + 1
		for i := range tx.changes {
			tx.changes[i].Sequence = first + int64(i)
		}
		for i := 0; i < len(tx.changes); i += 500 {
			part := tx.changes[i:min(i+500, len(tx.changes))]
			if _, err := btx.NewInsert().Model(&part).Exec(ctx); err != nil {
				return fmt.Errorf("append audit entries: %w", err)
			}
		}
		if err := countEntries(ctx, btx, tx.changes); err != nil {
			return err
		}
		entries = tx.changes
		return nil
	})
	if err != nil {
		return nil, mapStoreError(err)
	}
	if len(entries) > 0 {
		s.committed()
	}
	return entries, nil
}

// stamp sets what the transaction's entries share: actor, time, trace and
// (unless Cause set one) the request id of ctx.
func (t *Tx) stamp(ctx context.Context) {
	actor, reqID, traceParent := ActorFrom(ctx), RequestIDFrom(ctx), traceParentFrom(ctx)
	for i := range t.changes {
		c := &t.changes[i]
		c.Actor, c.At, c.TraceParent = actor, t.now, traceParent
		if c.RequestID == "" {
			c.RequestID = reqID
		}
	}
}

// committed runs the OnCommit hooks.
func (s *Store) committed() {
	s.hooksMu.Lock()
	hooks := s.onCommit
	s.hooksMu.Unlock()
	for _, h := range hooks {
		h()
	}
}

// appendChunk bounds the entries of one appending statement (their images
// travel in the statement's text).
const appendChunk = 5000

// appendPendingSQL appends one row per element of its arrays to
// mg_audit_pending, in the arrays' order: rows are inserted, and take
// their ids, in the order of the ordinality. One statement whatever the
// number of entries (up to appendChunk), and arrays are parsed much faster
// than as many rows of VALUES.
const appendPendingSQL = `INSERT INTO mg_audit_pending (product, entity, key, op, before, after, actor, request_id, traceparent, at)
SELECT u.product, u.entity, u.key, u.op, u.before, u.after, u.actor, u.request_id, NULLIF(u.traceparent, ''), u.at
FROM unnest(?::text[], ?::text[], ?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::timestamptz[])
	WITH ORDINALITY AS u(product, entity, key, op, before, after, actor, request_id, traceparent, at, n)
ORDER BY u.n
RETURNING id`

// appendPending appends entries to mg_audit_pending (one statement per
// appendChunk) and returns their ids, in the entries' order.
func appendPending(ctx context.Context, tx bun.Tx, entries []AuditEntry) ([]int64, error) {
	ids := make([]int64, 0, len(entries))
	for i := 0; i < len(entries); i += appendChunk {
		part := entries[i:min(i+appendChunk, len(entries))]
		n := len(part)
		var (
			product, entity, op, actor, reqID, trace = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			key                                      = make([]int64, n)
			before, after                            = make([]*string, n), make([]*string, n)
			at                                       = make([]time.Time, n)
		)
		for j := range part {
			e := &part[j]
			product[j], entity[j], key[j], op[j], before[j], after[j] = e.Product, e.Entity, e.Key, string(e.Op), e.Before, e.After
			actor[j], reqID[j], trace[j], at[j] = e.Actor, e.RequestID, e.TraceParent, e.At
		}
		var got []int64
		if err := tx.NewRaw(appendPendingSQL, pgdialect.Array(product), pgdialect.Array(entity), pgdialect.Array(key), pgdialect.Array(op),
			pgdialect.Array(before), pgdialect.Array(after), pgdialect.Array(actor), pgdialect.Array(reqID), pgdialect.Array(trace),
			pgdialect.Array(at)).Scan(ctx, &got); err != nil {
			return nil, fmt.Errorf("append audit entries: %w", err)
		}
		if len(got) != n {
			return nil, fmt.Errorf("append audit entries: %d ids for %d entries", len(got), n)
		}
		// Ids are taken in the rows' order; whatever order RETURNING
		// gives them in, ascending is the entries' order.
		slices.Sort(got)
		ids = append(ids, got...)
	}
	return ids, nil
}

// advance reserves n positions of the product's audit log and returns the
// last (SQLite: writers take turns). The counter row stays locked until the
// transaction ends.
func (s *Store) advance(ctx context.Context, tx bun.Tx, n int64) (int64, error) {
	var last int64
	err := tx.NewRaw("UPDATE mg_audit_seq SET value = value + ? WHERE product = ? RETURNING value", n, s.Product.Name).Scan(ctx, &last)
	if err != nil {
		return 0, fmt.Errorf("advance audit counter: %w", err)
	}
	return last, nil
}

// mapStoreError turns the violation of a unique constraint on a column
// users supply (e-mail, SKU) into CONFLICT. Everything else passes
// unchanged and stays internal: a primary key's violation (keys are
// assigned by the system), a foreign key's, and any error whose text merely
// looks like one (see violationOf).
func mapStoreError(err error) error {
	if ErrorCode(err) != "" {
		return err
	}
	if violationOf(err) == uniqueViolation {
		return &Error{Code: Conflict, Message: "a row with the same unique value exists"}
	}
	return err
}

// UpdateRow changes the entity's row with the id in one write transaction:
// it locks the row, lets change modify a copy (an error leaves everything
// as it was), writes the copy back and records the change. It returns the
// row as changed.
func UpdateRow[T any](ctx context.Context, s *Store, e *Entity, id int64, change func(ctx context.Context, tx *Tx, before, after *T) error) (*T, error) {
	var after *T
	_, err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		before, err := GetForUpdate[T](ctx, tx, e, id)
		if err != nil {
			return err
		}
		row := *before
		if err := change(ctx, tx, before, &row); err != nil {
			return err
		}
		if _, err := tx.NewUpdate().Model(&row).WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("update row: %w", err)
		}
		after = &row
		return tx.Updated(e, id, before, &row)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: update %s %d: %w", s.Product.Name, e.Name, id, err)
	}
	return after, nil
}

// DeleteRow deletes the entity's row with the id in one write transaction
// and records it; it returns the row as it was.
func DeleteRow[T any](ctx context.Context, s *Store, e *Entity, id int64) (*T, error) {
	var before *T
	_, err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		var err error
		if before, err = GetForUpdate[T](ctx, tx, e, id); err != nil {
			return err
		}
		if _, err := tx.NewDelete().Model(before).WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("delete row: %w", err)
		}
		return tx.Deleted(e, id, before)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: delete %s %d: %w", s.Product.Name, e.Name, id, err)
	}
	return before, nil
}
