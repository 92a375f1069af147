package resolvers

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/client"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/uptrace/bun"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/meshgate/meshgate/graph"
	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/pgtest"
	"github.com/meshgate/meshgate/streaming"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// forEachBackend runs fn on SQLite and, when MESHGATE_TEST_POSTGRES is set,
// on PostgreSQL.
func forEachBackend(t *testing.T, fn func(t *testing.T, backend string)) {
	for _, b := range []string{"sqlite", "postgres"} {
		t.Run(b, func(t *testing.T) {
			if b == "postgres" {
				pgtest.Base(t) // skips, or fails in CI, without a database
			}
			t.Parallel()
			fn(t, b)
		})
	}
}

// openMesh opens the demo mesh on fresh stores of the backend, seeded at
// scale 0.01 (20 customers, 5 items, 200 orders, 100 interactions), and
// closes and removes it when the test ends.
func openMesh(t testing.TB, backend string, hooks ...bun.QueryHook) *products.Mesh {
	t.Helper()
	ctx := context.Background()
	var dsn func(string) string
	switch backend {
	case "sqlite":
		dir := t.TempDir()
		dsn = func(p string) string { return "sqlite:" + filepath.Join(dir, p+".db") }
	case "postgres":
		dsn = pgtest.New(t).DSN
	}
	mesh, err := demo.Open(ctx, dsn, hooks...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mesh.Close() })
	if _, err := mesh.Seed(ctx, 0.01, nil); err != nil {
		t.Fatal(err)
	}
	return mesh
}

// newClient serves the resolver like the gateway does (minus transports
// and limits it does not need) and returns a client of it.
func newClient(r *Resolver) *client.Client {
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: r}))
	srv.AddTransport(transport.POST{})
	srv.Use(extension.Introspection{})
	if r.Data.Stores[0].DB != nil { // a whole mesh, not just descriptors
		srv.AroundOperations(r.WithLoaders)
	}
	// The caller is an administrator, as in dev mode.
	srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		return next(products.WithIdentity(ctx, &products.Identity{Subject: "test", Roles: []string{products.RoleAdmin}}))
	})
	srv.AroundOperations(r.WithAccess)
	srv.AroundFields(r.Authorize)
	return client.New(srv)
}

func testResolver(mesh *products.Mesh) *Resolver {
	return &Resolver{Data: mesh, Version: "test", Codec: streaming.Codec{Prefix: "meshgate"}, BatchWait: time.Millisecond}
}

type catalogResponse struct {
	Catalog []struct {
		Name, Domain, Owner, Contact, Kind, Description string
		Entities                                        []struct {
			Name, Product, Description, Table, Topic string
			PrimaryKey                               []string
			RowCount                                 int64
			Fields                                   []struct {
				Name, Type, Column, SQLType, Classification, Description string
				Nullable, PrimaryKey, Pii                                bool
				References                                               *struct{ Product, Entity, Field string }
			}
		}
		Inputs, Consumers []struct{ Consumer, Producer, Entity, Topic, Description string }
		Freshness         struct {
			LastChangedAt *string
			Sequence      int64
			Unpublished   int64
		}
		Sdl       string
		Downloads struct{ Sdl, Odps, Odcs string }
	}
}

const catalogQuery = `query($product: String, $domain: String, $classification: Classification, $pii: Boolean) {
  catalog(product: $product, domain: $domain, classification: $classification, pii: $pii) {
    name domain owner contact kind description
    entities { name product description table topic primaryKey rowCount
      fields { name type column sqlType nullable primaryKey classification pii description references { product entity field } } }
    inputs { consumer producer entity topic description }
    consumers { consumer producer entity topic description }
    freshness { lastChangedAt sequence unpublished }
    sdl
    downloads { sdl odps odcs }
  }
}`

