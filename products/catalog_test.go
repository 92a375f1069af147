package products_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/meshgate/meshgate/products"
)

func lineageProducts() []*products.Descriptor {
	entity := func(name string) *products.Entity {
		return &products.Entity{Name: name, Table: strings.ToLower(name) + "s", Fields: []*products.Field{
			{Name: "id", Column: "id", Type: products.TypeID, Sort: "ID"},
		}}
	}
	return []*products.Descriptor{
		{Name: "orders", Entities: []*products.Entity{entity("Order"), entity("OrderLine")}},
		{Name: "inventory", Entities: []*products.Entity{entity("Item")},
			Inputs: []products.Input{{Product: "orders", Entity: "Order", Description: "Reserves stock."}}},
		{Name: "sales", Kind: products.Analytical, Entities: []*products.Entity{entity("DailyRevenue")},
			Inputs: []products.Input{
				{Product: "orders", Entity: "Order", Description: "Revenue per day."},
				{Product: "orders", Entity: "OrderLine", Description: "Item sales."},
				{Product: "inventory", Entity: "Item", Description: "Item names."},
			}},
	}
}

// TestLineage derives who consumes whom from the declared inputs.
func TestLineage(t *testing.T) {
	links, err := products.Lineage(lineageProducts())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range links {
		got = append(got, l.Consumer+" <- "+l.Producer+"."+l.Entity+": "+l.Description)
	}
	want := []string{
		"inventory <- orders.Order: Reserves stock.",
		"sales <- orders.Order: Revenue per day.",
		"sales <- orders.OrderLine: Item sales.",
		"sales <- inventory.Item: Item names.",
	}
	if !slices.Equal(got, want) {
		t.Errorf("lineage\n got %q\nwant %q", got, want)
	}

	for _, tc := range []struct {
		in   products.Input
		want string
	}{
		{products.Input{Product: "billing", Entity: "Invoice"}, `sales: input from unknown data product "billing"`},
		{products.Input{Product: "orders", Entity: "Invoice"}, `sales: input from orders names unknown entity "Invoice"`},
	} {
		ds := lineageProducts()
		ds[2].Inputs = append(ds[2].Inputs, tc.in)
		if _, err := products.Lineage(ds); err == nil || err.Error() != tc.want {
			t.Errorf("input %+v: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestClassification checks the defaults and Validate's rules.
func TestClassification(t *testing.T) {
	for _, tc := range []struct {
		f    products.Field
		want products.Classification
	}{
		{products.Field{}, products.Internal},
		{products.Field{PII: true}, products.Confidential},
		{products.Field{Classification: products.Public}, products.Public},
		{products.Field{PII: true, Classification: products.Restricted}, products.Restricted},
	} {
		if got := tc.f.Level(); got != tc.want {
			t.Errorf("%+v: level %s, want %s", tc.f, got, tc.want)
		}
	}
	if products.Public.Rank() >= products.Restricted.Rank() || products.Classification("SECRET").Rank() != -1 {
		t.Error("ranks out of order")
	}
	for _, tc := range []struct {
		f    *products.Field
		want string
	}{
		{&products.Field{Name: "email", PII: true, Classification: products.Internal}, "personal data must be classified CONFIDENTIAL or RESTRICTED"},
		{&products.Field{Name: "email", Classification: "SECRET"}, `unknown classification "SECRET"`},
	} {
		d := lineageProducts()[0]
		d.Entities[0].Fields = append(d.Entities[0].Fields, tc.f)
		if err := d.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: Validate: %v, want %q", tc.f, err, tc.want)
		}
	}
}
