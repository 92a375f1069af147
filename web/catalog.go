package web

import (
	"fmt"
	"html"
	"net/http"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/meshgate/meshgate/graph/model"
	"github.com/meshgate/meshgate/resolvers"
)

// The catalog downloads: each data product's SDL and its metadata in the
// Bitol open standards, for catalog tools (DataHub, OpenMetadata):
//
//	GET /catalog/                      index of the products
//	GET /catalog/<product>.graphql     the product's SDL
//	GET /catalog/<product>/odps.yaml   Open Data Product Standard v1.0.0
//	GET /catalog/<product>/odcs.yaml   Open Data Contract Standard v3.1.0

// Versions of the exported documents.
const (
	odpsAPIVersion = "v1.0.0"
	odcsAPIVersion = "v3.1.0"
	// portVersion is the version of the product's ports and contract: the
	// GraphQL API evolves without breaking changes, the change events keep
	// Debezium's envelope.
	portVersion = "1.0.0"
)

func catalogRoutes(mux *http.ServeMux, res *resolvers.Resolver) {
	mux.HandleFunc("GET /catalog/{$}", func(w http.ResponseWriter, r *http.Request) {
		ps, err := res.CatalogProducts(resolvers.CatalogFilter{})
		if err != nil {
			http.Error(w, "catalog: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(catalogIndex(ps)))
	})
	mux.HandleFunc("GET /catalog/{file}", func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutSuffix(r.PathValue("file"), ".graphql")
		if !ok {
			catalogNotFound(w, res, "")
			return
		}
		sdl, ok := res.ProductSDL(name)
		if !ok {
			catalogNotFound(w, res, name)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte(sdl))
	})
	export := func(build func(p *model.CatalogProduct, base string) any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			name := r.PathValue("product")
			ps, err := res.CatalogProducts(resolvers.CatalogFilter{Product: name})
			if err != nil {
				http.Error(w, "catalog: "+err.Error(), http.StatusInternalServerError)
				return
			}
			if len(ps) == 0 {
				catalogNotFound(w, res, name)
				return
			}
			b, err := yaml.MarshalWithOptions(build(ps[0], baseURL(r)), yaml.IndentSequence(true))
			if err != nil {
				http.Error(w, "catalog: encode YAML: "+err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
			w.Write(b)
		}
	}
	mux.HandleFunc("GET /catalog/{product}/odps.yaml", export(func(p *model.CatalogProduct, base string) any {
		return newODPS(p, base)
	}))
	mux.HandleFunc("GET /catalog/{product}/odcs.yaml", export(func(p *model.CatalogProduct, base string) any {
		return newODCS(p, base, brokers(res))
	}))
	mux.HandleFunc("GET /catalog/", func(w http.ResponseWriter, r *http.Request) {
		catalogNotFound(w, res, "")
	})
}

// catalogNotFound answers 404 and says what exists.
func catalogNotFound(w http.ResponseWriter, res *resolvers.Resolver, product string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	if product != "" {
		fmt.Fprintf(w, "unknown data product %q.\n", product)
	} else {
		fmt.Fprintln(w, "no such catalog download.")
	}
	fmt.Fprintf(w, "Data products: %s.\nDownloads: /catalog/<product>.graphql (SDL), /catalog/<product>/odps.yaml (ODPS v1.0.0), /catalog/<product>/odcs.yaml (ODCS v3.1.0).\n",
		strings.Join(res.ProductNames(), ", "))
}

// baseURL is the gateway's address as the client reached it.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		scheme = p
	}
	return scheme + "://" + r.Host
}

func brokers(res *resolvers.Resolver) []string {
	if res.Hub == nil {
		return nil
	}
	return res.Hub.Kafka.Brokers
}

