package web

// Tests of the catalog downloads: a real gateway (NewServer behind
// httptest) over the demo mesh, on SQLite and, when MESHGATE_TEST_POSTGRES
// is set, on PostgreSQL. Exports are compared with golden files
// (go test ./web -run TestCatalogDownloads -update rewrites them) and
// validated against the standards' JSON Schemas in testdata/standards/.

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/pgtest"
	"github.com/meshgate/meshgate/resolvers"
	"github.com/meshgate/meshgate/streaming"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/")

// catalogHost is the host the tests ask for, so that exports are stable.
const catalogHost = "meshgate.example:8080"

// openCatalogMesh opens the demo mesh on fresh stores of the backend
// ("sqlite" or "postgres"), seeded at scale 0.01; it is closed and removed
// when the test ends.
func openCatalogMesh(t *testing.T, backend string) *products.Mesh {
	t.Helper()
	var dsn func(string) string
	switch backend {
	case "sqlite":
		dir := t.TempDir()
		dsn = func(p string) string { return "sqlite:" + filepath.Join(dir, p+".db") }
	case "postgres":
		dsn = pgtest.New(t).DSN
	}
	mesh, err := demo.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mesh.Close() })
	if _, err := mesh.Seed(context.Background(), 0.01, nil); err != nil {
		t.Fatal(err)
	}
	return mesh
}

// catalogResolver serves the mesh like the gateway; its hub and consumers
// never run: they only tell the catalog where Kafka is and who consumes what.
func catalogResolver(mesh *products.Mesh) *resolvers.Resolver {
	codec := streaming.Codec{Prefix: "meshgate", Version: "test"}
	kafka := streaming.KafkaConfig{Brokers: []string{"kafka.example:9092"}}
	return &resolvers.Resolver{
		Data: mesh, Version: "test", Codec: codec,
		Hub:       &streaming.Hub{Codec: codec, Kafka: kafka},
		Consumers: streaming.Consumers(mesh, codec, kafka, nil),
	}
}

// get fetches path from the gateway as if it were at catalogHost.
func get(t *testing.T, srv *httptest.Server, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = catalogHost
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// standard compiles one of the standards' JSON Schemas, with format
// assertions on (so URLs must be absolute, timestamps RFC 3339).
func standard(t *testing.T, file string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(filepath.Join("testdata", "standards", file))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// validate checks a YAML document against a JSON Schema.
func validate(t *testing.T, s *jsonschema.Schema, name, doc string) {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatalf("%s: not YAML: %v", name, err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := s.Validate(v); err != nil {
		t.Errorf("%s does not validate against %s:\n%v", name, s.Location, err)
	}
}

var physicalType = regexp.MustCompile(`(?m)^(\s*physicalType: )[A-Z][A-Z0-9 (),]*$`)

// sqlTypes hides the SQL column types of an ODCS document.
func sqlTypes(doc string) string { return physicalType.ReplaceAllString(doc, "${1}*") }

// TestCatalogDownloads fetches every product's SDL, ODPS and ODCS
// documents, compares them with the golden files and validates the
// exports against the official JSON Schemas.
func TestCatalogDownloads(t *testing.T) {
	odps := standard(t, "odps-json-schema-v1.0.0.json")
	odcs := standard(t, "odcs-json-schema-v3.1.0.json")
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			mesh := openCatalogMesh(t, backend)
			res := catalogResolver(mesh)
			srv := httptest.NewServer(NewServer(Config{Resolver: res}))
			defer srv.Close()
			for _, d := range demo.Products {
				resp, body := get(t, srv, "/catalog/"+d.Name+".graphql")
				want, _ := res.ProductSDL(d.Name)
				if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || body != want {
					t.Errorf("%s.graphql: %s %q, %d bytes (want the product's SDL)", d.Name, resp.Status, resp.Header.Get("Content-Type"), len(body))
				}
				for _, doc := range []struct {
					file   string
					schema *jsonschema.Schema
				}{{"odps.yaml", odps}, {"odcs.yaml", odcs}} {
					resp, body := get(t, srv, "/catalog/"+d.Name+"/"+doc.file)
					if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/yaml; charset=utf-8" {
						t.Fatalf("%s/%s: %s %q: %s", d.Name, doc.file, resp.Status, resp.Header.Get("Content-Type"), body)
					}
					validate(t, doc.schema, d.Name+"/"+doc.file, body)
					path := filepath.Join("testdata", "catalog", d.Name+"."+doc.file)
					if backend == "postgres" {
						// PostgreSQL's column types differ; nothing else may.
						if golden, err := os.ReadFile(path); err == nil && sqlTypes(body) != sqlTypes(string(golden)) {
							t.Errorf("%s on PostgreSQL differs from %s beyond column types:\n%s", doc.file, path, body)
						}
						continue
					}
					goldenFile(t, path, body)
				}
			}
		})
	}
}

