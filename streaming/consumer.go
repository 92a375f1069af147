package streaming

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/telemetry"
)

// Consumer runs a product's Reaction off Kafka with a consumer group (one
// group per consuming product, so several gateway instances share the
// partitions).
// Each batch of messages is applied in ONE transaction of the product's
// store together with the record of which (source, sequence) were applied,
// so a redelivered event is skipped; offsets are committed after the
// transaction. Broker outages, rebalances and restarts lose nothing.
type Consumer struct {
	// Store is the reacting product's store.
	Store    *products.Store
	Reaction *products.Reaction
	// Topics maps each source to its topic.
	Topics func(products.Input) (string, error)
	Codec  Codec
	Kafka  KafkaConfig
	Group  string
	Log    *slog.Logger
	// Batch is the most messages applied in one transaction (default
	// DefaultConsumerBatch). A batch costs a few statements whatever its
	// size, plus what the reaction does per event: larger batches catch up
	// faster, and only what is already fetched is waited for.
	Batch int
	// MaxBackoff bounds waits after failures: between attempts at a
	// failing batch or event, and before rejoining the group (default
	// DefaultReactionBackoffMax).
	MaxBackoff time.Duration
	// Retries is how many times an event the reaction fails on is tried
	// alone before it is parked (default DefaultReactionRetries). Failures
	// of the store do not count: they are retried for as long as they last.
	Retries int
	// DeadLetters publishes parked events to the dead-letter topic
	// "<prefix>.dlq.<product>" (default: a publisher of its own for Kafka).
	DeadLetters Sender
	// LockWait bounds the wait for the product's reaction lock (held by
	// another instance's or consumer's batch) before a batch fails and is
	// retried (default 30s).
	LockWait time.Duration
	// OnApplied, if set, is called after each committed batch.
	OnApplied func()

	mu           sync.Mutex
	applied      int64
	bySource     map[string]int64 // applied, by source product
	batches      int64            // committed transactions that applied a change
	duplicates   int64
	active       int           // batches being applied now
	busySince    time.Time     // when active became non-zero
	busy         time.Duration // time with active > 0, before busySince
	failures     int64
	deadLettered map[string]int64 // by source product
	positions    map[topicPartition]int64
	own          *Publisher // the default DeadLetters, made on first use

	// The batches of the consumer's partitions that wait while one of
	// them is applied are applied together next (see applyJoined).
	joinMu  sync.Mutex
	joining []*joinRequest
	turn    chan struct{} // capacity 1: held while a joined batch is applied
}

// Applied returns how many changes the consumer has applied (skipping
// redeliveries) since it started.
func (c *Consumer) Applied() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applied
}

// AppliedBySource returns how many changes the consumer has applied
// (skipping redeliveries) since it started, by source product.
func (c *Consumer) AppliedBySource() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.bySource))
	for p, n := range c.bySource {
		out[p] = n
	}
	return out
}

// Batches returns how many batches that applied at least one change the
// consumer has committed since it started: transactions (the batches of
// several partitions applied together count once, see applyJoined).
func (c *Consumer) Batches() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.batches
}

// Busy returns how long the consumer has been applying batches since it
// started: the time during which at least one of its batches was being
// applied (waiting for the product's turn included), so that applied
// changes over busy time is the rate the reaction applies at, apart from
// the time it waits for events to arrive.
func (c *Consumer) Busy() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.active > 0 {
		return c.busy + time.Since(c.busySince)
	}
	return c.busy
}

// working marks a batch as being applied until the returned func is called.
func (c *Consumer) working() func() {
	c.mu.Lock()
	if c.active == 0 {
		c.busySince = time.Now()
	}
	c.active++
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.active--
		if c.active == 0 {
			c.busy += time.Since(c.busySince)
		}
		c.mu.Unlock()
	}
}

// Duplicates returns how many redelivered changes the consumer skipped
// because they were applied before.
func (c *Consumer) Duplicates() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.duplicates
}

// reached tells whether, for every partition in ends, the consumer has
// handled every message before the given offset.
func (c *Consumer) reached(ends map[topicPartition]int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for tp, end := range ends {
		if c.positions[tp] < end {
			return false
		}
	}
	return true
}

// DefaultConsumerBatch is the default of Consumer.Batch. A batch rewrites
// each derived row it touches once (sales: a day, a customer, an item), so
// during a catch-up larger batches write fewer rows per event: with 5,000
// instead of 1,000, sales caught up on the demo's 23,000 events writing
// 0.90 instead of 1.66 rows (and audit entries) per event, in 40 % fewer
// statements (BenchmarkCatchUp). The partition's channel holds a batch
// (up to 5,000 messages while catching up).
const DefaultConsumerBatch = 5000

