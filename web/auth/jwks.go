package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// maxJWKSBytes bounds a JWKS document; real ones are a few KiB.
const maxJWKSBytes = 1 << 20

// keySet is a JWKS read from a URL or a file and kept in memory. It is
// read again when it is older than maxAge, and when a token names a key id
// it does not hold (key rotation), but never more often than once per
// minInterval, so tokens with made-up key ids cannot make the gateway
// hammer the identity provider. Reads happen in the goroutine of the
// request that needs them (no background goroutine); concurrent requests
// wait for that one read instead of starting their own.
type keySet struct {
	url, file   string
	client      *http.Client
	maxAge      time.Duration
	minInterval time.Duration
	log         *slog.Logger
	now         func() time.Time

	mu       sync.Mutex
	set      jwk.Set
	fetched  time.Time     // last successful read
	tried    time.Time     // last attempt
	inflight chan struct{} // closed when the running read ends; nil if none
	fetches  int           // reads attempted, for tests and logs
}

// source names the set in messages.
func (k *keySet) source() string {
	if k.url != "" {
		return k.url
	}
	return k.file
}

// keys returns the keys with id kid ("" = every key), reading the set
// again if it is stale or lacks kid and the last attempt is at least
// minInterval ago. It blocks while another request reads the set, at most
// until ctx ends.
func (k *keySet) keys(ctx context.Context, kid string) ([]jwk.Key, error) {
	for {
		k.mu.Lock()
		found := lookup(k.set, kid)
		stale := k.set == nil || k.now().Sub(k.fetched) > k.maxAge
		if len(found) > 0 && !stale {
			k.mu.Unlock()
			return found, nil
		}
		if wait := k.inflight; wait != nil {
			k.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if !k.tried.IsZero() && k.now().Sub(k.tried) < k.minInterval {
			k.mu.Unlock()
			return found, nil // a stale key is better than none; a missing one stays missing
		}
		k.tried = k.now()
		k.fetches++
		done := make(chan struct{})
		k.inflight = done
		k.mu.Unlock()

		set, err := k.read(ctx)
		k.mu.Lock()
		k.inflight = nil
		close(done)
		if err != nil {
			k.mu.Unlock()
			k.log.WarnContext(ctx, "jwks read failed", slog.String("source", k.source()), slog.String("error", err.Error()))
			return found, nil
		}
		k.set, k.fetched = set, k.now()
		found = lookup(set, kid)
		k.mu.Unlock()
		k.log.InfoContext(ctx, "jwks read", slog.String("source", k.source()), slog.Int("keys", set.Len()))
		return found, nil
	}
}

func lookup(set jwk.Set, kid string) []jwk.Key {
	if set == nil {
		return nil
	}
	var out []jwk.Key
	for i := range set.Len() {
		key, _ := set.Key(i)
		if id, _ := key.KeyID(); kid == "" || id == kid {
			out = append(out, key)
		}
	}
	return out
}

// read fetches and parses the set once.
func (k *keySet) read(ctx context.Context) (jwk.Set, error) {
	var b []byte
	if k.file != "" {
		f, err := os.Open(k.file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if b, err = io.ReadAll(io.LimitReader(f, maxJWKSBytes+1)); err != nil {
			return nil, err
		}
	} else {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/jwk-set+json, application/json")
		resp, err := k.client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		if b, err = io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1)); err != nil {
			return nil, err
		}
	}
	if len(b) > maxJWKSBytes {
		return nil, errors.New("JWKS larger than 1 MiB")
	}
	set, err := jwk.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("parse JWKS: %w", err)
	}
	// Keep only public keys: a JWKS that carries private or symmetric keys
	// by mistake must not let them verify anything.
	pub := jwk.NewSet()
	for i := range set.Len() {
		key, _ := set.Key(i)
		if _, ok := publicKey(key); ok {
			pub.AddKey(key)
		}
	}
	if pub.Len() == 0 {
		return nil, errors.New("JWKS holds no RSA, EC or Ed25519 public key")
	}
	return pub, nil
}
