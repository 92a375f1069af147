package meshtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/orders"
	"github.com/meshgate/meshgate/products/shipments"
)

// Targets returns the base URLs requests may go to (the live instances).
type Targets func() []string

// Load is mixed traffic through the API: orders placed (half the
// operations), cancelled and shipped, and reads. It remembers every
// mutation that reported success, to check that none was lost.
type Load struct {
	Targets   Targets
	Customers []int64 // orders are placed for these customers
	Items     []int64 // of these items
	// Hot customers get every other order (their subscribers see
	// traffic); may be empty.
	Hot []int64
	// Rate bounds the requests per second of all workers together
	// (0: as fast as they go).
	Rate float64

	limiter *rate.Limiter

	mutations atomic.Int64
	mu        sync.Mutex
	placed    []int64
	cancelled map[int64]bool
	shipped   map[int64]string // order → carrier
	outcomes  map[string]int   // "op outcome" → count
	samples   []Sample
}

// Sample is the outcome of one request.
type Sample struct {
	At      time.Time
	Op      string
	Took    time.Duration
	Outcome string // "ok", a GraphQL error code, or "transport"
}

const (
	placeOrder = `mutation($c: ID!, $lines: [OrderLineInput!]!) { placeOrder(customerId: $c, lines: $lines) { id status } }`
	cancel     = `mutation($id: ID!) { cancelOrder(id: $id) { id status } }`
	ship       = `mutation($o: ID!, $c: String!) { shipOrder(orderId: $o, carrier: $c) { id status carrier } }`
	read       = `query($c: ID!, $i: ID!) { orders(first: 5, where: {customerId: {eq: $c}}, orderBy: [{field: ID, direction: DESC}]) { nodes { id status total customer { name } lines { quantity item { name } } } } item(id: $i) { name stock sales { units } } }`
)

// Shop returns the ids of up to n customers and n items through base.
func Shop(ctx context.Context, base string, n int) (customers, items []int64, err error) {
	r, err := Query(ctx, base, `query($n: Int!) { customers(first: $n) { nodes { id } } items(first: $n) { nodes { id } } }`, map[string]any{"n": n})
	if err != nil {
		return nil, nil, err
	}
	if err := r.Err(); err != nil {
		return nil, nil, err
	}
	ids := func(field string) []int64 {
		var out []int64
		for _, n := range r.Data[field].(map[string]any)["nodes"].([]any) {
			id, _ := strconv.ParseInt(n.(map[string]any)["id"].(string), 10, 64)
			out = append(out, id)
		}
		return out
	}
	return ids("customers"), ids("items"), nil
}

// Run sends requests from workers concurrent clients until ctx ends.
func (l *Load) Run(ctx context.Context, workers int) {
	l.mu.Lock()
	if l.cancelled == nil {
		l.cancelled, l.shipped, l.outcomes = map[int64]bool{}, map[int64]string{}, map[string]int{}
	}
	if l.limiter == nil && l.Rate > 0 {
		l.limiter = rate.NewLimiter(rate.Limit(l.Rate), 1)
	}
	l.mu.Unlock()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				if l.limiter != nil && l.limiter.Wait(ctx) != nil {
					return
				}
				l.one(ctx, rng)
			}
		})
	}
	wg.Wait()
}

// Mutations returns how many mutations reported success.
func (l *Load) Mutations() int64 { return l.mutations.Load() }

func (l *Load) one(ctx context.Context, rng *rand.Rand) {
	targets := l.Targets()
	if len(targets) == 0 {
		time.Sleep(10 * time.Millisecond) // all instances down: wait for one
		return
	}
	base := targets[rng.IntN(len(targets))]
	pick := func(ids []int64) int64 { return ids[rng.IntN(len(ids))] }
	var op, query string
	var vars map[string]any
	var order int64
	l.mu.Lock()
	n := len(l.placed)
	if n > 0 {
		// Recent orders: those are the ones still to be shipped or
		// cancelled.
		order = l.placed[n-1-rng.IntN(min(n, 50))]
	}
	l.mu.Unlock()
	// Even orders may be cancelled, odd ones shipped, never both: the
	// orders product learns of a shipping only through its reaction, so a
	// cancel racing a shipOrder of the same order may succeed and leave
	// the order CANCELLED with its goods SHIPPED (see Books).
	shippable := order%2 == 1
	switch x := rng.IntN(10); {
	case x < 5 || n == 0:
		op, query = "placeOrder", placeOrder
		c := pick(l.Customers)
		if len(l.Hot) > 0 && rng.IntN(2) == 0 {
			c = pick(l.Hot)
		}
		lines := []map[string]any{{"itemId": pick(l.Items), "quantity": 1 + rng.IntN(3)}}
		if j := pick(l.Items); j != lines[0]["itemId"] {
			lines = append(lines, map[string]any{"itemId": j, "quantity": 1})
		}
		vars = map[string]any{"c": c, "lines": lines}
	case x < 7 && !shippable:
		op, query, vars = "cancelOrder", cancel, map[string]any{"id": order}
	case x < 7:
		op, query, vars = "shipOrder", ship, map[string]any{"o": order, "c": fmt.Sprintf("Carrier %d", order%7)}
	default:
		op, query, vars = "read", read, map[string]any{"c": pick(l.Customers), "i": pick(l.Items)}
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	r, err := Query(rctx, base, query, vars)
	took := time.Since(start)
	if ctx.Err() != nil {
		return // the load ended mid-request: no outcome
	}
	outcome := "ok"
	switch {
	case err != nil:
		outcome = "transport"
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			outcome = "timeout"
		}
	case len(r.Errors) > 0:
		outcome = r.Code()
		if outcome == "" {
			outcome = fmt.Sprintf("HTTP %d", r.Status)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outcomes[op+" "+outcome]++
	l.samples = append(l.samples, Sample{At: start, Op: op, Took: took, Outcome: outcome})
	if outcome != "ok" {
		return
	}
	switch op {
	case "placeOrder":
		id, _ := strconv.ParseInt(r.Data["placeOrder"].(map[string]any)["id"].(string), 10, 64)
		l.placed = append(l.placed, id)
	case "cancelOrder":
		l.cancelled[order] = true
	case "shipOrder":
		l.shipped[order] = vars["c"].(string)
	}
	if op != "read" {
		l.mutations.Add(1)
	}
}

// Outcomes returns the requests by "operation outcome", e.g.
// "placeOrder ok" or "shipOrder CONFLICT".
func (l *Load) Outcomes() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for k, v := range l.outcomes {
		out[k] = v
	}
	return out
}

// Samples returns every request's outcome so far.
func (l *Load) Samples() []Sample {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.samples)
}

