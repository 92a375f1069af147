package streaming

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/meshgate/meshgate/products"
)

// Sender publishes messages and returns once all are acknowledged.
type Sender interface {
	Send(ctx context.Context, msgs []*sarama.ProducerMessage) error
}

// Relay publishes one product's audit log to Kafka in sequence order. It
// wakes right after each commit in this process, polls for entries written
// by other instances, and retries with backoff while Kafka is unreachable;
// writes keep succeeding meanwhile and the backlog follows in order.
type Relay struct {
	Store  *products.Store
	Sender Sender
	Codec  Codec
	Log    *slog.Logger
	// Batch is the most entries published at once (default 500).
	Batch int
	// Poll is how often the relay looks for entries committed elsewhere
	// (default 500ms).
	Poll time.Duration
	// MaxBackoff bounds the wait between failed attempts (default 5s).
	MaxBackoff time.Duration
	// MaskPII masks the personal fields of the images it publishes (see
	// products.Masked); the audit log keeps the stored values.
	MaskPII bool

	published atomic.Int64
	failures  atomic.Int64
}

// Published returns how many entries this relay has published.
func (r *Relay) Published() int64 { return r.published.Load() }

// Failures returns how many publish attempts failed.
func (r *Relay) Failures() int64 { return r.failures.Load() }

// Run relays until ctx ends; it returns nil then.
func (r *Relay) Run(ctx context.Context) error {
	batch, poll, maxBackoff := r.Batch, r.Poll, r.MaxBackoff
	if batch <= 0 {
		batch = 500
	}
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Second
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	wake := make(chan struct{}, 1)
	r.Store.OnCommit(func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	backoff := time.Duration(0)
	d := r.Store.Product
	for {
		n, err := r.Store.Outbox(ctx, batch, func(ctx context.Context, entries []products.AuditEntry) (err error) {
			msgs := make([]*sarama.ProducerMessage, len(entries))
			for i := range entries {
				e := &entries[i]
				if r.MaskPII {
					if e, err = maskEntry(d, e); err != nil {
						return err
					}
				}
				m, err := r.Codec.Message(d, e)
				if err != nil {
					return err
				}
				msgs[i] = m
			}
			return r.Sender.Send(ctx, msgs)
		})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.failures.Add(1)
			backoff = min(max(2*backoff, 100*time.Millisecond), maxBackoff)
			log.Warn("relay: publish failed; retrying", "product", d.Name, "error", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			continue
		}
		if backoff > 0 {
			log.Info("relay: publishing again", "product", d.Name)
			backoff = 0
		}
		r.published.Add(int64(n))
		if n == batch {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-ticker.C:
		}
	}
}

// maskEntry returns a copy of the audit entry with the personal fields of
// its images masked (--kafka-mask-pii).
func maskEntry(d *products.Descriptor, a *products.AuditEntry) (*products.AuditEntry, error) {
	e := d.Entity(a.Entity)
	if e == nil {
		return a, nil // Codec.Message reports the unknown entity
	}
	m := *a
	var err error
	if m.Before, err = products.MaskImageJSON(e, a.Before); err != nil {
		return nil, err
	}
	if m.After, err = products.MaskImageJSON(e, a.After); err != nil {
		return nil, err
	}
	return &m, nil
}
