// Command gen generates everything that follows from the data products'
// Go models, then the gateway's GraphQL code:
//
//   - schema/<product>.gen.graphqls for every registered product (the
//     entities, their filters, orderings, connections, aggregates, lookups
//     and change subscriptions, with the catalog directives);
//   - graph/model/mesh_gen.go, aliases binding the connection, edge and
//     change types to the generic types of package products;
//   - graph/ and the resolvers, by running gqlgen (gqlgen.yml) with the
//     mesh's plugin (see Plugin), which binds the entities' types and
//     writes the bodies of their resolvers.
//
// It runs from the module root: go generate ./... (see generate.go). It
// imports the registration list, products/demo, never graph/ or
// resolvers/, so it builds before gqlgen's output exists.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/99designs/gqlgen/api"
	"github.com/99designs/gqlgen/codegen/config"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/demo"
)

func main() {
	if err := run(demo.Products); err != nil {
		fmt.Fprintln(os.Stderr, "products/gen:", err)
		os.Exit(1)
	}
}

func run(ps []*products.Product) error {
	files, err := Files(ps)
	if err != nil {
		return err
	}
	stale, err := filepath.Glob("schema/*.gen.graphqls")
	if err != nil {
		return err
	}
	for _, f := range stale {
		if _, ok := files[f]; !ok {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	for name, content := range files {
		if err := os.WriteFile(name, content, 0o644); err != nil {
			return err
		}
	}
	cfg, err := config.LoadConfigFromDefaultLocations()
	if err != nil {
		return fmt.Errorf("load gqlgen config: %w", err)
	}
	p := newPlugin(ps)
	if err := api.Generate(cfg, api.PrependPlugin(p)); err != nil {
		return fmt.Errorf("gqlgen: %w", errors.Join(append([]error{err}, p.errs...)...))
	}
	if err := errors.Join(p.errs...); err != nil {
		return err
	}
	if err := sequentialSlices(cfg.Exec.Filename); err != nil {
		return err
	}
	args, err := p.FieldArgs()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(filepath.Dir(cfg.Exec.Filename), "fieldargs.go"), args, 0o644)
}

// sliceCall matches gqlgen's marshalling of a list of objects and names
// the elements' marshaller (marshalNOrder2ᚖ…: type Order).
var sliceCall = regexp.MustCompile(`graphql\.MarshalSliceConcurrently(\(ctx, len\(v\), [^\n]*\n[^\n]*\n[^\n]*\n\s*return ec\.marshal[NO](\w+?)2)`)

// sequentialSlices rewrites, in gqlgen's executor, the lists of objects
// whose fields resolve sequentially (all but those in concurrent, see
// Plugin.GenerateCode) to marshal their elements one after the other
// (graph/slices.go) instead of in a goroutine each.
func sequentialSlices(file string) error {
	src, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	rewritten, kept := 0, 0
	out := sliceCall.ReplaceAllFunc(src, func(m []byte) []byte {
		sub := sliceCall.FindSubmatch(m)
		if concurrent[string(sub[2])] {
			kept++
			return m
		}
		rewritten++
		return append([]byte("marshalSliceSequentially"), sub[1]...)
	})
	if all := bytes.Count(src, []byte("graphql.MarshalSliceConcurrently(")); rewritten == 0 || rewritten+kept != all {
		// gqlgen's template changed: fail rather than silently run a
		// goroutine per list element again.
		return fmt.Errorf("%s: %d of %d list marshallings recognised", file, rewritten+kept, all)
	}
	return os.WriteFile(file, out, 0o644)
}

// Files returns the generated files (path relative to the module root →
// content) but gqlgen's.
func Files(ps []*products.Product) (map[string][]byte, error) {
	if err := products.CheckReferences(ps); err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, p := range ps {
		out[filepath.Join("schema", p.Name+".gen.graphqls")] = []byte(SDL(p))
	}
	aliases, err := Aliases(ps)
	if err != nil {
		return nil, err
	}
	out[filepath.Join("graph", "model", "mesh_gen.go")] = aliases
	return out, nil
}

// Aliases returns graph/model/mesh_gen.go.
func Aliases(ps []*products.Product) ([]byte, error) {
	imports := []string{"github.com/meshgate/meshgate/products"}
	var types []string
	add := func(name, generic, model string) {
		types = append(types, fmt.Sprintf("\t%s = products.%s[%s]\n", name, generic, model))
	}
	add("AuditEntryConnection", "Connection", "products.AuditEntry")
	add("AuditEntryEdge", "Edge", "products.AuditEntry")
	add("PiiReadConnection", "Connection", "products.PIIRead")
	add("PiiReadEdge", "Edge", "products.PIIRead")
	for _, p := range ps {
		for _, e := range p.Entities {
			pkg, name := goType(e)
			if !slices.Contains(imports, pkg) {
				imports = append(imports, pkg)
			}
			model := pkg[strings.LastIndex(pkg, "/")+1:] + "." + name
			add(e.Name+"Connection", "Connection", model)
			add(e.Name+"Edge", "Edge", model)
			add(e.Name+"Change", "Change", model)
		}
	}
	var b bytes.Buffer
	b.WriteString("// Code generated by products/gen from the data products' Go models; DO NOT EDIT.\n\npackage model\n\nimport (\n")
	for _, imp := range imports {
		fmt.Fprintf(&b, "\t%q\n", imp)
	}
	b.WriteString(")\n\n// The connections, edges and changes of the mesh's entities are the generic\n// types of package products, bound to their GraphQL types by these names.\ntype (\n")
	for _, t := range types {
		b.WriteString(t)
	}
	b.WriteString(")\n")
	return format.Source(b.Bytes())
}
