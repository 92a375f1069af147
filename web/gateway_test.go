package web_test

// The shared harness of the web tests: a real gateway (web.NewServer behind
// httptest.NewServer) over the real demo mesh, on SQLite always and on
// PostgreSQL when MESHGATE_TEST_POSTGRES names a DSN.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/customers"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/pgtest"
	"github.com/meshgate/meshgate/resolvers"
	"github.com/meshgate/meshgate/web"
)

const (
	sqliteBackend   = "sqlite"
	postgresBackend = "postgres"
)

func TestMain(m *testing.M) {
	code := m.Run()
	closeSharedGateways()
	os.Exit(code)
}

// forEachBackend runs fn as the parallel subtests "sqlite" and "postgres".
// The PostgreSQL variant is skipped only when MESHGATE_TEST_POSTGRES is unset
// (and fails then if CI is set).
func forEachBackend(t *testing.T, fn func(t *testing.T, backend string)) {
	t.Helper()
	runBackends(t, true, fn)
}

// forEachBackendInTurn is forEachBackend with the subtests one after the
// other, for timing-sensitive tests.
func forEachBackendInTurn(t *testing.T, fn func(t *testing.T, backend string)) {
	t.Helper()
	runBackends(t, false, fn)
}

func runBackends(t *testing.T, parallel bool, fn func(t *testing.T, backend string)) {
	t.Helper()
	for _, b := range []string{sqliteBackend, postgresBackend} {
		t.Run(b, func(t *testing.T) {
			if b == postgresBackend {
				pgtest.Base(t) // skips, or fails in CI, without a database
			}
			if parallel {
				t.Parallel()
			}
			fn(t, b)
		})
	}
}

// storeSet says where the product stores of one gateway live: a directory
// of SQLite files, or one PostgreSQL schema per product named
// <prefix>_<product>. Reopening the same storeSet reopens the same data.
type storeSet struct {
	backend string
	dir     string // SQLite
	pg      *pgtest.Schemas
}

func newStoreSetNoCleanup(backend string) (*storeSet, error) {
	s := &storeSet{backend: backend}
	switch backend {
	case sqliteBackend:
		dir, err := os.MkdirTemp("", "meshgate-test-")
		if err != nil {
			return nil, err
		}
		s.dir = dir
	case postgresBackend:
		base := os.Getenv(pgtest.Env)
		if base == "" {
			return nil, fmt.Errorf("%s is not set", pgtest.Env)
		}
		s.pg = pgtest.NewSet(base)
	default:
		return nil, fmt.Errorf("unknown backend %q", backend)
	}
	return s, nil
}

// newStoreSet returns fresh, empty store locations that are removed (SQLite
// directory) or dropped (PostgreSQL schemas) when the test ends.
func newStoreSet(t *testing.T, backend string) *storeSet {
	t.Helper()
	s, err := newStoreSetNoCleanup(backend)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.remove(); err != nil {
			t.Errorf("remove stores: %v", err)
		}
	})
	return s
}

// dsn is the DSN of a product's store.
func (s *storeSet) dsn(product string) string {
	if s.backend == sqliteBackend {
		return "sqlite:" + filepath.Join(s.dir, product+".db")
	}
	return s.pg.DSN(product)
}

// remove deletes the stores; every gateway on them must be closed.
func (s *storeSet) remove() error {
	if s.backend == sqliteBackend {
		return os.RemoveAll(s.dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.pg.Drop(ctx)
}

// stmtCounter is a bun query hook that records the statements each product
// store executes. Statements of databases it does not watch (none, in
// practice) are ignored.
type stmtCounter struct {
	mu     sync.Mutex
	stores map[*bun.DB]string
	stmts  map[string][]string
}

func newStmtCounter() *stmtCounter {
	return &stmtCounter{stores: map[*bun.DB]string{}, stmts: map[string][]string{}}
}

// watch maps the mesh's databases to their products.
func (c *stmtCounter) watch(m *products.Mesh) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range m.Stores {
		c.stores[s.DB] = s.Product.Name
	}
}

func (c *stmtCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

func (c *stmtCounter) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.stores[e.DB]; ok {
		c.stmts[p] = append(c.stmts[p], e.Query)
	}
}

// reset forgets every recorded statement.
func (c *stmtCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stmts = map[string][]string{}
}

// counts returns the number of statements per product since the last reset.
func (c *stmtCounter) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for p, s := range c.stmts {
		out[p] = len(s)
	}
	return out
}