// Unexpected returns the outcomes that are neither success nor a refusal
// the load provokes on purpose (CONFLICT: cancelling a shipped order,
// shipping one not reserved yet; NOT_FOUND: shipping one whose shipment is
// not prepared yet) nor one of allowed.
func (l *Load) Unexpected(allowed ...string) map[string]int {
	out := map[string]int{}
	for k, v := range l.Outcomes() {
		_, outcome, _ := strings.Cut(k, " ")
		if outcome != "ok" && outcome != "CONFLICT" && k != "shipOrder NOT_FOUND" && !slices.Contains(allowed, outcome) {
			out[k] = v
		}
	}
	return out
}

// Summary describes the load's outcomes.
func (l *Load) Summary() string {
	out := l.Outcomes()
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, out[k])
	}
	return fmt.Sprintf("%d mutations succeeded; requests: %s", l.Mutations(), strings.Join(parts, ", "))
}

// CheckCommitted checks that every mutation that reported success is in
// the stores and their audit logs: each placed order exists and was
// recorded created; each cancelled one is CANCELLED and recorded so; each
// shipped one has its shipment SHIPPED (or DELIVERED) with the carrier,
// recorded so. It returns the differences ("" when none was lost).
func (l *Load) CheckCommitted(ctx context.Context, m *products.Mesh) (string, error) {
	l.mu.Lock()
	placed := slices.Clone(l.placed)
	cancelled := map[int64]bool{}
	for k, v := range l.cancelled {
		cancelled[k] = v
	}
	shipped := map[int64]string{}
	for k, v := range l.shipped {
		shipped[k] = v
	}
	l.mu.Unlock()
	var out []string
	var all []orders.Order
	if err := m.Store("orders").DB.NewSelect().Model(&all).Scan(ctx); err != nil {
		return "", err
	}
	status := map[int64]string{}
	for _, o := range all {
		status[o.ID] = o.Status
	}
	var entries []products.AuditEntry
	if err := m.Store("orders").DB.NewSelect().Model(&entries).Where("entity = 'Order'").Scan(ctx); err != nil {
		return "", err
	}
	created, cancelledLog := map[int64]bool{}, map[int64]bool{}
	for _, e := range entries {
		if e.Op == products.OpCreate {
			created[e.Key] = true
		}
		var after struct {
			Status string `json:"status"`
		}
		if e.After != nil && json.Unmarshal([]byte(*e.After), &after) == nil && after.Status == orders.StatusCancelled {
			cancelledLog[e.Key] = true
		}
	}
	for _, id := range placed {
		if _, ok := status[id]; !ok {
			out = append(out, fmt.Sprintf("placed order %d is not in the orders store", id))
		}
		if !created[id] {
			out = append(out, fmt.Sprintf("placed order %d has no CREATE audit entry", id))
		}
	}
	for id := range cancelled {
		if status[id] != orders.StatusCancelled {
			out = append(out, fmt.Sprintf("cancelled order %d is %q in the store", id, status[id]))
		}
		if !cancelledLog[id] {
			out = append(out, fmt.Sprintf("cancelled order %d has no audit entry of its cancellation", id))
		}
	}
	var ships []shipments.Shipment
	if err := m.Store("shipments").DB.NewSelect().Model(&ships).Scan(ctx); err != nil {
		return "", err
	}
	byOrder := map[int64]shipments.Shipment{}
	for _, sh := range ships {
		byOrder[sh.OrderID] = sh
	}
	var shipLog []products.AuditEntry
	if err := m.Store("shipments").DB.NewSelect().Model(&shipLog).Where("entity = 'Shipment'").Scan(ctx); err != nil {
		return "", err
	}
	shippedLog := map[int64]bool{} // shipment → recorded SHIPPED
	for _, e := range shipLog {
		var after struct {
			Status string `json:"status"`
		}
		if e.After != nil && json.Unmarshal([]byte(*e.After), &after) == nil && after.Status == shipments.Shipped {
			shippedLog[e.Key] = true
		}
	}
	for id, carrier := range shipped {
		sh, ok := byOrder[id]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("shipped order %d has no shipment", id))
		case sh.Status != shipments.Shipped && sh.Status != shipments.Delivered || sh.Carrier == nil || *sh.Carrier != carrier:
			out = append(out, fmt.Sprintf("shipped order %d: shipment %d is %s with carrier %v, want SHIPPED with %q", id, sh.ID, sh.Status, sh.Carrier, carrier))
		case !shippedLog[sh.ID]:
			out = append(out, fmt.Sprintf("shipped order %d: shipment %d has no audit entry of its shipping", id, sh.ID))
		}
	}
	return summary(out), nil
}

