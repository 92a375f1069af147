package resolvers

import (
	"fmt"
	"testing"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/demo"
)

// TestDerivedRules: what each kind of field needs, as derived from the
// schema and the descriptors (no product is named in access.go).
func TestDerivedRules(t *testing.T) {
	mesh := &products.Mesh{Products: demo.Products}
	rs := deriveRules(Schema(), mesh)
	rule := func(object, field string) string {
		ru := rs.byName[object][field]
		if ru == nil {
			return "-"
		}
		s := fmt.Sprintf("read=%s write=%s role=%s arg=%s", ru.read, ru.write, ru.role, ru.productArg)
		if ru.pii != nil {
			s += " pii=" + ru.product + "." + ru.entity.Name + "." + ru.pii.Name
		}
		return s
	}
	for _, c := range []struct{ object, field, want string }{
		{"Query", "customers", "read=customers write= role= arg="},
		{"Query", "customersAggregate", "read=customers write= role= arg="},
		{"Query", "order", "read=orders write= role= arg="},
		{"Query", "salesStats", "read=sales write= role= arg="},
		{"Query", "consumerLag", "read=sales write= role= arg="},
		{"Query", "mesh", "-"},
		{"Query", "catalog", "read= write= role=catalog:read arg="},
		{"Query", "_service", "read= write= role=catalog:read arg="},
		{"Query", "__schema", "read= write= role=catalog:read arg="},
		{"Query", "auditLog", "read= write= role=audit:read arg=product"},
		{"Query", "piiReads", "read= write= role=audit:read arg=product"},
		{"Subscription", "customerChanged", "read=customers write= role= arg="},
		{"Subscription", "customerValue", "read=sales write= role= arg="},
		{"Subscription", "auditEntries", "read= write= role=audit:read arg="},
		{"Subscription", "piiReads", "read= write= role=audit:read arg=product"},
		{"Subscription", "changes", "-"},
		{"Mutation", "placeOrder", "read= write=orders role= arg="},
		{"Query", "deadLetters", "read= write= role=admin arg="},
		{"Mutation", "retryDeadLetters", "read= write= role=admin arg="},
		{"Mutation", "shipOrder", "read= write=shipments role= arg="},
		{"Customer", "orders", "read=orders write= role= arg="},
		{"Customer", "value", "read=sales write= role= arg="},
		{"Customer", "history", "read= write= role=audit:read arg="},
		{"Customer", "email", "read= write= role= arg= pii=customers.Customer.email"},
		{"Customer", "country", "-"},
		{"Interaction", "note", "read= write= role= arg= pii=engagement.Interaction.note"},
		{"Order", "customer", "read=customers write= role= arg="},
		{"Order", "lines", "-"},
		{"Order", "shipment", "read=shipments write= role= arg="},
		{"ReservationLine", "item", "-"},
		{"CustomerConnection", "nodes", "-"},
	} {
		if got := rule(c.object, c.field); got != c.want {
			t.Errorf("%s.%s: %s, want %s", c.object, c.field, got, c.want)
		}
	}
}
