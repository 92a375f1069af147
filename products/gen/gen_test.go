package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/meshgate/meshgate/products/demo"
)

// root is the module root, where go generate writes.
const root = "../.."

// TestGeneratedFilesCurrent regenerates the SDL and the aliases in memory
// and compares them with the committed files: a model changed without go
// generate ./... fails here (and CI's no-diff check).
func TestGeneratedFilesCurrent(t *testing.T) {
	files, err := Files(demo.Products)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Errorf("%v (run go generate ./...)", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what the products' models generate: run go generate ./...", name)
		}
		if strings.HasSuffix(name, ".graphqls") {
			if _, err := parser.ParseSchema(&ast.Source{Name: name, Input: string(want)}); err != nil {
				t.Errorf("%s does not parse: %v", name, err)
			}
		}
	}
	stale, err := filepath.Glob(filepath.Join(root, "schema", "*.gen.graphqls"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range stale {
		rel, _ := filepath.Rel(root, f)
		if _, ok := files[rel]; !ok {
			t.Errorf("%s belongs to no registered product: run go generate ./...", rel)
		}
	}
}

func TestWords(t *testing.T) {
	for in, want := range map[string]string{"OrderLine": "order line", "customerId": "customer id", "dailyRevenue": "daily revenue", "id": "id"} {
		if got := words(in); got != want {
			t.Errorf("words(%q) = %q, want %q", in, got, want)
		}
	}
}
