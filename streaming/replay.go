package streaming

import (
	"context"
	"fmt"
	"time"

	"github.com/meshgate/meshgate/products"
)

// Replay rebuilds a derived product from the beginning of its inputs: in
// one transaction it deletes what the product derived (reset) and the
// record of applied changes, then consumes every input topic from the
// oldest offset with a fresh consumer group until it has applied every
// change its inputs held when the replay began. progress is called about
// once a second and at the end. sources maps product names to their stores
// (to count what there is to apply).
func Replay(ctx context.Context, c *Consumer, reset func(ctx context.Context, tx *products.Tx) error,
	sources map[string]*products.Store, progress func(done, total int64)) error {
	store := c.Store
	var total int64
	for _, in := range c.Reaction.Inputs {
		src := sources[in.Product]
		if src == nil {
			return fmt.Errorf("replay %s: no store for input %s", store.Product.Name, in.Product)
		}
		latest, err := src.Latest(ctx)
		if err != nil {
			return err
		}
		n, err := src.DB.NewSelect().Model((*products.AuditEntry)(nil)).
			Where("entity = ? AND sequence <= ?", in.Entity, latest).Count(ctx)
		if err != nil {
			return fmt.Errorf("replay %s: count %s changes: %w", store.Product.Name, in.Product, err)
		}
		total += int64(n)
	}
	if _, err := store.Write(ctx, func(ctx context.Context, tx *products.Tx) error {
		if err := reset(ctx, tx); err != nil {
			return err
		}
		return store.ForgetConsumed(ctx, tx)
	}); err != nil {
		return fmt.Errorf("replay %s: reset: %w", store.Product.Name, err)
	}
	rc := &Consumer{
		Store: c.Store, Reaction: c.Reaction, Topics: c.Topics, Codec: c.Codec, Kafka: c.Kafka, Log: c.Log,
		Batch: c.Batch, MaxBackoff: c.MaxBackoff,
		Group: fmt.Sprintf("%s.replay-%d", c.Group, time.Now().UnixNano()),
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- rc.Run(rctx) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			cancel()
			<-done
			return ctx.Err()
		case err := <-done:
			return fmt.Errorf("replay %s: consumer stopped: %v", store.Product.Name, err)
		case <-tick.C:
			progress(rc.Applied(), total)
		case <-poll.C:
			if rc.Applied() >= total {
				cancel()
				<-done
				progress(rc.Applied(), total)
				return nil
			}
		}
	}
}
