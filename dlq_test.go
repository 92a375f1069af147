package main

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/streaming"
)

// refuseUnits makes the shipments store refuse shipments of 777 units (a
// trigger): shipments' reaction then fails on the reservation of an order
// of 777 units, every time, as a reaction that rejects an event would.
// It returns what removes the cause.
func refuseUnits(t *testing.T, s *products.Store) (fix func()) {
	t.Helper()
	ctx := context.Background()
	stmts := []string{`CREATE TRIGGER refuse_777 BEFORE INSERT ON shipments WHEN NEW.units = 777
		BEGIN SELECT RAISE(ABORT, 'shipments of 777 units are refused'); END`}
	drop := []string{"DROP TRIGGER refuse_777"}
	if s.Dialect().String() == "pg" {
		stmts = []string{`CREATE FUNCTION refuse_777() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF NEW.units = 777 THEN RAISE EXCEPTION 'shipments of 777 units are refused'; END IF; RETURN NEW; END $$`,
			"CREATE TRIGGER refuse_777 BEFORE INSERT ON shipments FOR EACH ROW EXECUTE FUNCTION refuse_777()"}
		drop = []string{"DROP TRIGGER refuse_777 ON shipments", "DROP FUNCTION refuse_777()"}
	}
	for _, q := range stmts {
		if _, err := s.DB.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		for _, q := range drop {
			if _, err := s.DB.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// dlqRecords reads the dead-letter topic of product from the beginning.
func dlqRecords(t *testing.T, broker, product string) []*sarama.ConsumerMessage {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_0_0_0
	client, err := sarama.NewClient([]string{broker}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	topic := streaming.Codec{Prefix: "meshgate"}.DeadLetterTopic(product)
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatalf("dead-letter topic %s: %v", topic, err)
	}
	var out []*sarama.ConsumerMessage
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if hwm == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		for m := range pc.Messages() {
			out = append(out, m)
			if m.Offset >= hwm-1 {
				break
			}
		}
		pc.Close()
	}
	return out
}

// topicPositions returns the source positions (sequences) the topic holds.
func topicPositions(t *testing.T, broker, topic string) map[int64]int {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_0_0_0
	client, err := sarama.NewClient([]string{broker}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]int{}
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if hwm == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		for m := range pc.Messages() {
			e, err := (streaming.Codec{}).Entry(m.Key, m.Value)
			if err != nil {
				t.Fatal(err)
			}
			out[e.Sequence]++
			if m.Offset >= hwm-1 {
				break
			}
		}
		pc.Close()
	}
	return out
}

// TestPoisonEventsParkedAndRetried follows poison events through the
// gateway as it runs. Shipments' store refuses shipments of 777 units, so
// its reaction fails on the reservations of three such orders: each is
// retried alone, then parked: on the dead-letter topic with its headers,
// in deadLetters, counted by meshgate_dead_lettered_total; the orders
// placed between them get their shipments. With the cause fixed, one is
// retried through the mutation (twice: applied once), one through
// "meshgate dlq retry", and the third stays parked. The books reconcile:
// the reservations in inventory's audit log are the events on Kafka by
// position, and shipments applied each exactly once except the parked one.
func TestPoisonEventsParkedAndRetried(t *testing.T) {
	backends(t, func(t *testing.T, args []string) {
		ctx := context.Background()
		dataDir := t.TempDir()
		args = append(args, "--data-dir", dataDir, "--topic-partitions", "1", "--reaction-retries", "3", "--reaction-backoff-max", "20ms")
		g := startGateway(t, args...)
		m, err := demo.Open(ctx, meshDSN(dataDir, args))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		eventually(t, 60*time.Second, "the seeded mesh to settle", func() bool { return g.lagZero(t) && settled(t, m) })
		fix := refuseUnits(t, m.Store("shipments"))

		item := g.gql(t, `mutation { createItem(input: {sku: "POISON-1", name: "Crate", category: "Test", price: "1.00", stock: 10000}) { id } }`, nil).
			must(t)["createItem"].(map[string]any)["id"]
		place := func(units int) string {
			r := g.gql(t, `mutation($i: ID!, $q: Int!) { placeOrder(customerId: 1, lines: [{itemId: $i, quantity: $q}]) { id } }`,
				map[string]any{"i": item, "q": units}).must(t)
			return r["placeOrder"].(map[string]any)["id"].(string)
		}
		// One partition: each poison event sits between good ones.
		var poison, good []string
		for range 3 {
			poison = append(poison, place(777))
			good = append(good, place(1))
		}
		const shipmentOf = `query($id: ID!) { order(id: $id) { status shipment { id units status } } }`
		shipment := func(order string) map[string]any {
			sh, _ := g.gql(t, shipmentOf, map[string]any{"id": order}).must(t)["order"].(map[string]any)["shipment"].(map[string]any)
			return sh
		}
		const listQuery = `query($s: DeadLetterStatus) { deadLetters(product: "shipments", status: $s) {
			id product source sequence entity key topic partition offset reason attempts firstFailureAt lastFailureAt parkedAt
			status published event resolvedAt resolvedBy resolvedRequestId } }`
		list := func(status any) []any {
			l, _ := g.gql(t, listQuery, map[string]any{"s": status}).must(t)["deadLetters"].([]any)
			return l
		}
		eventually(t, 60*time.Second, "the good orders shipped and the poison ones parked", func() bool {
			for _, o := range good {
				if shipment(o) == nil {
					return false
				}
			}
			return len(list("PARKED")) == 3
		})
		letters := list("PARKED")
		byOrder := map[string]map[string]any{}
		for _, l := range letters {
			d := l.(map[string]any)
			after := d["event"].(map[string]any)["after"].(map[string]any)
			byOrder[fmt.Sprint(after["id"])] = d
			if d["product"] != "shipments" || d["source"] != "inventory" || d["entity"] != "Reservation" || d["topic"] != "meshgate.inventory.reservations" ||
				d["attempts"] != float64(3) || !strings.Contains(d["reason"].(string), "shipments of 777 units are refused") ||
				d["published"] != true || d["resolvedAt"] != nil || d["key"] != fmt.Sprint(after["id"]) {
				t.Errorf("dead letter %v", d)
			}
		}
		for _, o := range poison {
			if byOrder[o] == nil || shipment(o) != nil {
				t.Fatalf("order %s of 777 units: dead letter %v, shipment %v", o, byOrder[o], shipment(o))
			}
		}
		if v := g.scrape(t)[`meshgate_dead_lettered_total{product="shipments",source="inventory"}`]; v != 3 {
			t.Errorf("meshgate_dead_lettered_total = %v, want 3", v)
		}
		recs := dlqRecords(t, g.kafka, "shipments")
		if len(recs) != 3 {
			t.Fatalf("the dead-letter topic holds %d records, want 3", len(recs))
		}
		for _, r := range recs {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[string(x.Key)] = string(x.Value)
			}
			e, err := (streaming.Codec{}).Entry(r.Key, r.Value)
			if err != nil {
				t.Fatal(err)
			}
			d := byOrder[strconv.FormatInt(e.Key, 10)]
			if d == nil {
				t.Fatalf("dead-letter record of reservation %d, which is not parked", e.Key)
			}
			for k, v := range map[string]string{
				streaming.HeaderProduct: "shipments", streaming.HeaderSourceProduct: "inventory",
				streaming.HeaderSourceTopic: "meshgate.inventory.reservations", streaming.HeaderSourcePartition: "0",
				streaming.HeaderSourceOffset: fmt.Sprint(d["offset"]), streaming.HeaderPosition: fmt.Sprintf("inventory/%v", d["sequence"]),
				streaming.HeaderAttempts: "3", streaming.HeaderID: d["id"].(string), streaming.HeaderReason: d["reason"].(string),
			} {
				if h[k] != v {
					t.Errorf("header %s = %q, want %q", k, h[k], v)
				}
			}
			for _, k := range []string{streaming.HeaderFirstFailure, streaming.HeaderLastFailure, "ce_id"} {
				if h[k] == "" {
					t.Errorf("no header %s in %v", k, h)
				}
			}
		}

		// Bad input changes nothing.
		for q, code := range map[string]string{
			`mutation { retryDeadLetters(product: "shipments") { id } }`:                        "BAD_USER_INPUT",
			`mutation { retryDeadLetters(product: "customers", all: true) { id } }`:             "BAD_USER_INPUT",
			`mutation { retryDeadLetters(product: "shipments", ids: ["1"], all: true) { id } }`: "BAD_USER_INPUT",
			`mutation { retryDeadLetters(product: "shipments", ids: ["999999"]) { id } }`:       "NOT_FOUND",
			`{ deadLetters(product: "shipments", first: 5000) { id } }`:                         "BAD_USER_INPUT",
		} {
			r := g.gql(t, q, nil)
			if len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != code {
				t.Errorf("%s: %+v, want %s", q, r.Errors, code)
			}
		}

		// A retry before the fix fails again and says why.
		a, b, c := byOrder[poison[0]]["id"].(string), byOrder[poison[1]]["id"].(string), byOrder[poison[2]]["id"].(string)
		const retry = `mutation($ids: [ID!]) { retryDeadLetters(product: "shipments", ids: $ids) { id status attempts reason resolvedBy resolvedRequestId } }`
		r := g.gql(t, retry, map[string]any{"ids": []string{a}}).must(t)["retryDeadLetters"].([]any)[0].(map[string]any)
		if r["status"] != "PARKED" || r["attempts"] != float64(4) {
			t.Fatalf("retry before the fix: %v", r)
		}

		// Fixed: retried through the mutation, twice; applied once.
		fix()
		var resolvedIn any
		for range 2 {
			r = g.gql(t, retry, map[string]any{"ids": []string{a}}).must(t)["retryDeadLetters"].([]any)[0].(map[string]any)
			if r["status"] != "RESOLVED" || r["resolvedBy"] != "dev" || r["resolvedRequestId"] == nil {
				t.Fatalf("retry after the fix: %v", r)
			}
			if resolvedIn == nil {
				resolvedIn = r["resolvedRequestId"]
			} else if r["resolvedRequestId"] != resolvedIn {
				t.Fatalf("the second retry changed the resolved dead letter: %v", r)
			}
		}
		if sh := shipment(poison[0]); sh == nil || sh["units"] != float64(777) || sh["status"] != "PREPARING" {
			t.Fatalf("order %s after the retry: shipment %v", poison[0], sh)
		}
		// The audit trail: the shipment was created by shipments' reaction
		// in the retry's request, which the dead letter records.
		hist := g.gql(t, `query($k: ID!) { auditLog(product: "shipments", entity: "Shipment", key: $k) { nodes { op actor requestId } } }`,
			map[string]any{"k": shipment(poison[0])["id"]}).must(t)["auditLog"].(map[string]any)["nodes"].([]any)
		if len(hist) != 1 || hist[0].(map[string]any)["actor"] != "reaction:shipments" || hist[0].(map[string]any)["op"] != "CREATE" ||
			hist[0].(map[string]any)["requestId"] != resolvedIn {
			t.Fatalf("audit trail of the retried shipment: %v, want a CREATE by reaction:shipments in request %v", hist, resolvedIn)
		}

		// Retried through the CLI, next to the running gateway.
		var out, errOut bytes.Buffer
		cli := func(cmd ...string) error {
			out.Reset()
			errOut.Reset()
			return run(ctx, append(cmd, args...), func(string) string { return "" }, &out, &errOut)
		}
		if err := cli("dlq", "retry", "shipments", "--id", b); err != nil {
			t.Fatalf("meshgate dlq retry: %v\n%s%s", err, out.String(), errOut.String())
		}
		if lines := strings.Split(out.String(), "\n"); len(lines) < 3 || !strings.Contains(out.String(), "1 applied, 0 still parked") ||
			strings.Join(strings.Fields(lines[1])[:2], " ") != b+" RESOLVED" {
			t.Fatalf("meshgate dlq retry printed:\n%s", out.String())
		}
		if sh := shipment(poison[1]); sh == nil || sh["units"] != float64(777) {
			t.Fatalf("order %s after the CLI retry: shipment %v", poison[1], sh)
		}
		if err := cli("dlq", "list", "shipments", "--status", "parked"); err != nil {
			t.Fatal(err)
		}
		if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], c+" ") {
			t.Fatalf("meshgate dlq list --status parked printed:\n%s", out.String())
		}
		var ue usageError
		for _, bad := range [][]string{
			{"dlq", "retry", "shipments"}, {"dlq", "retry", "customers", "--all"}, {"dlq", "retry", "shipments", "--id", "x"},
			{"dlq", "list", "shipments", "--status", "gone"}, {"dlq", "retry", "shipments", "--id", "999999"}, {"dlq", "purge", "shipments"},
		} {
			if err := cli(bad...); !asUsage(err, &ue) {
				t.Errorf("meshgate %v: %v, want a usage error", bad, err)
			}
		}

		// The books: every reservation in inventory's log is on Kafka once
		// by position; shipments applied each exactly once, but the
		// parked one, which it did not apply.
		drained(t, g)
		entries, err := m.Store("inventory").Entries(ctx, 0, 0, 1_000_000)
		if err != nil {
			t.Fatal(err)
		}
		logged := map[int64]bool{}
		for _, e := range entries {
			if e.Entity == "Reservation" {
				logged[e.Sequence] = true
			}
		}
		onKafka := topicPositions(t, g.kafka, "meshgate.inventory.reservations")
		var appliedSeqs []int64
		if err := m.Store("shipments").DB.NewRaw("SELECT sequence FROM mg_consumed WHERE source = 'inventory'").Scan(ctx, &appliedSeqs); err != nil {
			t.Fatal(err)
		}
		applied := map[int64]bool{}
		for _, s := range appliedSeqs {
			applied[s] = true
		}
		parked := list("PARKED")
		if len(parked) != 1 || parked[0].(map[string]any)["id"] != c {
			t.Fatalf("parked after the retries: %v, want only %s", parked, c)
		}
		parkedSeq := int64(parked[0].(map[string]any)["sequence"].(float64))
		if applied[parkedSeq] {
			t.Errorf("the parked reservation %d counts as applied", parkedSeq)
		}
		var problems []string
		for s := range logged {
			if onKafka[s] != 1 {
				problems = append(problems, fmt.Sprintf("%d on Kafka %d times", s, onKafka[s]))
			}
			if !applied[s] && s != parkedSeq {
				problems = append(problems, fmt.Sprintf("%d neither applied nor parked", s))
			}
		}
		for s := range onKafka {
			if !logged[s] {
				problems = append(problems, fmt.Sprintf("%d on Kafka but not in the log", s))
			}
		}
		for s := range applied {
			if !logged[s] {
				problems = append(problems, fmt.Sprintf("%d applied but not in the log", s))
			}
		}
		sort.Strings(problems)
		if len(problems) > 0 || len(applied)+1 != len(logged) {
			t.Fatalf("books: %d reservations logged, %d applied + 1 parked: %v", len(logged), len(applied), problems)
		}
		// One shipment per order, the parked order none.
		var several []int64
		if err := m.Store("shipments").DB.NewRaw("SELECT order_id FROM shipments GROUP BY order_id HAVING COUNT(*) > 1").Scan(ctx, &several); err != nil {
			t.Fatal(err)
		}
		if len(several) > 0 {
			t.Errorf("orders with several shipments: %v", several)
		}
		if shipment(poison[2]) != nil {
			t.Errorf("the parked order %s has a shipment", poison[2])
		}
	})
}

// TestDeadLettersNeedAdmin: dead letters hold whole change events; only
// an admin may list or retry them.
func TestDeadLettersNeedAdmin(t *testing.T) {
	g := startGateway(t, jwtFlags()...)
	reader := jwtFor("reader", []string{"shipments:read", "shipments:write", "audit:read", "pii:read"}, nil)
	g.as(t, reader, `{ deadLetters(product: "shipments") { id } }`, nil).forbidden(t, "deadLetters")
	g.as(t, reader, `mutation { retryDeadLetters(product: "shipments", all: true) { id } }`, nil).forbidden(t, "retryDeadLetters")
	admin := jwtFor("ops", []string{"admin"}, nil)
	if l := g.as(t, admin, `{ deadLetters(product: "shipments") { id } }`, nil).ok(t)["deadLetters"].([]any); len(l) != 0 {
		t.Fatalf("dead letters of a fresh mesh: %v", l)
	}
	if l := g.as(t, admin, `mutation { retryDeadLetters(product: "shipments", all: true) { id } }`, nil).ok(t)["retryDeadLetters"].([]any); len(l) != 0 {
		t.Fatalf("retry of no dead letters: %v", l)
	}
}
