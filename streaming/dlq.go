package streaming

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/IBM/sarama"

	"github.com/meshgate/meshgate/products"
)

// Poison events. A reaction that fails on an event retries it alone with
// capped, jittered exponential backoff; after Consumer.Retries attempts the
// event is parked: recorded in the reacting product's store (a
// products.DeadLetter, in the transaction that parks it, once per source
// change) and published to the dead-letter topic "<prefix>.dlq.<product>"
// with the headers below, and the partition flows on. Failures of the
// store (products.Transient) never park anything: a store outage is not a
// poison event. A parked event is not applied until an operator retries it
// (Consumer.Retry), which applies it exactly once and marks it resolved.

// Defaults of the reaction's retries.
const (
	// DefaultReactionRetries is how many times an event the reaction fails
	// on is tried alone before it is parked.
	DefaultReactionRetries = 8
	// DefaultReactionBackoffMax bounds the waits between attempts.
	DefaultReactionBackoffMax = 5 * time.Second
	// firstBackoff is the first wait; each next one doubles, up to the cap.
	firstBackoff = 50 * time.Millisecond
)

// Headers of a message on the dead-letter topic, besides the original
// message's own (the CloudEvents attributes); key and value are the
// original message's.
const (
	HeaderReason          = "dlq_reason"           // the last failure's text
	HeaderProduct         = "dlq_product"          // the reacting product
	HeaderSourceProduct   = "dlq_source_product"   // the product whose change it is
	HeaderSourceTopic     = "dlq_source_topic"     // where it was read
	HeaderSourcePartition = "dlq_source_partition" //
	HeaderSourceOffset    = "dlq_source_offset"    //
	HeaderPosition        = "dlq_position"         // "<source product>/<sequence>"
	HeaderAttempts        = "dlq_attempts"         // failed attempts before it was parked
	HeaderFirstFailure    = "dlq_first_failure"    // RFC 3339, UTC
	HeaderLastFailure     = "dlq_last_failure"     // RFC 3339, UTC
	HeaderID              = "dlq_id"               // the dead letter's id in the product's store
)

// DeadLetterTopic is the dead-letter topic of a reacting product:
// "<prefix>.dlq.<product>".
func (c Codec) DeadLetterTopic(product string) string { return c.Prefix + ".dlq." + product }

// reactionError is the reaction's failure on the event at index of a batch
// (-1: in Flush, no event named).
type reactionError struct {
	index int
	err   error
}

func (e *reactionError) Error() string { return e.err.Error() }
func (e *reactionError) Unwrap() error { return e.err }

// noCulprit says that the reaction did not fail.
const noCulprit = -2

// blame makes err, the failure of a transaction in which the reaction
// failed on the event at culprit (-1: in Flush; noCulprit: it did not
// fail), a *reactionError. The error is wrapped after the transaction,
// never inside it: the store may map what the transaction returned.
func blame(err error, culprit int) error {
	if err == nil || culprit == noCulprit {
		return err
	}
	return &reactionError{index: culprit, err: err}
}

// poison tells whether err is a deterministic failure of the reaction on
// an event: the reaction's own error, not a failure of the store.
func poison(err error) (*reactionError, bool) {
	var re *reactionError
	if errors.As(err, &re) && !products.Transient(err) {
		return re, true
	}
	return nil, false
}

// backoff is capped, jittered exponential backoff: each wait is drawn
// between half and all of a bound that doubles from firstBackoff up to max.
type backoff struct {
	bound, max time.Duration
}

func (c *Consumer) backoff() *backoff {
	return &backoff{bound: firstBackoff, max: c.maxBackoff()}
}

// sleep waits the next wait; it returns false if ctx ended first.
func (b *backoff) sleep(ctx context.Context) bool {
	d := b.bound/2 + rand.N(b.bound/2+1)
	b.bound = min(2*b.bound, b.max)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (c *Consumer) maxBackoff() time.Duration {
	if c.MaxBackoff > 0 {
		return max(c.MaxBackoff, time.Millisecond)
	}
	return DefaultReactionBackoffMax
}

func (c *Consumer) retries() int {
	if c.Retries > 0 {
		return c.Retries
	}
	return DefaultReactionRetries
}

// failed counts a failed attempt at a batch or event.
func (c *Consumer) failed() {
	c.mu.Lock()
	c.failures++
	c.mu.Unlock()
}

// Failures returns how many attempts at applying a batch or event failed
// since the consumer started (store failures and the reaction's alike).
func (c *Consumer) Failures() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failures
}

