package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/streaming"
	"github.com/meshgate/meshgate/web"
)

// readiness returns /readyz's check: every store answers, a Kafka broker
// accepts connections, and no relay's last attempt to publish failed. What
// is down is reported part by part (web.Down). The checks run
// concurrently within the caller's deadline.
func readiness(mesh *products.Mesh, brokers []string, relays []*streaming.Relay) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		var mu sync.Mutex
		var errs []error
		down := func(component string, err error) {
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, &web.Down{Component: component, Err: err})
		}
		var wg sync.WaitGroup
		for _, s := range mesh.Stores {
			wg.Go(func() {
				if err := s.DB.PingContext(ctx); err != nil {
					down("store "+s.Product.Name, err)
				}
			})
		}
		wg.Go(func() {
			if err := reachKafka(ctx, brokers); err != nil {
				down("kafka", err)
			}
		})
		for _, r := range relays {
			if err := r.Failing(); err != nil {
				down("relay "+r.Store.Product.Name, fmt.Errorf("cannot publish: %w", err))
			}
		}
		wg.Wait()
		return errors.Join(errs...)
	}
}

// reachKafka succeeds once one of the brokers accepts a TCP connection.
func reachKafka(ctx context.Context, brokers []string) error {
	if len(brokers) == 0 {
		return errors.New("no brokers configured")
	}
	var errs []error
	var d net.Dialer
	for _, b := range brokers {
		c, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			c.Close()
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
