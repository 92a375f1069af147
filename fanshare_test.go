package main

// Subscription events shared between subscribers (web/fanshare.go),
// through the real server: subscribers of the same operation with the
// same rights get the bytes computed once per event; nobody gets what it
// would not have got on its own.

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// sharedResponses reads the computed and shared counts of
// meshgate_subscription_responses_total.
func sharedResponses(t testing.TB, g *gateway) (computed, shared float64) {
	m := g.scrape(t)
	return m[`meshgate_subscription_responses_total{response="computed"}`], m[`meshgate_subscription_responses_total{response="shared"}`]
}

// waitSubscriptions waits until the hub feeds n subscriptions (their
// operations have joined their groups by then: see wsOperation.start).
func waitSubscriptions(t testing.TB, g *gateway, n int) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprint(n, " subscriptions"), func() bool {
		return g.scrape(t)["meshgate_subscriptions_active"] == float64(n)
	})
}

// shareSetup starts a gateway with JWTs (and the extra flags) and returns
// it with an admin token, a cursor to subscribe since and a function that
// makes n customer updates and returns the sequence of the last.
func shareSetup(t *testing.T, args []string, extra ...string) (g *gateway, admin, since string, update func(n int) int64) {
	g = startGateway(t, append(jwtFlags(extra...), args...)...)
	admin = jwtFor("admin", []string{"admin"}, nil)
	ws := dialAs(t, g, admin)
	ws.subscribe("probe", `subscription { customerChanged { cursor sequence after { name } } }`, nil)
	round := 0
	mutate := func(i int) {
		g.as(t, admin, `mutation($n: String!) { updateCustomer(id: 3, input: {name: $n}) { id } }`, map[string]any{"n": fmt.Sprint("Pat ", round, " ", i)}).ok(t)
	}
	ev := ws.firstOf("probe", "customerChanged", mutate)
	since = ev["cursor"].(string)
	update = func(n int) int64 {
		round++
		last := fmt.Sprint("Pat ", round, " ", n-1)
		for i := range n {
			mutate(i)
		}
		for {
			ev, _ := ws.event("customerChanged", 20*time.Second)
			if dig(ev, "after", "name") == last {
				seq, _ := dig(ev, "sequence").(float64)
				return int64(seq)
			}
		}
	}
	return g, admin, since, update
}

// sharePayloads returns the payloads of subscription id's events up to
// the one with sequence last, raw as they came.
func sharePayloads(t *testing.T, ws *wsClient, id string, last int64) []string {
	t.Helper()
	var out []string
	for {
		m, ok := ws.next(20 * time.Second)
		if !ok {
			t.Fatalf("subscription %s: no event up to sequence %d (got %d)", id, last, len(out))
		}
		if m.ID != id {
			continue
		}
		if m.Type != "next" {
			t.Fatalf("subscription %s: %s %s", id, m.Type, m.Payload)
		}
		out = append(out, string(m.Payload))
		var e struct {
			Data struct {
				CustomerChanged struct {
					Sequence int64 `json:"sequence"`
				} `json:"customerChanged"`
			} `json:"data"`
		}
		if err := json.Unmarshal(m.Payload, &e); err != nil {
			t.Fatal(err)
		}
		if e.Data.CustomerChanged.Sequence >= last {
			return out
		}
	}
}

const shareQuery = `subscription($since: String) { customerChanged(since: $since) { op sequence cursor after { id name email } before { name } } }`

// TestSharedSubscriptionEvents: four sockets with pii:read and four
// without, each subscriber a different subject, all subscribed with the
// same document and variables: within each set every event's payload is
// the same bytes, computed once; the sets never get each other's
// (masked against unmasked personal fields). Without the read audit:
// with it, unmasked responses are recorded per subscriber and not shared
// (below).
func TestSharedSubscriptionEvents(t *testing.T) {
	backends(t, func(t *testing.T, args []string) {
		g, _, since, update := shareSetup(t, args, "--pii-read-audit=false")
		roles := []string{"customers:read"}
		sets := map[string][]*wsClient{}
		for _, set := range []string{"masked", "clear"} {
			for i := range 4 {
				r := roles
				if set == "clear" {
					r = []string{"pii:read", "customers:read"}
					if i%2 == 1 {
						r = []string{"customers:read", "pii:read", "customers:read"} // the same rights
					}
				}
				ws := dialAs(t, g, jwtFor(fmt.Sprint(set, i), r, nil))
				ws.subscribe("s", shareQuery, map[string]any{"since": since})
				sets[set] = append(sets[set], ws)
			}
		}
		waitSubscriptions(t, g, 1+8)
		computed0, shared0 := sharedResponses(t, g)
		const n = 6
		last := update(n)
		got := map[string][][]string{}
		events := 0
		for set, list := range sets {
			for _, ws := range list {
				p := sharePayloads(t, ws, "s", last)
				got[set] = append(got[set], p)
				events = len(p)
			}
		}
		if events < n {
			t.Fatalf("%d events per subscriber, want at least %d", events, n)
		}
		for set, lists := range got {
			for i, l := range lists {
				if strings.Join(l, "\n") != strings.Join(lists[0], "\n") {
					t.Errorf("%s subscriber %d got\n%s\nsubscriber 0 got\n%s", set, i, strings.Join(l, "\n"), strings.Join(lists[0], "\n"))
				}
				for _, p := range l {
					masked := strings.Contains(p, `"email":"***"`) && !strings.Contains(p, "@")
					if masked != (set == "masked") {
						t.Errorf("%s subscriber %d got %s", set, i, p)
					}
				}
			}
		}
		computed, shared := sharedResponses(t, g)
		computed -= computed0
		shared -= shared0
		deliveries := float64(8 * events)
		// Each group computes each event once (the probe's own
		// subscription computes its events too).
		if computed+shared < deliveries || shared != deliveries-2*float64(events) {
			t.Errorf("%v computed and %v shared responses for %v deliveries to two groups of %d events", computed, shared, deliveries, events)
		}
		t.Logf("%v computed and %v shared responses for %v deliveries", computed, shared, deliveries)
	})
}

