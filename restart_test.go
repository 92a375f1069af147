package main

import (
	"bufio"
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/streaming"
)

// scrape returns the gateway's /metrics samples by name (with labels).
func (g *gateway) scrape(t testing.TB) map[string]float64 {
	t.Helper()
	resp, err := http.Get(g.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// lagZero tells whether every reacting product has applied every change.
func (g *gateway) lagZero(t testing.TB) bool {
	r := g.gql(t, `{ consumerLag { lag } }`, nil).must(t)
	for _, l := range r["consumerLag"].([]any) {
		if l.(map[string]any)["lag"].(float64) != 0 {
			return false
		}
	}
	return true
}

// settled tells whether every store's log is published.
func settled(t testing.TB, m *products.Mesh) bool {
	for _, s := range m.Stores {
		pending, _, err := s.Backlog(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if pending > 0 {
			return false
		}
	}
	return true
}

// records sums what the topics of the mesh hold.
func records(t testing.TB, broker string, m *products.Mesh) int64 {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_0_0_0
	client, err := sarama.NewClient([]string{broker}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	codec := streaming.Codec{Prefix: "meshgate"}
	var n int64
	for _, s := range m.Stores {
		for _, e := range s.Product.Entities {
			topic := codec.Topic(s.Product.Name, e)
			parts, err := client.Partitions(topic)
			if err != nil {
				continue // never published to
			}
			for _, p := range parts {
				hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
				if err != nil {
					t.Fatal(err)
				}
				n += hwm
			}
		}
	}
	return n
}

// TestRestartPublishesAndAppliesNothingAgain: a gateway restarted over its
// data directory serves without replaying the world: the embedded broker
// comes back with its log and the groups' offsets, no relay publishes the
// history again, no consumer is redelivered what it applied, and the
// reactions to changes made after the restart are applied with zero lag.
func TestRestartPublishesAndAppliesNothingAgain(t *testing.T) {
	backends(t, func(t *testing.T, args []string) {
		dataDir := t.TempDir()
		args = append(args, "--data-dir", dataDir, "--seed-scale", "0.01")
		g := startGateway(t, args...)
		m, err := demo.Open(context.Background(), meshDSN(dataDir, args))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		eventually(t, 60*time.Second, "the first run to settle", func() bool { return g.lagZero(t) && settled(t, m) })
		g.stop(t)

		g = startGateway(t, args...)
		for i := range 6 {
			g.gql(t, `mutation($c: ID!) { placeOrder(customerId: $c, lines: [{itemId: 2, quantity: 1}]) { id } }`, map[string]any{"c": 1 + i}).must(t)
		}
		eventually(t, 60*time.Second, "the reactions to the new orders", func() bool {
			placed, err := m.Store("orders").DB.NewSelect().Table("orders").Where("status = 'PLACED'").Count(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return placed == 0 && g.lagZero(t) && settled(t, m)
		})
		metrics := g.scrape(t)
		for name, v := range metrics {
			if (strings.HasPrefix(name, "meshgate_relay_restarts_total") || strings.HasPrefix(name, "meshgate_consumer_duplicates_total")) && v != 0 {
				t.Errorf("%s = %v after the restart, want 0", name, v)
			}
		}
		if metrics[`meshgate_consumer_applied_total{product="inventory"}`] < 6 {
			t.Errorf("inventory applied %v changes after the restart, want the 6 new orders at least", metrics[`meshgate_consumer_applied_total{product="inventory"}`])
		}
		var entries int64
		for _, s := range m.Stores {
			latest, err := s.Latest(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			entries += latest
		}
		if got := records(t, g.kafka, m); got != entries {
			t.Errorf("the topics hold %d records for %d audit entries; want one each (nothing published twice)", got, entries)
		}
	})
}

// queries records the SQL a store issues.
type queries struct {
	mu  sync.Mutex
	all []string
}

func (q *queries) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }
func (q *queries) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.all = append(q.all, e.Query)
}

func (q *queries) take() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.all
	q.all = nil
	return out
}

var countOverLog = regexp.MustCompile(`(?is)count\s*\(.*mg_audit_log`)

// TestMetricsScrapeCountsNothing: a /metrics scrape reads a few counter
// rows per product: no COUNT over an audit log, whatever its length, and
// the lag it reports is still exact.
func TestMetricsScrapeCountsNothing(t *testing.T) {
	backends(t, func(t *testing.T, args []string) {
		ctx := context.Background()
		dataDir := t.TempDir()
		var q queries
		m, err := demo.Open(ctx, meshDSN(dataDir, args), &q)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if _, err := m.Seed(ctx, 0.01, func(string, string, int, int) {}); err != nil {
			t.Fatal(err)
		}
		consumers := streaming.Consumers(m, streaming.Codec{Prefix: "meshgate"}, streaming.KafkaConfig{}, nil)
		var relays []*streaming.Relay
		for _, s := range m.Stores {
			relays = append(relays, &streaming.Relay{Store: s})
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(newStreamMetrics(m, consumers, relays, &streaming.Hub{Stores: m.Stores}))
		q.take()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		issued := q.take()
		for _, s := range issued {
			if countOverLog.MatchString(s) {
				t.Errorf("the scrape counted over an audit log: %s", s)
			}
		}
		t.Logf("a scrape issued %d statements", len(issued))
		// Nothing is applied yet: inventory lags by every order change.
		counts, err := m.Store("orders").EntityCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var lag float64 = -1
		for _, f := range families {
			if f.GetName() != "meshgate_consumer_lag" {
				continue
			}
			for _, s := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range s.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["product"] == "inventory" && labels["source"] == "orders" {
					lag = s.GetGauge().GetValue()
				}
			}
		}
		if want := float64(counts["Order"]); lag != want || want == 0 {
			t.Errorf("inventory's lag behind orders is %v, want %v (every order change)", lag, want)
		}
	})
}
