package products

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/uptrace/bun"
)

// PIIRead is the record of one request (or one subscription event) that
// returned personal data of one product unmasked: who read it, by which
// operation, when, and which fields of which rows. It is written to the
// product's store once per request and product, after the response is
// computed (see Store.RecordReads), never once per row.
//
// Sequence is the record's position in the product's read log, assigned in
// commit order like the audit log's (a counter row locked until commit), so
// that a reader polling for records after position N never misses one
// committed later below N: the piiReads subscription relies on that.
type PIIRead struct {
	bun.BaseModel `bun:"table:mg_pii_reads"`

	Sequence int64  `bun:"sequence,pk" json:"sequence"`
	Product  string `bun:"product,notnull" json:"product"`
	// Subject is the caller (the identity's subject: a JWT's subject,
	// apikey:<name>, dev).
	Subject string `bun:"subject,notnull" json:"subject"`
	// KeyName is the API key's name ("" for JWTs).
	KeyName string `bun:"key_name,notnull" json:"keyName"`
	// Operation is the GraphQL operation's name ("" when anonymous).
	Operation string    `bun:"operation,notnull" json:"operation"`
	RequestID string    `bun:"request_id,notnull" json:"requestId"`
	At        time.Time `bun:"at,notnull" json:"at"`
	// Reads is the JSON of the []EntityRead read (see Entities).
	Reads string `bun:"reads,notnull" json:"-"`
	// StreamCursor, set on records delivered by a subscription, resumes the
	// stream after this record.
	StreamCursor string `bun:"-" json:"-"`

	Window
}

// EntityRead is what one request read of one entity's personal data: the
// fields returned unmasked and the keys of the rows they came from.
type EntityRead struct {
	Entity string   `json:"entity"`
	Fields []string `json:"fields"`
	Keys   []int64  `json:"keys"`
}

// Entities decodes what the record says was read.
func (r *PIIRead) Entities() ([]EntityRead, error) {
	var out []EntityRead
	if err := json.Unmarshal([]byte(r.Reads), &out); err != nil {
		return nil, fmt.Errorf("decode read record %d: %w", r.Sequence, err)
	}
	return out, nil
}

type piiReadSeq struct {
	bun.BaseModel `bun:"table:mg_pii_read_seq"`

	Product string `bun:"product,pk"`
	Value   int64  `bun:"value,notnull"`
}

// PIIReadEntity describes the read log for queries. Its "id" is the
// sequence.
var PIIReadEntity = &Entity{
	Name: "PiiRead", Table: "mg_pii_reads",
	Description: "A request that returned personal data unmasked.",
	Fields: []*Field{
		{Name: "id", Column: "sequence", Type: TypeInt, Sort: "SEQUENCE", Description: "Position in the product's read log."},
		{Name: "subject", Column: "subject", Type: TypeString, Description: "Who read."},
		{Name: "keyName", Column: "key_name", Type: TypeString, Description: "The API key's name."},
		{Name: "operation", Column: "operation", Type: TypeString, Description: "The operation's name."},
		{Name: "requestId", Column: "request_id", Type: TypeString, Description: "The request."},
		{Name: "at", Column: "at", Type: TypeTime, Description: "When the data was returned."},
	},
}

// RecordReads appends a read record to the product's read log and sets
// its Sequence, Product and At; it returns once the record is committed.
// Nothing is written for a record without reads.
//
// Records of concurrent requests are committed together (group commit):
// while one transaction writes, the records that arrive wait, and the
// first of them then writes them all in the next, taking a block of
// positions from the counter row at once. Positions stay in commit order,
// without gaps or repeats; a request no longer waits for every other
// request's commit in turn on the counter row.
func (s *Store) RecordReads(ctx context.Context, r *PIIRead, reads []EntityRead) error {
	if len(reads) == 0 {
		return nil
	}
	b, err := json.Marshal(reads)
	if err != nil {
		return fmt.Errorf("%s: encode read record: %w", s.Product.Name, err)
	}
	r.Product, r.Reads, r.At = s.Product.Name, string(b), time.Now().UTC().Truncate(time.Microsecond)
	v, _ := readGroups.LoadOrStore(s, &readGroup{})
	g := v.(*readGroup)
	p := &pendingRead{r: r, done: make(chan error, 1), lead: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, p)
	if g.writing {
		g.mu.Unlock()
		select {
		case err := <-p.done: // written by another request's transaction
			return err
		case <-p.lead: // the next transaction is this request's to write
		}
		g.mu.Lock()
	}
	g.writing = true
	batch := g.queue
	g.queue = nil
	g.mu.Unlock()
	err = s.writeReads(ctx, batch)
	for _, q := range batch {
		q.done <- err
	}
	g.mu.Lock()
	if len(g.queue) > 0 {
		close(g.queue[0].lead)
	} else {
		g.writing = false
	}
	g.mu.Unlock()
	return <-p.done
}

