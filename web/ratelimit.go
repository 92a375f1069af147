package web

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/meshgate/meshgate/products"
)

// rateLimiter holds one token bucket per caller: per identity when the
// caller is authenticated, per client IP otherwise (and in dev mode, where
// everyone is the same dev identity). Buckets idle for ten minutes are
// dropped, so the table does not grow with the number of callers ever seen.
type rateLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	calls   int
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

const bucketIdle = 10 * time.Minute

func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	if burst < 1 {
		burst = max(1, int(math.Ceil(2*perSecond)))
	}
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{}}
}

func (l *rateLimiter) perSecond() float64 { return float64(l.limit) }

// allow takes one token from key's bucket; when there is none it says how
// long until there will be.
func (l *rateLimiter) allow(key string) (bool, time.Duration) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.calls%4096 == 0 || len(l.buckets) > 100_000 {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > bucketIdle {
				delete(l.buckets, k)
			}
		}
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// exhausted tells, without taking a token, whether key's bucket is empty.
func (l *rateLimiter) exhausted(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	return b != nil && b.lim.TokensAt(time.Now()) < 1
}

// clientKey names the bucket of a request: its identity, or its IP.
func clientKey(r *http.Request, id *products.Identity) string {
	if id != nil && !id.Dev {
		return "id:" + id.Subject
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "ip:" + host
}

// limitRate answers 429 with Retry-After when the caller has used up its
// requests; it runs after authentication, so it knows who the caller is.
func limitRate(l *rateLimiter, next http.Handler) http.Handler {
	if l == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, wait := l.allow(clientKey(r, products.IdentityFrom(r.Context())))
		if !ok {
			secs := max(1, int(math.Ceil(wait.Seconds())))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			writeError(w, http.StatusTooManyRequests, string(products.LimitExceeded),
				fmt.Sprintf("too many requests: at most %g per second; retry after %d s", l.perSecond(), secs),
				map[string]any{"limit": "requestsPerSecond", "value": l.perSecond()})
			return
		}
		next.ServeHTTP(w, r)
	})
}
