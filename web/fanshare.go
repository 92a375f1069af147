package web

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshgate/meshgate/resolvers"
)

// Subscription events shared between subscribers. Every subscriber of a
// hub event ran the executor for its own response (field resolvers, the
// response middlewares, JSON), although subscribers of the same operation
// with the same rights get the same bytes: with 1,000 subscribers of every
// order the gateway spent its CPU computing one response 1,000 times over.
// Such subscriptions now form a group (shareGroup): per event the first of
// them to get there computes the response, the others wait for it and
// write its bytes with their own operation id.
//
// Nothing is shared that its subscriber might not have got on its own:
//
//   - The group key (shareKey) is the exact document, the operation name,
//     the variables (canonical JSON), the operation's cost (it is in the
//     response's extensions), and the caller's rights: its sorted roles and
//     the dev flag (resolvers.CallerShareKey). With row policies configured
//     nothing is shared: they depend on the subject and the claims.
//   - The event key (resolvers.Pull.Event) is the audit entry's product and
//     sequence and the cursor delivered with it.
//   - Only responses without errors and without extensions other than the
//     cost are shared, and none that returned personal data unmasked under
//     the read audit (recorded per subscriber: resolvers.ShareCheck). A
//     stream's failure or end is never shared (Pull.Event is "").
//
// Each subscriber still gets exactly the events of its own stream, in its
// order (for a shared one the transport calls Pull.Drop, and the
// subscription's own value is never made), and sends its own complete
// and errors.

// A group keeps the responses of at most shareEvents events, and of at
// most shareBytes bytes (larger responses are not shared), and forgets
// each once every subscriber of the group has had it: what it holds is
// the spread between its first and its last subscriber, within those
// bounds. Subscribers further behind compute their own responses.
const (
	shareEvents = 64
	shareBytes  = 4 << 20
)

// shareGroups are the groups of the running subscriptions, by key.
type shareGroups struct {
	resolver *resolvers.Resolver
	// computed and shared count the responses of pulled subscription
	// events sent: computed for the subscriber, or another's bytes.
	computed, shared prometheus.Counter

	mu     sync.Mutex
	groups map[string]*shareGroup
}

func newShareGroups(r *resolvers.Resolver, responses *prometheus.CounterVec) *shareGroups {
	s := &shareGroups{resolver: r, groups: map[string]*shareGroup{}}
	if responses != nil {
		s.computed = responses.WithLabelValues("computed")
		s.shared = responses.WithLabelValues("shared")
	}
	return s
}

// shareKey is the group key of an operation (see above); false when it
// shares with nobody.
func (s *shareGroups) shareKey(ctx context.Context, rc *graphql.OperationContext) (string, bool) {
	if s == nil || s.resolver == nil || rc == nil || rc.Operation == nil {
		return "", false
	}
	caller, ok := s.resolver.CallerShareKey(ctx)
	if !ok {
		return "", false
	}
	vars, err := json.Marshal(rc.Variables)
	if err != nil {
		return "", false
	}
	cost, _ := rc.Stats.GetExtension(costStat).(int)
	var b strings.Builder
	// Each part with its length: no two operations have the same key.
	for _, part := range []string{rc.RawQuery, rc.OperationName, string(vars), strconv.Itoa(cost), caller} {
		b.WriteString(strconv.Itoa(len(part)))
		b.WriteByte(':')
		b.WriteString(part)
	}
	return b.String(), true
}

// join adds an operation to its group (made if need be).
func (s *shareGroups) join(key string) *shareGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[key]
	if g == nil {
		g = &shareGroup{key: key}
		s.groups[key] = g
	}
	g.mu.Lock()
	g.ops++
	g.mu.Unlock()
	return g
}

// leave removes an operation from its group; the group is forgotten with
// its last operation.
func (s *shareGroups) leave(g *shareGroup) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g.mu.Lock()
	g.ops--
	last := g.ops == 0
	g.mu.Unlock()
	if last && s.groups[g.key] == g {
		delete(s.groups, g.key)
	}
}

// len returns how many groups there are (tests).
func (s *shareGroups) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.groups)
}

func (s *shareGroups) count(shared bool) {
	if s == nil {
		return
	}
	c := s.computed
	if shared {
		c = s.shared
	}
	if c != nil {
		c.Inc()
	}
}

// shareGroup is the subscriptions of one key.
type shareGroup struct {
	key string

	mu     sync.Mutex
	ops    int                       // its operations
	recent [shareEvents]*sharedEvent // a ring, by arrival; nil: free
	next   int
	byKey  map[string]*sharedEvent // recent's, by event
	bytes  int                     // of the payloads in recent
}

// sharedEvent is one event's response, computed by the first subscriber
// of the group to get there.
type sharedEvent struct {
	event string
	done  chan struct{} // closed once payload is set (or not)
	// payload is the response's JSON when it is shareable, else nil.
	payload []byte
	// taken counts the subscribers that had it, slot is its index in
	// recent (-1 once it left).
	taken, slot int
}

// claim returns the group's response for event; first when the caller is
// the first to ask and must compute it (and then call settle).
func (g *shareGroup) claim(event string) (e *sharedEvent, first bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e := g.byKey[event]; e != nil {
		e.taken++
		if e.taken >= g.ops {
			g.forget(e) // everybody had it
		}
		return e, false
	}
	e = &sharedEvent{event: event, done: make(chan struct{}), taken: 1, slot: -1}
	if g.ops > 1 {
		if old := g.recent[g.next]; old != nil {
			g.forget(old)
		}
		if g.byKey == nil {
			g.byKey = make(map[string]*sharedEvent, len(g.recent))
		}
		e.slot = g.next
		g.recent[g.next] = e
		g.byKey[event] = e
		g.next = (g.next + 1) % len(g.recent)
	}
	return e, true
}

// forget removes e from recent (g.mu held).
func (g *shareGroup) forget(e *sharedEvent) {
	if e.slot < 0 {
		return
	}
	g.recent[e.slot] = nil
	delete(g.byKey, e.event)
	e.slot = -1
	g.bytes -= len(e.payload)
}

// settle publishes the response computed for e (nil: not shareable) and
// wakes those waiting for it. A payload beyond the group's bytes is not
// shared.
func (g *shareGroup) settle(e *sharedEvent, payload []byte) {
	g.mu.Lock()
	switch {
	case e.slot < 0:
		// Out of recent: only those waiting for it hold it.
		e.payload = payload
	case g.bytes+len(payload) <= shareBytes:
		e.payload = payload
		g.bytes += len(payload)
	}
	g.mu.Unlock()
	close(e.done)
}

// shareable tells whether a computed response may go to the other
// subscribers of its group: no errors, nothing incremental, and no
// extension but the cost (which the group key fixes).
func shareable(resp *graphql.Response) bool {
	if len(resp.Errors) > 0 || resp.Label != "" || resp.Path != nil || resp.HasNext != nil {
		return false
	}
	for k := range resp.Extensions {
		if k != "cost" {
			return false
		}
	}
	return true
}

// encodeResponse is the payload of a next message.
func encodeResponse(resp *graphql.Response) []byte {
	var b bytes.Buffer
	writeResponse(&b, resp)
	return b.Bytes()
}