// DeadLettered returns how many events this consumer parked since it
// started, by source product.
func (c *Consumer) DeadLettered() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.deadLettered))
	for k, v := range c.deadLettered {
		out[k] = v
	}
	return out
}

// isolate retries one event the reaction failed on (err, the first
// failure) alone until it applies, or parks it after Retries failed
// attempts. Failures of the store are retried without counting. It
// returns false if ctx ended first.
func (h groupHandler) isolate(ctx context.Context, sess sarama.ConsumerGroupSession, m *sarama.ConsumerMessage, err error) bool {
	c := h.c
	first := time.Now().UTC()
	last, attempts := first, 1
	wait := c.backoff()
	for attempts < c.retries() {
		h.log.Warn("consumer: reaction failed on an event; retrying it alone", "product", c.Store.Product.Name,
			"topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "attempt", attempts, "error", err)
		if !wait.sleep(ctx) {
			return false
		}
		res, aerr := c.apply(ctx, []*sarama.ConsumerMessage{m})
		if aerr == nil {
			return h.done(ctx, sess, []*sarama.ConsumerMessage{m}, res)
		}
		if ctx.Err() != nil {
			return false
		}
		c.failed()
		if _, ok := poison(aerr); ok {
			attempts++
			err, last = aerr, time.Now().UTC()
		} else {
			h.log.Error("consumer: applying changes failed; retrying", "product", c.Store.Product.Name,
				"topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "error", aerr)
		}
	}
	return h.park(ctx, sess, m, err, attempts, first, last)
}

// park parks the event of m that the reaction failed on attempts times:
// it records the dead letter in the product's store (unless the event was
// applied meanwhile, by another instance say, or parked before), publishes
// it to the dead-letter topic, and marks m consumed. Failures of the
// store or of Kafka are retried for as long as they last.
func (h groupHandler) park(ctx context.Context, sess sarama.ConsumerGroupSession, m *sarama.ConsumerMessage, cause error, attempts int, first, last time.Time) bool {
	c := h.c
	e, err := c.Codec.Entry(m.Key, m.Value)
	if err != nil { // apply skips what does not decode: not reached
		return h.done(ctx, sess, []*sarama.ConsumerMessage{m}, applied{})
	}
	wait := c.backoff()
	for {
		d := &products.DeadLetter{
			Source: e.Product, Sequence: e.Sequence, Entity: e.Entity, Key: e.Key,
			Topic: m.Topic, Partition: int(m.Partition), Offset: m.Offset,
			Reason: cause.Error(), Attempts: attempts, FirstFailureAt: first, LastFailureAt: last,
			MessageKey: string(m.Key), Event: string(m.Value),
		}
		var done, fresh bool
		_, err := c.Store.WriteExclusive(reactionContext(ctx, c.Store.Product.Name), "react", c.lockWait(), func(ctx context.Context, tx *products.Tx) error {
			var err error
			if done, err = tx.Applied(ctx, e.Product, e.Sequence); err != nil || done {
				return err
			}
			fresh, err = tx.Park(ctx, d)
			return err
		})
		if err == nil {
			if done {
				return h.done(ctx, sess, []*sarama.ConsumerMessage{m}, applied{dups: 1})
			}
			if fresh {
				c.mu.Lock()
				if c.deadLettered == nil {
					c.deadLettered = map[string]int64{}
				}
				c.deadLettered[e.Product]++
				c.mu.Unlock()
				h.log.Warn("consumer: event parked", "product", c.Store.Product.Name, "id", d.ID, "position", d.Position(),
					"topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "attempts", attempts, "reason", d.Reason)
			}
			var res applied
			if !d.Published {
				res.unpublished = []parkedMessage{{d, m}}
			}
			return h.done(ctx, sess, []*sarama.ConsumerMessage{m}, res)
		}
		if ctx.Err() != nil {
			return false
		}
		h.log.Error("consumer: parking an event failed; retrying", "product", c.Store.Product.Name,
			"position", d.Position(), "error", err)
		if !wait.sleep(ctx) {
			return false
		}
	}
}

func (c *Consumer) lockWait() time.Duration {
	if c.LockWait > 0 {
		return c.LockWait
	}
	return 30 * time.Second
}

// publishDeadLetter publishes the parked event d (read from m) to the
// dead-letter topic and records that it is there, retrying failures until
// ctx ends (then it returns false).
func (c *Consumer) publishDeadLetter(ctx context.Context, d *products.DeadLetter, m *sarama.ConsumerMessage) bool {
	msg := c.deadLetterMessage(d, m)
	wait := c.backoff()
	for {
		err := c.sendDeadLetter(ctx, msg)
		if err == nil {
			err = c.Store.DeadLetterPublished(ctx, d.ID)
		}
		if err == nil {
			d.Published = true
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		c.logger().Error("consumer: publishing a parked event failed; retrying", "product", c.Store.Product.Name,
			"topic", msg.Topic, "position", d.Position(), "error", err)
		if !wait.sleep(ctx) {
			return false
		}
	}
}

func (c *Consumer) sendDeadLetter(ctx context.Context, msg *sarama.ProducerMessage) error {
	s := c.DeadLetters
	if s == nil {
		c.mu.Lock()
		if c.own == nil {
			p, err := NewPublisher(c.Kafka)
			if err != nil {
				c.mu.Unlock()
				return err
			}
			c.own = p
		}
		s = c.own
		c.mu.Unlock()
	}
	cluster, err := s.Cluster(ctx)
	if err != nil {
		return err
	}
	return s.Send(ctx, cluster, []*sarama.ProducerMessage{msg})
}

// closeOwn closes the publisher the consumer made for itself, if any.
func (c *Consumer) closeOwn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.own != nil {
		c.own.Close()
		c.own = nil
	}
}

// deadLetterMessage is the dead-letter topic's message of d: m's key,
// value and headers, and the dead letter's.
func (c *Consumer) deadLetterMessage(d *products.DeadLetter, m *sarama.ConsumerMessage) *sarama.ProducerMessage {
	msg := &sarama.ProducerMessage{
		Topic: c.Codec.DeadLetterTopic(c.Store.Product.Name),
		Key:   sarama.ByteEncoder(m.Key), Value: sarama.ByteEncoder(m.Value),
		Timestamp: d.ParkedAt,
	}
	for _, h := range m.Headers {
		if h != nil {
			msg.Headers = append(msg.Headers, *h)
		}
	}
	for _, h := range [][2]string{
		{HeaderReason, d.Reason},
		{HeaderProduct, c.Store.Product.Name},
		{HeaderSourceProduct, d.Source},
		{HeaderSourceTopic, d.Topic},
		{HeaderSourcePartition, strconv.Itoa(d.Partition)},
		{HeaderSourceOffset, strconv.FormatInt(d.Offset, 10)},
		{HeaderPosition, d.Position()},
		{HeaderAttempts, strconv.Itoa(d.Attempts)},
		{HeaderFirstFailure, d.FirstFailureAt.UTC().Format(time.RFC3339Nano)},
		{HeaderLastFailure, d.LastFailureAt.UTC().Format(time.RFC3339Nano)},
		{HeaderID, strconv.FormatInt(d.ID, 10)},
	} {
		msg.Headers = append(msg.Headers, sarama.RecordHeader{Key: []byte(h[0]), Value: []byte(h[1])})
	}
	return msg
}

// Retry applies parked events again through the reaction, each in a
// transaction of its own that also marks it resolved (by the actor and
// request of ctx: the operator), so that it is applied exactly once
// however often and wherever it is retried at the same time. The changes
// it makes are audited as the reaction's (ReactionActor) with the retry's
// request id. ids names
// the dead letters (NOT_FOUND, with nothing retried, if one does not
// exist); none retries every parked one. It returns the named dead letters
// as they are after the retry: RESOLVED, or still PARKED with the reason
// of the new failure (counted in attempts). A failure of the store ends
// the retry with UNAVAILABLE.
func (c *Consumer) Retry(ctx context.Context, ids []int64) ([]products.DeadLetter, error) {
	if len(ids) > products.MaxDeadLetters {
		return nil, products.Invalid("ids", "at most %d at once, got %d", products.MaxDeadLetters, len(ids))
	}
	if len(ids) > 0 {
		found, err := c.Store.DeadLetters(ctx, products.DeadLetterQuery{IDs: ids})
		if err != nil {
			return nil, err
		}
		have := map[int64]bool{}
		for _, d := range found {
			have[d.ID] = true
		}
		for _, id := range ids {
			if !have[id] {
				return nil, products.Errorf(products.NotFound, "%s has no dead letter %d; list them with deadLetters(product: %q)",
					c.Store.Product.Name, id, c.Store.Product.Name)
			}
		}
		for _, id := range ids {
			if err := c.retryOne(ctx, id); err != nil {
				return nil, err
			}
		}
		return c.Store.DeadLetters(ctx, products.DeadLetterQuery{IDs: ids})
	}
	var done []int64
	var after int64
	for {
		page, err := c.Store.DeadLetters(ctx, products.DeadLetterQuery{Status: products.Parked, After: after, Limit: 100})
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			break
		}
		for _, d := range page {
			if err := c.retryOne(ctx, d.ID); err != nil {
				return nil, err
			}
			done, after = append(done, d.ID), d.ID
		}
	}
	if len(done) == 0 {
		return []products.DeadLetter{}, nil
	}
	var out []products.DeadLetter
	for i := 0; i < len(done); i += products.MaxDeadLetters {
		part, err := c.Store.DeadLetters(ctx, products.DeadLetterQuery{IDs: done[i:min(i+products.MaxDeadLetters, len(done))]})
		if err != nil {
			return nil, err
		}
		out = append(out, part...)
	}
	return out, nil
}

// retryOne applies the dead letter id if it is parked and marks it
// resolved, in one transaction under the product's reaction lock; a
// failure of the reaction is recorded on the dead letter.
func (c *Consumer) retryOne(ctx context.Context, id int64) error {
	by, requestID := products.ActorFrom(ctx), products.RequestIDFrom(ctx)
	culprit := noCulprit
	// The changes are the reaction's, made in the retry's request: the
	// audit log records them as reaction:<product> with the retry's
	// request id, which the resolved dead letter records too.
	rctx := reactionContext(products.WithIdentity(ctx, nil), c.Store.Product.Name)
	_, err := c.Store.WriteExclusive(rctx, "react", c.lockWait(), func(ctx context.Context, tx *products.Tx) error {
		culprit = noCulprit
		d, err := tx.DeadLetter(ctx, id)
		if err != nil || d.Status != products.Parked {
			return err // resolved meanwhile: nothing to do
		}
		e, err := c.Codec.Entry([]byte(d.MessageKey), []byte(d.Event))
		if err != nil {
			culprit = 0
			return err
		}
		// Consume is false if the change was applied after all (a replay
		// that applied it): then it is only marked resolved.
		fresh, err := tx.Consume(ctx, e.Product, e.Sequence, e.At)
		if err != nil {
			return err
		}
		if fresh {
			b := c.Reaction.NewBatch()
			if err := b.Apply(ctx, tx, e); err != nil {
				culprit = 0
				return fmt.Errorf("apply %s/%d: %w", e.Product, e.Sequence, err)
			}
			if err := b.Flush(ctx, tx); err != nil {
				culprit = 0
				return err
			}
		}
		_, err = tx.Resolve(ctx, id, by, requestID)
		return err
	})
	err = blame(err, culprit)
	if err == nil {
		c.logger().Info("consumer: parked event retried and applied", "product", c.Store.Product.Name, "id", id, "by", by)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if _, ok := poison(err); ok {
		c.logger().Warn("consumer: parked event failed again", "product", c.Store.Product.Name, "id", id, "error", err)
		return c.Store.DeadLetterFailed(ctx, id, err.Error(), time.Now())
	}
	if products.ErrorCode(err) != "" {
		return err
	}
	c.logger().Error("consumer: retrying a parked event failed", "product", c.Store.Product.Name, "id", id, "error", err)
	return products.Errorf(products.Unavailable, "the %s store could not apply dead letter %d now (see the gateway's log); try again when it is reachable",
		c.Store.Product.Name, id)
}
