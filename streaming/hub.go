package streaming

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/meshgate/meshgate/products"
)

// Event is one audit entry delivered to a subscriber, with the cursor that
// resumes right after it.
type Event struct {
	Entry  *products.AuditEntry
	Cursor Cursor
}

// Filter selects the events of a stream. Empty sets select everything.
type Filter struct {
	Products map[string]bool
	Entities map[string]bool
	Ops      map[products.Op]bool
	Actor    string
	// Match, if set, is evaluated last, with what Decoder made of the
	// entry (nil without a Decoder). For live events the hub evaluates it
	// once per entry and subscription, on its own goroutine, so that
	// entries a subscription does not want are never queued for it: it
	// must be cheap and must not block. An error ends the stream with it.
	Match   func(e *products.AuditEntry, decoded any) (bool, error)
	Decoder *Decoder
	// Key, if set, names Match: filters with the same Key (and Decoder)
	// must decide alike, and the hub evaluates Match once per entry and
	// Key, however many subscriptions share it (dashboards often do).
	Key string
}

// Decoder turns an audit entry into what filters look at, for example its
// row image decoded from JSON. The hub decodes each live entry at most once
// per Decoder, however many subscriptions use it: declare one per kind of
// value (a package-level variable), not one per subscription.
type Decoder struct {
	Decode func(*products.AuditEntry) (any, error)
}

func (f *Filter) cheap(a *products.AuditEntry) bool {
	return (len(f.Products) == 0 || f.Products[a.Product]) &&
		(len(f.Entities) == 0 || f.Entities[a.Entity]) &&
		(len(f.Ops) == 0 || f.Ops[a.Op]) &&
		(f.Actor == "" || f.Actor == a.Actor)
}

// match evaluates the whole filter; decode returns the entry decoded by a
// decoder (memoised by the caller or not).
func (f *Filter) match(a *products.AuditEntry, decode func(*Decoder) (any, error)) (bool, error) {
	if !f.cheap(a) {
		return false, nil
	}
	if f.Match == nil {
		return true, nil
	}
	var decoded any
	if f.Decoder != nil {
		var err error
		if decoded, err = decode(f.Decoder); err != nil {
			return false, err
		}
	}
	return f.Match(a, decoded)
}

// SlowConsumerError ends a stream whose subscriber did not keep up; Cursor
// resumes right after the last event it received.
type SlowConsumerError struct{ Cursor Cursor }

func (e *SlowConsumerError) Error() string {
	return "the subscriber did not keep up with the stream; subscribe again with since: <cursor>"
}

// UnavailableError ends a stream whose store stayed unreachable longer
// than the hub rides outages out (Hub.OutageGrace); Cursor, if set,
// resumes right after the last event delivered.
type UnavailableError struct {
	Product string
	Cursor  Cursor
	Err     error
}