// dump lists the recorded statements, for failure messages.
func (c *stmtCounter) dump() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	names := make([]string, 0, len(c.stmts))
	for p := range c.stmts {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		for _, s := range c.stmts[p] {
			if len(s) > 300 {
				s = s[:300] + "…"
			}
			fmt.Fprintf(&b, "  %s: %s\n", p, s)
		}
	}
	return b.String()
}

// gatewayOptions tune a test gateway.
type gatewayOptions struct {
	// scale of the demo seed; 0 means the default (0.02: 40 customers,
	// 10 items, 400 orders, 200 interactions). Negative: no seed.
	scale float64
	// batchWait of the batch loaders; 0 means 2ms.
	batchWait time.Duration
}

// gateway is a running gateway over real stores.
type gateway struct {
	backend string
	stores  *storeSet
	mesh    *products.Mesh
	stmts   *stmtCounter
	srv     *httptest.Server
	seeded  bool
	closeFn func()
}

// openGateway opens the mesh on stores, seeds it (if empty) and serves it.
func openGateway(ctx context.Context, stores *storeSet, opt gatewayOptions) (*gateway, error) {
	counter := newStmtCounter()
	mesh, err := demo.Open(ctx, stores.dsn, counter)
	if err != nil {
		return nil, err
	}
	counter.watch(mesh)
	scale := opt.scale
	if scale == 0 {
		scale = 0.02
	}
	seeded := false
	if scale > 0 {
		if seeded, err = mesh.Seed(ctx, scale, nil); err != nil {
			mesh.Close()
			return nil, err
		}
	}
	wait := opt.batchWait
	if wait == 0 {
		wait = 2 * time.Millisecond
	}
	h := web.NewServer(web.Config{
		Resolver: &resolvers.Resolver{Data: mesh, Version: "test", BatchWait: wait},
		Ready:    mesh.Ping,
	})
	return &gateway{backend: stores.backend, stores: stores, mesh: mesh, stmts: counter, srv: httptest.NewServer(h), seeded: seeded}, nil
}

// close stops the server and closes the stores (keeping their data).
func (g *gateway) close() error {
	g.srv.Close()
	return g.mesh.Close()
}

// newGateway starts a gateway of its own for the test, on fresh stores that
// are removed when the test ends.
func newGateway(t *testing.T, backend string, opts ...gatewayOptions) *gateway {
	t.Helper()
	var opt gatewayOptions
	if len(opts) > 0 {
		opt = opts[0]
	}
	stores := newStoreSet(t, backend)
	return newGatewayOn(t, stores, opt)
}

// newGatewayOn starts a gateway on existing stores, closed when the test
// ends (or earlier by the test: close is idempotent enough for that through
// closeOnce).
func newGatewayOn(t *testing.T, stores *storeSet, opt gatewayOptions) *gateway {
	t.Helper()
	g, err := openGateway(t.Context(), stores, opt)
	if err != nil {
		t.Fatalf("open gateway on %s: %v", stores.backend, err)
	}
	var once sync.Once
	closeFn := func() {
		once.Do(func() {
			if err := g.close(); err != nil {
				t.Errorf("close gateway: %v", err)
			}
		})
	}
	g.closeFn = closeFn
	t.Cleanup(closeFn)
	return g
}

// shared read-only gateways, one per backend, for tests that never write.
var shared = struct {
	mu  sync.Mutex
	gws map[string]*sharedGW
}{gws: map[string]*sharedGW{}}

type sharedGW struct {
	once sync.Once
	g    *gateway
	err  error
}

// sharedGateway returns the backend's shared read-only gateway, seeded at
// the default scale plus the rows of seedExtras. Tests using it must not
// write.
func sharedGateway(t *testing.T, backend string) *gateway {
	t.Helper()
	shared.mu.Lock()
	s := shared.gws[backend]
	if s == nil {
		s = &sharedGW{}
		shared.gws[backend] = s
	}
	shared.mu.Unlock()
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		stores, err := newStoreSetNoCleanup(backend)
		if err != nil {
			s.err = err
			return
		}
		g, err := openGateway(ctx, stores, gatewayOptions{})
		if err != nil {
			stores.remove()
			s.err = err
			return
		}
		s.g = g
		s.err = seedExtras(ctx, g.mesh)
	})
	if s.err != nil {
		t.Fatalf("shared %s gateway: %v", backend, s.err)
	}
	return s.g
}

func closeSharedGateways() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	for b, s := range shared.gws {
		if s.g == nil {
			continue
		}
		if err := s.g.close(); err != nil {
			fmt.Fprintf(os.Stderr, "close shared %s gateway: %v\n", b, err)
		}
		if err := s.g.stores.remove(); err != nil {
			fmt.Fprintf(os.Stderr, "remove shared %s stores: %v\n", b, err)
		}
	}
}

