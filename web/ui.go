package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// The browser UI: a single-page app built from web/ui (npm run build) into
// web/ui/dist, which is committed and embedded, so the binary serves it
// without Node. The app's pages (/, /products/<name>, /lineage, …) all get
// index.html and the app picks the page; files under /assets/ are
// content-hashed and cached for a year; any other path is a 404.
//
//go:embed all:ui/dist
var uiDist embed.FS

// uiCSP keeps every request of the page on the gateway's own origin. Styles
// are inlined by the editor and the charts; web workers and fonts are files
// of the bundle or data: URLs.
const uiCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// uiPages are the paths of the app's pages (web/ui/src/main.jsx, route).
var uiPages = []string{"/", "/lineage", "/dashboard", "/history", "/graphiql"}

// isUIPage reports whether p is a page of the app.
func isUIPage(p string) bool {
	if name, ok := strings.CutPrefix(p, "/products/"); ok {
		return name != "" && !strings.Contains(strings.TrimSuffix(name, "/"), "/")
	}
	return slices.Contains(uiPages, strings.TrimSuffix(p, "/")) || p == "/"
}

// uiFile is one embedded file with what it is served with.
type uiFile struct {
	body  []byte
	ctype string
	etag  string

	gzipOnce sync.Once
	gz       []byte // nil when compressing does not pay off
}

// gzipped returns the file compressed once, on first demand.
func (f *uiFile) gzipped() []byte {
	f.gzipOnce.Do(func() {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		zw.Write(f.body)
		zw.Close()
		if b.Len() < len(f.body)*9/10 {
			f.gz = b.Bytes()
		}
	})
	return f.gz
}

func compressible(ctype string) bool {
	for _, p := range []string{"text/", "application/javascript", "application/json", "image/svg+xml", "font/ttf"} {
		if strings.HasPrefix(ctype, p) {
			return true
		}
	}
	return false
}

// uiHandler serves the embedded UI from dist (the root of the built app).
func uiHandler(dist fs.FS) http.Handler {
	files := map[string]*uiFile{}
	err := fs.WalkDir(dist, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(dist, p)
		if err != nil {
			return err
		}
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = http.DetectContentType(body)
		}
		sum := sha256.Sum256(body)
		files["/"+p] = &uiFile{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic("web: read the embedded UI: " + err.Error()) // embedded at build time: cannot happen
	}
	index := files["/index.html"]

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		f, ok := files[p]
		if isUIPage(p) {
			f, ok = index, index != nil
		}
		if !ok || p == "/index.html" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.ctype)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Vary", "Accept-Encoding")
		if strings.HasPrefix(p, "/assets/") {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		if f == index {
			h.Set("Content-Security-Policy", uiCSP)
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("X-Frame-Options", "DENY")
		}
		body, etag := f.body, f.etag
		if compressible(f.ctype) && acceptsGzip(r) {
			if gz := f.gzipped(); gz != nil {
				body, etag = gz, strings.TrimSuffix(f.etag, `"`)+`-gz"`
				h.Set("Content-Encoding", "gzip")
			}
		}
		h.Set("ETag", etag) // ServeContent answers If-None-Match with 304
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// uiRoot is the built app inside the embedded files.
func uiRoot() fs.FS {
	sub, err := fs.Sub(uiDist, "ui/dist")
	if err != nil {
		panic("web: embedded UI: " + err.Error()) // a constant, valid path
	}
	return sub
}
