package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// TestShipmentRipple follows orders through the mesh, end to end through
// the gateway as it runs: placing an order makes inventory reserve its
// stock, orders mark it RESERVED and shipments prepare its shipment;
// shipOrder and markDelivered move the shipment, and orders' reaction the
// order, to SHIPPED and DELIVERED. An order cancelled before shipping gets
// its shipment cancelled. Then the gateway restarts on the same stores: the
// embedded broker starts empty, every event is published and delivered
// again, and nothing changes: the effect is exactly once.
func TestShipmentRipple(t *testing.T) {
	backends(t, func(t *testing.T, args []string) {
		args = append(args, "--data-dir", t.TempDir())
		g := startGateway(t, args...)

		place := func(customer, item int) string {
			r := g.gql(t, `mutation($c: ID!, $i: ID!) { placeOrder(customerId: $c, lines: [{itemId: $i, quantity: 2}]) { id status } }`,
				map[string]any{"c": customer, "i": item}).must(t)
			return r["placeOrder"].(map[string]any)["id"].(string)
		}
		const orderQuery = `query($id: ID!) { order(id: $id) { id status shipment { id orderId status carrier units shippedAt deliveredAt order { id } } } }`
		state := func(id string) (status string, shipment map[string]any) {
			o := g.gql(t, orderQuery, map[string]any{"id": id}).must(t)["order"].(map[string]any)
			sh, _ := o["shipment"].(map[string]any)
			return o["status"].(string), sh
		}
		await := func(id, orderStatus, shipmentStatus string) map[string]any {
			t.Helper()
			var sh map[string]any
			eventually(t, 60*time.Second, fmt.Sprintf("order %s %s with its shipment %s", id, orderStatus, shipmentStatus), func() bool {
				var status string
				status, sh = state(id)
				return status == orderStatus && sh != nil && sh["status"] == shipmentStatus
			})
			return sh
		}
		code := func(r gqlResponse) string {
			if len(r.Errors) != 1 {
				return fmt.Sprintf("%d errors", len(r.Errors))
			}
			c, _ := r.Errors[0].Extensions["code"].(string)
			return c
		}
		const ship = `mutation($o: ID!, $c: String!) { shipOrder(orderId: $o, carrier: $c) { id status carrier } }`
		const delivered = `mutation($s: ID!) { markDelivered(shipmentId: $s) { id status } }`
		const cancel = `mutation($id: ID!) { cancelOrder(id: $id) { id } }`

		// Place → reserved → a shipment to prepare.
		a, b := place(1, 1), place(2, 2)
		shA := await(a, "RESERVED", "PREPARING")
		shB := await(b, "RESERVED", "PREPARING")
		if shA["orderId"] != a || shA["units"] != float64(2) || shA["carrier"] != nil || shA["order"].(map[string]any)["id"] != a {
			t.Fatalf("shipment of order %s: %v", a, shA)
		}

		// Cancel before shipping: the shipment is cancelled.
		if c := code(g.gql(t, delivered, map[string]any{"s": shB["id"]})); c != "CONFLICT" {
			t.Errorf("markDelivered of a shipment being prepared: %s, want CONFLICT", c)
		}
		g.gql(t, cancel, map[string]any{"id": b}).must(t)
		await(b, "CANCELLED", "CANCELLED")
		if c := code(g.gql(t, ship, map[string]any{"o": b, "c": "DHL"})); c != "CONFLICT" {
			t.Errorf("shipOrder of a cancelled order: %s, want CONFLICT", c)
		}

		// Bad input changes nothing.
		if c := code(g.gql(t, ship, map[string]any{"o": a, "c": " "})); c != "BAD_USER_INPUT" {
			t.Errorf("shipOrder without a carrier: %s, want BAD_USER_INPUT", c)
		}
		if c := code(g.gql(t, ship, map[string]any{"o": "999999", "c": "DHL"})); c != "NOT_FOUND" {
			t.Errorf("shipOrder of an unknown order: %s, want NOT_FOUND", c)
		}
		if c := code(g.gql(t, delivered, map[string]any{"s": "999999"})); c != "NOT_FOUND" {
			t.Errorf("markDelivered of an unknown shipment: %s, want NOT_FOUND", c)
		}
		if _, sh := state(a); sh["status"] != "PREPARING" || sh["carrier"] != nil {
			t.Fatalf("refused mutations changed the shipment: %v", sh)
		}

		// Shipped, then delivered.
		r := g.gql(t, ship, map[string]any{"o": a, "c": "DHL"}).must(t)["shipOrder"].(map[string]any)
		if r["status"] != "SHIPPED" || r["carrier"] != "DHL" {
			t.Fatalf("shipOrder: %v", r)
		}
		await(a, "SHIPPED", "SHIPPED")
		if c := code(g.gql(t, ship, map[string]any{"o": a, "c": "UPS"})); c != "CONFLICT" {
			t.Errorf("shipOrder twice: %s, want CONFLICT", c)
		}
		if c := code(g.gql(t, cancel, map[string]any{"id": a})); c != "CONFLICT" {
			t.Errorf("cancelOrder of a shipped order: %s, want CONFLICT", c)
		}
		g.gql(t, delivered, map[string]any{"s": shA["id"]}).must(t)
		shA = await(a, "DELIVERED", "DELIVERED")
		if shA["shippedAt"] == nil || shA["deliveredAt"] == nil || shA["carrier"] != "DHL" {
			t.Fatalf("delivered shipment: %v", shA)
		}

		// The rest comes from the kit: the catalog with lineage, the lag metric.
		cat := g.gql(t, `{ catalog(product: "shipments") { domain kind entities { name topic } inputs { producer entity topic } consumers { consumer entity } } }`, nil).must(t)
		if got := fmt.Sprint(cat["catalog"]); got != "[map[consumers:[map[consumer:orders entity:Shipment]] domain:fulfilment entities:[map[name:Shipment topic:meshgate.shipments.shipments]] "+
			"inputs:[map[entity:Reservation producer:inventory topic:meshgate.inventory.reservations]] kind:OPERATIONAL]]" {
			t.Errorf("catalog of shipments: %s", got)
		}
		resp, err := http.Get(g.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(metrics), `meshgate_consumer_lag{product="shipments",source="inventory"}`) {
			t.Errorf("/metrics has no consumer lag of shipments")
		}

		// shipmentChanged replays the shipment's changes after its creation.
		first := g.gql(t, `query($k: ID!) { auditLog(product: "shipments", entity: "Shipment", key: $k, first: 1) { nodes { cursor op } } }`,
			map[string]any{"k": shA["id"]}).must(t)["auditLog"].(map[string]any)["nodes"].([]any)[0].(map[string]any)
		ws := dialWS(t, g, "graphql-transport-ws", true, 0)
		ws.subscribe("1", `subscription($o: ID!, $since: String) { shipmentChanged(where: {orderId: {eq: $o}}, since: $since) { op after { status carrier } } }`,
			map[string]any{"o": a, "since": first["cursor"]})
		for _, want := range []string{"SHIPPED", "DELIVERED"} {
			ev, errs := ws.event("shipmentChanged", 20*time.Second)
			if len(errs) > 0 || ev["op"] != "UPDATE" || ev["after"].(map[string]any)["status"] != want {
				t.Fatalf("shipmentChanged: %v %v, want an UPDATE to %s", ev, errs, want)
			}
		}

		// Redelivery: restart on the same stores; every event comes again.
		const snapshotQuery = `{
			orders: auditLog(product: "orders") { totalCount }
			inventory: auditLog(product: "inventory") { totalCount }
			shipmentsLog: auditLog(product: "shipments") { totalCount }
			shipments(first: 1000) { totalCount nodes { id orderId status carrier units } }
			statuses: ordersAggregate(groupBy: [STATUS]) { group { status } count }
		}`
		drained(t, g)
		before := fmt.Sprint(g.gql(t, snapshotQuery, nil).must(t))
		g.stop(t)
		g2 := startGateway(t, args...)
		drained(t, g2)
		if after := fmt.Sprint(g2.gql(t, snapshotQuery, nil).must(t)); after != before {
			t.Fatalf("redelivered events changed the mesh:\nbefore %s\nafter  %s", before, after)
		}
		if status, sh := func() (string, map[string]any) { g = g2; return state(a) }(); status != "DELIVERED" || sh["status"] != "DELIVERED" {
			t.Fatalf("after redelivery order %s is %s with shipment %v", a, status, sh)
		}
	})
}