// TestCatalog reads the catalog of the demo mesh: owners, domains, kinds,
// entities, fields with types and classification, topics, row counts,
// freshness before and after a change, SDL and the filters.
func TestCatalog(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		mesh := openMesh(t, backend)
		r := testResolver(mesh)
		c := newClient(r)
		var all catalogResponse
		c.MustPost(catalogQuery, &all)
		var names []string
		for _, p := range all.Catalog {
			names = append(names, p.Name)
		}
		var wantNames []string
		for _, d := range demo.Products {
			wantNames = append(wantNames, d.Name)
		}
		if !slices.Equal(names, wantNames) {
			t.Fatalf("products %v, want %v", names, wantNames)
		}
		cust := all.Catalog[0]
		if cust.Owner != "customer-data-team" || cust.Domain != "sales" || cust.Kind != "OPERATIONAL" || cust.Contact != "customer-data@example.com" {
			t.Errorf("customers: owner %q domain %q kind %q contact %q", cust.Owner, cust.Domain, cust.Kind, cust.Contact)
		}
		if cust.Downloads.Odcs != "/catalog/customers/odcs.yaml" || cust.Downloads.Sdl != "/catalog/customers.graphql" {
			t.Errorf("customers downloads %+v", cust.Downloads)
		}
		e := cust.Entities[0]
		if e.Name != "Customer" || e.Table != "customers" || e.Topic != "meshgate.customers.customers" || !slices.Equal(e.PrimaryKey, []string{"id"}) {
			t.Errorf("Customer entity: %+v", e)
		}
		if e.RowCount != 20 {
			t.Errorf("Customer rowCount %d, want 20", e.RowCount)
		}
		wantInt := map[string]string{"sqlite": "INTEGER", "postgres": "BIGSERIAL"}[backend]
		for _, f := range e.Fields {
			switch f.Name {
			case "id":
				if !f.PrimaryKey || f.Type != "ID!" || f.SQLType != wantInt || f.Nullable || f.Column != "id" {
					t.Errorf("Customer.id: %+v", f)
				}
			case "email":
				if !f.Pii || f.Classification != "CONFIDENTIAL" || f.Type != "String!" || f.SQLType != "VARCHAR" || f.Nullable {
					t.Errorf("Customer.email: %+v", f)
				}
				if f.Description != "E-mail address; personal data." {
					t.Errorf("Customer.email description %q", f.Description)
				}
			case "phone":
				if !f.Nullable || f.Type != "String" || !f.Pii {
					t.Errorf("Customer.phone: %+v", f)
				}
			case "country":
				if f.Pii || f.Classification != "INTERNAL" {
					t.Errorf("Customer.country: %+v", f)
				}
			}
			if f.SQLType == "" || f.Description == "" || f.Type == "" {
				t.Errorf("Customer.%s lacks type, SQL type or description: %+v", f.Name, f)
			}
		}
		orders := all.Catalog[2]
		if len(orders.Entities) != 2 || orders.Entities[1].Name != "OrderLine" || orders.Entities[1].RowCount < 200 {
			t.Fatalf("orders entities: %+v", orders.Entities)
		}
		for _, f := range orders.Entities[0].Fields {
			if f.Name == "placedDate" {
				t.Errorf("derived field placedDate is listed")
			}
			if f.Name == "customerId" && (f.References == nil || *f.References != struct{ Product, Entity, Field string }{"customers", "Customer", "id"}) {
				t.Errorf("Order.customerId references %+v", f.References)
			}
		}
		if !strings.Contains(orders.Sdl, "type OrderLine @key(fields: \"id\")") || !strings.Contains(orders.Sdl, "placeOrder(") {
			t.Errorf("orders SDL lacks OrderLine or placeOrder:\n%s", orders.Sdl)
		}
		// Nothing declares inputs yet: no lineage.
		for _, p := range all.Catalog {
			if len(p.Inputs)+len(p.Consumers) != 0 {
				t.Errorf("%s: lineage %+v %+v", p.Name, p.Inputs, p.Consumers)
			}
		}

		// Freshness follows the audit log (no relay runs: nothing is published).
		before := cust.Freshness
		if before.Unpublished != before.Sequence || (before.Sequence == 0) != (before.LastChangedAt == nil) {
			t.Errorf("customers freshness after seeding: %+v", before)
		}
		start := time.Now()
		if _, err := customers.New(mesh).Create(context.Background(), customers.Input{
			Name: "Ada Lovelace", Email: "ada@example.org", Country: "GB", Segment: customers.SegmentConsumer,
		}); err != nil {
			t.Fatal(err)
		}
		var one catalogResponse
		c.MustPost(catalogQuery, &one, client.Var("product", "customers"))
		if len(one.Catalog) != 1 {
			t.Fatalf("catalog(product: customers) returned %d products", len(one.Catalog))
		}
		after := one.Catalog[0].Freshness
		if after.Sequence != before.Sequence+1 || after.LastChangedAt == nil || after.Unpublished != before.Unpublished+1 {
			t.Fatalf("customers freshness after a change: %+v", after)
		}
		if at, err := time.Parse(time.RFC3339Nano, *after.LastChangedAt); err != nil || at.Before(start.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
			t.Errorf("lastChangedAt %s (%v), want about %s", *after.LastChangedAt, err, start.UTC().Format(time.RFC3339Nano))
		}
		if got := one.Catalog[0].Entities[0].RowCount; got != 21 {
			t.Errorf("rowCount after create: %d", got)
		}

		// Filters.
		var sales catalogResponse
		c.MustPost(catalogQuery, &sales, client.Var("domain", "supply-chain"))
		if len(sales.Catalog) != 1 || sales.Catalog[0].Name != "inventory" {
			t.Errorf("domain supply-chain: %d products", len(sales.Catalog))
		}
		var restricted catalogResponse
		c.MustPost(catalogQuery, &restricted, client.Var("classification", "RESTRICTED"))
		if len(restricted.Catalog) != 1 || restricted.Catalog[0].Name != "engagement" ||
			len(restricted.Catalog[0].Entities[0].Fields) != 1 || restricted.Catalog[0].Entities[0].Fields[0].Name != "note" {
			t.Errorf("classification RESTRICTED: %+v", restricted.Catalog)
		}
		var pii catalogResponse
		c.MustPost(catalogQuery, &pii, client.Var("pii", true))
		var piiFields []string
		for _, p := range pii.Catalog {
			for _, e := range p.Entities {
				for _, f := range e.Fields {
					piiFields = append(piiFields, p.Owner+" "+e.Name+"."+f.Name)
				}
			}
		}
		want := []string{
			"customer-data-team Customer.name", "customer-data-team Customer.email", "customer-data-team Customer.phone",
			"customer-experience-team Interaction.note",
		}
		if !slices.Equal(piiFields, want) {
			t.Errorf("pii fields %v, want %v", piiFields, want)
		}
		var none catalogResponse
		c.MustPost(catalogQuery, &none, client.Var("product", "nope"))
		if len(none.Catalog) != 0 {
			t.Errorf("unknown product listed %d products", len(none.Catalog))
		}
	})
}

