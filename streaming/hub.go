package streaming

import (
	"context"
	"errors"
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
	// Match, if set, is evaluated last, on the subscriber's goroutine.
	Match func(*products.AuditEntry) (bool, error)
}

func (f *Filter) cheap(a *products.AuditEntry) bool {
	return (len(f.Products) == 0 || f.Products[a.Product]) &&
		(len(f.Entities) == 0 || f.Entities[a.Entity]) &&
		(len(f.Ops) == 0 || f.Ops[a.Op]) &&
		(f.Actor == "" || f.Actor == a.Actor)
}

// SlowConsumerError ends a stream whose subscriber did not keep up; Cursor
// resumes right after the last event it received.
type SlowConsumerError struct{ Cursor Cursor }

func (e *SlowConsumerError) Error() string {
	return "the subscriber did not keep up with the stream; subscribe again with since: <cursor>"
}

// Hub consumes the change topics of every product (one consumer per gateway
// instance) and fans the events out to subscriptions. Subscribers have
// bounded buffers: one that falls behind is dropped, never waited for.
type Hub struct {
	Stores []*products.Store
	Codec  Codec
	Kafka  KafkaConfig
	Log    *slog.Logger
	// Buffer is each subscription's queue length (default 1024).
	Buffer int
	// MaxBackoff bounds the wait before reconnecting to Kafka (default 5s).
	MaxBackoff time.Duration

	initOnce sync.Once
	ready    chan struct{}
	stores   map[string]*products.Store
	last     map[string]int64 // per product: last sequence fanned out (hub goroutine only)

	mu   sync.Mutex
	subs map[*sub]struct{}

	subscribers atomic.Int64
	delivered   atomic.Int64
	dropped     atomic.Int64
}

type sub struct {
	filter  *Filter
	ch      chan *products.AuditEntry
	dropped chan struct{}
}

