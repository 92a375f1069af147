package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// uiGet fetches path with the given request headers (name, value, …).
func uiGet(t *testing.T, srv *httptest.Server, method, path string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	// A transport that leaves Content-Encoding alone, to see what was sent.
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

var assetRef = regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`)

// TestUI serves the embedded app: its pages get index.html with a
// same-origin CSP, its hashed assets are cached for good and gzipped on
// request, anything else is a 404, and the API routes are untouched.
func TestUI(t *testing.T) {
	srv := httptest.NewServer(NewServer(Config{Resolver: catalogResolver(openCatalogMesh(t, "sqlite"))}))
	defer srv.Close()

	resp, index := uiGet(t, srv, http.MethodGet, "/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!bytes.Contains(index, []byte(`<div id="root">`)) {
		t.Fatalf("GET /: %s %s %q", resp.Status, resp.Header.Get("Content-Type"), index)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("GET /: CSP %q does not keep the page on its origin", csp)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("GET /: Cache-Control %q, want no-cache", cc)
	}
	if bytes.Contains(index, []byte("://")) {
		t.Errorf("index.html refers to another origin: %s", index)
	}

	// Every page of the app is the same document.
	for _, p := range []string{"/products/orders", "/products/orders/", "/lineage", "/dashboard", "/history", "/graphiql", "/dashboard/"} {
		resp, body := uiGet(t, srv, http.MethodGet, p+"?q=x")
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, index) {
			t.Errorf("GET %s: %s, %d bytes (index.html has %d)", p, resp.Status, len(body), len(index))
		}
	}
	if resp, _ := uiGet(t, srv, http.MethodGet, "/", "If-None-Match", resp.Header.Get("ETag")); resp.StatusCode != http.StatusNotModified {
		t.Errorf("GET / with its ETag: %s, want 304", resp.Status)
	}

	refs := assetRef.FindAllSubmatch(index, -1)
	if len(refs) < 2 {
		t.Fatalf("index.html names %d assets, want its script and its styles: %s", len(refs), index)
	}
	for _, m := range refs {
		p := string(m[1])
		resp, plain := uiGet(t, srv, http.MethodGet, p)
		want := map[bool]string{true: "text/javascript", false: "text/css"}[strings.HasSuffix(p, ".js")]
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) || len(plain) == 0 {
			t.Errorf("GET %s: %s %q, want 200 %s", p, resp.Status, resp.Header.Get("Content-Type"), want)
			continue
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("GET %s: Cache-Control %q, want immutable", p, cc)
		}
		resp, packed := uiGet(t, srv, http.MethodGet, p, "Accept-Encoding", "br, gzip")
		if resp.Header.Get("Content-Encoding") != "gzip" || len(packed) >= len(plain) {
			t.Errorf("GET %s (gzip): Content-Encoding %q, %d bytes of %d", p, resp.Header.Get("Content-Encoding"), len(packed), len(plain))
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(packed))
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		unpacked, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(unpacked, plain) {
			t.Errorf("GET %s: gzipped body does not unpack to the file (%v)", p, err)
		}
		if resp, _ := uiGet(t, srv, http.MethodGet, p, "Accept-Encoding", "gzip;q=0"); resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("GET %s with gzip;q=0: Content-Encoding %q", p, resp.Header.Get("Content-Encoding"))
		}
	}

	for _, p := range []string{"/nope", "/assets/nope.js", "/products/a/b", "/products/", "/index.html", "/graphql/x", "/healthz/x"} {
		if resp, _ := uiGet(t, srv, http.MethodGet, p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", p, resp.Status)
		}
	}
	if resp, _ := uiGet(t, srv, http.MethodPost, "/dashboard"); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /dashboard: %s, Allow %q", resp.Status, resp.Header.Get("Allow"))
	}
	if resp, body := uiGet(t, srv, http.MethodHead, "/lineage"); resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Errorf("HEAD /lineage: %s, %d bytes", resp.Status, len(body))
	}

	// The routes beside the UI answer as before.
	if resp, body := uiGet(t, srv, http.MethodGet, "/healthz"); resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"status":"ok"`)) {
		t.Errorf("GET /healthz: %s %q", resp.Status, body)
	}
	if resp, body := uiGet(t, srv, http.MethodGet, "/catalog/"); resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("Data products")) {
		t.Errorf("GET /catalog/: %s", resp.Status)
	}
	if resp, body := uiGet(t, srv, http.MethodGet, "/catalog/orders/nope.yaml"); resp.StatusCode != http.StatusNotFound || !bytes.Contains(body, []byte("Data products:")) {
		t.Errorf("GET /catalog/orders/nope.yaml: %s %q", resp.Status, body)
	}
	if resp, body := uiGet(t, srv, http.MethodGet, "/graphql?query=%7B__typename%7D"); resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"__typename":"Query"`)) {
		t.Errorf("GET /graphql: %s %q", resp.Status, body)
	}
}