func (c *Consumer) batch() int {
	if c.Batch <= 0 {
		return DefaultConsumerBatch
	}
	return c.Batch
}

func (c *Consumer) logger() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

// Run consumes until ctx ends (returning nil), rejoining the group with
// backoff after failures.
func (c *Consumer) Run(ctx context.Context) error {
	log := c.logger()
	maxBackoff := c.maxBackoff()
	defer c.closeOwn()
	var topics []string
	for _, s := range c.Reaction.Inputs {
		t, err := c.Topics(s)
		if err != nil {
			return err
		}
		topics = append(topics, t)
	}
	backoff := time.Duration(0)
	for {
		err := c.session(ctx, topics, log)
		if ctx.Err() != nil {
			return nil
		}
		backoff = min(max(2*backoff, 100*time.Millisecond), maxBackoff)
		log.Warn("consumer: failed; rejoining", "product", c.Store.Product.Name, "group", c.Group, "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
}

func (c *Consumer) session(ctx context.Context, topics []string, log *slog.Logger) error {
	cfg, err := c.Kafka.Sarama()
	if err != nil {
		return err
	}
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Return.Errors = true
	// A partition's channel holds a whole batch, fetched while the previous
	// batch is applied.
	cfg.ChannelBufferSize = max(cfg.ChannelBufferSize, c.batch())
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	client, err := sarama.NewClient(c.Kafka.Brokers, cfg)
	if err != nil {
		return fmt.Errorf("connect to %v: %w", c.Kafka.Brokers, err)
	}
	defer client.Close()
	for _, t := range topics {
		if err := createTopic(client, t, c.Kafka.Partitions, c.Kafka.ReplicationFactor); err != nil {
			return err
		}
	}
	group, err := sarama.NewConsumerGroupFromClient(c.Group, client)
	if err != nil {
		return fmt.Errorf("consumer group %s: %w", c.Group, err)
	}
	defer group.Close()
	errc := make(chan error, 1)
	go func() {
		for err := range group.Errors() {
			select {
			case errc <- err:
			default:
			}
		}
	}()
	for {
		if err := group.Consume(ctx, topics, groupHandler{c, log}); err != nil {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		select {
		case err := <-errc:
			return err
		default:
		}
	}
}

type groupHandler struct {
	c   *Consumer
	log *slog.Logger
}

func (groupHandler) Setup(sarama.ConsumerGroupSession) error { return nil }

// Cleanup commits the offsets of the applied batches synchronously when a
// session ends (shutdown, rebalance), so that the next owner of the
// partitions is not redelivered them (it would skip them, by position).
func (groupHandler) Cleanup(sess sarama.ConsumerGroupSession) error {
	sess.Commit()
	return nil
}

// fillWait bounds how long a batch waits for messages the broker holds but
// the partition's consumer has not fetched yet (see ConsumeClaim).
const fillWait = 10 * time.Millisecond

// ConsumeClaim applies the partition's messages in batches: it takes what
// is available (up to Batch; what the broker holds beyond what was fetched
// is waited for, up to fillWait), applies it in one transaction, then
// marks the offsets. A batch that fails on the store (see products.Transient) is
// retried with backoff, never skipped. A batch whose reaction fails on one
// event is split: the events before it are applied without it, the event
// is retried alone (see isolate) and parked if it keeps failing, and the
// rest of the partition flows on.
func (h groupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	batch := h.c.batch()
	ctx := sess.Context()
	msgs := claim.Messages()
	for {
		var pending []*sarama.ConsumerMessage
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			pending = append(pending, m)
		}
		var more <-chan time.Time // set while waiting for fetched messages
	fill:
		for len(pending) < batch {
			select {
			case m, ok := <-msgs:
				if !ok {
					break fill
				}
				pending = append(pending, m)
				continue
			default:
			}
			// Nothing more fetched. If the broker holds more of the
			// partition than was fetched, the next fetch brings it in a
			// moment: wait for it (a little) rather than apply a batch
			// of a few events now and the rest in the next.
			if claim.HighWaterMarkOffset() <= pending[len(pending)-1].Offset+1 {
				break fill
			}
			if more == nil {
				more = time.After(fillWait)
			}
			select {
			case <-ctx.Done():
				return nil
			case m, ok := <-msgs:
				if !ok {
					break fill
				}
				pending = append(pending, m)
			case <-more:
				break fill
			}
		}
		if !h.handle(ctx, sess, pending) {
			return nil
		}
	}
}

// handle applies msgs, consecutive messages of one partition, and marks
// them consumed. It returns false if ctx ended first.
func (h groupHandler) handle(ctx context.Context, sess sarama.ConsumerGroupSession, msgs []*sarama.ConsumerMessage) bool {
	wait := h.c.backoff()
	for len(msgs) > 0 {
		res, err := h.c.applyJoined(ctx, msgs)
		if err == nil {
			return h.done(ctx, sess, msgs, res)
		}
		if ctx.Err() != nil {
			return false
		}
		h.c.failed()
		re, ok := poison(err)
		if !ok {
			h.log.Error("consumer: applying changes failed; retrying", "product", h.c.Store.Product.Name,
				"topic", msgs[0].Topic, "partition", msgs[0].Partition, "offset", msgs[0].Offset, "error", err)
			if !wait.sleep(ctx) {
				return false
			}
			continue
		}
		if len(msgs) == 1 {
			return h.isolate(ctx, sess, msgs[0], err)
		}
		// Apply the events before the failing one without it, then
		// retry it alone. A failure of Flush names no event: the batch is
		// halved, each half applied (and halved again if it fails) in
		// order, until the culprit is alone.
		if re.index < 0 {
			half := len(msgs) / 2
			if !h.handle(ctx, sess, msgs[:half]) {
				return false
			}
			msgs = msgs[half:]
			wait = h.c.backoff()
			continue
		}
		i := re.index
		if i > 0 && !h.handle(ctx, sess, msgs[:i]) {
			return false
		}
		if !h.handle(ctx, sess, msgs[i:i+1]) {
			return false
		}
		msgs = msgs[i+1:]
		wait = h.c.backoff()
	}
	return true
}

// done records a committed batch and marks its messages consumed; parked
// events it met that are not on the dead-letter topic yet (their parking
// committed, the publishing cut short) are published first.
func (h groupHandler) done(ctx context.Context, sess sarama.ConsumerGroupSession, msgs []*sarama.ConsumerMessage, res applied) bool {
	for _, p := range res.unpublished {
		if !h.c.publishDeadLetter(ctx, p.letter, p.msg) {
			return false
		}
	}
	last := msgs[len(msgs)-1]
	h.c.mu.Lock()
	h.c.applied += int64(res.applied)
	if h.c.bySource == nil {
		h.c.bySource = map[string]int64{}
	}
	for p, n := range res.bySource {
		h.c.bySource[p] += int64(n)
	}
	if res.batch {
		h.c.batches++
	}
	h.c.duplicates += int64(res.dups)
	if h.c.positions == nil {
		h.c.positions = map[topicPartition]int64{}
	}
	h.c.positions[topicPartition{last.Topic, last.Partition}] = last.Offset + 1
	h.c.mu.Unlock()
	sess.MarkMessage(last, "")
	if h.c.OnApplied != nil {
		h.c.OnApplied()
	}
	return true
}

// applied is what applying a batch did.
type applied struct {
	applied, dups int
	bySource      map[string]int // applied, by source product
	// batch: the transaction applied a change and is counted as a batch
	// (once, when it applied the batches of several partitions).
	batch bool
	// outcome tells, per message, what became of it, and source the
	// source product of each applied one.
	outcome []outcome
	source  []string
	// unpublished are the parked events met (and skipped) whose dead
	// letters are not on the dead-letter topic yet.
	unpublished []parkedMessage
}

// outcome is what applying a batch did with one of its messages.
type outcome int8

const (
	skipped   outcome = iota // not a change event, or parked before
	applyOnce                // applied
	duplicate                // applied before
)

type parkedMessage struct {
	letter *products.DeadLetter
	msg    *sarama.ConsumerMessage
}

// apply applies messages in one transaction. Events parked before are
// skipped: they are applied only by a retry (see Retry). A failure of the
// reaction on an event is a *reactionError naming it.
func (c *Consumer) apply(ctx context.Context, msgs []*sarama.ConsumerMessage) (res applied, err error) {
	culprit := noCulprit
	wait := c.LockWait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	defer c.working()()
	ctx, span := consumeSpan(ctx, c.Store.Product.Name, msgs)
	defer func() { telemetry.End(span, err) }()
	entries := make([]*products.AuditEntry, len(msgs))
	var decoded []*products.AuditEntry
	var at []int // decoded[j] is entries[at[j]]
	for i, m := range msgs {
		e, err := c.Codec.Entry(m.Key, m.Value)
		if err != nil {
			c.logger().Warn("consumer: skipping a message that is not a change event", "topic", m.Topic, "offset", m.Offset, "error", err)
			continue
		}
		entries[i] = e
		decoded = append(decoded, e)
		at = append(at, i)
	}
	// Batches of one product apply one at a time, across instances too:
	// derived rows are recomputed from what earlier batches committed.
	_, err = c.Store.WriteExclusive(reactionContext(ctx, c.Store.Product.Name), "react", wait, func(ctx context.Context, tx *products.Tx) error {
		res, culprit = applied{bySource: map[string]int{}, outcome: make([]outcome, len(msgs)), source: make([]string, len(msgs))}, noCulprit
		// The batch is checked against the parked events, recorded as
		// consumed, and its keys' positions read, in a few statements for
		// all its events (one on PostgreSQL), not a few per event.
		parked, fresh, err := tx.ConsumeBatch(ctx, decoded)
		if err != nil {
			return err
		}
		apply := make([]bool, len(entries))
		for j, i := range at {
			e := entries[i]
			if d := parked[fmt.Sprintf("%s/%d", e.Product, e.Sequence)]; d != nil {
				if !d.Published {
					res.unpublished = append(res.unpublished, parkedMessage{d, msgs[i]})
				}
				continue
			}
			if !fresh[j] {
				res.dups++
				res.outcome[i] = duplicate
				continue
			}
			apply[i] = true
		}
		b := c.Reaction.NewBatch()
		var causes requestIDs
		for i, e := range entries {
			if !apply[i] {
				continue
			}
			causes.add(e.RequestID)
			tx.Cause(e.RequestID)
			if err := b.Apply(ctx, tx, e); err != nil {
				culprit = i
				return fmt.Errorf("apply %s/%d: %w", e.Product, e.Sequence, err)
			}
			res.applied++
			res.bySource[e.Product]++
			res.outcome[i], res.source[i] = applyOnce, e.Product
		}
		tx.Cause(causes.shared())
		if err := b.Flush(ctx, tx); err != nil {
			culprit = -1
			return err
		}
		return tx.SaveNewest(ctx)
	})
	res.batch = err == nil && res.applied > 0
	return res, blame(err, culprit)
}

// joinRequest is a partition's batch waiting to be applied together with
// the batches of the consumer's other partitions.
type joinRequest struct {
	msgs []*sarama.ConsumerMessage
	done chan struct{} // closed when res and err are set
	res  applied
	err  error
	// alone: applying it with others failed; it is to be applied alone.
	alone bool
}

// applyJoined is apply for one partition's batch, joined with the batches
// of the consumer's other partitions that are waiting meanwhile: while one
// transaction runs, the batches that arrive queue, and the next holder of
// the consumer's turn applies all of them (up to Batch messages) in one
// transaction, so a reaction fed a few events at a time on several
// partitions commits one transaction per turn rather than one per
// partition. Each partition's messages keep their order; a joined batch
// that fails is applied again partition by partition (apply), where a
// failing event is found and handled as before.
func (c *Consumer) applyJoined(ctx context.Context, msgs []*sarama.ConsumerMessage) (applied, error) {
	req := &joinRequest{msgs: msgs, done: make(chan struct{})}
	c.joinMu.Lock()
	if c.turn == nil {
		c.turn = make(chan struct{}, 1)
	}
	turn := c.turn
	c.joining = append(c.joining, req)
	c.joinMu.Unlock()
	for {
		select {
		case <-req.done:
			return c.joinedResult(ctx, req)
		default:
		}
		select {
		case <-req.done:
			return c.joinedResult(ctx, req)
		case <-ctx.Done():
			if c.leave(req) {
				return applied{}, ctx.Err()
			}
			<-req.done
			return c.joinedResult(ctx, req)
		case turn <- struct{}{}:
		}
		// Holding the turn: apply what waits, up to Batch messages (this
		// batch unless a holder before took it).
		c.joinMu.Lock()
		n, total := 0, 0
		for n < len(c.joining) && (n == 0 || total+len(c.joining[n].msgs) <= c.batch()) {
			total += len(c.joining[n].msgs)
			n++
		}
		group := append([]*joinRequest(nil), c.joining[:n]...)
		c.joining = append(c.joining[:0], c.joining[n:]...)
		c.joinMu.Unlock()
		if len(group) > 0 {
			c.applyGroup(ctx, group)
		}
		<-turn
	}
}

// leave takes a request that is still queued out of the queue; false if a
// holder of the turn took it already.
func (c *Consumer) leave(req *joinRequest) bool {
	c.joinMu.Lock()
	defer c.joinMu.Unlock()
	for i, r := range c.joining {
		if r == req {
			c.joining = append(c.joining[:i], c.joining[i+1:]...)
			return true
		}
	}
	return false
}

// joinedResult is a request's result, applying it alone if applying it
// with others failed.
func (c *Consumer) joinedResult(ctx context.Context, req *joinRequest) (applied, error) {
	if req.alone {
		return c.apply(ctx, req.msgs)
	}
	return req.res, req.err
}

// applyGroup applies the batches of a group in one transaction and gives
// each its share of the result (or, for a group of several that failed,
// marks each to be applied alone).
func (c *Consumer) applyGroup(ctx context.Context, group []*joinRequest) {
	defer func() {
		for _, r := range group {
			close(r.done)
		}
	}()
	if len(group) == 1 {
		group[0].res, group[0].err = c.apply(ctx, group[0].msgs)
		return
	}
	var all []*sarama.ConsumerMessage
	for _, r := range group {
		all = append(all, r.msgs...)
	}
	res, err := c.apply(ctx, all)
	if err != nil {
		for _, r := range group {
			r.alone = true
		}
		return
	}
	owner := make(map[*sarama.ConsumerMessage]*joinRequest, len(all))
	at := 0
	for _, r := range group {
		r.res = applied{bySource: map[string]int{}, outcome: res.outcome[at : at+len(r.msgs)]}
		for i, m := range r.msgs {
			owner[m] = r
			switch r.res.outcome[i] {
			case applyOnce:
				r.res.applied++
				r.res.bySource[res.source[at+i]]++
			case duplicate:
				r.res.dups++
			}
		}
		at += len(r.msgs)
	}
	// The transaction counts as one batch, with the first request that
	// applied a change.
	for _, r := range group {
		if res.batch && r.res.applied > 0 {
			r.res.batch = true
			break
		}
	}
	for _, p := range res.unpublished {
		r := owner[p.msg]
		r.res.unpublished = append(r.res.unpublished, p)
	}
}

// ReactionActor is the actor of a reacting product's own changes
// ("reaction:<product>"); each change carries the request id of the source
// change that caused it.
func ReactionActor(product string) string { return "reaction:" + product }

// reactionContext is the context of a reaction's write transaction: its
// changes are recorded as made by ReactionActor.
func reactionContext(ctx context.Context, product string) context.Context {
	return products.WithActor(ctx, ReactionActor(product))
}

// requestIDs gathers the request ids of a batch's source changes.
type requestIDs struct {
	first       string
	seen, mixed bool
}

func (r *requestIDs) add(id string) {
	switch {
	case !r.seen:
		r.first, r.seen = id, true
	case id != r.first:
		r.mixed = true
	}
}

// shared is the request id of all the batch's changes, or "" when they
// came from several requests: what a batch's Flush records as its cause.
func (r *requestIDs) shared() string {
	if r.mixed {
		return ""
	}
	return r.first
}

// Lag is how far a reacting product is behind one of its sources.
type Lag struct {
	Product, Source string
	// AppliedSequence and AppliedAt are the highest source sequence applied
	// and its commit time at the source (zero before the first).
	AppliedSequence int64
	AppliedAt       time.Time
	// LatestSequence is the source's latest sequence.
	LatestSequence int64
	// Pending counts the source's changes of the consumed entities that are
	// not applied yet.
	Pending int64
}

// Lag reports, per source product, how far the consumer's product is
// behind. store returns a product's store. It is arithmetic on counters
// both stores keep as they commit (the changes each source's log holds per
// entity, the changes applied per source): a few rows read, whatever the
// length of the history.
func (c *Consumer) Lag(ctx context.Context, store func(string) *products.Store) ([]Lag, error) {
	own := c.Store
	positions, err := own.SourcePositions(ctx)
	if err != nil {
		return nil, err
	}
	byProduct := map[string][]string{}
	var order []string
	for _, in := range c.Reaction.Inputs {
		if _, ok := byProduct[in.Product]; !ok {
			order = append(order, in.Product)
		}
		byProduct[in.Product] = append(byProduct[in.Product], in.Entity)
	}
	var out []Lag
	for _, p := range order {
		src := store(p)
		if src == nil {
			return nil, fmt.Errorf("no store for %s", p)
		}
		l := Lag{Product: own.Product.Name, Source: p}
		var applied int64
		for _, pos := range positions {
			if pos.Source == p {
				l.AppliedSequence, l.AppliedAt, applied = pos.Sequence, pos.At, pos.Applied
			}
		}
		counts, err := src.EntityCounts(ctx)
		if err != nil {
			return nil, err
		}
		if l.LatestSequence, err = src.Latest(ctx); err != nil {
			return nil, err
		}
		var total int64
		for _, e := range byProduct[p] {
			total += counts[e]
		}
		l.Pending = max(total-applied, 0)
		out = append(out, l)
	}
	return out, nil
}
