package resolvers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/99designs/gqlgen/graphql"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/streaming"
)

// streamState carries the error that ended a subscription's stream from the
// stream's goroutine to the response that reports it (see StreamFailure).
type streamState struct {
	mu       sync.Mutex
	err      error
	reported bool
}

type streamStateKey struct{}

// WithStreamState prepares an operation for reporting stream errors.
// Install it with the server's AroundOperations.
func WithStreamState(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	return next(context.WithValue(ctx, streamStateKey{}, &streamState{}))
}

// StreamFailure returns, once, the error that ended the operation's stream
// (a *streaming.SlowConsumerError, or an internal error), or nil.
func StreamFailure(ctx context.Context) error {
	st, _ := ctx.Value(streamStateKey{}).(*streamState)
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.err == nil || st.reported {
		return nil
	}
	st.reported = true
	return st.err
}

// Pull lets a transport serve a subscription without a goroutine waiting
// on its channel: a subscription resolved with a Pull in its context
// (WithPull) claims it, and from then on the stream calls Next, on its own
// goroutine, each time it has something for the transport: an event, or
// something it has put in the channel (the value that reports the
// stream's failure, or the channel's close). Next takes it by calling
// Fill and then the operation's response handler once (which then does
// not wait), and delivers the response. An idle subscription so holds no
// goroutine at all: the hub's Watch runs one only while events wait.
// Subscriptions that do not claim the Pull (live aggregates, PII reads)
// are served as gqlgen serves them, by a goroutine that calls the
// response handler until it returns nil.
//
// An event's value is made (and put in the channel) only by Fill: a
// transport that has the response already, computed for another
// subscription of the same operation and caller with the same Event (see
// web's shareGroup), calls Drop instead and sends that, and the event
// costs this subscription no conversion and no execution.
//
// A transport may hold back what Next delivers (a websocket writes the
// responses of several waiting events at once): Idle, if set, is called
// when the stream has handed over everything that waited, and after the
// last Next of its end. It runs on the stream's goroutine, never at the
// same time as Next.
type Pull struct {
	// Next and Idle are the transport's: see Pull.
	Next    func()
	Idle    func()
	claimed bool
	// Set by the stream while Next runs for an event (the stream's
	// goroutine).
	event   string
	pending interface {
		fill() bool
		drop()
	}
}

// Event identifies the event Next is called for: its product, sequence
// and stream cursor (the cursor is part of the value delivered, and
// differs between subscriptions that have seen different events of other
// products). Subscriptions with the same Event get the same value. It is
// "" when Next is called for something else: the stream's failure, or its
// end.
func (p *Pull) Event() string { return p.event }

// Fill puts the value of the event Next is called for in the channel, for
// the response handler. False when the value could not be made: the
// stream then ends with that error, and the response handler must not be
// called now (it would wait for a value that does not come). Without an
// event (Event is "") the channel holds what Next is called for already:
// Fill does nothing and returns true.
func (p *Pull) Fill() bool {
	if p.pending == nil {
		return true
	}
	return p.pending.fill()
}

// Drop skips the event Next is called for: the transport delivers it
// without this subscription's value (only while Next runs).
func (p *Pull) Drop() {
	if p.pending != nil {
		p.pending.drop()
	}
}

// Claimed tells whether the operation's resolver claimed the Pull. The
// resolver runs during the executor's DispatchOperation, on the caller's
// goroutine: read it after DispatchOperation returns.
func (p *Pull) Claimed() bool { return p.claimed }

type pullKey struct{}

// WithPull offers p to the subscription resolved in ctx.
func WithPull(ctx context.Context, p *Pull) context.Context {
	return context.WithValue(ctx, pullKey{}, p)
}

// errPullEnded ends a stream whose transport did not take a value: its
// subscription has ended.
var errPullEnded = errors.New("the subscription has ended")

