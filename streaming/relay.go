package streaming

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/telemetry"
)

// Sender publishes messages to one Kafka cluster (*Publisher).
type Sender interface {
	// Cluster returns the id of the cluster Send sends to now.
	Cluster(ctx context.Context) (string, error)
	// Send publishes msgs to the cluster with the given id and returns
	// once all are acknowledged there; it fails if they may have gone to
	// another cluster.
	Send(ctx context.Context, cluster string, msgs []*sarama.ProducerMessage) error
}

// Relay publishes one product's audit log to Kafka in sequence order. It
// wakes right after each commit in this process, polls for entries written
// by other instances, and retries with backoff while Kafka is unreachable;
// writes keep succeeding meanwhile and the backlog follows in order.
//
// The store records which Kafka cluster its log went to. When the relay
// (of any instance) finds itself publishing to another cluster — the
// broker lost its log, or the log was never published — it publishes the
// whole log again from the beginning, then new entries, all under the
// store's outbox lock, so the new cluster holds every key's changes in
// order (see products.Store.Outbox). A broker that keeps its log (a real
// cluster, or the embedded broker with its data directory) keeps its id
// across restarts: nothing is published twice.
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
	// OnPublished, if set, is called with the entries of each batch once
	// Kafka acknowledged them (publish latency metrics).
	OnPublished func(entries []products.AuditEntry)

	published atomic.Int64
	failures  atomic.Int64
	restarts  atomic.Int64
	failing   atomic.Pointer[error]
}

// Failing returns why the relay's last attempt failed, or nil when it
// succeeded (or none was made yet).
func (r *Relay) Failing() error {
	if p := r.failing.Load(); p != nil {
		return *p
	}
	return nil
}

// Published returns how many entries this relay has published.
func (r *Relay) Published() int64 { return r.published.Load() }

// Restarts returns how often this relay started publishing the log from
// the beginning because the cluster had changed.
func (r *Relay) Restarts() int64 { return r.restarts.Load() }

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
		var round products.Round
		cluster, err := r.Sender.Cluster(ctx)
		if err == nil {
			round, err = r.Store.Outbox(ctx, batch, cluster, r.sendTo(cluster))
		}
		if ctx.Err() != nil {
			return nil
		}
		if round.Restarted {
			r.restarts.Add(1)
			if round.Previous == "" {
				log.Info("relay: publishing the whole audit log to a cluster it was not published to", "product", d.Name, "cluster", cluster)
			} else {
				log.Warn("relay: the Kafka cluster changed (the broker lost its log?); publishing the whole audit log again, in order",
					"product", d.Name, "cluster", cluster, "previous", round.Previous)
			}
		}
		n := round.Published
		if err != nil {
			r.failing.Store(&err)
		} else {
			r.failing.Store(nil)
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

// sendTo returns the outbox callback that publishes entries to cluster.
func (r *Relay) sendTo(cluster string) func(ctx context.Context, entries []products.AuditEntry) error {
	d := r.Store.Product
	return func(ctx context.Context, entries []products.AuditEntry) error {
		msgs := make([]*sarama.ProducerMessage, len(entries))
		for i := range entries {
			e := &entries[i]
			if r.MaskPII {
				masked, err := maskEntry(d, e)
				if err != nil {
					return err
				}
				e = masked
			}
			m, err := r.Codec.Message(d, e)
			if err != nil {
				return err
			}
			msgs[i] = m
		}
		ctx, span := publishSpan(ctx, d.Name, entries)
		err := r.Sender.Send(ctx, cluster, msgs)
		telemetry.End(span, err)
		if err == nil && r.OnPublished != nil {
			r.OnPublished(entries)
		}
		return err
	}
}

// Flush publishes what is committed and not yet published, in rounds until
// one finds less than a batch, and returns: the relay's part of a graceful
// shutdown, called after the requests in flight ended and Run returned.
// When another instance holds the store's outbox lock, that instance
// publishes (PostgreSQL) and Flush returns. It fails when ctx ends or
// Kafka refuses first; what it could not publish stays in the outbox for
// the next relay to run.
func (r *Relay) Flush(ctx context.Context) error {
	batch := r.Batch
	if batch <= 0 {
		batch = 500
	}
	for {
		cluster, err := r.Sender.Cluster(ctx)
		if err != nil {
			return err
		}
		round, err := r.Store.Outbox(ctx, batch, cluster, r.sendTo(cluster))
		if err != nil {
			return err
		}
		r.published.Add(int64(round.Published))
		if round.Published < batch {
			return nil
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
