package streaming

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/pgtest"
)

// These tests run the change-capture path through real components: product
// stores on a real SQLite file (always) and on PostgreSQL (when
// MESHGATE_TEST_POSTGRES holds a DSN), the embedded kfake broker on a real
// TCP port, the sarama Publisher, and kcat as the outside client.

const pgEnv = "MESHGATE_TEST_POSTGRES"

// testCodec is the codec every test publishes with.
var testCodec = Codec{Prefix: "meshgate", Version: "test"}

// testPartitions makes per-key order meaningful: keys spread over
// partitions and order holds only within one.
const testPartitions = 3

// eventually polls cond every 10ms until it holds or timeout passes; then
// the test fails with what.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// backend is a place for a test's product stores.
type backend struct {
	Name string
	// DSN returns the DSN of a product's store; calling demo.Open twice
	// with it opens two handles ("instances") on the same stores.
	DSN func(product string) string
}

// forEachBackend runs fn on SQLite and, with MESHGATE_TEST_POSTGRES set,
// on PostgreSQL.
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, sqliteBackend(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, postgresBackend(t)) })
}

func sqliteBackend(t testing.TB) backend {
	dir := t.TempDir()
	return backend{Name: "sqlite", DSN: func(product string) string {
		return "sqlite:" + filepath.Join(dir, product+".db")
	}}
}

// postgresBackend gives the test schemas of its own (see pgtest) and drops
// them when the test ends.
func postgresBackend(t testing.TB) backend {
	return backend{Name: "postgres", DSN: pgtest.New(t).DSN}
}

// openMesh opens the demo mesh's four stores on b; the test closes them.
func openMesh(t testing.TB, b backend) *products.Mesh {
	t.Helper()
	m, err := demo.Open(context.Background(), b.DSN)
	if err != nil {
		t.Fatalf("open mesh on %s: %v", b.Name, err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { m.Close() }) })
	return m
}

// freeAddr returns a loopback address nothing listens on (yet). The port is
// taken below Linux's ephemeral range (32768+), so that no broker another
// test starts on port 0 gets it meanwhile.
func freeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		var rnd [2]byte
		rand.Read(rnd[:])
		port := 20000 + (int(rnd[0])<<8|int(rnd[1]))%12000
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	t.Fatal("no free port in 20000-31999")
	return ""
}

// broker is an embedded broker that may be closed early and again at cleanup.
type broker struct {
	*Embedded
	once sync.Once
}

func (b *broker) Close() { b.once.Do(b.Embedded.Close) }

func startBroker(t testing.TB, addr string) *broker {
	t.Helper()
	e, err := StartEmbedded(addr, testPartitions, "")
	if err != nil {
		t.Fatalf("start embedded broker: %v", err)
	}
	b := &broker{Embedded: e}
	t.Cleanup(b.Close)
	return b
}