// subscribe watches a hub stream for a subscription field and converts each
// event with conv. When the stream fails (slow consumer, store error) the
// failure is recorded for StreamFailure and one zero value is sent: its
// null makes gqlgen report an error, which the error presenter replaces
// with the failure (StreamFailure). Then the channel closes and the
// subscription completes.
func subscribe[T any](ctx context.Context, r *Resolver, f *streaming.Filter, since *string, conv func(streaming.Event) (T, error)) (<-chan T, error) {
	var cur streaming.Cursor
	if since != nil {
		var err error
		if cur, err = streaming.ParseCursor(*since); err != nil {
			return nil, err
		}
	}
	if _, err := r.Hub.Check(ctx, f, cur); err != nil {
		return nil, err
	}
	if p, _ := ctx.Value(pullKey{}).(*Pull); p != nil && !p.claimed {
		return pulled(ctx, r, f, cur, conv, p), nil
	}
	out := make(chan T)
	// The hub runs the stream without a goroutine of its own while no
	// event waits (Watch); gqlgen's goroutine for the subscription waits
	// on out.
	r.Hub.Watch(ctx, f, cur, func(ev streaming.Event) error {
		v, err := conv(ev)
		if err != nil {
			return err
		}
		select {
		case out <- v:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, func(err error) {
		defer close(out)
		if err == nil || ctx.Err() != nil {
			return
		}
		if recordFailure(ctx, err) {
			var zero T
			select {
			case out <- zero:
			case <-ctx.Done():
			}
		}
	})
	return out, nil
}

// pulled is subscribe's stream for a transport that pulls (see Pull): the
// channel holds at most the one value the transport is about to take, and
// the stream's goroutine (the hub's, while events wait) hands it over.
func pulled[T any](ctx context.Context, r *Resolver, f *streaming.Filter, cur streaming.Cursor, conv func(streaming.Event) (T, error), p *Pull) <-chan T {
	p.claimed = true
	st := &pullState[T]{conv: conv, out: make(chan T, 1)}
	out := st.out
	// put hands v (the value of a failure) to the transport; false when
	// it did not take it (its subscription ended).
	put := func(v T) bool {
		select {
		case out <- v:
		default:
			return false
		}
		p.Next()
		return len(out) == 0
	}
	r.Hub.WatchIdle(ctx, f, cur, func(ev streaming.Event) error {
		st.pending, st.has, st.filled, st.dropped, st.err = ev, true, false, false, nil
		p.event, p.pending = eventKey(ev), st
		p.Next()
		p.event, p.pending = "", nil
		st.pending, st.has = streaming.Event{}, false
		switch {
		case st.err != nil:
			return st.err
		case st.dropped, st.filled && len(out) == 0:
			return nil
		}
		// Not taken: the subscription ended, and so does the stream.
		return errPullEnded
	}, p.Idle, func(err error) {
		if err != nil && ctx.Err() == nil && err != errPullEnded && recordFailure(ctx, err) {
			var zero T
			put(zero)
		}
		close(out)
		p.Next()
		if p.Idle != nil {
			p.Idle()
		}
	})
	return out
}

// pullState is a pulled stream's channel and the event Next is called
// for (pending, while has), with what the transport did with it.
type pullState[T any] struct {
	conv                 func(streaming.Event) (T, error)
	out                  chan T
	pending              streaming.Event
	has, filled, dropped bool
	err                  error // conv's
}

// fill is Pull.Fill.
func (s *pullState[T]) fill() bool {
	if !s.has {
		return s.err == nil
	}
	s.has = false
	v, err := s.conv(s.pending)
	if err != nil {
		s.err = err
		return false
	}
	s.out <- v // empty: one value at a time
	s.filled = true
	return true
}

// drop is Pull.Drop.
func (s *pullState[T]) drop() {
	if s.has {
		s.has, s.dropped = false, true
	}
}

// eventKey is Pull.Event of a hub event: product and sequence name the
// audit entry (sequences are per product and gapless), and the cursor
// the position delivered with it.
func eventKey(ev streaming.Event) string {
	a := ev.Entry
	if a == nil {
		return ""
	}
	key := a.Product + "\x00" + strconv.FormatInt(a.Sequence, 10) + "\x00"
	if at, ok := ev.Cursor[a.Product]; ok && len(ev.Cursor) == 1 {
		// The cursor of one product (the usual one): its position
		// names it, without encoding it (see Cursor.String).
		return key + strconv.FormatInt(at, 10)
	}
	return key + ev.Cursor.String()
}

// recordFailure records the error that ends a subscription's stream for
// StreamFailure; false when there is nowhere to record it (the caller then
// sends no zero value).
func recordFailure(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	st, _ := ctx.Value(streamStateKey{}).(*streamState)
	if st == nil {
		return false
	}
	st.mu.Lock()
	st.err = err
	st.mu.Unlock()
	return true
}

// failStream records the error that ends a subscription's stream for
// StreamFailure and sends the one zero value that makes gqlgen report it
// (the caller closes out afterwards).
func failStream[T any](ctx context.Context, out chan<- T, err error) {
	if !recordFailure(ctx, err) {
		return
	}
	var zero T
	select {
	case out <- zero:
	case <-ctx.Done():
	}
}

// entityFilter selects one entity's changes, optionally by op and by a where
// filter evaluated on the after image (the before image for deletes).
func entityFilter(d *products.Descriptor, e *products.Entity, where map[string]any, ops []products.Op) (*streaming.Filter, error) {
	f := &streaming.Filter{
		Products: map[string]bool{d.Name: true},
		Entities: map[string]bool{e.Name: true},
		Ops:      opSet(ops),
	}
	if len(where) > 0 {
		// Parsed once (a bad filter is rejected now, not at the first
		// event), into the tree the SQL compiler reads too.
		cond, err := products.ParseWhere(e, where)
		if err != nil {
			return nil, err
		}
		f.Decoder = rowImage
		f.Match = func(_ *products.AuditEntry, row any) (bool, error) {
			return cond.Match(row.(map[string]any))
		}
		// Subscriptions with the same filter share its evaluation
		// (encoding/json writes map keys sorted: one text per filter).
		if b, err := json.Marshal(where); err == nil {
			f.Key = d.Name + "." + e.Name + " " + string(b)
		}
	}
	return f, nil
}

// rowImage decodes the row image where filters look at: the after image,
// or the before image of a delete. One for all subscriptions, so the hub
// decodes each entry once.
var rowImage = &streaming.Decoder{Decode: func(a *products.AuditEntry) (any, error) {
	img := a.After
	if img == nil {
		img = a.Before
	}
	m, err := image(img)
	if m == nil && err == nil {
		m = map[string]any{}
	}
	return m, err
}}

func opSet(ops []products.Op) map[products.Op]bool {
	if len(ops) == 0 {
		return nil
	}
	m := make(map[products.Op]bool, len(ops))
	for _, o := range ops {
		m[o] = true
	}
	return m
}

func set(names []string) map[string]bool {
	if len(names) == 0 {
		return nil
	}
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// rows decodes an entry's before and after images into the entity's model.
func rows[T any](a *products.AuditEntry) (before, after *T, err error) {
	dec := func(s *string) (*T, error) {
		if s == nil {
			return nil, nil
		}
		v := new(T)
		if err := json.Unmarshal([]byte(*s), v); err != nil {
			return nil, fmt.Errorf("decode %s image: %w", a.Entity, err)
		}
		return v, nil
	}
	if before, err = dec(a.Before); err != nil {
		return nil, nil, err
	}
	after, err = dec(a.After)
	return before, after, err
}

// restrictStream makes a stream deliver only entries that the row policy
// of their entity (policy returns nil when none restricts the caller)
// admits: entries with an image inside it (see entryIn).
func restrictStream(f *streaming.Filter, policy func(*products.AuditEntry) *products.Condition) {
	prev := f.Match
	f.Match = func(a *products.AuditEntry, decoded any) (bool, error) {
		if c := policy(a); c != nil && !entryIn(c, a) {
			return false, nil
		}
		if prev != nil {
			return prev(a, decoded)
		}
		return true, nil
	}
	// The decision now depends on the caller's policy: the filter's
	// evaluation is its own, not shared with others of the same where.
	f.Key = ""
}

// entryIn tells whether a row policy admits an audit entry: when it admits
// its image before or after the change. (Its images outside the policy are
// not shown: see imageIn.)
func entryIn(c *products.Condition, a *products.AuditEntry) bool {
	return imageIn(c, a.Before) || imageIn(c, a.After)
}

// imageIn tells whether a row policy admits a JSON row image; an absent or
// unreadable image is not admitted.
func imageIn(c *products.Condition, img *string) bool {
	m, err := image(img)
	if err != nil || m == nil {
		return false
	}
	ok, err := c.Match(m)
	return err == nil && ok
}
