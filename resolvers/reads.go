package resolvers

// The read-access audit: every response (and every subscription event)
// that returns personal data unmasked is recorded, once per product, after
// it is computed and before it is sent: who (subject, API key), which
// operation (name, request id), which fields of which rows, when. The
// records go to the product's own store (products.PIIRead), where the
// piiReads query reads them and the piiReads subscription follows them:
// every gateway instance on the same stores sees the same log, positioned
// in commit order, so the subscription polls it without gaps.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/streaming"
)

// readLog gathers what one response returned of personal data, unmasked.
type readLog struct {
	mu sync.Mutex
	m  map[string]map[string]*entityReads // product → entity → reads
}

type entityReads struct {
	fields map[string]struct{}
	keys   map[int64]struct{}
}

type readLogKey struct{}

func readLogFrom(ctx context.Context) *readLog {
	l, _ := ctx.Value(readLogKey{}).(*readLog)
	return l
}

func (l *readLog) add(product, entity, field string, key int64) {
	l.addFields(product, entity, []string{field}, key)
}

func (l *readLog) addFields(product, entity string, fields []string, key int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]map[string]*entityReads{}
	}
	byEntity := l.m[product]
	if byEntity == nil {
		byEntity = map[string]*entityReads{}
		l.m[product] = byEntity
	}
	er := byEntity[entity]
	if er == nil {
		er = &entityReads{fields: map[string]struct{}{}, keys: map[int64]struct{}{}}
		byEntity[entity] = er
	}
	for _, f := range fields {
		er.fields[f] = struct{}{}
	}
	er.keys[key] = struct{}{}
}

// reads returns, per product, what was read, in a stable order.
func (l *readLog) reads() map[string][]products.EntityRead {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]products.EntityRead{}
	for p, byEntity := range l.m {
		for e, er := range byEntity {
			r := products.EntityRead{Entity: e}
			for f := range er.fields {
				r.Fields = append(r.Fields, f)
			}
			for k := range er.keys {
				r.Keys = append(r.Keys, k)
			}
			sort.Strings(r.Fields)
			slices.Sort(r.Keys)
			out[p] = append(out[p], r)
		}
		sort.Slice(out[p], func(i, j int) bool { return out[p][i].Entity < out[p][j].Entity })
	}
	return out
}

// PerResponse prepares each response of an operation (each event of a
// subscription): fresh batch loaders for subscription events, so that an
// event never sees rows cached for an earlier one, and, with ReadAudit, the
// read log that is written once the response is computed. Install it with
// the server's AroundResponses.
//
// If the read log of a query or mutation cannot be written, the response is
// withheld (an internal error instead): personal data is not returned
// without its record. A subscription's reads are gathered over its events
// and written at most every ReadFlush and when it ends (see pendingReads):
// a write per event would cost every subscriber a transaction per change.
func (r *Resolver) PerResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	var oc *graphql.OperationContext
	if graphql.HasOperationContext(ctx) {
		oc = graphql.GetOperationContext(ctx)
	}
	subscription := oc != nil && oc.Operation != nil && oc.Operation.Operation == ast.Subscription
	if subscription {
		ctx = r.freshLoaders(ctx)
	}
	if !r.ReadAudit {
		return next(ctx)
	}
	log := &readLog{}
	resp := next(context.WithValue(ctx, readLogKey{}, log))
	if resp == nil || log.m == nil {
		return resp
	}
	// Its reads are recorded for this subscriber: nobody else gets it.
	unshareable(ctx)
	if p, ok := ctx.Value(pendingKey{}).(*pendingReads); ok && subscription {
		if wait := p.add(log, r.readFlush()); wait <= 0 {
			r.flushPending(ctx, oc, p)
		} else {
			p.armOnce(wait, func() { r.flushPending(context.WithoutCancel(ctx), oc, p) })
		}
		return resp
	}
	if err := r.recordReads(ctx, oc, log); err != nil {
		return r.withheld(ctx, err)
	}
	return resp
}

