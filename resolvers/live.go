package resolvers

import (
	"context"
	"log/slog"
	"time"

	"github.com/meshgate/meshgate/streaming"
)

// live pushes compute's result now and again whenever an event passing f
// arrives, at most r.LiveRate times per second (changes in between are
// coalesced into the next push). It is for dashboards that want the current
// figures, not every change.
func live[T any](ctx context.Context, r *Resolver, f *streaming.Filter, compute func(context.Context) (T, error)) (<-chan T, error) {
	if _, err := r.Hub.Check(ctx, f, nil); err != nil {
		return nil, err
	}
	rate := r.LiveRate
	if rate <= 0 {
		rate = 4
	}
	interval := time.Duration(float64(time.Second) / rate)
	changed := make(chan struct{}, 1)
	go r.Hub.Stream(ctx, f, nil, func(streaming.Event) error {
		select {
		case changed <- struct{}{}:
		default:
		}
		return nil
	})
	out := make(chan T)
	go func() {
		defer close(out)
		send := func() bool {
			v, err := compute(ctx)
			if err != nil {
				if ctx.Err() == nil {
					slog.Default().WarnContext(ctx, "live aggregate failed", "error", err)
				}
				return ctx.Err() == nil
			}
			select {
			case out <- v:
				return true
			case <-ctx.Done():
				return false
			}
		}
		if !send() {
			return
		}
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			if wait := time.Until(last.Add(interval)); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			select { // changes during the wait are covered by this push
			case <-changed:
			default:
			}
			last = time.Now()
			if !send() {
				return
			}
		}
	}()
	return out, nil
}
