package products

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Dead-letter states.
const (
	// Parked: the reaction failed on the event; it is not applied.
	Parked = "PARKED"
	// Resolved: applied later by a retry (the row stays for history).
	Resolved = "RESOLVED"
)

// DeadLetter is an event of another product that a product's reaction
// failed on deterministically and set aside (parked) so that the rest of
// its partition could flow on. It is recorded in the reacting product's
// store, once per source change (source, sequence), in the transaction
// that parks it; a parked event is not applied (Tx.Consume has no record of
// it) until a retry applies it and marks it resolved in one transaction.
// So every change of a source is, for the reacting product, either applied
// exactly once or parked.
type DeadLetter struct {
	bun.BaseModel `bun:"table:mg_dead_letters"`

	ID int64 `bun:"id,pk,autoincrement" json:"id"`
	// Product is the reacting product (the store's own; not stored).
	Product string `bun:"-" json:"product"`
	// Source and Sequence are the event's position: the source product and
	// its audit sequence.
	Source   string `bun:"source,notnull" json:"source"`
	Sequence int64  `bun:"sequence,notnull" json:"sequence"`
	Entity   string `bun:"entity,notnull" json:"entity"`
	Key      int64  `bun:"key,notnull" json:"key"`
	// Topic, Partition and Offset are where the event was read from.
	Topic     string `bun:"topic,notnull" json:"topic"`
	Partition int    `bun:"kafka_partition,notnull" json:"partition"`
	Offset    int64  `bun:"kafka_offset,notnull" json:"offset"`
	// Reason is the text of the last failure.
	Reason string `bun:"reason,notnull" json:"reason"`
	// Attempts counts the failed attempts to apply it, retries included.
	Attempts       int       `bun:"attempts,notnull" json:"attempts"`
	FirstFailureAt time.Time `bun:"first_failure_at,notnull" json:"firstFailureAt"`
	LastFailureAt  time.Time `bun:"last_failure_at,notnull" json:"lastFailureAt"`
	ParkedAt       time.Time `bun:"parked_at,notnull" json:"parkedAt"`
	Status         string    `bun:"status,notnull" json:"status"`
	// Published tells whether it is on the dead-letter topic.
	Published bool `bun:"published,notnull" json:"published"`
	// MessageKey and Event are the Kafka message as read (the change
	// event's key and envelope), what a retry applies.
	MessageKey string `bun:"message_key,notnull" json:"-"`
	Event      string `bun:"event,notnull" json:"-"`
	// ResolvedAt, ResolvedBy (the operator's subject) and
	// ResolvedRequestID (the retry's request) record the retry that
	// applied it.
	ResolvedAt        *time.Time `bun:"resolved_at" json:"resolvedAt,omitempty"`
	ResolvedBy        *string    `bun:"resolved_by" json:"resolvedBy,omitempty"`
	ResolvedRequestID *string    `bun:"resolved_request_id" json:"resolvedRequestId,omitempty"`
}

// Position is the event's position as "<source>/<sequence>".
func (d *DeadLetter) Position() string { return fmt.Sprintf("%s/%d", d.Source, d.Sequence) }

// Applied tells, inside tx, whether the change (source, sequence) has been
// applied (see Consume).
func (t *Tx) Applied(ctx context.Context, source string, sequence int64) (bool, error) {
	n, err := t.NewSelect().Model((*consumedEvent)(nil)).Where("source = ? AND sequence = ?", source, sequence).Count(ctx)
	if err != nil {
		return false, fmt.Errorf("look up consumed %s/%d: %w", source, sequence, err)
	}
	return n > 0, nil
}

// Park records, inside tx, that the change d.Source/d.Sequence is parked.
// It returns true if this call parked it; false if it was parked already
// (d is then the stored row). A change resolved before and parked again (a
// replay that failed on it anew) is parked again. The caller checks first
// that it was not applied (Applied); d.ParkedAt is the transaction's time.
func (t *Tx) Park(ctx context.Context, d *DeadLetter) (bool, error) {
	d.Status, d.ParkedAt, d.Published = Parked, t.now, false
	res, err := t.NewInsert().Model(d).
		On("CONFLICT (source, sequence) DO UPDATE").
		Set("status = EXCLUDED.status, reason = EXCLUDED.reason, attempts = EXCLUDED.attempts").
		Set("first_failure_at = EXCLUDED.first_failure_at, last_failure_at = EXCLUDED.last_failure_at, parked_at = EXCLUDED.parked_at").
		Set("topic = EXCLUDED.topic, kafka_partition = EXCLUDED.kafka_partition, kafka_offset = EXCLUDED.kafka_offset, published = EXCLUDED.published").
		Set("message_key = EXCLUDED.message_key, event = EXCLUDED.event").
		Set("resolved_at = NULL, resolved_by = NULL, resolved_request_id = NULL").
		Where("?TableAlias.status = ?", Resolved).
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("park %s: %w", d.Position(), err)
	}
	n, _ := res.RowsAffected()
	if err := t.NewSelect().Model(d).Where("source = ? AND sequence = ?", d.Source, d.Sequence).Scan(ctx); err != nil {
		return false, fmt.Errorf("read parked %s: %w", d.Position(), err)
	}
	d.Product = t.store.Product.Name
	return n > 0, nil
}