// withheld is the answer of a request whose read record could not be
// written: UNAVAILABLE (retryable, 503) when its store is unreachable, an
// internal error otherwise.
func (r *Resolver) withheld(ctx context.Context, err error) *graphql.Response {
	id := products.RequestIDFrom(ctx)
	var pe *products.Error
	if errors.As(products.Unavailability(err), &pe) && pe.Code == products.Unavailable {
		// The store is restarting or cut off: the client may retry, as
		// with any read that cannot reach it.
		r.logger().WarnContext(ctx, "read audit: store unreachable; response withheld", slog.String("request_id", id), slog.String("error", err.Error()))
		ext := map[string]any{"code": string(pe.Code), "requestId": id}
		for k, v := range pe.Extensions {
			ext[k] = v
		}
		return &graphql.Response{Errors: gqlerror.List{{Message: pe.Message, Extensions: ext}}}
	}
	r.logger().ErrorContext(ctx, "read audit failed; response withheld", slog.String("request_id", id), slog.String("error", err.Error()))
	return &graphql.Response{Errors: gqlerror.List{{
		Message:    fmt.Sprintf("internal error (request %s)", id),
		Extensions: map[string]any{"code": "INTERNAL_SERVER_ERROR", "requestId": id},
	}}}
}

// pendingReads gathers the reads of a subscription's events until they are
// written: at once when the last write is at least ReadFlush ago, else
// when that much time has passed (a timer), and when the subscription
// ends.
type pendingReads struct {
	mu      sync.Mutex
	log     *readLog
	written time.Time
	timer   *time.Timer
}

type pendingKey struct{}

// add gathers an event's reads and returns how long until they are due.
func (p *pendingReads) add(l *readLog, every time.Duration) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.log == nil {
		p.log = &readLog{}
	}
	for product, byEntity := range l.m {
		for entity, er := range byEntity {
			fields := make([]string, 0, len(er.fields))
			for f := range er.fields {
				fields = append(fields, f)
			}
			for key := range er.keys {
				p.log.addFields(product, entity, fields, key)
			}
		}
	}
	return every - time.Since(p.written)
}

// armOnce makes flush run after wait unless a run is pending already.
func (p *pendingReads) armOnce(wait time.Duration, flush func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.timer == nil {
		p.timer = time.AfterFunc(wait, flush)
	}
}

// watchSubscription makes a subscription gather its reads (PerResponse) and
// write what is left when it ends. Called when the operation starts.
func (r *Resolver) watchSubscription(ctx context.Context) context.Context {
	p := &pendingReads{}
	ctx = context.WithValue(ctx, pendingKey{}, p)
	oc := graphql.GetOperationContext(ctx)
	context.AfterFunc(ctx, func() { r.flushPending(context.WithoutCancel(ctx), oc, p) })
	return ctx
}

// flushPending writes a subscription's gathered reads. A failure is logged
// (the events are sent already) and the reads stay gathered for the next
// attempt.
func (r *Resolver) flushPending(ctx context.Context, oc *graphql.OperationContext, p *pendingReads) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	if p.log == nil || p.log.m == nil {
		return
	}
	if err := r.recordReads(ctx, oc, p.log); err != nil {
		r.logger().ErrorContext(ctx, "read audit of a subscription failed", slog.String("request_id", products.RequestIDFrom(ctx)), slog.String("error", err.Error()))
		return
	}
	p.log, p.written = nil, time.Now()
}

func (r *Resolver) readFlush() time.Duration {
	if r.ReadFlush > 0 {
		return r.ReadFlush
	}
	return time.Second
}