// TestCatalogLineage derives lineage from a product's declared inputs: the
// consumer lists its inputs, the producer its consumers, with topics.
func TestCatalogLineage(t *testing.T) {
	mesh := openMesh(t, "sqlite")
	inventory := *mesh.Store("inventory").Product
	inventory.Inputs = []products.Input{{Product: "orders", Entity: "Order", Description: "Reserves stock when an order is placed."}}
	stores := slices.Clone(mesh.Stores)
	for i, s := range stores {
		if s.Product.Name == "inventory" {
			s2 := &products.Store{DB: s.DB, Product: &inventory}
			stores[i] = s2
		}
	}
	r := testResolver(&products.Mesh{Stores: stores})
	ps, err := r.CatalogProducts(CatalogFilter{})
	if err != nil {
		t.Fatal(err)
	}
	link := "inventory<-orders.Order@meshgate.orders.orders: Reserves stock when an order is placed."
	for _, p := range ps {
		var in, out []string
		for _, l := range p.Inputs {
			in = append(in, l.Consumer+"<-"+l.Producer+"."+l.Entity+"@"+l.Topic+": "+l.Description)
		}
		for _, l := range p.Consumers {
			out = append(out, l.Consumer+"<-"+l.Producer+"."+l.Entity+"@"+l.Topic+": "+l.Description)
		}
		var wantIn, wantOut []string
		switch p.Name {
		case "inventory":
			wantIn = []string{link}
		case "orders":
			wantOut = []string{link}
		}
		if !slices.Equal(in, wantIn) || !slices.Equal(out, wantOut) {
			t.Errorf("%s: inputs %v consumers %v; want %v and %v", p.Name, in, out, wantIn, wantOut)
		}
	}

	inventory.Inputs = []products.Input{{Product: "billing", Entity: "Invoice"}}
	if _, err := r.CatalogProducts(CatalogFilter{}); err == nil || !strings.Contains(err.Error(), `unknown data product "billing"`) {
		t.Errorf("input from an unknown product: err %v", err)
	}
}