// TestStandardsCatchMistakes makes sure the validation has teeth: broken
// documents fail it.
func TestStandardsCatchMistakes(t *testing.T) {
	odps := standard(t, "odps-json-schema-v1.0.0.json")
	odcs := standard(t, "odcs-json-schema-v3.1.0.json")
	for _, tc := range []struct {
		schema *jsonschema.Schema
		doc    string
	}{
		{odps, "apiVersion: v1.0.0\nkind: DataProduct\nid: x\n"},                                                                           // no status
		{odps, "apiVersion: v1.0.0\nkind: DataProduct\nid: x\nstatus: active\nmanagementPorts: [{name: a, content: b, url: /relative}]\n"}, // not a URI
		{odcs, "apiVersion: v3.1.0\nkind: DataContract\nid: x\nversion: 1.0.0\nstatus: active\nschema: [{name: t, properties: [{name: c, logicalType: text}]}]\n"},
		{odcs, "apiVersion: v3.1.0\nkind: DataContract\nid: x\nversion: 1.0.0\nstatus: active\nschema: [{name: t, properties: [{name: c, relationships: [{to: 'not a reference'}]}]}]\n"},
	} {
		j, err := yaml.YAMLToJSON([]byte(tc.doc))
		if err != nil {
			t.Fatal(err)
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.schema.Validate(v); err == nil {
			t.Errorf("%s accepted:\n%s", tc.schema.Location, tc.doc)
		}
	}
}

// TestCatalogDownloadsPostgresTypes checks the column types on PostgreSQL.
func TestCatalogDownloadsPostgresTypes(t *testing.T) {
	mesh := openCatalogMesh(t, "postgres")
	srv := httptest.NewServer(NewServer(Config{Resolver: catalogResolver(mesh)}))
	defer srv.Close()
	_, body := get(t, srv, "/catalog/customers/odcs.yaml")
	for _, want := range []string{"physicalType: BIGSERIAL", "physicalType: TIMESTAMPTZ", "physicalType: VARCHAR"} {
		if !strings.Contains(body, want) {
			t.Errorf("customers ODCS on PostgreSQL lacks %q", want)
		}
	}
}

// TestCatalogNotFound asks for what does not exist: 404 with a text that
// lists the products and the downloads.
func TestCatalogNotFound(t *testing.T) {
	srv := httptest.NewServer(NewServer(Config{Resolver: catalogResolver(openCatalogMesh(t, "sqlite"))}))
	defer srv.Close()
	var names []string
	for _, d := range demo.Products {
		names = append(names, d.Name)
	}
	for _, path := range []string{
		"/catalog/nope.graphql", "/catalog/nope/odps.yaml", "/catalog/nope/odcs.yaml",
		"/catalog/customers.yaml", "/catalog/customers/other.yaml", "/catalog/customers/odps.yaml/x",
	} {
		resp, body := get(t, srv, path)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "Data products: "+strings.Join(names, ", ")+".") ||
			!strings.Contains(body, "/catalog/<product>/odcs.yaml") {
			t.Errorf("GET %s: %s %q", path, resp.Status, body)
		}
		if strings.Contains(path, "nope") && !strings.Contains(body, `unknown data product "nope"`) {
			t.Errorf("GET %s: %q does not name the unknown product", path, body)
		}
	}
	resp, body := get(t, srv, "/catalog/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<a href="/catalog/orders/odcs.yaml">ODCS</a>`) {
		t.Errorf("GET /catalog/: %s %q", resp.Status, body)
	}
}

// TestCatalogExportLineage exports a product that declares inputs: its
// ODPS input ports are the consumed topics, with the producers' contracts.
func TestCatalogExportLineage(t *testing.T) {
	mesh := openCatalogMesh(t, "sqlite")
	stores := slices.Clone(mesh.Stores)
	inventory := *mesh.Store("inventory").Product
	inventory.Inputs = []products.Input{{Product: "orders", Entity: "Order", Description: "Reserves stock when an order is placed."}}
	stores[1] = &products.Store{DB: mesh.Store("inventory").DB, Product: &inventory}
	res := &resolvers.Resolver{Data: &products.Mesh{Stores: stores}, Codec: streaming.Codec{Prefix: "meshgate"}}
	ps, err := res.CatalogProducts(resolvers.CatalogFilter{Product: "inventory"})
	if err != nil || len(ps) != 1 {
		t.Fatalf("catalog: %v, %d products", err, len(ps))
	}
	b, err := yaml.Marshal(newODPS(ps[0], "http://"+catalogHost))
	if err != nil {
		t.Fatal(err)
	}
	validate(t, standard(t, "odps-json-schema-v1.0.0.json"), "inventory ODPS with inputs", string(b))
	doc := newODPS(ps[0], "http://"+catalogHost)
	if len(doc.InputPorts) != 1 || doc.InputPorts[0].Name != "meshgate.orders.orders" || doc.InputPorts[0].ContractID != "urn:meshgate:datacontract:orders" {
		t.Errorf("input ports %+v", doc.InputPorts)
	}
	ps, _ = res.CatalogProducts(resolvers.CatalogFilter{Product: "orders"})
	if got := ps[0].Consumers; len(got) != 1 || got[0].Consumer != "inventory" {
		t.Errorf("orders consumers %+v", got)
	}
}

func goldenFile(t *testing.T, path, got string) {
	t.Helper()
	if *updateGolden {
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
		t.Fatalf("%v (go test ./web -run TestCatalogDownloads -update creates it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file (go test ./web -run TestCatalogDownloads -update rewrites it); got:\n%s", path, got)
	}
}