func newPublisher(t testing.TB, addrs []string) *Publisher {
	t.Helper()
	p, err := NewPublisher(KafkaConfig{Brokers: addrs, Partitions: testPartitions, ClientID: "meshgate-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// relayGroup runs one relay per store until stopped.
type relayGroup struct {
	Relays []*Relay
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// startRelays runs a relay for every store with a short poll and backoff;
// tweak, if set, adjusts each relay before it starts.
func startRelays(t testing.TB, stores []*products.Store, sender Sender, tweak func(*Relay)) *relayGroup {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g := &relayGroup{cancel: cancel}
	for _, s := range stores {
		r := &Relay{Store: s, Sender: sender, Codec: testCodec, Poll: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
		if tweak != nil {
			tweak(r)
		}
		g.Relays = append(g.Relays, r)
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := r.Run(ctx); err != nil {
				t.Errorf("relay %s: %v", s.Product.Name, err)
			}
		}()
	}
	t.Cleanup(g.Stop)
	return g
}

// Stop stops the relays and waits until they returned.
func (g *relayGroup) Stop() {
	g.once.Do(func() {
		g.cancel()
		g.wg.Wait()
	})
}

// Published sums what the relays published.
func (g *relayGroup) Published() int64 {
	var n int64
	for _, r := range g.Relays {
		n += r.Published()
	}
	return n
}

// Restarts sums how often the relays started over for a new cluster.
func (g *relayGroup) Restarts() int64 {
	var n int64
	for _, r := range g.Relays {
		n += r.Restarts()
	}
	return n
}

// Failures sums the relays' failed attempts.
func (g *relayGroup) Failures() int64 {
	var n int64
	for _, r := range g.Relays {
		n += r.Failures()
	}
	return n
}

// pending sums the unpublished audit entries of the stores.
func pending(t testing.TB, stores []*products.Store) int64 {
	t.Helper()
	var n int64
	for _, s := range stores {
		p, _, err := s.Backlog(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n += p
	}
	return n
}

// auditLog returns every audit entry of every store, by product.
func auditLog(t testing.TB, stores []*products.Store) map[string][]products.AuditEntry {
	t.Helper()
	out := map[string][]products.AuditEntry{}
	for _, s := range stores {
		es, err := s.Entries(context.Background(), 0, 0, 1_000_000)
		if err != nil {
			t.Fatal(err)
		}
		out[s.Product.Name] = es
	}
	return out
}

// allTopics lists the topics of every entity of the stores.
func allTopics(stores []*products.Store) []string {
	var out []string
	for _, s := range stores {
		for _, e := range s.Product.Entities {
			out = append(out, testCodec.Topic(s.Product.Name, e))
		}
	}
	return out
}

// topic returns the topic of an input of a reaction on m.
func topic(m *products.Mesh, in products.Input) (string, error) {
	_, e, err := m.Entity(in.Product, in.Entity)
	if err != nil {
		return "", err
	}
	return testCodec.Topic(in.Product, e), nil
}

// consumerOf returns the consumer of product's reaction on k, retrying
// quickly after failures; it panics if the product reacts to nothing.
func consumerOf(m *products.Mesh, product string, k KafkaConfig) *Consumer {
	for _, c := range Consumers(m, testCodec, k, nil) {
		if c.Store.Product.Name == product {
			c.MaxBackoff = 50 * time.Millisecond
			return c
		}
	}
	panic(product + " reacts to nothing")
}

// record is one Kafka record as a consumer saw it.
type record struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Value     []byte
	Headers   map[string]string
	Env       Envelope
}

// id is the pair consumers deduplicate by.
type id struct {
	Product  string
	Sequence int64
}

func (r *record) ID() id { return id{r.Env.Source.DB, r.Env.Source.Sequence} }

func (r *record) decode() error {
	if err := json.Unmarshal(r.Value, &r.Env); err != nil {
		return fmt.Errorf("%s/%d@%d: value is not an envelope: %v: %s", r.Topic, r.Partition, r.Offset, err, r.Value)
	}
	return nil
}

// readTopics reads everything the topics hold now with a sarama consumer,
// partition by partition up to the high-water mark. Topics that do not
// exist yet hold nothing.
func readTopics(addrs []string, topics []string) ([]record, error) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_0_0_0
	cfg.ClientID = "meshgate-test-reader"
	cfg.Metadata.Retry.Max = 0
	cfg.Consumer.MaxWaitTime = 20 * time.Millisecond
	client, err := sarama.NewClient(addrs, cfg)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	type part struct {
		topic string
		p     int32
		hwm   int64
	}
	var parts []part
	for _, topic := range topics {
		ps, err := client.Partitions(topic)
		if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("partitions of %s: %w", topic, err)
		}
		for _, p := range ps {
			hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return nil, fmt.Errorf("offset of %s/%d: %w", topic, p, err)
			}
			if hwm > 0 {
				parts = append(parts, part{topic, p, hwm})
			}
		}
	}
	// Partitions are read concurrently; each up to its high-water mark.
	results := make([][]record, len(parts))
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, pt := range parts {
		wg.Go(func() {
			pc, err := consumer.ConsumePartition(pt.topic, pt.p, sarama.OffsetOldest)
			if err != nil {
				errs[i] = fmt.Errorf("consume %s/%d: %w", pt.topic, pt.p, err)
				return
			}
			defer pc.AsyncClose()
			timeout := time.After(10 * time.Second)
			for {
				select {
				case m := <-pc.Messages():
					r := record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Timestamp: m.Timestamp,
						Key: m.Key, Value: m.Value, Headers: map[string]string{}}
					for _, h := range m.Headers {
						r.Headers[string(h.Key)] = string(h.Value)
					}
					if err := r.decode(); err != nil {
						errs[i] = err
						return
					}
					results[i] = append(results[i], r)
					if m.Offset >= pt.hwm-1 {
						return
					}
				case <-timeout:
					errs[i] = fmt.Errorf("consume %s/%d: no record up to offset %d within 10s", pt.topic, pt.p, pt.hwm-1)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []record
	for _, rs := range results {
		out = append(out, rs...)
	}
	return out, nil
}

// consumeAtLeast reads the topics until they hold at least n records and
// the stores have no unpublished entry, then returns what they hold.
func consumeAtLeast(t testing.TB, addrs []string, stores []*products.Store, n int, timeout time.Duration) []record {
	t.Helper()
	var recs []record
	var lastErr error
	eventually(t, timeout, fmt.Sprintf("%d records on the topics and an empty outbox", n), func() bool {
		if pending(t, stores) > 0 {
			return false
		}
		recs, lastErr = readTopics(addrs, allTopics(stores))
		return lastErr == nil && len(recs) >= n
	})
	return recs
}

// kcat returns the path of kcat. Missing kcat fails the test when the full
// suite runs (MESHGATE_TEST_POSTGRES set, as in CI) and skips it otherwise.
func kcat(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv(pgEnv) != "" {
			t.Fatalf("kcat is not installed (apt-get install kcat); it is required when %s is set", pgEnv)
		}
		t.Skip("kcat is not installed (apt-get install kcat)")
	}
	return path
}

// kcatJSON is one line of `kcat -C -J`.
type kcatJSON struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	TsType    string   `json:"tstype"`
	Ts        int64    `json:"ts"`
	Headers   []string `json:"headers"`
	Key       *string  `json:"key"`
	Payload   *string  `json:"payload"`
}

// kcatRead reads a whole topic with kcat (from the beginning to the end of
// every partition, then exit) and parses its JSON output.
func kcatRead(kcatPath, addr, topic string) ([]record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcatPath, "-b", addr, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-J",
		"-X", "fetch.wait.max.ms=10")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kcat -t %s: %v: %s", topic, err, strings.TrimSpace(stderr.String()))
	}
	var out []record
	for line := range strings.Lines(stdout.String()) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var k kcatJSON
		if err := json.Unmarshal([]byte(line), &k); err != nil {
			return nil, fmt.Errorf("kcat output is not JSON: %v: %s", err, line)
		}
		if k.Key == nil || k.Payload == nil {
			return nil, fmt.Errorf("kcat record without key or payload: %s", line)
		}
		if len(k.Headers)%2 != 0 {
			return nil, fmt.Errorf("kcat headers are not name/value pairs: %s", line)
		}
		r := record{Topic: k.Topic, Partition: k.Partition, Offset: k.Offset, Timestamp: time.UnixMilli(k.Ts),
			Key: []byte(*k.Key), Value: []byte(*k.Payload), Headers: map[string]string{}}
		for i := 0; i < len(k.Headers); i += 2 {
			r.Headers[k.Headers[i]] = k.Headers[i+1]
		}
		if err := r.decode(); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// kcatAtLeast reads the topics with kcat until they hold at least n records
// (and the stores' outboxes are empty) and returns them.
func kcatAtLeast(t testing.TB, addr string, stores []*products.Store, n int, timeout time.Duration) []record {
	t.Helper()
	path := kcat(t)
	var recs []record
	eventually(t, timeout, fmt.Sprintf("kcat to read %d records", n), func() bool {
		if pending(t, stores) > 0 {
			return false
		}
		topics := allTopics(stores)
		results := make([][]record, len(topics))
		var wg sync.WaitGroup
		for i, topic := range topics {
			wg.Go(func() {
				// A topic nothing was published to does not exist:
				// kcat reports it unknown; it holds nothing.
				var err error
				if results[i], err = kcatRead(path, addr, topic); err != nil && !strings.Contains(err.Error(), "Unknown topic") {
					t.Logf("%v", err)
				}
			})
		}
		wg.Wait()
		recs = recs[:0]
		for _, rs := range results {
			recs = append(recs, rs...)
		}
		return len(recs) >= n
	})
	return recs
}

// checkExactlyOnce checks that recs hold every audit entry of log exactly
// once by (product, sequence), with no gap and nothing invented.
func checkExactlyOnce(t testing.TB, recs []record, log map[string][]products.AuditEntry) {
	t.Helper()
	seen := map[id]int{}
	for i := range recs {
		seen[recs[i].ID()]++
	}
	want := 0
	for product, es := range log {
		for i, e := range es {
			if e.Sequence != int64(i+1) {
				t.Errorf("%s: audit log has a gap: entry %d has sequence %d", product, i+1, e.Sequence)
			}
			if n := seen[id{product, e.Sequence}]; n != 1 {
				t.Errorf("%s sequence %d (%s %d %s) arrived %d times, want 1", product, e.Sequence, e.Entity, e.Key, e.Op, n)
			}
			want++
		}
	}
	if len(recs) != want {
		t.Errorf("topics hold %d records, want %d (one per audit entry)", len(recs), want)
	}
	for pair := range seen {
		found := false
		for _, e := range log[pair.Product] {
			if e.Sequence == pair.Sequence {
				found = true
			}
		}
		if !found {
			t.Errorf("record for %v matches no audit entry", pair)
		}
	}
}

// checkOrderPerKey checks that every key's records sit on one partition in
// sequence order.
func checkOrderPerKey(t testing.TB, recs []record) {
	t.Helper()
	type topicKey struct{ topic, key string }
	byKey := map[topicKey][]record{}
	for _, r := range recs {
		k := topicKey{r.Topic, string(r.Key)}
		byKey[k] = append(byKey[k], r)
	}
	for k, rs := range byKey {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Offset < rs[j].Offset })
		for i := 1; i < len(rs); i++ {
			if rs[i].Partition != rs[0].Partition {
				t.Errorf("%s key %s: records on partitions %d and %d", k.topic, k.key, rs[0].Partition, rs[i].Partition)
			}
			if rs[i].Env.Source.Sequence < rs[i-1].Env.Source.Sequence {
				t.Errorf("%s key %s: sequence %d at offset %d after sequence %d at offset %d",
					k.topic, k.key, rs[i].Env.Source.Sequence, rs[i].Offset, rs[i-1].Env.Source.Sequence, rs[i-1].Offset)
			}
		}
	}
}
