package meshtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/inventory"
	"github.com/meshgate/meshgate/products/orders"
	"github.com/meshgate/meshgate/products/shipments"
)

// ID names a change by the pair consumers deduplicate by: its product and
// its position (sequence) in that product's audit log.
type ID struct {
	Product  string
	Sequence int64
}

func (id ID) String() string { return fmt.Sprintf("%s/%d", id.Product, id.Sequence) }

// Ledger is the reconciliation of a mesh's change capture: the audit
// entries of every product, the records on its Kafka topics and the
// changes each reacting product applied.
type Ledger struct {
	// Entries counts the audit entries, Records the records on the topics
	// (Duplicates of them repeat an earlier record's ID: delivery is at
	// least once; consumers skip them).
	Entries, Records, Duplicates int
	// Applied counts, per reacting product, the changes it applied;
	// Parked, the changes its reaction failed on and parked (dead letters
	// still parked: applied by nobody, visible as parked).
	Applied, Parked map[string]int
	// Problems lists every difference; none when the books are exact.
	Problems []string
}

// Exact tells whether the books balance.
func (l *Ledger) Exact() bool { return len(l.Problems) == 0 }

func (l *Ledger) String() string {
	var applied []string
	for p, n := range l.Applied {
		applied = append(applied, fmt.Sprintf("%s %d", p, n))
	}
	sort.Strings(applied)
	s := fmt.Sprintf("%d audit entries, %d records on Kafka (%d duplicates), applied: %s", l.Entries, l.Records, l.Duplicates, strings.Join(applied, ", "))
	var parked []string
	for p, n := range l.Parked {
		parked = append(parked, fmt.Sprintf("%s %d", p, n))
	}
	if len(parked) > 0 {
		sort.Strings(parked)
		s += ", parked: " + strings.Join(parked, ", ")
	}
	if len(l.Problems) == 0 {
		return s + "; exact"
	}
	probs := l.Problems
	if len(probs) > 12 {
		probs = append(probs[:12:12], fmt.Sprintf("… and %d more", len(l.Problems)-12))
	}
	return s + "; NOT EXACT:\n" + strings.Join(probs, "\n")
}

// Topics returns the change topic of every entity of the mesh
// (<prefix>.<product>.<table>).
func Topics(m *products.Mesh, prefix string) []string {
	var out []string
	for _, p := range m.Products {
		for _, e := range p.Entities {
			out = append(out, prefix+"."+p.Name+"."+e.Table)
		}
	}
	return out
}

