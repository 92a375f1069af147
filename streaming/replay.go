package streaming

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/meshgate/meshgate/products"
)

// ReplayOptions tune Replay.
type ReplayOptions struct {
	// Publish, if set, publishes the inputs' history to the consumer's
	// cluster itself, read from the sources' audit logs without marking
	// anything (for a private broker that starts empty). Without it the
	// relays must publish the logs, and the topics must still hold them.
	Publish Sender
	// Stall bounds the time without progress before Replay gives up
	// (default 30s).
	Stall time.Duration
	// Progress, if set, is called about once a second and at the end of
	// each phase.
	Progress func(ReplayProgress)
}

// ReplayProgress is a progress report of Replay.
type ReplayProgress struct {
	// Phase is "publishing" (copying the history to the broker),
	// "waiting" (for the relays to publish it) or "applying".
	Phase       string
	Done, Total int64
}

// Replay rebuilds a derived product from the beginning of its inputs: in
// one transaction it deletes what the product derived (reset) and the
// record of applied changes, then consumes every input topic from the
// oldest offset with a fresh consumer group until it has applied every
// change its inputs held when the replay began. sources maps product names
// to their stores.
//
// It finishes or fails within bounded time: the history must be on the
// topics (published by opts.Publish, or already by the relays: Replay waits
// for their backlog), and once the consumer has read every input partition
// to the end it held after that, every change must have been applied;
// otherwise the topics lost their beginning (retention, a broker that lost
// its log) and Replay fails saying so. Any phase without progress for
// opts.Stall fails too.
func Replay(ctx context.Context, c *Consumer, reset func(ctx context.Context, tx *products.Tx) error,
	sources map[string]*products.Store, opts ReplayOptions) error {
	store := c.Store
	name := store.Product.Name
	stall := opts.Stall
	if stall <= 0 {
		stall = 30 * time.Second
	}
	progress := opts.Progress
	if progress == nil {
		progress = func(ReplayProgress) {}
	}
	entities := map[string][]string{}
	var order []string
	for _, in := range c.Reaction.Inputs {
		if sources[in.Product] == nil {
			return fmt.Errorf("replay %s: no store for input %s", name, in.Product)
		}
		if _, ok := entities[in.Product]; !ok {
			order = append(order, in.Product)
		}
		entities[in.Product] = append(entities[in.Product], in.Entity)
	}
	// What there is to apply: per source, its log up to its position now.
	upTo := map[string]int64{}
	want := map[string]int64{}
	var total int64
	for _, p := range order {
		latest, counts, err := sources[p].Snapshot(ctx)
		if err != nil {
			return fmt.Errorf("replay %s: %w", name, err)
		}
		upTo[p] = latest
		for _, e := range entities[p] {
			want[p] += counts[e]
		}
		total += want[p]
	}

	if opts.Publish != nil {
		if err := copyHistory(ctx, opts.Publish, c.Codec, sources, order, entities, upTo, total, progress); err != nil {
			return fmt.Errorf("replay %s: publish the history: %w", name, err)
		}
	} else if err := awaitRelays(ctx, sources, order, upTo, stall, progress); err != nil {
		return fmt.Errorf("replay %s: %w", name, err)
	}
	// Everything to apply is on the topics now: the consumer is done when
	// it has read them to these ends.
	ends, err := topicEnds(c, order, entities)
	if err != nil {
		return fmt.Errorf("replay %s: %w", name, err)
	}

	if _, err := store.Write(ctx, func(ctx context.Context, tx *products.Tx) error {
		if err := reset(ctx, tx); err != nil {
			return err
		}
		return store.ForgetConsumed(ctx, tx)
	}); err != nil {
		return fmt.Errorf("replay %s: reset: %w", name, err)
	}
	rc := &Consumer{
		Store: c.Store, Reaction: c.Reaction, Topics: c.Topics, Codec: c.Codec, Kafka: c.Kafka, Log: c.Log,
		Batch: c.Batch, MaxBackoff: c.MaxBackoff, LockWait: c.LockWait, Retries: c.Retries, DeadLetters: c.DeadLetters,
		Group: fmt.Sprintf("%s.replay-%d", c.Group, time.Now().UnixNano()),
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- rc.Run(rctx) }()
	stop := func() {
		cancel()
		<-done
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	lastApplied, lastChange := int64(-1), time.Now()
	for {
		select {
		case <-ctx.Done():
			stop()
			return ctx.Err()
		case err := <-done:
			return fmt.Errorf("replay %s: consumer stopped: %v", name, err)
		case <-tick.C:
			progress(ReplayProgress{Phase: "applying", Done: rc.Applied(), Total: total})
		case <-poll.C:
			applied := rc.Applied()
			if applied != lastApplied {
				lastApplied, lastChange = applied, time.Now()
			}
			if rc.reached(ends) {
				stop()
				progress(ReplayProgress{Phase: "applying", Done: rc.Applied(), Total: total})
				return checkApplied(ctx, name, store, sources, order, upTo, want)
			}
			if time.Since(lastChange) > stall {
				stop()
				return fmt.Errorf("replay %s: no progress for %v (%d of %d changes applied); is Kafka reachable? (see the log)", name, stall, applied, total)
			}
		}
	}
}

// checkApplied compares, per source, the changes the replay applied (or
// that are parked) up to the source's position at the start with what the
// source's log held.
func checkApplied(ctx context.Context, name string, store *products.Store, sources map[string]*products.Store,
	order []string, upTo, want map[string]int64) error {
	var missing []string
	for _, p := range order {
		got, first, err := store.ConsumedThrough(ctx, p, upTo[p])
		if err != nil {
			return fmt.Errorf("replay %s: %w", name, err)
		}
		// Parked events were read too: they wait for a retry.
		parked, err := store.ParkedThrough(ctx, p, upTo[p])
		if err != nil {
			return fmt.Errorf("replay %s: %w", name, err)
		}
		got += parked
		if got < want[p] {
			missing = append(missing, fmt.Sprintf("%s: %d of %d changes (the first found is sequence %d)", p, got, want[p], first))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("replay %s: the input topics no longer hold the beginning of the logs (Kafka retention, or a broker that lost its log): %s; "+
		"run the replay without --kafka-brokers: it then publishes the audit logs to a private embedded broker and replays from there",
		name, strings.Join(missing, "; "))
}

// copyHistory publishes the inputs' entries up to upTo, read from the
// sources' audit logs, in sequence order.
func copyHistory(ctx context.Context, pub Sender, codec Codec, sources map[string]*products.Store, order []string,
	entities map[string][]string, upTo map[string]int64, total int64, progress func(ReplayProgress)) error {
	cluster, err := pub.Cluster(ctx)
	if err != nil {
		return err
	}
	var done int64
	last := time.Now()
	for _, p := range order {
		s := sources[p]
		wanted := map[string]bool{}
		for _, e := range entities[p] {
			wanted[e] = true
		}
		for after := int64(0); after < upTo[p]; {
			entries, err := s.Entries(ctx, after, upTo[p], 2000)
			if err != nil {
				return err
			}
			if len(entries) == 0 {
				break
			}
			var msgs []*sarama.ProducerMessage
			for i := range entries {
				if !wanted[entries[i].Entity] {
					continue
				}
				m, err := codec.Message(s.Product, &entries[i])
				if err != nil {
					return err
				}
				msgs = append(msgs, m)
			}
			if len(msgs) > 0 {
				if err := pub.Send(ctx, cluster, msgs); err != nil {
					return err
				}
			}
			done += int64(len(msgs))
			after = entries[len(entries)-1].Sequence
			if time.Since(last) >= time.Second {
				last = time.Now()
				progress(ReplayProgress{Phase: "publishing", Done: done, Total: total})
			}
		}
	}
	progress(ReplayProgress{Phase: "publishing", Done: done, Total: total})
	return nil
}

// awaitRelays waits until the relays have published every source's log up
// to upTo, failing when one makes no progress for stall.
func awaitRelays(ctx context.Context, sources map[string]*products.Store, order []string, upTo map[string]int64,
	stall time.Duration, progress func(ReplayProgress)) error {
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	lastLeft, lastChange, lastReport := int64(-1), time.Now(), time.Time{}
	for {
		var left int64
		var slow []string
		for _, p := range order {
			pending, latest, err := sources[p].Backlog(ctx)
			if err != nil {
				return err
			}
			if through := latest - pending; through < upTo[p] {
				left += upTo[p] - through
				slow = append(slow, p)
			}
		}
		if left == 0 {
			return nil
		}
		if left != lastLeft {
			lastLeft, lastChange = left, time.Now()
		}
		if time.Since(lastReport) >= time.Second {
			lastReport = time.Now()
			progress(ReplayProgress{Phase: "waiting", Done: 0, Total: left})
		}
		if time.Since(lastChange) > stall {
			sort.Strings(slow)
			return fmt.Errorf("%d entries of %s are not published after %v without progress; is Kafka reachable?", left, strings.Join(slow, ", "), stall)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-poll.C:
		}
	}
}

// topicEnds returns, per partition of the inputs' topics that holds
// records, its end offset now.
func topicEnds(c *Consumer, order []string, entities map[string][]string) (map[topicPartition]int64, error) {
	cfg, err := c.Kafka.Sarama()
	if err != nil {
		return nil, err
	}
	client, err := sarama.NewClient(c.Kafka.Brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %v: %w", c.Kafka.Brokers, err)
	}
	defer client.Close()
	ends := map[topicPartition]int64{}
	for _, p := range order {
		for _, e := range entities[p] {
			topic, err := c.Topics(products.Input{Product: p, Entity: e})
			if err != nil {
				return nil, err
			}
			if err := createTopic(client, topic, c.Kafka.Partitions, c.Kafka.ReplicationFactor); err != nil {
				return nil, err
			}
			parts, err := client.Partitions(topic)
			if err != nil {
				return nil, fmt.Errorf("partitions of %s: %w", topic, err)
			}
			for _, part := range parts {
				newest, err := client.GetOffset(topic, part, sarama.OffsetNewest)
				if err != nil {
					return nil, fmt.Errorf("offset of %s/%d: %w", topic, part, err)
				}
				oldest, err := client.GetOffset(topic, part, sarama.OffsetOldest)
				if err != nil {
					return nil, fmt.Errorf("offset of %s/%d: %w", topic, part, err)
				}
				if newest > oldest {
					ends[topicPartition{topic, part}] = newest
				}
			}
		}
	}
	return ends, nil
}