// Watcher follows one subscription across instances: when its connection
// drops (its instance was killed), it resumes on another live instance
// with the cursor of the last event it got.
type Watcher struct {
	field, query string
	vars         map[string]any
	targets      Targets

	mu      sync.Mutex
	events  []Event
	base    string
	resumes int
	ends    []string
}

// Watch subscribes on first (then on any of targets) until ctx ends. The
// query must take $since: String.
func Watch(ctx context.Context, targets Targets, first, field, query string, vars map[string]any) *Watcher {
	w := &Watcher{field: field, query: query, vars: vars, targets: targets, base: first}
	go w.run(ctx)
	return w
}

func (w *Watcher) run(ctx context.Context) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	base := w.base
	for ctx.Err() == nil {
		vars := map[string]any{}
		for k, v := range w.vars {
			vars[k] = v
		}
		w.mu.Lock()
		if n := len(w.events); n > 0 {
			vars["since"] = w.events[n-1].Cursor
			w.resumes++
		}
		w.base = base
		w.mu.Unlock()
		sub, err := Subscribe(ctx, base, w.field, w.query, vars)
		if err == nil {
			stop := context.AfterFunc(ctx, sub.Close)
			for ev := range sub.Events {
				w.mu.Lock()
				w.events = append(w.events, ev)
				w.mu.Unlock()
			}
			stop()
			err = sub.Err()
		}
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		w.ends = append(w.ends, fmt.Sprintf("%s: %v", base, err))
		w.mu.Unlock()
		// Another instance, if there is one.
		targets := w.targets()
		others := slices.DeleteFunc(slices.Clone(targets), func(t string) bool { return t == base })
		switch {
		case len(others) > 0:
			base = others[rng.IntN(len(others))]
		case len(targets) > 0:
			base = targets[0]
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Events returns the events received so far, across resumes.
func (w *Watcher) Events() []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.events)
}

// Base returns the instance the watcher is (or was last) subscribed on.
func (w *Watcher) Base() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.base
}

// Resumes returns how often the watcher resubscribed with a cursor, and why
// its subscriptions ended.
func (w *Watcher) Resumes() (int, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.resumes, slices.Clone(w.ends)
}

// OrdersOf returns the sequences of the orders log's changes of customer's
// orders (as orderChanged(where: {customerId: {eq: customer}}) selects
// them) after sequence after, in order.
func OrdersOf(ctx context.Context, m *products.Mesh, customer, after int64) ([]int64, error) {
	var entries []products.AuditEntry
	if err := m.Store("orders").DB.NewSelect().Model(&entries).Where("entity = 'Order' AND sequence > ?", after).Order("sequence").Scan(ctx); err != nil {
		return nil, err
	}
	var out []int64
	for _, e := range entries {
		row := e.After
		if row == nil {
			row = e.Before
		}
		var o struct {
			CustomerID int64 `json:"customerId"`
		}
		if row != nil && json.Unmarshal([]byte(*row), &o) == nil && o.CustomerID == customer {
			out = append(out, e.Sequence)
		}
	}
	return out, nil
}

// CheckStream compares the sequences a watcher received with want (the
// log's matching changes after its first event): nothing missed, nothing
// twice, in order.
func CheckStream(got []Event, want []int64) string {
	var out []string
	seen := map[int64]bool{}
	var last int64
	for _, e := range got {
		if seen[e.Sequence] {
			out = append(out, fmt.Sprintf("sequence %d arrived twice", e.Sequence))
		}
		if e.Sequence < last {
			out = append(out, fmt.Sprintf("sequence %d arrived after %d", e.Sequence, last))
		}
		seen[e.Sequence], last = true, e.Sequence
	}
	wanted := map[int64]bool{}
	for _, s := range want {
		wanted[s] = true
		if !seen[s] {
			out = append(out, fmt.Sprintf("sequence %d was missed", s))
		}
	}
	for i, e := range got {
		if i > 0 && !wanted[e.Sequence] {
			out = append(out, fmt.Sprintf("sequence %d arrived but does not match", e.Sequence))
		}
	}
	return summary(out)
}