// ParkedAmong returns, inside tx, the parked events among the given
// sequences of each source (one statement per source), by position.
func (t *Tx) ParkedAmong(ctx context.Context, sequences map[string][]int64) (map[string]*DeadLetter, error) {
	out := map[string]*DeadLetter{}
	for source, seqs := range sequences {
		if len(seqs) == 0 {
			continue
		}
		var rows []DeadLetter
		if err := t.NewSelect().Model(&rows).Where("status = ? AND source = ? AND sequence IN (?)", Parked, source, bun.List(seqs)).
			Scan(ctx); err != nil {
			return nil, fmt.Errorf("look up parked events of %s: %w", source, err)
		}
		for i := range rows {
			out[rows[i].Position()] = &rows[i]
		}
	}
	return out, nil
}

// DeadLetter returns, inside tx, the dead letter with the id (NOT_FOUND if
// there is none).
func (t *Tx) DeadLetter(ctx context.Context, id int64) (*DeadLetter, error) {
	d := &DeadLetter{}
	if err := t.NewSelect().Model(d).Where("id = ?", id).Scan(ctx); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, Errorf(NotFound, "%s has no dead letter %d", t.store.Product.Name, id)
		}
		return nil, fmt.Errorf("read dead letter %d: %w", id, err)
	}
	d.Product = t.store.Product.Name
	return d, nil
}

// Resolve marks, inside tx, the parked dead letter id as resolved by the
// actor by (the operator who retried it) in the request requestID. It
// returns false if it was not parked.
func (t *Tx) Resolve(ctx context.Context, id int64, by, requestID string) (bool, error) {
	res, err := t.NewUpdate().Model((*DeadLetter)(nil)).
		Set("status = ?", Resolved).Set("resolved_at = ?", t.now).
		Set("resolved_by = ?", by).Set("resolved_request_id = ?", requestID).
		Where("id = ? AND status = ?", id, Parked).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("resolve dead letter %d: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// DeadLetterFailed records another failed attempt at the parked dead
// letter id: its reason and time.
func (s *Store) DeadLetterFailed(ctx context.Context, id int64, reason string, at time.Time) error {
	_, err := s.DB.NewUpdate().Model((*DeadLetter)(nil)).
		Set("attempts = attempts + 1").Set("reason = ?", reason).Set("last_failure_at = ?", at.UTC()).
		Where("id = ? AND status = ?", id, Parked).Exec(ctx)
	if err != nil {
		return fmt.Errorf("%s: record failed retry of dead letter %d: %w", s.Product.Name, id, err)
	}
	return nil
}

// DeadLetterPublished records that the dead letter id is on the
// dead-letter topic.
func (s *Store) DeadLetterPublished(ctx context.Context, id int64) error {
	if _, err := s.DB.NewUpdate().Model((*DeadLetter)(nil)).Set("published = ?", true).Where("id = ?", id).Exec(ctx); err != nil {
		return fmt.Errorf("%s: mark dead letter %d published: %w", s.Product.Name, id, err)
	}
	return nil
}

// DeadLetterQuery selects dead letters: by status ("" for any), by ids
// (none for any), after an id, at most Limit (default and most 1000), in
// id order.
type DeadLetterQuery struct {
	Status string
	IDs    []int64
	After  int64
	Limit  int
}

// MaxDeadLetters is the most dead letters one read returns.
const MaxDeadLetters = 1000

// DeadLetters returns the product's dead letters selected by q.
func (s *Store) DeadLetters(ctx context.Context, q DeadLetterQuery) ([]DeadLetter, error) {
	switch q.Status {
	case "", Parked, Resolved:
	default:
		return nil, Invalid("status", "unknown status %q; use %s or %s", q.Status, Parked, Resolved)
	}
	if q.Limit < 0 || q.Limit > MaxDeadLetters {
		return nil, Invalid("first", "must be between 1 and %d, got %d", MaxDeadLetters, q.Limit)
	}
	if q.Limit == 0 {
		q.Limit = MaxDeadLetters
	}
	var out []DeadLetter
	sel := s.DB.NewSelect().Model(&out).Where("id > ?", q.After).Order("id").Limit(int64(q.Limit))
	if q.Status != "" {
		sel = sel.Where("status = ?", q.Status)
	}
	if len(q.IDs) > 0 {
		sel = sel.Where("id IN (?)", bun.List(q.IDs))
	}
	if err := sel.Scan(ctx); err != nil {
		return nil, fmt.Errorf("%s: read dead letters: %w", s.Product.Name, err)
	}
	for i := range out {
		out[i].Product = s.Product.Name
	}
	return out, nil
}

// ParkedThrough counts the parked events of source up to sequence through.
func (s *Store) ParkedThrough(ctx context.Context, source string, through int64) (int64, error) {
	n, err := s.DB.NewSelect().Model((*DeadLetter)(nil)).Where("status = ? AND source = ? AND sequence <= ?", Parked, source, through).Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: count parked events of %s: %w", s.Product.Name, source, err)
	}
	return int64(n), nil
}