// TestCatalogLineageFromConsumers derives the demo mesh's lineage from the
// consumers that run the products' reactions: who consumes order events?
func TestCatalogLineageFromConsumers(t *testing.T) {
	mesh := openMesh(t, "sqlite")
	r := testResolver(mesh)
	r.Consumers = streaming.Consumers(mesh, r.Codec, streaming.KafkaConfig{}, nil)
	var resp catalogResponse
	newClient(r).MustPost(catalogQuery, &resp, client.Var("product", "orders"))
	var consumers []string
	for _, l := range resp.Catalog[0].Consumers {
		consumers = append(consumers, l.Consumer+" <- "+l.Entity+" @ "+l.Topic)
	}
	for _, want := range []string{
		"inventory <- Order @ meshgate.orders.orders",
		"sales <- Order @ meshgate.orders.orders",
	} {
		if !slices.Contains(consumers, want) {
			t.Errorf("consumers of orders %q lack %q", consumers, want)
		}
	}
	for _, l := range resp.Catalog[0].Inputs {
		if l.Consumer != "orders" || l.Topic == "" || l.Description == "" {
			t.Errorf("orders input %+v", l)
		}
	}
}

// TestProductSDL compares each product's SDL with testdata/sdl/<product>.graphql
// (go test -run TestProductSDL -update rewrites them) and checks that it
// parses and keeps the metadata directives.
func TestProductSDL(t *testing.T) {
	r := testResolver(&products.Mesh{Stores: fakeStores()})
	for _, d := range demo.Products {
		sdl, ok := r.ProductSDL(d.Name)
		if !ok {
			t.Fatalf("no SDL for %s", d.Name)
		}
		golden(t, filepath.Join("testdata", "sdl", d.Name+".graphql"), sdl)
		doc, err := parser.ParseSchema(&ast.Source{Name: d.Name, Input: sdl})
		if err != nil {
			t.Fatalf("%s SDL does not parse: %v", d.Name, err)
		}
		if unannotated[d.Name] {
			continue
		}
		if len(doc.SchemaExtension) != 1 || doc.SchemaExtension[0].Directives.ForName("dataProduct") == nil {
			t.Errorf("%s SDL lacks extend schema @dataProduct", d.Name)
		}
		for _, e := range d.Entities {
			if Schema().Types[e.Name] == nil {
				continue // not served by the API
			}
			def := doc.Definitions.ForName(e.Name)
			if def == nil || def.Directives.ForName("key") == nil || def.Directives.ForName("entity") == nil {
				t.Errorf("%s SDL lacks type %s with @key and @entity", d.Name, e.Name)
			}
		}
	}
	if _, ok := r.ProductSDL("nope"); ok {
		t.Error("SDL of an unknown product")
	}
}

// fakeStores stands in for the demo mesh's stores where no database is needed.
func fakeStores() []*products.Store {
	out := make([]*products.Store, len(demo.Products))
	for i, d := range demo.Products {
		out[i] = &products.Store{Product: &d.Descriptor}
	}
	return out
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file (go test -run %s -update rewrites it):\n%s", path, t.Name(), diffLines(string(want), got))
	}
}

// diffLines shows the first lines where two texts differ.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			shown++
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl + "\n")
		}
	}
	return b.String()
}

// statements counts the SQL statements of the stores it hooks into.
type statements struct {
	mu      sync.Mutex
	queries []string
}

func (s *statements) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (s *statements) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries = append(s.queries, e.Query)
}

func (s *statements) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries = nil
}

// on returns the statements that read the table.
func (s *statements) on(table string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, q := range s.queries {
		if strings.Contains(q, `"`+table+`"`) {
			out = append(out, q)
		}
	}
	return out
}