// drained waits until the gateway has published every change and every
// reacting product's consumer group has committed every message of its
// input topics: then every event, redelivered ones included, has been
// applied or skipped.
func drained(t *testing.T, g *gateway) {
	t.Helper()
	cfg := sarama.NewConfig()
	client, err := sarama.NewClient([]string{g.kafka}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	var last string
	eventually(t, 120*time.Second, "every change published and consumed", func() bool {
		cat := g.gql(t, `{ catalog { name freshness { unpublished } inputs { topic } } }`, nil).must(t)["catalog"].([]any)
		for _, p := range cat {
			p := p.(map[string]any)
			if n := p["freshness"].(map[string]any)["unpublished"].(float64); n > 0 {
				last = fmt.Sprintf("%s has %v unpublished changes", p["name"], n)
				return false
			}
			inputs := p["inputs"].([]any)
			if len(inputs) == 0 {
				continue
			}
			group := "meshgate." + p["name"].(string)
			want := map[string][]int32{}
			for _, in := range inputs {
				topic := in.(map[string]any)["topic"].(string)
				if err := client.RefreshMetadata(topic); err != nil {
					last = err.Error()
					return false
				}
				parts, err := client.Partitions(topic)
				if err != nil {
					last = err.Error()
					return false
				}
				want[topic] = parts
			}
			committed, err := admin.ListConsumerGroupOffsets(group, want)
			if err != nil {
				last = err.Error()
				return false
			}
			for topic, parts := range want {
				for _, part := range parts {
					end, err := client.GetOffset(topic, part, sarama.OffsetNewest)
					if err != nil {
						last = err.Error()
						return false
					}
					if b := committed.GetBlock(topic, part); end > 0 && (b == nil || b.Offset < end) {
						last = fmt.Sprintf("%s is behind on %s/%d (end %d)", group, topic, part, end)
						return false
					}
				}
			}
		}
		return true
	})
	if t.Failed() {
		t.Log(last)
	}
}