// readGroups holds each store's group commit of read records.
var readGroups sync.Map // *Store → *readGroup

type readGroup struct {
	mu      sync.Mutex
	writing bool // a transaction is writing records
	queue   []*pendingRead
}

type pendingRead struct {
	r    *PIIRead
	done chan error
	lead chan struct{} // closed when this request writes the next batch
}

// writeReads commits a batch of read records in one transaction, at the
// next positions, in order.
func (s *Store) writeReads(ctx context.Context, batch []*pendingRead) error {
	if s.sqlite {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
	}
	recs := make([]*PIIRead, len(batch))
	for i, q := range batch {
		recs[i] = q.r
	}
	var err error
	if s.sqlite {
		err = s.writeReadsTx(ctx, recs)
	} else {
		err = s.writeReadsOnce(ctx, recs)
	}
	if err != nil {
		return fmt.Errorf("%s: record reads: %w", s.Product.Name, err)
	}
	s.hooksMu.Lock()
	hooks := s.onReads
	s.hooksMu.Unlock()
	for _, h := range hooks {
		h()
	}
	return nil
}

// writeReadsOnce writes records in one statement, so one round trip
// (PostgreSQL): the counter row's update and the insert, as a
// data-modifying WITH; a statement outside a transaction commits alone,
// holding the counter row until its commit as the transaction did.
func (s *Store) writeReadsOnce(ctx context.Context, recs []*PIIRead) error {
	var q strings.Builder
	args := make([]any, 0, 3+8*len(recs))
	q.WriteString("WITH seq AS (UPDATE mg_pii_read_seq SET value = value + ? WHERE product = ? RETURNING value) " +
		"INSERT INTO mg_pii_reads (sequence, product, subject, key_name, operation, request_id, at, reads) " +
		"SELECT seq.value - ? + v.n, v.product, v.subject, v.key_name, v.operation, v.request_id, v.at, v.reads FROM seq, (VALUES ")
	n := len(recs)
	args = append(args, n, s.Product.Name, n)
	for i, r := range recs {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?::bigint, ?, ?, ?, ?, ?, ?::timestamptz, ?)")
		args = append(args, i+1, r.Product, r.Subject, r.KeyName, r.Operation, r.RequestID, r.At, r.Reads)
	}
	q.WriteString(") AS v(n, product, subject, key_name, operation, request_id, at, reads) RETURNING sequence")
	var seqs []int64
	if err := s.DB.NewRaw(q.String(), args...).Scan(ctx, &seqs); err != nil {
		return err
	}
	if len(seqs) != n {
		return fmt.Errorf("advance read counter: %d of %d records written (is the read counter of %s missing?)", len(seqs), n, s.Product.Name)
	}
	last := slices.Max(seqs)
	for i, r := range recs {
		r.Sequence = last - int64(n-1-i)
	}
	return nil
}

// writeReadsTx writes records in a transaction (SQLite: a WITH cannot
// update there).
func (s *Store) writeReadsTx(ctx context.Context, recs []*PIIRead) error {
	return s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var last int64
		if err := tx.NewRaw("UPDATE mg_pii_read_seq SET value = value + ? WHERE product = ? RETURNING value", len(recs), s.Product.Name).
			Scan(ctx, &last); err != nil {
			return fmt.Errorf("advance read counter: %w", err)
		}
		for i, r := range recs {
			r.Sequence = last - int64(len(recs)-1-i)
		}
		_, err := tx.NewInsert().Model(&recs).Exec(ctx)
		return err
	})
}

// OnReads registers fn to run after every read record this process commits
// to the store (outside the transaction; fn must not block).
func (s *Store) OnReads(fn func()) {
	s.hooksMu.Lock()
	defer s.hooksMu.Unlock()
	s.onReads = append(s.onReads, fn)
}

// ReadsAfter returns up to limit read records after position after, in
// order.
func (s *Store) ReadsAfter(ctx context.Context, after int64, limit int) ([]PIIRead, error) {
	var out []PIIRead
	if err := s.DB.NewSelect().Model(&out).Where("sequence > ?", after).Order("sequence").Limit(int64(limit)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("%s: read the read log: %w", s.Product.Name, err)
	}
	return out, nil
}

// LatestRead returns the position of the product's last read record (0:
// none).
func (s *Store) LatestRead(ctx context.Context) (int64, error) {
	var latest int64
	err := s.DB.NewSelect().Model((*piiReadSeq)(nil)).Column("value").Where("product = ?", s.Product.Name).Scan(ctx, &latest)
	if err != nil {
		return 0, fmt.Errorf("%s: latest read record: %w", s.Product.Name, err)
	}
	return latest, nil
}