func (e *UnavailableError) Error() string {
	return "the " + e.Product + " store is unreachable; subscribe again with since: <cursor> in a few seconds"
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Hub consumes the change topics of every product (one consumer per gateway
// instance) and fans the events out to subscriptions. Subscribers have
// bounded buffers: one that falls behind is dropped, never waited for.
//
// The hub hands every subscription each entry of its products in sequence
// order, from the moment it registers: the entries its filter rejects are
// simply not queued. So a subscription's position advances over the
// entries it does not want without reading the log; only the hub itself
// reads the log, once for all subscriptions, when entries of a product
// arrive out of order (they travel on several topics and partitions) or
// after reconnecting.
type Hub struct {
	Stores []*products.Store
	Codec  Codec
	Kafka  KafkaConfig
	Log    *slog.Logger
	// Buffer is how many entries may wait in a subscription's queue
	// before the subscription is dropped as slow (default 1024). The
	// queue holds only the entries waiting, not Buffer slots.
	Buffer int
	// MaxBackoff bounds the wait before reconnecting to Kafka (default 5s).
	MaxBackoff time.Duration
	// OutageGrace is how long a subscription's read of an audit log (its
	// replay from a cursor, a gap fill) retries, with backoff, while the
	// store is unreachable before the stream ends with UNAVAILABLE and its
	// cursor (default 30s).
	OutageGrace time.Duration

	initOnce  sync.Once
	ready     chan struct{}
	stores    map[string]*products.Store
	drainOnce sync.Once
	draining  chan struct{} // closed by Drain

	mu sync.Mutex
	// subs holds the subscriptions by product, then by entity ("": all
	// entities), so an entry is offered only to those that may want it.
	subs map[string]map[string]map[*sub]struct{}
	// last is, per product, the last sequence offered to the
	// subscriptions (written by the hub goroutine under mu).
	last map[string]int64

	subscribers atomic.Int64
	delivered   atomic.Int64
	dropped     atomic.Int64
	hubReads    atomic.Int64
	subReads    atomic.Int64
	retries     atomic.Int64
}

type sub struct {
	filter *Filter
	// The queue of entries offered and not yet taken by the stream, in
	// order: at most limit of them (more drops the subscription as slow).
	// Its slots are allocated as entries wait and released when it
	// empties, so an idle subscription holds none (a fixed channel of
	// limit slots cost 8 KiB each at the default 1024).
	qmu   sync.Mutex
	queue []*products.AuditEntry
	head  int // queue[head:] are waiting
	limit int
	// ready holds a token while entries wait (capacity 1).
	ready   chan struct{}
	dropped chan struct{}
	// notify, if set, is called when entries start to wait and when the
	// subscription is dropped (see Hub.Watch): the stream has no goroutine
	// blocked on ready and dropped while it is idle.
	notify func()
	// err, set before dropped is closed, is why the hub dropped the
	// subscription if not for being slow (its filter failed).
	err error
	// from is, per product of the stream, the hub's position when the
	// subscription registered: every entry after it is offered to the
	// subscription, and the ones it receives are those its filter passed.
	from map[string]int64
	gone bool // dropped or unsubscribed (h.mu)
}

// offer queues an entry for the stream; false when limit entries already
// wait (the subscriber is slow).
func (sb *sub) offer(e *products.AuditEntry) bool {
	sb.qmu.Lock()
	defer sb.qmu.Unlock()
	waiting := len(sb.queue) - sb.head
	if waiting >= sb.limit {
		return false
	}
	if sb.head > 0 && len(sb.queue) == cap(sb.queue) {
		// Reuse the slots already taken before growing.
		n := copy(sb.queue, sb.queue[sb.head:])
		clear(sb.queue[n:])
		sb.queue, sb.head = sb.queue[:n], 0
	}
	sb.queue = append(sb.queue, e)
	if waiting == 0 {
		select {
		case sb.ready <- struct{}{}:
		default:
		}
		if sb.notify != nil {
			sb.notify()
		}
	}
	return true
}

// keptSlots is how many queue slots an emptied queue keeps (a subscription
// that gets one event at a time reuses them); a longer queue is released.
const keptSlots = 4

// take removes the oldest waiting entry; false when none waits. While more
// wait, ready keeps a token, so the stream's select sees them one at a time
// beside its other cases, as it saw a channel's.
func (sb *sub) take() (*products.AuditEntry, bool) {
	sb.qmu.Lock()
	defer sb.qmu.Unlock()
	if sb.head == len(sb.queue) {
		return nil, false
	}
	e := sb.queue[sb.head]
	sb.queue[sb.head] = nil
	sb.head++
	if sb.head < len(sb.queue) {
		select {
		case sb.ready <- struct{}{}:
		default:
		}
	} else if cap(sb.queue) > keptSlots {
		sb.queue, sb.head = nil, 0
	} else {
		sb.queue, sb.head = sb.queue[:0], 0
	}
	return e, true
}

// entities returns the index keys of a subscription's entities.
func (sb *sub) entities() []string {
	if len(sb.filter.Entities) == 0 {
		return []string{""}
	}
	out := make([]string, 0, len(sb.filter.Entities))
	for e := range sb.filter.Entities {
		out = append(out, e)
	}
	return out
}

func (h *Hub) init() {
	h.initOnce.Do(func() {
		h.ready = make(chan struct{})
		h.draining = make(chan struct{})
		h.stores = map[string]*products.Store{}
		h.last = map[string]int64{}
		h.subs = map[string]map[string]map[*sub]struct{}{}
		for _, s := range h.Stores {
			h.stores[s.Product.Name] = s
		}
		if h.Log == nil {
			h.Log = slog.New(slog.DiscardHandler)
		}
	})
}

// Stats are the hub's counters.
type Stats struct {
	Subscribers, Delivered, Dropped int64
	// HubReads counts the hub's reads of the audit logs (entries that
	// arrived out of order, catching up after a reconnect); SubscriberReads
	// counts reads by single subscriptions (replays from a since cursor).
	HubReads, SubscriberReads int64
	// StoreRetries counts subscription reads repeated because a store was
	// unreachable.
	StoreRetries int64
}

// Stats returns the current counters.
func (h *Hub) Stats() Stats {
	return Stats{Subscribers: h.subscribers.Load(), Delivered: h.delivered.Load(), Dropped: h.dropped.Load(),
		HubReads: h.hubReads.Load(), SubscriberReads: h.subReads.Load(), StoreRetries: h.retries.Load()}
}

// retry runs read until it succeeds, fails for another reason than an
// unreachable store, or the store stays unreachable for OutageGrace; then
// it returns an *UnavailableError resuming at cursor() (nil: the stream
// has no position yet; the client subscribes again as it did). Reads change nothing, so repeating them is safe.
func (h *Hub) retry(ctx context.Context, product string, cursor func() Cursor, read func() error) error {
	grace := h.OutageGrace
	if grace <= 0 {
		grace = 30 * time.Second
	}
	var deadline time.Time
	backoff := 50 * time.Millisecond
	for {
		err := read()
		if err == nil || !products.Unreachable(err) || ctx.Err() != nil {
			return err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(grace)
			h.Log.WarnContext(ctx, "hub: store unreachable; a subscription's read retries", "product", product, "error", err, "for", grace)
		}
		if time.Now().Add(backoff).After(deadline) {
			return &UnavailableError{Product: product, Cursor: cursor(), Err: err}
		}
		h.retries.Add(1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// Ready is closed once the hub consumes the topics.
func (h *Hub) Ready() <-chan struct{} {
	h.init()
	return h.ready
}

// Drain ends every stream, present and future, with a ShuttingDown error
// carrying the stream's cursor: the first step of a graceful shutdown, so
// that each subscriber learns where to resume on another instance. The hub
// itself keeps running until its context ends.
func (h *Hub) Drain() {
	h.init()
	h.drainOnce.Do(func() {
		close(h.draining)
		// Streams without a goroutine of their own (Watch) learn it now.
		h.mu.Lock()
		var notify []func()
		seen := map[*sub]bool{}
		for _, byEntity := range h.subs {
			for _, set := range byEntity {
				for sb := range set {
					if sb.notify != nil && !seen[sb] {
						seen[sb] = true
						notify = append(notify, sb.notify)
					}
				}
			}
		}
		h.mu.Unlock()
		for _, n := range notify {
			n()
		}
	})
}

// ShuttingDown is the error that ends a stream when the gateway instance
// shuts down (Hub.Drain): UNAVAILABLE, retryable, with the cursor that
// resumes right after the last event delivered (extensions.cursor). The
// subscriber subscribes again, on another instance, with since: cursor and
// misses nothing.
func ShuttingDown(c Cursor) *products.Error {
	return &products.Error{Code: products.Unavailable,
		Message:    "this gateway instance is shutting down; subscribe again (another instance answers) with since: <cursor>",
		Extensions: map[string]any{"cursor": c.String(), "reason": "SHUTTING_DOWN"}}
}

// consumeState survives reconnections: the cluster consumed and, per
// partition, the next offset to read.
type consumeState struct {
	cluster string
	offsets map[topicPartition]int64
}

// Run consumes until ctx ends (then it returns nil), reconnecting with
// backoff while Kafka is unreachable. A reconnection to the same cluster
// resumes every partition exactly where it stopped (the starting offsets
// of partitions that delivered nothing yet were recorded when they were
// first consumed); then the hub reads the audit logs for whatever was
// committed meanwhile, so nothing waits for a later change to surface.
func (h *Hub) Run(ctx context.Context) error {
	h.init()
	maxBackoff := h.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Second
	}
	st := &consumeState{offsets: map[topicPartition]int64{}}
	backoff := time.Duration(0)
	for {
		err := h.consume(ctx, st)
		if ctx.Err() != nil {
			return nil
		}
		backoff = min(max(2*backoff, 100*time.Millisecond), maxBackoff)
		h.Log.Warn("hub: consuming failed; reconnecting", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
}

type topicPartition struct {
	topic     string
	partition int32
}

func (h *Hub) topics() []string {
	var out []string
	for _, s := range h.Stores {
		for _, e := range s.Product.Entities {
			out = append(out, h.Codec.Topic(s.Product.Name, e))
		}
	}
	return out
}

// startOffset returns where to start consuming a partition: the recorded
// offset, kept within what the partition holds, or (first time) the newest
// offset, which is then recorded.
func startOffset(client sarama.Client, st *consumeState, tp topicPartition) (int64, error) {
	newest, err := client.GetOffset(tp.topic, tp.partition, sarama.OffsetNewest)
	if err != nil {
		return 0, fmt.Errorf("offset of %s/%d: %w", tp.topic, tp.partition, err)
	}
	at, ok := st.offsets[tp]
	switch {
	case !ok || at > newest:
		// Past the end: the partition lost records (the hub catches up
		// from the audit logs).
		at = newest
	default:
		oldest, err := client.GetOffset(tp.topic, tp.partition, sarama.OffsetOldest)
		if err != nil {
			return 0, fmt.Errorf("offset of %s/%d: %w", tp.topic, tp.partition, err)
		}
		at = max(at, oldest)
	}
	st.offsets[tp] = at
	return at, nil
}

func (h *Hub) consume(ctx context.Context, st *consumeState) error {
	cfg, err := h.Kafka.Sarama()
	if err != nil {
		return err
	}
	cfg.Consumer.Return.Errors = true
	client, err := sarama.NewClient(h.Kafka.Brokers, cfg)
	if err != nil {
		return fmt.Errorf("connect to %v: %w", h.Kafka.Brokers, err)
	}
	defer client.Close()
	cluster, err := clusterID(client, "")
	if err != nil {
		return err
	}
	if st.cluster != "" && st.cluster != cluster {
		h.Log.Warn("hub: the Kafka cluster changed; consuming from the newest offsets and catching up from the audit logs",
			"cluster", cluster, "previous", st.cluster)
		st.offsets = map[topicPartition]int64{}
	}
	st.cluster = cluster
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	defer consumer.Close()

	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	msgs := make(chan *sarama.ConsumerMessage, 256)
	errc := make(chan error, 1)
	for _, topic := range h.topics() {
		if err := createTopic(client, topic, h.Kafka.Partitions, h.Kafka.ReplicationFactor); err != nil {
			return err
		}
		parts, err := client.Partitions(topic)
		if err != nil {
			return fmt.Errorf("partitions of %s: %w", topic, err)
		}
		for _, p := range parts {
			start, err := startOffset(client, st, topicPartition{topic, p})
			if err != nil {
				return err
			}
			pc, err := consumer.ConsumePartition(topic, p, start)
			if err != nil {
				return fmt.Errorf("consume %s/%d: %w", topic, p, err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer pc.AsyncClose()
				for {
					select {
					case <-cctx.Done():
						return
					case m, ok := <-pc.Messages():
						if !ok {
							return
						}
						select {
						case msgs <- m:
						case <-cctx.Done():
							return
						}
					case e, ok := <-pc.Errors():
						if !ok {
							return
						}
						select {
						case errc <- e:
						default:
						}
						return
					}
				}
			}()
		}
	}
	// Positions are read after the partition consumers are placed: anything
	// committed later arrives through them (or is read from the log).
	select {
	case <-h.ready:
		// Reconnected: whatever was committed while the hub was away may
		// sit in partitions before the offsets just placed (a broker that
		// lost its log), or not be published yet: read it from the logs.
		for name := range h.stores {
			if err := h.catchUp(ctx, name); err != nil {
				return err
			}
		}
	default:
		h.mu.Lock()
		for name, s := range h.stores {
			latest, err := s.Latest(ctx)
			if err != nil {
				h.mu.Unlock()
				return err
			}
			h.last[name] = latest
		}
		h.mu.Unlock()
		close(h.ready)
		h.Log.Info("hub: consuming change topics", "topics", len(h.topics()), "cluster", cluster)
	}
	r := newReorder()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case m := <-msgs:
			st.offsets[topicPartition{m.Topic, m.Partition}] = m.Offset + 1
			h.dispatch(ctx, m, r)
		case <-r.wake:
			h.expire(ctx, r)
		}
	}
}

// catchUp offers a product's entries committed after the hub's position,
// read from its audit log.
func (h *Hub) catchUp(ctx context.Context, product string) error {
	s := h.stores[product]
	latest, err := s.Latest(ctx)
	if err != nil {
		return err
	}
	for h.last[product] < latest {
		h.hubReads.Add(1)
		entries, err := s.Entries(ctx, h.last[product], latest, 500)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			return nil
		}
		h.fanOut(entries)
	}
	return nil
}

// reorderWindow is how long the hub holds an entry that arrived before
// entries preceding it in its product's log, waiting for them to arrive too
// (they travel on other topics or partitions, usually a moment apart),
// before it reads them from the log instead.
const reorderWindow = 20 * time.Millisecond

// reorder holds, per product, entries that arrived ahead of their
// predecessors (hub goroutine only).
type reorder struct {
	parked map[string]map[int64]*arrived
	since  map[string]time.Time // when the product's waiting began
	wake   <-chan time.Time     // set while something is parked
	// failures counts, per product, the gap fills that failed in a row.
	failures map[string]int
}

func newReorder() *reorder {
	return &reorder{parked: map[string]map[int64]*arrived{}, since: map[string]time.Time{}, failures: map[string]int{}}
}

// arrived is a consumed event, decoded only if a subscription may want it:
// its product and sequence come from its ce_id header when it has one.
type arrived struct {
	product  string
	sequence int64
	msg      *sarama.ConsumerMessage
	entry    *products.AuditEntry // nil until decoded
}

// dispatch fans one consumed event out. Events of a product arrive in
// sequence order within a partition but interleaved across topics and
// partitions: an event past the next expected sequence waits (reorder)
// for the missing ones for up to reorderWindow, then they are read from
// the product's audit log. So subscribers always get a product's entries
// in order, and later duplicates are dropped. An event of a product no
// subscription covers only advances the product's position: it is not
// decoded.
func (h *Hub) dispatch(ctx context.Context, m *sarama.ConsumerMessage, r *reorder) {
	a := &arrived{msg: m}
	var ok bool
	if a.product, a.sequence, ok = h.Codec.position(m); !ok {
		if !h.decode(a) {
			return
		}
	}
	p := a.product
	if h.stores[p] == nil || a.sequence <= h.last[p] {
		return
	}
	if a.sequence > h.last[p]+1 {
		if r.parked[p] == nil {
			r.parked[p] = map[int64]*arrived{}
			r.since[p] = time.Now()
			if r.wake == nil {
				r.wake = time.After(reorderWindow)
			}
		}
		r.parked[p][a.sequence] = a
		return
	}
	h.offer(a)
	h.unpark(p, r)
}

// decode decodes an arrived event; false (logged) if it is not a change
// event of the product and sequence it claimed.
func (h *Hub) decode(a *arrived) bool {
	e, err := h.Codec.Entry(a.msg.Key, a.msg.Value)
	if err == nil && a.product != "" && (e.Product != a.product || e.Sequence != a.sequence) {
		err = fmt.Errorf("its ce_id header names %s-%d, its envelope %s/%d", a.product, a.sequence, e.Product, e.Sequence)
	}
	if err != nil {
		h.Log.Warn("hub: skipping message", "topic", a.msg.Topic, "offset", a.msg.Offset, "error", err)
		return false
	}
	a.entry, a.product, a.sequence = e, e.Product, e.Sequence
	return true
}

// offer fans out an arrived event that follows its product's position:
// decoded only if a subscription covers the product.
func (h *Hub) offer(a *arrived) {
	if a.entry == nil {
		if h.passUnwatched(a.product, a.sequence) {
			return
		}
		if !h.decode(a) {
			return
		}
	}
	h.fanOut([]products.AuditEntry{*a.entry})
}

// passUnwatched advances the product's position to sequence, the next
// one, if no subscription covers the product, and tells whether it did.
// A subscription registering later starts after it, so it is not owed the
// entry.
func (h *Hub) passUnwatched(product string, sequence int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.subs[product] {
		if len(set) > 0 {
			return false
		}
	}
	h.last[product] = sequence
	return true
}

// unpark offers the product's parked entries that follow its position now.
func (h *Hub) unpark(p string, r *reorder) {
	parked := r.parked[p]
	if parked == nil {
		return
	}
	for {
		a, ok := parked[h.last[p]+1]
		if !ok {
			break
		}
		delete(parked, a.sequence)
		before := h.last[p]
		h.offer(a)
		if h.last[p] == before {
			// Not a change event after all: the gap stays, to be read
			// from the log.
			break
		}
	}
	for seq := range parked {
		if seq <= h.last[p] {
			delete(parked, seq)
		}
	}
	if len(parked) == 0 {
		delete(r.parked, p)
		delete(r.since, p)
	}
}

// expire reads from the logs what parked entries waited for longer than
// reorderWindow, and offers it.
func (h *Hub) expire(ctx context.Context, r *reorder) {
	r.wake = nil
	now := time.Now()
	for p, since := range r.since {
		if now.Sub(since) < reorderWindow {
			continue
		}
		var through int64
		for seq := range r.parked[p] {
			through = max(through, seq)
		}
		last := h.last[p]
		h.hubReads.Add(1)
		entries, err := h.stores[p].Entries(ctx, last, through, int(through-last))
		if err != nil {
			// Try again later, backing off while the store is down
			// (logged once per outage).
			n := r.failures[p]
			if n == 0 {
				h.Log.Warn("hub: reading audit log to fill a gap failed; retrying", "product", p, "error", err)
			}
			r.failures[p] = n + 1
			r.since[p] = now.Add(min(reorderWindow<<min(n, 7), 2*time.Second) - reorderWindow)
			continue
		}
		delete(r.failures, p)
		if len(entries) > 0 {
			h.fanOut(entries)
		}
		h.unpark(p, r)
		if _, ok := r.since[p]; ok {
			r.since[p] = now
		}
	}
	if len(r.since) > 0 {
		r.wake = time.After(reorderWindow)
	}
}

// fanOut offers entries (of one product, consecutive, following the hub's
// position) to every subscription and advances the position. A
// subscription gets the entries its filter passes; one whose queue is
// full, or whose filter fails, is dropped.
func (h *Hub) fanOut(entries []products.AuditEntry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	product := entries[0].Product
	h.last[product] = entries[len(entries)-1].Sequence
	bySub := h.subs[product]
	if len(bySub) == 0 {
		return
	}
	type decoded struct {
		d   *Decoder
		v   any
		err error
	}
	type verdict struct {
		ok  bool
		err error
	}
	var memo []decoded
	verdicts := map[string]verdict{}
	for i := range entries {
		e := &entries[i]
		memo = memo[:0]
		clear(verdicts)
		decode := func(d *Decoder) (any, error) {
			for _, m := range memo {
				if m.d == d {
					return m.v, m.err
				}
			}
			v, err := d.Decode(e)
			memo = append(memo, decoded{d, v, err})
			return v, err
		}
		for _, set := range []map[*sub]struct{}{bySub[e.Entity], bySub[""]} {
			for sb := range set {
				var ok bool
				var err error
				if key := sb.filter.Key; key != "" && sb.filter.cheap(e) {
					v, seen := verdicts[key]
					if !seen {
						v.ok, v.err = sb.filter.match(e, decode)
						verdicts[key] = v
					}
					ok, err = v.ok, v.err
				} else {
					ok, err = sb.filter.match(e, decode)
				}
				if err != nil {
					sb.err = err
					h.drop(sb)
					continue
				}
				if !ok {
					continue
				}
				if sb.offer(e) {
					h.delivered.Add(1)
				} else {
					h.drop(sb)
				}
			}
		}
	}
}

// drop ends a subscription's live feed (h.mu held).
func (h *Hub) drop(sb *sub) {
	close(sb.dropped)
	h.remove(sb)
	h.dropped.Add(1)
	if sb.notify != nil {
		sb.notify()
	}
}

// remove takes a subscription out of the index (h.mu held).
func (h *Hub) remove(sb *sub) {
	if sb.gone {
		return
	}
	sb.gone = true
	for p := range sb.from {
		for _, e := range sb.entities() {
			delete(h.subs[p][e], sb)
		}
	}
}

func (h *Hub) subscribe(f *Filter, scope []string, notify func()) *sub {
	n := h.Buffer
	if n <= 0 {
		n = 1024
	}
	sb := &sub{filter: f, limit: n, ready: make(chan struct{}, 1), dropped: make(chan struct{}), from: make(map[string]int64, len(scope)), notify: notify}
	h.mu.Lock()
	for _, p := range scope {
		sb.from[p] = h.last[p]
		if h.subs[p] == nil {
			h.subs[p] = map[string]map[*sub]struct{}{}
		}
		for _, e := range sb.entities() {
			if h.subs[p][e] == nil {
				h.subs[p][e] = map[*sub]struct{}{}
			}
			h.subs[p][e][sb] = struct{}{}
		}
	}
	h.mu.Unlock()
	h.subscribers.Add(1)
	return sb
}

func (h *Hub) unsubscribe(sb *sub) {
	h.mu.Lock()
	h.remove(sb)
	h.mu.Unlock()
	h.subscribers.Add(-1)
}

// Scope returns the products a filter covers.
func (h *Hub) scope(f *Filter) []string {
	var out []string
	for _, s := range h.Stores {
		if len(f.Products) == 0 || f.Products[s.Product.Name] {
			out = append(out, s.Product.Name)
		}
	}
	sort.Strings(out)
	return out
}

// Check validates a filter and a since cursor without subscribing, and
// returns the products the stream covers.
func (h *Hub) Check(ctx context.Context, f *Filter, since Cursor) ([]string, error) {
	h.init()
	scope := h.scope(f)
	if len(scope) == 0 {
		return nil, products.Invalid("products", "no such data product")
	}
	for p := range f.Products {
		if h.stores[p] == nil {
			return nil, products.Invalid("products", "unknown data product %q", p)
		}
	}
	if since == nil {
		return scope, nil
	}
	for _, p := range scope {
		at, ok := since[p]
		if !ok {
			return nil, products.Invalid("since", "the cursor does not cover product %s; use a cursor of the same subscription", p)
		}
		var latest int64
		if err := h.retry(ctx, p, func() Cursor { return since }, func() (err error) { latest, err = h.stores[p].Latest(ctx); return err }); err != nil {
			return nil, err
		}
		if at > latest {
			return nil, products.Invalid("since", "the cursor points past the end of the %s log", p)
		}
	}
	return scope, nil
}

// Stream calls emit with every entry that passes f, in order per product:
// with since, everything after it (replayed from the audit logs, then
// live), else everything committed from now on. There is no gap and no
// duplicate at the seam. It blocks until ctx ends (returning nil), emit
// fails, the filter fails (its error), or the subscriber falls behind
// (*SlowConsumerError). A since cursor that does not cover the filter's
// products or points past their logs is BAD_USER_INPUT.
//
// Live entries come filtered by the hub; the stream reads the audit logs
// only to replay from since, never per live event.
func (h *Hub) Stream(ctx context.Context, f *Filter, since Cursor, emit func(Event) error) error {
	errc := make(chan error, 1)
	h.Watch(ctx, f, since, emit, func(err error) { errc <- err })
	return <-errc
}

// Watch is Stream without a goroutine of its own while the stream is
// idle: it returns at once, and emit runs on a goroutine started when
// entries wait for the stream (or it ends) and gone when none waits. done
// is called once, last, with what Stream would return. emit is never
// called concurrently with itself or done.
//
// An idle subscription of a websocket costed a goroutine blocked in
// Stream's select (its stack: 8 KiB and more); a watched one holds only
// its state here.
func (h *Hub) Watch(ctx context.Context, f *Filter, since Cursor, emit func(Event) error, done func(error)) {
	h.WatchIdle(ctx, f, since, emit, nil, done)
}

// WatchIdle is Watch with idle, if not nil, called each time the stream
// has emitted entries and none waits any more (on emit's goroutine, never
// concurrently with emit or done): a caller that holds back what emit
// gets, to pass on several entries at once, passes them on then.
func (h *Hub) WatchIdle(ctx context.Context, f *Filter, since Cursor, emit func(Event) error, idle func(), done func(error)) {
	h.init()
	w := &watch{h: h, ctx: ctx, f: f, since: since, emit: emit, idle: idle, done: done, running: true}
	go w.start()
}

// watch is the state of one stream (Watch).
type watch struct {
	h     *Hub
	ctx   context.Context
	f     *Filter
	since Cursor
	emit  func(Event) error
	idle  func()
	done  func(error)

	sb       *sub
	emitted  bool // emit was called since idle was
	pos      Cursor
	stopCtx  func() bool // stops the context's AfterFunc
	mu       sync.Mutex  // guards the fields below
	running  bool        // a goroutine runs the stream (start or run)
	again    bool        // something happened while it ran
	finished bool
}

// kick makes sure a goroutine looks at the stream: one is started unless
// one runs (then it looks again before it exits).
func (w *watch) kick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return
	}
	if w.running {
		w.again = true
		return
	}
	w.running = true
	go w.run()
}

// run delivers what waits until nothing does, then exits.
func (w *watch) run() {
	for {
		if end, err := w.pump(); end {
			w.finish(err)
			return
		}
		if w.emitted && w.idle != nil {
			w.emitted = false
			w.idle()
		}
		w.mu.Lock()
		if !w.again {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.again = false
		w.mu.Unlock()
	}
}

func (w *watch) finish(err error) {
	if w.stopCtx != nil {
		w.stopCtx()
	}
	if w.sb != nil {
		w.h.unsubscribe(w.sb)
	}
	w.mu.Lock()
	w.finished = true
	w.mu.Unlock()
	w.done(err)
}

// start registers the stream and replays from since, then runs it.
func (w *watch) start() {
	h, ctx, f, since := w.h, w.ctx, w.f, w.since
	select {
	case <-h.ready:
	case <-h.draining: // ends below, with the stream's cursor
	case <-ctx.Done():
		w.finish(nil)
		return
	}
	scope, err := h.Check(ctx, f, since)
	if err != nil {
		w.finish(err)
		return
	}
	// Register first, then read positions: whatever is published after the
	// registration reaches the queue, whatever was committed before is in
	// the logs.
	w.sb = h.subscribe(f, scope, w.kick)
	w.stopCtx = context.AfterFunc(ctx, w.kick)
	w.pos = Cursor{}
	for _, p := range scope {
		var latest int64
		if err := h.retry(ctx, p, func() Cursor { return since }, func() (err error) { latest, err = h.stores[p].Latest(ctx); return err }); err != nil {
			w.finish(err)
			return
		}
		if since == nil {
			w.pos[p] = latest
		} else {
			w.pos[p] = since[p]
		}
	}
	if since != nil {
		for _, p := range scope {
			if err := w.fill(p, 0); err != nil {
				w.finish(err)
				return
			}
		}
	}
	w.run()
}

// deliver advances the position to e and emits it if it passes the
// filter (already known for live entries).
func (w *watch) deliver(e *products.AuditEntry, passed bool) error {
	w.pos[e.Product] = e.Sequence
	if !passed {
		ok, err := w.f.match(e, func(d *Decoder) (any, error) { return d.Decode(e) })
		if err != nil || !ok {
			return err
		}
	}
	w.emitted = true
	return w.emit(Event{Entry: e, Cursor: w.pos.Clone()})
}

// fill delivers a product's entries after its position up to through
// (everything when 0), riding out a short outage of the store.
func (w *watch) fill(p string, through int64) error {
	h := w.h
	resume := func() Cursor { return w.pos.Clone() }
	for {
		h.subReads.Add(1)
		var entries []products.AuditEntry
		if err := h.retry(w.ctx, p, resume, func() (err error) {
			entries, err = h.stores[p].Entries(w.ctx, w.pos[p], through, 500)
			return err
		}); err != nil {
			return err
		}
		for i := range entries {
			if err := w.deliver(&entries[i], false); err != nil {
				return err
			}
		}
		if len(entries) < 500 {
			return nil
		}
	}
}

// pump delivers the entries waiting; end is true when the stream ends
// (with err).
func (w *watch) pump() (end bool, err error) {
	h, sb := w.h, w.sb
	for {
		if w.ctx.Err() != nil {
			return true, nil
		}
		select {
		case <-h.draining:
			return true, ShuttingDown(w.pos.Clone())
		case <-sb.dropped:
			if sb.err != nil {
				return true, sb.err
			}
			return true, &SlowConsumerError{Cursor: w.pos.Clone()}
		default:
		}
		e, ok := sb.take()
		if !ok {
			return false, nil
		}
		last, ok := w.pos[e.Product]
		if !ok || e.Sequence <= last {
			continue
		}
		// Entries after the registration point that did not come
		// were rejected by the filter; only entries before it (when
		// the stream's position is older) must come from the log.
		if from := sb.from[e.Product]; last < from {
			if err := w.fill(e.Product, min(from, e.Sequence-1)); err != nil {
				return true, err
			}
		}
		if err := w.deliver(e, true); err != nil {
			return true, err
		}
	}
}