// TestSubscriptionEventsNotShared: what is not shared. Subscribers whose
// variables differ compute their own responses (even when the bytes come
// out alike); so do subscribers whose responses have errors (a field
// refused to them in every event), and, under the read audit,
// subscribers that get personal data unmasked (each one's reads are
// recorded), while the masked ones still share.
func TestSubscriptionEventsNotShared(t *testing.T) {
	backends(t, func(t *testing.T, args []string) {
		g, _, since, update := shareSetup(t, args)
		token := jwtFor("reader", []string{"customers:read"}, nil)
		clear := jwtFor("clear", []string{"customers:read", "pii:read"}, nil)
		type sub struct {
			ws        *wsClient
			query     string
			vars      map[string]any
			errors    bool
			unmasked  bool
			mayShare  bool
			collected []string
		}
		varied := `subscription($since: String, $ops: [AuditOp!]) { customerChanged(since: $since, ops: $ops) { sequence after { name } } }`
		refused := `subscription($since: String) { customerChanged(since: $since) { sequence after { name history(first: 1) { totalCount } } } }`
		personal := `subscription($since: String) { customerChanged(since: $since) { sequence after { email } } }`
		subs := []*sub{
			{query: varied, vars: map[string]any{"since": since, "ops": []string{"UPDATE"}}},
			{query: varied, vars: map[string]any{"since": since, "ops": []string{"UPDATE", "CREATE"}}},
			{query: varied, vars: map[string]any{"since": since, "ops": []string{"CREATE", "UPDATE"}}},
			{query: refused, vars: map[string]any{"since": since}, errors: true},
			{query: refused, vars: map[string]any{"since": since}, errors: true},
			{query: personal, vars: map[string]any{"since": since}, unmasked: true},
			{query: personal, vars: map[string]any{"since": since}, unmasked: true},
			{query: personal, vars: map[string]any{"since": since}, mayShare: true},
			{query: personal, vars: map[string]any{"since": since}, mayShare: true},
		}
		for i, s := range subs {
			tok := token
			if s.unmasked {
				tok = clear
			}
			s.ws = dialAs(t, g, tok)
			s.ws.subscribe(fmt.Sprint(i), s.query, s.vars)
		}
		waitSubscriptions(t, g, 1+len(subs))
		computed0, shared0 := sharedResponses(t, g)
		last := update(5)
		deliveries, shareable := 0, 0
		for i, s := range subs {
			s.collected = sharePayloads(t, s.ws, fmt.Sprint(i), last)
			deliveries += len(s.collected)
			if s.mayShare {
				shareable += len(s.collected)
			}
			for _, p := range s.collected {
				if hasErrors := strings.Contains(p, `"errors"`); hasErrors != s.errors {
					t.Errorf("subscriber %d: %s", i, p)
				}
				if s.query == personal && s.unmasked == strings.Contains(p, `"email":"***"`) {
					t.Errorf("subscriber %d: %s", i, p)
				}
			}
		}
		computed, shared := sharedResponses(t, g)
		computed -= computed0
		shared -= shared0
		// Only the second of the two masked subscribers may have had the
		// first's bytes: half of their deliveries, at most.
		if shared > float64(shareable/2) || computed+shared < float64(deliveries) {
			t.Errorf("%v computed and %v shared for %d deliveries, of which %d to the two that may share", computed, shared, deliveries, shareable)
		}
		if shared == 0 {
			t.Errorf("the two masked subscribers shared nothing (%v computed)", computed)
		}
		t.Logf("%v computed and %v shared responses for %d deliveries", computed, shared, deliveries)
	})
}