// Reconcile balances the books of m's change capture, once the relays
// and consumers have caught up: every audit entry is on Kafka, by
// (product, sequence), and nothing else is; every reacting product applied
// every change of the entities it consumes exactly once (its record of
// applied changes, products' mg_consumed, holds each once, and its
// applied counter agrees) or parked it as a dead letter (never both), and
// nothing else.
func Reconcile(ctx context.Context, m *products.Mesh, brokers []string, prefix string) (*Ledger, error) {
	l := &Ledger{Applied: map[string]int{}, Parked: map[string]int{}}
	audit := map[string][]products.AuditEntry{}
	known := map[ID]products.AuditEntry{}
	for _, s := range m.Stores {
		es, err := s.Entries(ctx, 0, 0, 10_000_000)
		if err != nil {
			return nil, err
		}
		audit[s.Product.Name] = es
		l.Entries += len(es)
		for i, e := range es {
			if e.Sequence != int64(i+1) {
				l.Problems = append(l.Problems, fmt.Sprintf("%s: the audit log has a gap: entry %d has sequence %d", s.Product.Name, i+1, e.Sequence))
				break
			}
			known[ID{s.Product.Name, e.Sequence}] = e
		}
	}
	recs, err := ReadKafka(ctx, brokers, Topics(m, prefix))
	if err != nil {
		return nil, err
	}
	seen := map[ID]int{}
	for _, r := range recs {
		l.Records++
		seen[r.ID]++
		if seen[r.ID] > 1 {
			l.Duplicates++
		}
		e, ok := known[r.ID]
		if !ok {
			l.Problems = append(l.Problems, fmt.Sprintf("record %s (%s/%d@%d) matches no audit entry", r.ID, r.Topic, r.Partition, r.Offset))
			continue
		}
		if want := prefix + "." + r.ID.Product + "."; !strings.HasPrefix(r.Topic, want) || m.Product(r.ID.Product).Entity(e.Entity) == nil ||
			r.Topic != want+m.Product(r.ID.Product).Entity(e.Entity).Table {
			l.Problems = append(l.Problems, fmt.Sprintf("record %s is on topic %s, not its entity %s's", r.ID, r.Topic, e.Entity))
		}
	}
	for id, e := range known {
		if seen[id] == 0 {
			l.Problems = append(l.Problems, fmt.Sprintf("audit entry %s (%s %d %s) is not on Kafka", id, e.Entity, e.Key, e.Op))
		}
	}
	for i, p := range m.Products {
		if p.Reaction == nil {
			continue
		}
		store := m.Stores[i]
		consumes := map[string]map[string]bool{} // source → entities
		for _, in := range p.Reaction.Inputs {
			if consumes[in.Product] == nil {
				consumes[in.Product] = map[string]bool{}
			}
			consumes[in.Product][in.Entity] = true
		}
		var rows []struct {
			Source   string `bun:"source"`
			Sequence int64  `bun:"sequence"`
		}
		if err := store.DB.NewRaw("SELECT source, sequence FROM mg_consumed").Scan(ctx, &rows); err != nil {
			return nil, fmt.Errorf("%s: read mg_consumed: %w", p.Name, err)
		}
		applied := map[ID]bool{}
		perSource := map[string]int64{}
		for _, r := range rows {
			id := ID{r.Source, r.Sequence}
			applied[id] = true
			perSource[r.Source]++
			e, ok := known[id]
			switch {
			case !ok:
				l.Problems = append(l.Problems, fmt.Sprintf("%s applied %s, which matches no audit entry", p.Name, id))
			case !consumes[r.Source][e.Entity]:
				l.Problems = append(l.Problems, fmt.Sprintf("%s applied %s, a change of %s it does not consume", p.Name, id, e.Entity))
			}
		}
		l.Applied[p.Name] = len(rows)
		parked := map[ID]bool{}
		letters, err := store.DeadLetters(ctx, products.DeadLetterQuery{Status: products.Parked, Limit: products.MaxDeadLetters})
		if err != nil {
			return nil, fmt.Errorf("%s: read dead letters: %w", p.Name, err)
		}
		for _, d := range letters {
			id := ID{d.Source, d.Sequence}
			parked[id] = true
			l.Parked[p.Name]++
			if applied[id] {
				l.Problems = append(l.Problems, fmt.Sprintf("%s both applied and parked %s", p.Name, id))
			}
		}
		for source, entities := range consumes {
			for _, e := range audit[source] {
				if id := (ID{source, e.Sequence}); entities[e.Entity] && !applied[id] && !parked[id] {
					l.Problems = append(l.Problems, fmt.Sprintf("%s never applied %s/%d (%s %d %s)", p.Name, source, e.Sequence, e.Entity, e.Key, e.Op))
				}
			}
		}
		positions, err := store.SourcePositions(ctx)
		if err != nil {
			return nil, err
		}
		for _, pos := range positions {
			if pos.Applied != perSource[pos.Source] {
				l.Problems = append(l.Problems, fmt.Sprintf("%s counted %d changes of %s applied, its record holds %d", p.Name, pos.Applied, pos.Source, perSource[pos.Source]))
			}
		}
	}
	sort.Strings(l.Problems)
	return l, nil
}

// Record is a change record on Kafka.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	ID        ID
}