func catalogIndex(ps []*model.CatalogProduct) string {
	var b strings.Builder
	b.WriteString(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>meshgate catalog</title></head>
<body>
<h1>Data products</h1>
<p>The same facts, and row counts, freshness and lineage, are in the GraphQL <code>catalog</code> query.</p>
<table>
<tr><th>product</th><th>domain</th><th>owner</th><th>kind</th><th>description</th><th>downloads</th></tr>
`)
	for _, p := range ps {
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td><a href=\"%s\">SDL</a> <a href=\"%s\">ODPS</a> <a href=\"%s\">ODCS</a></td></tr>\n",
			html.EscapeString(p.Name), html.EscapeString(p.Domain), html.EscapeString(p.Owner),
			strings.ToLower(string(p.Kind)), html.EscapeString(p.Description),
			p.Downloads.Sdl, p.Downloads.Odps, p.Downloads.Odcs)
	}
	b.WriteString("</table>\n</body></html>\n")
	return b.String()
}

// Documents of the Bitol standards. Field order follows the standards'
// examples; empty fields are left out.

type customProperty struct {
	Property    string `yaml:"property"`
	Value       any    `yaml:"value"`
	Description string `yaml:"description,omitempty"`
}

type teamMember struct {
	Username string `yaml:"username"`
	Name     string `yaml:"name,omitempty"`
	Role     string `yaml:"role,omitempty"`
}

type team struct {
	Name        string       `yaml:"name"`
	Description string       `yaml:"description,omitempty"`
	Members     []teamMember `yaml:"members"`
}

type supportChannel struct {
	Channel     string `yaml:"channel"`
	URL         string `yaml:"url"`
	Description string `yaml:"description,omitempty"`
	Tool        string `yaml:"tool,omitempty"`
	Scope       string `yaml:"scope,omitempty"`
}

type description struct {
	Purpose     string `yaml:"purpose,omitempty"`
	Limitations string `yaml:"limitations,omitempty"`
	Usage       string `yaml:"usage,omitempty"`
}

// odpsDocument is a data product in the Open Data Product Standard v1.0.0.
type odpsDocument struct {
	APIVersion       string           `yaml:"apiVersion"`
	Kind             string           `yaml:"kind"`
	ID               string           `yaml:"id"`
	Name             string           `yaml:"name"`
	Version          string           `yaml:"version"`
	Status           string           `yaml:"status"`
	Domain           string           `yaml:"domain"`
	Description      description      `yaml:"description"`
	Tags             []string         `yaml:"tags,omitempty"`
	InputPorts       []odpsInputPort  `yaml:"inputPorts,omitempty"`
	OutputPorts      []odpsOutputPort `yaml:"outputPorts"`
	ManagementPorts  []odpsMgmtPort   `yaml:"managementPorts"`
	Support          []supportChannel `yaml:"support"`
	Team             team             `yaml:"team"`
	CustomProperties []customProperty `yaml:"customProperties,omitempty"`
}

type odpsInputPort struct {
	Name             string           `yaml:"name"`
	Version          string           `yaml:"version"`
	ContractID       string           `yaml:"contractId"`
	Tags             []string         `yaml:"tags,omitempty"`
	CustomProperties []customProperty `yaml:"customProperties,omitempty"`
}

type odpsOutputPort struct {
	Name             string           `yaml:"name"`
	Description      string           `yaml:"description,omitempty"`
	Type             string           `yaml:"type"`
	Version          string           `yaml:"version"`
	ContractID       string           `yaml:"contractId"`
	Tags             []string         `yaml:"tags,omitempty"`
	CustomProperties []customProperty `yaml:"customProperties,omitempty"`
}

type odpsMgmtPort struct {
	Name        string `yaml:"name"`
	Content     string `yaml:"content"`
	Type        string `yaml:"type"`
	URL         string `yaml:"url"`
	Description string `yaml:"description,omitempty"`
}

func productID(name string) string  { return "urn:meshgate:dataproduct:" + name }
func contractID(name string) string { return "urn:meshgate:datacontract:" + name }

func productDescription(p *model.CatalogProduct) description {
	pii := false
	for _, e := range p.Entities {
		for _, f := range e.Fields {
			pii = pii || f.Pii
		}
	}
	d := description{
		Purpose: p.Description,
		Usage: "Query the product through the meshgate GraphQL API (filter, sort, page, aggregate, subscribe to changes) " +
			"or consume its change events from Kafka: one topic per entity, Debezium's JSON envelope, keyed by id.",
	}
	if pii {
		d.Limitations = "Holds personal data (fields tagged pii): use it only for the purposes it was collected for, under data-protection law."
	}
	return d
}

func support(p *model.CatalogProduct) []supportChannel {
	return []supportChannel{{Channel: "email", URL: "mailto:" + p.Contact, Tool: "email", Scope: "interactive",
		Description: "Questions about the " + p.Name + " data product."}}
}

func owners(p *model.CatalogProduct) team {
	return team{Name: p.Owner, Description: "Owns the " + p.Name + " data product.",
		Members: []teamMember{{Username: p.Contact, Role: "owner"}}}
}

// newODPS describes a catalogued product as an ODPS v1.0.0 data product: its
// output ports are the GraphQL API and one Kafka topic per entity, its
// input ports the topics it consumes (from lineage). base is the gateway's
// URL, e.g. http://127.0.0.1:8080.
func newODPS(p *model.CatalogProduct, base string) *odpsDocument {
	kind := strings.ToLower(string(p.Kind))
	doc := &odpsDocument{
		APIVersion: odpsAPIVersion, Kind: "DataProduct",
		ID: productID(p.Name), Name: p.Name, Version: portVersion, Status: "active", Domain: p.Domain,
		Description: productDescription(p),
		Tags:        []string{kind, p.Domain},
		Support:     support(p),
		Team:        owners(p),
		CustomProperties: []customProperty{
			{Property: "kind", Value: kind, Description: "What the product is for."},
			{Property: "owner", Value: p.Owner, Description: "Team accountable for the product."},
		},
	}
	for _, in := range p.Inputs {
		doc.InputPorts = append(doc.InputPorts, odpsInputPort{
			Name: in.Topic, Version: portVersion, ContractID: contractID(in.Producer),
			Tags: []string{"kafka"},
			CustomProperties: []customProperty{
				{Property: "producer", Value: in.Producer},
				{Property: "entity", Value: in.Entity},
				{Property: "topic", Value: in.Topic},
				{Property: "purpose", Value: in.Description},
			},
		})
	}
	doc.OutputPorts = append(doc.OutputPorts, odpsOutputPort{
		Name: "graphql", Type: "graphql", Version: portVersion, ContractID: contractID(p.Name),
		Description: "The product's types in the meshgate GraphQL API: lookups, filtered and paged lists, aggregates, mutations and change subscriptions.",
		Tags:        []string{"graphql", "api"},
		CustomProperties: []customProperty{
			{Property: "endpoint", Value: base + "/graphql"},
			{Property: "sdl", Value: base + p.Downloads.Sdl},
			{Property: "federation", Value: "Apollo Federation v2 subgraph"},
		},
	})
	for _, e := range p.Entities {
		doc.OutputPorts = append(doc.OutputPorts, odpsOutputPort{
			Name: e.Topic, Type: "kafka", Version: portVersion, ContractID: contractID(p.Name),
			Description: "Change events of " + e.Name + " (create, update, delete) in Debezium's JSON envelope, keyed by id, with CloudEvents headers.",
			Tags:        []string{"kafka", "cdc"},
			CustomProperties: []customProperty{
				{Property: "topic", Value: e.Topic},
				{Property: "entity", Value: e.Name},
				{Property: "format", Value: "debezium-json"},
			},
		})
	}
	doc.ManagementPorts = []odpsMgmtPort{
		{Name: "odps", Content: "discoverability", Type: "rest", URL: base + p.Downloads.Odps, Description: "This document."},
		{Name: "odcs", Content: "dictionary", Type: "rest", URL: base + p.Downloads.Odcs, Description: "The product's data contract (ODCS v3.1.0)."},
		{Name: "metrics", Content: "observability", Type: "rest", URL: base + "/metrics", Description: "Prometheus metrics of the gateway."},
	}
	return doc
}

// odcsDocument is a data contract in the Open Data Contract Standard v3.1.0.
type odcsDocument struct {
	APIVersion       string           `yaml:"apiVersion"`
	Kind             string           `yaml:"kind"`
	ID               string           `yaml:"id"`
	Name             string           `yaml:"name"`
	Version          string           `yaml:"version"`
	Status           string           `yaml:"status"`
	Domain           string           `yaml:"domain"`
	Tags             []string         `yaml:"tags,omitempty"`
	Description      description      `yaml:"description"`
	Servers          []odcsServer     `yaml:"servers"`
	Schema           []odcsObject     `yaml:"schema"`
	Support          []supportChannel `yaml:"support"`
	Team             team             `yaml:"team"`
	CustomProperties []customProperty `yaml:"customProperties,omitempty"`
}

type odcsServer struct {
	ID          string `yaml:"id"`
	Server      string `yaml:"server"`
	Type        string `yaml:"type"`
	Description string `yaml:"description,omitempty"`
	Location    string `yaml:"location,omitempty"` // api
	Host        string `yaml:"host,omitempty"`     // kafka
	Format      string `yaml:"format,omitempty"`   // kafka
}

type odcsObject struct {
	ID               string           `yaml:"id"`
	Name             string           `yaml:"name"`
	PhysicalName     string           `yaml:"physicalName"`
	PhysicalType     string           `yaml:"physicalType"`
	LogicalType      string           `yaml:"logicalType"`
	Description      string           `yaml:"description,omitempty"`
	Tags             []string         `yaml:"tags,omitempty"`
	Properties       []odcsProperty   `yaml:"properties"`
	CustomProperties []customProperty `yaml:"customProperties,omitempty"`
}

type odcsProperty struct {
	ID                 string             `yaml:"id"`
	Name               string             `yaml:"name"`
	PhysicalName       string             `yaml:"physicalName"`
	PhysicalType       string             `yaml:"physicalType,omitempty"`
	LogicalType        string             `yaml:"logicalType"`
	LogicalTypeOptions map[string]any     `yaml:"logicalTypeOptions,omitempty"`
	Description        string             `yaml:"description,omitempty"`
	Required           bool               `yaml:"required"`
	Unique             bool               `yaml:"unique,omitempty"`
	PrimaryKey         bool               `yaml:"primaryKey,omitempty"`
	PrimaryKeyPosition int                `yaml:"primaryKeyPosition,omitempty"`
	Classification     string             `yaml:"classification"`
	Tags               []string           `yaml:"tags,omitempty"`
	Relationships      []odcsRelationship `yaml:"relationships,omitempty"`
	Quality            []odcsQuality      `yaml:"quality,omitempty"`
	CustomProperties   []customProperty   `yaml:"customProperties,omitempty"`
}

type odcsRelationship struct {
	Type string `yaml:"type"`
	To   string `yaml:"to"`
}

type odcsQuality struct {
	Type        string         `yaml:"type"`
	Metric      string         `yaml:"metric"`
	Description string         `yaml:"description,omitempty"`
	Arguments   map[string]any `yaml:"arguments,omitempty"`
	MustBe      int            `yaml:"mustBe"`
}

// newODCS describes a catalogued product's data as an ODCS v3.1.0 data
// contract: one schema object per entity (its table), one property per
// stored field with logical and physical type, nullability, primary key,
// classification and foreign keys (relationships, across contracts for keys
// of other products), the GraphQL API and Kafka as servers, the owning
// team. base is the gateway's URL; brokers, if known, the Kafka bootstrap
// servers.
func newODCS(p *model.CatalogProduct, base string, brokers []string) *odcsDocument {
	kind := strings.ToLower(string(p.Kind))
	doc := &odcsDocument{
		APIVersion: odcsAPIVersion, Kind: "DataContract",
		ID: contractID(p.Name), Name: p.Name, Version: portVersion, Status: "active", Domain: p.Domain,
		Tags:        []string{kind, p.Domain},
		Description: productDescription(p),
		Servers: []odcsServer{{ID: "graphql", Server: "graphql", Type: "api", Location: base + "/graphql",
			Description: "The meshgate GraphQL API (also an Apollo Federation v2 subgraph)."}},
		Support: support(p),
		Team:    owners(p),
		CustomProperties: []customProperty{
			{Property: "dataProduct", Value: productID(p.Name), Description: "The data product this contract belongs to."},
			{Property: "kind", Value: kind},
		},
	}
	if len(brokers) > 0 {
		doc.Servers = append(doc.Servers, odcsServer{ID: "kafka", Server: "kafka", Type: "kafka",
			Host: strings.Join(brokers, ","), Format: "json",
			Description: "Change events, one topic per entity, in Debezium's JSON envelope."})
	}
	for _, e := range p.Entities {
		obj := odcsObject{
			ID: e.Name, Name: e.Name, PhysicalName: e.Table, PhysicalType: "table", LogicalType: "object",
			Description: e.Description,
			CustomProperties: []customProperty{
				{Property: "topic", Value: e.Topic, Description: "Kafka topic of the entity's change events."},
			},
		}
		pos := 0
		for _, f := range e.Fields {
			prop := odcsProperty{
				ID: f.Name, Name: f.Name, PhysicalName: f.Column, PhysicalType: f.SQLType,
				Description: f.Description, Required: !f.Nullable,
				Classification: strings.ToLower(string(f.Classification)),
			}
			prop.LogicalType, prop.LogicalTypeOptions = logicalType(f)
			if f.PrimaryKey {
				pos++
				prop.PrimaryKey, prop.PrimaryKeyPosition, prop.Unique = true, pos, true
			}
			if f.Pii {
				prop.Tags = append(prop.Tags, "pii")
			}
			if ref := f.References; ref != nil {
				to := ref.Entity + "." + ref.Field
				if ref.Product != p.Name {
					to = "../" + ref.Product + "/odcs.yaml#/schema/" + ref.Entity + "/properties/" + ref.Field
				}
				prop.Relationships = []odcsRelationship{{Type: "foreignKey", To: to}}
			}
			if values := enumValues(f.Type); len(values) > 0 {
				prop.Quality = []odcsQuality{{
					Type: "library", Metric: "invalidValues", MustBe: 0,
					Description: "Only the values of the GraphQL enum " + strings.TrimSuffix(f.Type, "!") + ".",
					Arguments:   map[string]any{"validValues": values},
				}}
			}
			obj.Properties = append(obj.Properties, prop)
		}
		doc.Schema = append(doc.Schema, obj)
	}
	return doc
}

// logicalType maps a field to an ODCS logical type (with options).
func logicalType(f *model.CatalogField) (string, map[string]any) {
	switch strings.TrimSuffix(f.Type, "!") {
	case "ID":
		return "integer", map[string]any{"format": "i64"}
	case "Int":
		return "integer", map[string]any{"format": "i32"}
	case "Long":
		return "integer", map[string]any{"format": "i64"}
	case "Float":
		return "number", map[string]any{"format": "f64"}
	case "Decimal":
		// Money: exact, in whole cents.
		return "number", map[string]any{"multipleOf": 0.01}
	case "Time":
		return "timestamp", nil
	case "Boolean":
		return "boolean", nil
	}
	return "string", nil
}

// enumValues lists the values of the GraphQL enum type t ("" or a
// non-enum type: none).
func enumValues(t string) []string {
	def := resolvers.Schema().Types[strings.Trim(t, "[]!")]
	if def == nil || def.Kind != ast.Enum {
		return nil
	}
	out := make([]string, len(def.EnumValues))
	for i, v := range def.EnumValues {
		out[i] = v.Name
	}
	return out
}