// gqlError is one entry of a GraphQL response's errors.
type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

func (e gqlError) code() string  { s, _ := e.Extensions["code"].(string); return s }
func (e gqlError) field() string { s, _ := e.Extensions["field"].(string); return s }

// gqlResponse is a decoded GraphQL response.
type gqlResponse struct {
	Status int             `json:"-"`
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

// post sends a GraphQL request over HTTP and decodes the answer.
func (g *gateway) post(t *testing.T, query string, vars map[string]any) gqlResponse {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		t.Fatal(err)
	}
	return g.postRaw(t, "application/json", body)
}

// postRaw sends a body with a content type to /graphql.
func (g *gateway) postRaw(t *testing.T, contentType string, body []byte) gqlResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, g.srv.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	resp, err := g.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("POST /graphql: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	var r gqlResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("response (HTTP %d) is not GraphQL JSON: %v\n%s", resp.StatusCode, err, raw)
	}
	r.Status = resp.StatusCode
	return r
}

// query runs a request that must succeed and decodes its data into out
// (unless out is nil).
func (g *gateway) query(t *testing.T, query string, vars map[string]any, out any) {
	t.Helper()
	r := g.post(t, query, vars)
	if len(r.Errors) > 0 {
		t.Fatalf("unexpected errors: %s\nquery: %s\nvariables: %s", mustJSON(r.Errors), query, short(vars))
	}
	if out != nil {
		if err := json.Unmarshal(r.Data, out); err != nil {
			t.Fatalf("decode data: %v\n%s", err, r.Data)
		}
	}
}

// fail runs a request that must fail with an error carrying code (and, when
// field is not empty, extensions.field == field) and returns that error.
func (g *gateway) fail(t *testing.T, code, field, query string, vars map[string]any) gqlError {
	t.Helper()
	r := g.post(t, query, vars)
	if len(r.Errors) == 0 {
		t.Fatalf("expected an error with code %s, got data %s\nquery: %s\nvariables: %s", code, r.Data, query, short(vars))
	}
	for _, e := range r.Errors {
		if e.code() == code && (field == "" || e.field() == field) {
			if strings.Contains(e.Message, "internal error") {
				t.Errorf("error with code %s looks internal: %q", code, e.Message)
			}
			return e
		}
	}
	t.Fatalf("expected an error with code %s field %q, got %s\nquery: %s\nvariables: %s", code, field, mustJSON(r.Errors), query, short(vars))
	return gqlError{}
}

// short renders variables for failure messages, cut to a readable length.
func short(vars map[string]any) string {
	s := mustJSON(vars)
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}

// loadAll reads every row of a model's table straight from a store (plain
// SQL, no filter compiler), ordered by id.
func loadAll[T any](t *testing.T, db bun.IDB) []*T {
	t.Helper()
	var rows []*T
	if err := db.NewSelect().Model(&rows).OrderExpr("id ASC").Scan(t.Context()); err != nil {
		t.Fatalf("load rows: %v", err)
	}
	return rows
}

// store returns the gateway's store of a product.
func (g *gateway) store(product string) *products.Store {
	for _, s := range g.mesh.Stores {
		if s.Product.Name == product {
			return s
		}
	}
	panic("no product " + product)
}

// extraCustomers are added to the shared gateway's seed: names with the
// wildcard characters of LIKE and GLOB, and a lower-case twin, to check that
// contains/startsWith match them literally and case-sensitively.
var extraCustomers = []customers.Input{
	{Name: "Zed 100% Pure", Email: "zed.percent@example.org", Country: "DE", Segment: "CONSUMER"},
	{Name: "Zed under_score", Email: "zed.underscore@example.org", Country: "DE", Segment: "CONSUMER"},
	{Name: "Zed star*glob", Email: "zed.star@example.org", Country: "FR", Segment: "ENTERPRISE"},
	{Name: "Zed [bracket]", Email: "zed.bracket@example.org", Country: "FR", Segment: "SMALL_BUSINESS"},
	{Name: "Zed question?", Email: "zed.question@example.org", Country: "NL", Segment: "CONSUMER"},
	{Name: `Zed back\slash`, Email: "zed.backslash@example.org", Country: "NL", Segment: "CONSUMER"},
	{Name: "zed lower case", Email: "zed.lower@example.org", Country: "SE", Segment: "CONSUMER"},
}

func seedExtras(ctx context.Context, m *products.Mesh) error {
	for _, in := range extraCustomers {
		if _, err := customers.New(m).Create(ctx, in); err != nil {
			return fmt.Errorf("create %q: %w", in.Name, err)
		}
	}
	return nil
}