// ReadKafka reads every record the topics hold now, each partition up to
// its high-water mark; topics that do not exist hold nothing.
func ReadKafka(ctx context.Context, brokers, topics []string) ([]Record, error) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_0_0_0
	cfg.ClientID = "meshgate-books"
	cfg.Metadata.Retry.Max = 1
	cfg.Consumer.MaxWaitTime = 20 * time.Millisecond
	c, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("kafka %v: %w", brokers, err)
	}
	defer c.Close()
	consumer, err := sarama.NewConsumerFromClient(c)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	type part struct {
		topic    string
		p        int32
		from, to int64
	}
	var parts []part
	for _, topic := range topics {
		ps, err := c.Partitions(topic)
		if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("partitions of %s: %w", topic, err)
		}
		for _, p := range ps {
			from, err := c.GetOffset(topic, p, sarama.OffsetOldest)
			if err != nil {
				return nil, fmt.Errorf("oldest offset of %s/%d: %w", topic, p, err)
			}
			to, err := c.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return nil, fmt.Errorf("newest offset of %s/%d: %w", topic, p, err)
			}
			if to > from {
				parts = append(parts, part{topic, p, from, to})
			}
		}
	}
	results := make([][]Record, len(parts))
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, pt := range parts {
		wg.Go(func() {
			pc, err := consumer.ConsumePartition(pt.topic, pt.p, pt.from)
			if err != nil {
				errs[i] = fmt.Errorf("consume %s/%d: %w", pt.topic, pt.p, err)
				return
			}
			defer pc.AsyncClose()
			timeout := time.NewTimer(30 * time.Second)
			defer timeout.Stop()
			for {
				select {
				case msg := <-pc.Messages():
					var env struct {
						Source struct {
							DB       string `json:"db"`
							Sequence int64  `json:"sequence"`
						} `json:"source"`
					}
					if err := json.Unmarshal(msg.Value, &env); err != nil {
						errs[i] = fmt.Errorf("%s/%d@%d is not a change event: %v", msg.Topic, msg.Partition, msg.Offset, err)
						return
					}
					results[i] = append(results[i], Record{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset,
						ID: ID{env.Source.DB, env.Source.Sequence}})
					if msg.Offset >= pt.to-1 {
						return
					}
				case <-timeout.C:
					errs[i] = fmt.Errorf("consume %s/%d: offset %d not reached within 30s", pt.topic, pt.p, pt.to-1)
					return
				case <-ctx.Done():
					errs[i] = ctx.Err()
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []Record
	for _, rs := range results {
		out = append(out, rs...)
	}
	return out, nil
}

// Backlog sums the audit entries of m's stores not published yet.
func Backlog(ctx context.Context, m *products.Mesh) (int64, error) {
	var n int64
	for _, s := range m.Stores {
		p, _, err := s.Backlog(ctx)
		if err != nil {
			return 0, err
		}
		n += p
	}
	return n, nil
}

// InitialStock returns every item's stock as it was created (from its
// CREATE audit entry).
func InitialStock(ctx context.Context, m *products.Mesh) (map[int64]int, error) {
	var created []products.AuditEntry
	if err := m.Store("inventory").DB.NewSelect().Model(&created).Where("entity = ? AND op = ?", "Item", products.OpCreate).Scan(ctx); err != nil {
		return nil, fmt.Errorf("inventory: items created: %w", err)
	}
	out := map[int64]int{}
	for _, c := range created {
		var it struct {
			Stock int `json:"stock"`
		}
		if c.After == nil {
			continue
		}
		if err := json.Unmarshal([]byte(*c.After), &it); err != nil {
			return nil, fmt.Errorf("inventory: item %d created: %w", c.Key, err)
		}
		out[c.Key] = it.Stock
	}
	return out, nil
}

// Books compares what the reactions derived with what their sources hold
// and returns the differences ("" when the books are exact): no order is
// still PLACED; inventory's reservation of each order agrees with the
// order (RELEASED only for cancelled orders, RESERVED only for reserved,
// shipped or delivered ones); exactly the reserved orders have a live
// shipment and none other a shipment being prepared; a shipped or
// delivered shipment's order says so; every item's stock is its initial
// stock (nil: as created, see InitialStock) minus what live reservations
// hold; and sales equals SQL over the orders store.
func Books(ctx context.Context, m *products.Mesh, initial map[int64]int) (string, error) {
	if initial == nil {
		var err error
		if initial, err = InitialStock(ctx, m); err != nil {
			return "", err
		}
	}
	var out []string
	var all []orders.Order
	if err := m.Store("orders").DB.NewSelect().Model(&all).Scan(ctx); err != nil {
		return "", err
	}
	status := map[int64]string{}
	placed := 0
	for _, o := range all {
		status[o.ID] = o.Status
		if o.Status == orders.StatusPlaced {
			placed++
		}
	}
	if placed > 0 {
		out = append(out, fmt.Sprintf("%d orders still PLACED", placed))
	}
	var res []inventory.Reservation
	if err := m.Store("inventory").DB.NewSelect().Model(&res).Scan(ctx); err != nil {
		return "", err
	}
	var ships []shipments.Shipment
	if err := m.Store("shipments").DB.NewSelect().Model(&ships).Scan(ctx); err != nil {
		return "", err
	}
	live := map[int64]string{} // order → status of its shipment, unless cancelled
	for _, sh := range ships {
		if sh.Status != shipments.Cancelled {
			live[sh.OrderID] = sh.Status
		}
		if (sh.Status == shipments.Shipped || sh.Status == shipments.Delivered) && status[sh.OrderID] != sh.Status {
			out = append(out, fmt.Sprintf("order %d is %s but its shipment is %s", sh.OrderID, status[sh.OrderID], sh.Status))
		}
	}
	held := map[int64]int{}
	for _, r := range res {
		o := status[r.ID]
		switch r.Status {
		case inventory.Reserved:
			for _, l := range r.Lines {
				held[l.ItemID] += l.Quantity
			}
			if o != orders.StatusReserved && o != orders.StatusShipped && o != orders.StatusDelivered {
				out = append(out, fmt.Sprintf("order %d is %s but its stock is RESERVED", r.ID, o))
			}
			if live[r.ID] == "" {
				out = append(out, fmt.Sprintf("order %d is RESERVED at inventory but has no shipment", r.ID))
			}
		case inventory.Released:
			if o != orders.StatusCancelled {
				out = append(out, fmt.Sprintf("order %d is %s but its reservation is RELEASED", r.ID, o))
			}
		}
		if r.Status != inventory.Reserved && live[r.ID] == shipments.Preparing {
			out = append(out, fmt.Sprintf("order %d is %s at inventory but has a shipment PREPARING", r.ID, r.Status))
		}
	}
	var items []inventory.Item
	if err := m.Store("inventory").DB.NewSelect().Model(&items).Scan(ctx); err != nil {
		return "", err
	}
	for _, it := range items {
		if want := initial[it.ID] - held[it.ID]; it.Stock != want {
			out = append(out, fmt.Sprintf("item %d: stock %d, want %d - %d held = %d", it.ID, it.Stock, initial[it.ID], held[it.ID], want))
		}
	}
	sales, err := SalesBooks(ctx, m)
	if err != nil {
		return "", err
	}
	if sales != "" {
		out = append(out, sales)
	}
	return summary(out), nil
}

// SalesBooks compares sales with SQL over the orders store ("" when equal):
// per customer, per item and over all days, orders (units) and revenue in
// cents.
func SalesBooks(ctx context.Context, m *products.Mesh) (string, error) {
	var out []string
	type figure struct {
		K     int64 `bun:"k"`
		N     int64 `bun:"n"`
		Cents int64 `bun:"c"`
	}
	load := func(s *products.Store, q string) (map[int64]figure, error) {
		var rows []figure
		if err := s.DB.NewRaw(q).Scan(ctx, &rows); err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
		m := map[int64]figure{}
		for _, r := range rows {
			if r.N != 0 || r.Cents != 0 {
				m[r.K] = r
			}
		}
		return m, nil
	}
	// Money is stored as whole cents: the sums are exact.
	for _, c := range []struct{ what, want, got string }{
		{"customer",
			"SELECT customer_id AS k, COUNT(*) AS n, COALESCE(SUM(total), 0) AS c FROM orders WHERE status <> 'CANCELLED' GROUP BY customer_id",
			"SELECT id AS k, orders AS n, revenue AS c FROM customer_value"},
		{"item",
			"SELECT l.item_id AS k, SUM(l.quantity) AS n, COALESCE(SUM(l.amount), 0) AS c FROM order_lines AS l JOIN orders AS o ON o.id = l.order_id WHERE o.status <> 'CANCELLED' GROUP BY l.item_id",
			"SELECT id AS k, units AS n, revenue AS c FROM item_sales"},
		{"all days",
			"SELECT 0 AS k, COUNT(*) AS n, COALESCE(SUM(total), 0) AS c FROM orders WHERE status <> 'CANCELLED'",
			"SELECT 0 AS k, COALESCE(SUM(orders), 0) AS n, COALESCE(SUM(revenue), 0) AS c FROM daily_revenue"},
	} {
		want, err := load(m.Store("orders"), c.want)
		if err != nil {
			return "", err
		}
		got, err := load(m.Store("sales"), c.got)
		if err != nil {
			return "", err
		}
		for k, w := range want {
			if got[k] != w {
				out = append(out, fmt.Sprintf("%s %d: sales has %+v, orders say %+v", c.what, k, got[k], w))
			}
		}
		for k, g := range got {
			if _, ok := want[k]; !ok {
				out = append(out, fmt.Sprintf("%s %d: sales has %+v, orders say nothing", c.what, k, g))
			}
		}
	}
	return summary(out), nil
}

// summary sorts differences and keeps the first dozen.
func summary(out []string) string {
	sort.Strings(out)
	if len(out) > 12 {
		out = append(out[:12], fmt.Sprintf("… and %d more", len(out)-12))
	}
	return strings.Join(out, "\n")
}

// Group is a consumer group as the broker describes it.
type Group struct {
	Name, State string
	// Members holds each member's assigned partitions ("topic/partition").
	Members [][]string
}

// Groups describes the consumer groups of m's reacting products
// (<prefix>.<product>).
func Groups(ctx context.Context, m *products.Mesh, brokers []string, prefix string) ([]Group, error) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_0_0_0
	cfg.ClientID = "meshgate-books"
	admin, err := sarama.NewClusterAdmin(brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("kafka %v: %w", brokers, err)
	}
	defer admin.Close()
	var names []string
	for _, p := range m.Products {
		if p.Reaction != nil {
			names = append(names, prefix+"."+p.Name)
		}
	}
	descs, err := admin.DescribeConsumerGroups(names)
	if err != nil {
		return nil, fmt.Errorf("describe consumer groups: %w", err)
	}
	var out []Group
	for _, d := range descs {
		g := Group{Name: d.GroupId, State: d.State}
		for _, mem := range d.Members {
			a, err := mem.GetMemberAssignment()
			if err != nil {
				return nil, fmt.Errorf("group %s member %s: %w", d.GroupId, mem.MemberId, err)
			}
			var parts []string
			if a != nil {
				for topic, ps := range a.Topics {
					for _, p := range ps {
						parts = append(parts, fmt.Sprintf("%s/%d", topic, p))
					}
				}
			}
			sort.Strings(parts)
			g.Members = append(g.Members, parts)
		}
		out = append(out, g)
	}
	return out, nil
}

// Balanced tells whether every group of m's reacting products is stable
// with members members that share all partitions of its topics, each
// partition assigned once and every member holding some.
func Balanced(ctx context.Context, m *products.Mesh, brokers []string, prefix string, partitions, members int) (bool, string, error) {
	groups, err := Groups(ctx, m, brokers, prefix)
	if err != nil {
		return false, "", err
	}
	var desc []string
	ok := true
	for _, g := range groups {
		p := m.Product(strings.TrimPrefix(g.Name, prefix+"."))
		want := len(p.Reaction.Inputs) * partitions
		assigned := map[string]int{}
		idle := 0
		for _, parts := range g.Members {
			if len(parts) == 0 {
				idle++
			}
			for _, part := range parts {
				assigned[part]++
			}
		}
		dups := 0
		for _, n := range assigned {
			dups += n - 1
		}
		desc = append(desc, fmt.Sprintf("%s: %s, %d members, %d of %d partitions assigned", g.Name, g.State, len(g.Members), len(assigned), want))
		if g.State != "Stable" || len(g.Members) != members || len(assigned) != want || dups > 0 || (idle > 0 && want >= members) {
			ok = false
		}
	}
	return ok, strings.Join(desc, "; "), nil
}

// Progress returns, for each reacting product of m and each of its sources
// ("product<-source"), how many changes of the consumed entities the
// source's log holds (want) and how many the product has applied (got),
// from the counters both keep.
func Progress(ctx context.Context, m *products.Mesh) (want, got map[string]int64, err error) {
	want, got = map[string]int64{}, map[string]int64{}
	for i, p := range m.Products {
		if p.Reaction == nil {
			continue
		}
		for _, in := range p.Reaction.Inputs {
			counts, err := m.Store(in.Product).EntityCounts(ctx)
			if err != nil {
				return nil, nil, err
			}
			want[p.Name+"<-"+in.Product] += counts[in.Entity]
		}
		positions, err := m.Stores[i].SourcePositions(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, pos := range positions {
			got[p.Name+"<-"+pos.Source] = pos.Applied
		}
	}
	return want, got, nil
}