// recordReads writes one read record per product read.
func (r *Resolver) recordReads(ctx context.Context, oc *graphql.OperationContext, log *readLog) error {
	// The record must be written even if the client has just gone: the
	// response was computed.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	id := products.IdentityFrom(ctx)
	rec := products.PIIRead{Subject: products.ActorFrom(ctx), RequestID: products.RequestIDFrom(ctx)}
	if id != nil {
		rec.KeyName = id.KeyName
	}
	if oc != nil && oc.Operation != nil {
		rec.Operation = oc.Operation.Name
	}
	for product, reads := range log.reads() {
		s := r.Data.Store(product)
		if s == nil {
			return fmt.Errorf("read audit: no store for %s", product)
		}
		rec := rec
		if err := s.RecordReads(ctx, &rec, reads); err != nil {
			return err
		}
	}
	return nil
}

func (r *Resolver) logger() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// readSignal wakes the piiReads subscriptions of this process when a read
// record is committed here; records of other instances are polled.
type readSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *readSignal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *readSignal) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

func (r *Resolver) readSignal() *readSignal {
	r.readsOnce.Do(func() {
		r.reads = &readSignal{ch: make(chan struct{})}
		for _, s := range r.Data.Stores {
			s.OnReads(r.reads.notify)
		}
	})
	return r.reads
}

// readScope returns the products a read-audit or change stream covers for
// the caller: the one named (it must exist and be readable), else every
// product the caller may read (at least one).
func (r *Resolver) readScope(a *access, arg string, named []string) ([]string, error) {
	for _, p := range named {
		if r.Data.Store(p) == nil {
			return nil, products.Invalid(arg, "unknown data product %q", p)
		}
		if !a.canRead(p) {
			return nil, a.need(products.ReadRole(p), "streaming "+p)
		}
	}
	if len(named) > 0 {
		return named, nil
	}
	var out []string
	for _, s := range r.Data.Stores {
		if a.canRead(s.Product.Name) {
			out = append(out, s.Product.Name)
		}
	}
	if len(out) == 0 {
		return nil, products.Forbid(arg, "the caller may read no data product (it needs a <product>:read role)")
	}
	return out, nil
}

// piiReads streams the read records of the products in scope: with since,
// those after it, else those committed from now on. It wakes when this
// process records reads and polls every ReadPoll for other instances'.
func (r *Resolver) piiReads(ctx context.Context, scope []string, since *string) (<-chan *products.PIIRead, error) {
	pos := streaming.Cursor{}
	if since != nil {
		cur, err := streaming.ParseCursor(*since)
		if err != nil {
			return nil, err
		}
		for _, p := range scope {
			at, ok := cur[p]
			if !ok {
				return nil, products.Invalid("since", "the cursor does not cover product %s; use a cursor of the same subscription", p)
			}
			latest, err := r.Data.Store(p).LatestRead(ctx)
			if err != nil {
				return nil, err
			}
			if at > latest {
				return nil, products.Invalid("since", "the cursor points past the end of the %s read log", p)
			}
			pos[p] = at
		}
	}
	sig := r.readSignal()
	wake := sig.wait()
	if since == nil {
		for _, p := range scope {
			latest, err := r.Data.Store(p).LatestRead(ctx)
			if err != nil {
				return nil, err
			}
			pos[p] = latest
		}
	}
	poll := r.ReadPoll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	out := make(chan *products.PIIRead)
	go func() {
		defer close(out)
		tick := time.NewTicker(poll)
		defer tick.Stop()
		for {
			full := false
			for _, p := range scope {
				recs, err := r.Data.Store(p).ReadsAfter(ctx, pos[p], 500)
				if err != nil {
					failStream(ctx, out, err)
					return
				}
				full = full || len(recs) == 500
				for i := range recs {
					rec := &recs[i]
					pos[p] = rec.Sequence
					rec.StreamCursor = pos.Clone().String()
					select {
					case out <- rec:
					case <-ctx.Done():
						return
					}
				}
			}
			if full {
				continue
			}
			select {
			case <-ctx.Done():
				return
			case <-wake:
			case <-tick.C:
			}
			wake = sig.wait()
		}
	}()
	return out, nil
}