func (h *Hub) init() {
	h.initOnce.Do(func() {
		h.ready = make(chan struct{})
		h.stores = map[string]*products.Store{}
		h.last = map[string]int64{}
		h.subs = map[*sub]struct{}{}
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
}

// Stats returns the current counters.
func (h *Hub) Stats() Stats {
	return Stats{Subscribers: h.subscribers.Load(), Delivered: h.delivered.Load(), Dropped: h.dropped.Load()}
}

// Ready is closed once the hub consumes the topics.
func (h *Hub) Ready() <-chan struct{} {
	h.init()
	return h.ready
}

// Run consumes until ctx ends (then it returns nil), reconnecting with
// backoff while Kafka is unreachable and resuming at the next offset.
func (h *Hub) Run(ctx context.Context) error {
	h.init()
	maxBackoff := h.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Second
	}
	offsets := map[topicPartition]int64{}
	backoff := time.Duration(0)
	for {
		err := h.consume(ctx, offsets)
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

func (h *Hub) consume(ctx context.Context, offsets map[topicPartition]int64) error {
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
			tp := topicPartition{topic, p}
			start, ok := offsets[tp]
			if !ok {
				start = sarama.OffsetNewest
			}
			pc, err := consumer.ConsumePartition(topic, p, start)
			if errors.Is(err, sarama.ErrOffsetOutOfRange) {
				pc, err = consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
			}
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
	// committed later arrives through them (or fills a gap from the log).
	select {
	case <-h.ready:
	default:
		for name, s := range h.stores {
			latest, err := s.Latest(ctx)
			if err != nil {
				return err
			}
			h.last[name] = latest
		}
		close(h.ready)
		h.Log.Info("hub: consuming change topics", "topics", len(h.topics()))
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case m := <-msgs:
			offsets[topicPartition{m.Topic, m.Partition}] = m.Offset + 1
			h.dispatch(ctx, m)
		}
	}
}

// dispatch fans one consumed event out. Events of a product arrive in
// sequence order within a partition but interleaved across topics and
// partitions; an event past the next expected sequence first brings the
// missing entries from the product's audit log, so subscribers always get a
// product's entries in order, and later duplicates are dropped.
func (h *Hub) dispatch(ctx context.Context, m *sarama.ConsumerMessage) {
	a, err := h.Codec.Entry(m.Key, m.Value)
	if err != nil {
		h.Log.Warn("hub: skipping message", "topic", m.Topic, "offset", m.Offset, "error", err)
		return
	}
	s := h.stores[a.Product]
	last := h.last[a.Product]
	if s == nil || a.Sequence <= last {
		return
	}
	entries := []products.AuditEntry{*a}
	if a.Sequence > last+1 {
		entries, err = s.Entries(ctx, last, a.Sequence, int(a.Sequence-last))
		if err != nil {
			h.Log.Warn("hub: reading audit log to fill a gap failed", "product", a.Product, "error", err)
			return
		}
	}
	if n := len(entries); n > 0 {
		h.last[a.Product] = entries[n-1].Sequence
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for sb := range h.subs {
		for i := range entries {
			e := &entries[i]
			if !sb.filter.cheap(e) {
				continue
			}
			select {
			case sb.ch <- e:
				h.delivered.Add(1)
			default:
				close(sb.dropped)
				delete(h.subs, sb)
				h.dropped.Add(1)
			}
			if _, ok := h.subs[sb]; !ok {
				break
			}
		}
	}
}

func (h *Hub) subscribe(f *Filter) *sub {
	n := h.Buffer
	if n <= 0 {
		n = 1024
	}
	sb := &sub{filter: f, ch: make(chan *products.AuditEntry, n), dropped: make(chan struct{})}
	h.mu.Lock()
	h.subs[sb] = struct{}{}
	h.mu.Unlock()
	h.subscribers.Add(1)
	return sb
}

func (h *Hub) unsubscribe(sb *sub) {
	h.mu.Lock()
	delete(h.subs, sb)
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
		latest, err := h.stores[p].Latest(ctx)
		if err != nil {
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
// fails, or the subscriber falls behind (*SlowConsumerError). A since
// cursor that does not cover the filter's products or points past their
// logs is BAD_USER_INPUT.
func (h *Hub) Stream(ctx context.Context, f *Filter, since Cursor, emit func(Event) error) error {
	h.init()
	select {
	case <-h.ready:
	case <-ctx.Done():
		return nil
	}
	scope, err := h.Check(ctx, f, since)
	if err != nil {
		return err
	}
	// Register first, then read positions: whatever is published after the
	// registration reaches the queue, whatever was committed before is in
	// the logs.
	sb := h.subscribe(f)
	defer h.unsubscribe(sb)
	pos := Cursor{}
	for _, p := range scope {
		latest, err := h.stores[p].Latest(ctx)
		if err != nil {
			return err
		}
		if since == nil {
			pos[p] = latest
		} else {
			pos[p] = since[p]
		}
	}
	deliver := func(e *products.AuditEntry) error {
		pos[e.Product] = e.Sequence
		if !f.cheap(e) {
			return nil
		}
		if f.Match != nil {
			ok, err := f.Match(e)
			if err != nil || !ok {
				return err
			}
		}
		return emit(Event{Entry: e, Cursor: pos.Clone()})
	}
	// fill delivers a product's entries after its position up to through
	// (everything when 0).
	fill := func(p string, through int64) error {
		for {
			entries, err := h.stores[p].Entries(ctx, pos[p], through, 500)
			if err != nil {
				return err
			}
			for i := range entries {
				if err := deliver(&entries[i]); err != nil {
					return err
				}
			}
			if len(entries) < 500 {
				return nil
			}
		}
	}
	if since != nil {
		for _, p := range scope {
			if err := fill(p, 0); err != nil {
				return err
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sb.dropped:
			return &SlowConsumerError{Cursor: pos.Clone()}
		case e := <-sb.ch:
			last, ok := pos[e.Product]
			if !ok || e.Sequence <= last {
				continue
			}
			if e.Sequence > last+1 {
				if err := fill(e.Product, e.Sequence-1); err != nil {
					return err
				}
			}
			if err := deliver(e); err != nil {
				return err
			}
		}
	}
}
