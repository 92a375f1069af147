package products_test

import (
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
)

type parcel struct {
	bun.BaseModel `bun:"table:parcels" mesh:"Parcel,lookup=-" doc:"A parcel."`

	ID       int64      `bun:"id,pk,autoincrement" json:"id" doc:"Stable identifier."`
	OrderID  int64      `bun:"order_id,notnull" json:"orderId" mesh:"ref=shop.Order,sort,group" doc:"The order."`
	State    string     `bun:"state,notnull" json:"state" mesh:"enum=ParcelState,sort,group" doc:"Where it is."`
	Weight   float64    `bun:"weight,notnull" json:"weight" mesh:"sort,aggregate" doc:"Weight in kg."`
	Pieces   int        `bun:"pieces,notnull" json:"pieces" mesh:"aggregate,nofilter" doc:"Pieces."`
	Label    *string    `bun:"label" json:"label" mesh:"pii,level=RESTRICTED" doc:"Address label."`
	SentAt   time.Time  `bun:"sent_at,notnull" json:"sentAt" mesh:"sort,day=sentDate" doc:"When it was sent."`
	LandedAt *time.Time `bun:"landed_at" json:"landedAt" doc:"When it arrived."`
	Note     string     `bun:"-" json:"note"`

	products.Window
}

type order struct {
	bun.BaseModel `bun:"table:orders" mesh:"Order" doc:"An order."`

	ID int64 `bun:"id,pk,autoincrement" json:"id" doc:"Stable identifier."`
}

var parcelStates = &products.Enum{Name: "ParcelState", Description: "Where a parcel is.", Values: []products.EnumValue{
	{Name: "PACKED", Description: "Packed."}, {Name: "SENT", Description: "Sent."},
}}

func shop(models ...any) *products.Product {
	return &products.Product{
		Descriptor: products.Descriptor{
			Name: "shop", Domain: "sales", Owner: "team", Contact: "team@example.com", Kind: products.Operational,
			Description: "A shop.", Enums: []*products.Enum{parcelStates},
		},
		Models: models,
	}
}

// TestDescribe derives an entity from a bun model and its tags.
func TestDescribe(t *testing.T) {
	p := shop((*parcel)(nil), (*order)(nil))
	if err := p.Describe(); err != nil {
		t.Fatal(err)
	}
	if err := products.CheckReferences([]*products.Product{p}); err != nil {
		t.Fatal(err)
	}
	e := p.Entity("Parcel")
	if e == nil || e.Table != "parcels" || e.Description != "A parcel." || e.Plural != "parcels" || e.Lookup != "" {
		t.Fatalf("entity %+v", e)
	}
	if o := p.Entity("Order"); o.Plural != "orders" || o.Lookup != "order" {
		t.Errorf("order entity: plural %q lookup %q", o.Plural, o.Lookup)
	}
	var got []string
	for _, f := range e.Fields {
		got = append(got, strings.Join([]string{f.Name, f.Column, f.GoName, typeName(f.Type), f.Sort, f.Group,
			flag(f.Numeric, "num"), flag(f.Nullable, "null"), flag(f.PII, "pii"), string(f.Level()),
			flag(f.Filterable(), "filter"), f.DateOf}, " "))
	}
	want := []string{
		"id id ID id ID  - - - INTERNAL filter ",
		"orderId order_id OrderID id ORDER_ID ORDER_ID - - - INTERNAL filter ",
		"state state State enum STATE STATE - - - INTERNAL filter ",
		"weight weight Weight float WEIGHT  num - - INTERNAL filter ",
		"pieces pieces Pieces int   num - - INTERNAL - ",
		"label label Label string   - null pii RESTRICTED filter ",
		"sentAt sent_at SentAt time SENT_AT  - - - INTERNAL filter ",
		"landedAt landed_at LandedAt time   - null - INTERNAL filter ",
		"sentDate   string  SENT_DATE - - - INTERNAL - sentAt",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("fields\n got %q\nwant %q", got, want)
	}
	if f := e.Field("state"); f.Enum != parcelStates {
		t.Errorf("state enum %v", f.Enum)
	}
	if f := e.Field("orderId"); f.References == nil || *f.References != (products.Reference{Product: "shop", Entity: "Order"}) {
		t.Errorf("orderId references %v", f.References)
	}
}

func flag(b bool, s string) string {
	if b {
		return s
	}
	return "-"
}

func typeName(t products.FieldType) string {
	return map[products.FieldType]string{products.TypeID: "id", products.TypeString: "string", products.TypeInt: "int",
		products.TypeFloat: "float", products.TypeTime: "time", products.TypeEnum: "enum", products.TypeObject: "object"}[t]
}

// Each mistake a product author can make in a model is refused with a
// message that says what to fix.
type (
	noDoc struct {
		bun.BaseModel `bun:"table:a" mesh:"A" doc:"A."`
		ID            int64  `bun:"id,pk" json:"id" doc:"Id."`
		Name          string `bun:"name,notnull" json:"name"`
	}
	noEntityDoc struct {
		bun.BaseModel `bun:"table:a" mesh:"A"`
		ID            int64 `bun:"id,pk" json:"id" doc:"Id."`
	}
	noName struct {
		bun.BaseModel `bun:"table:a" doc:"A."`
		ID            int64 `bun:"id,pk" json:"id" doc:"Id."`
	}
	sortedNullable struct {
		bun.BaseModel `bun:"table:a" mesh:"A" doc:"A."`
		ID            int64   `bun:"id,pk" json:"id" doc:"Id."`
		Name          *string `bun:"name" json:"name" mesh:"sort" doc:"Name."`
	}
	piiInternal struct {
		bun.BaseModel `bun:"table:a" mesh:"A" doc:"A."`
		ID            int64  `bun:"id,pk" json:"id" doc:"Id."`
		Email         string `bun:"email,notnull" json:"email" mesh:"pii,level=INTERNAL" doc:"E-mail."`
	}
	badLevel struct {
		bun.BaseModel `bun:"table:a" mesh:"A" doc:"A."`
		ID            int64  `bun:"id,pk" json:"id" doc:"Id."`
		Email         string `bun:"email,notnull" json:"email" mesh:"level=SECRET" doc:"E-mail."`
	}
	unknownEnum struct {
		bun.BaseModel `bun:"table:a" mesh:"A" doc:"A."`
		ID            int64  `bun:"id,pk" json:"id" doc:"Id."`
		State         string `bun:"state,notnull" json:"state" mesh:"enum=Nope" doc:"State."`
	}
	unknownOption struct {
		bun.BaseModel `bun:"table:a" mesh:"A" doc:"A."`
		ID            int64  `bun:"id,pk" json:"id" doc:"Id."`
		Name          string `bun:"name,notnull" json:"name" mesh:"sortable" doc:"Name."`
	}
	bareInt64 struct {
		bun.BaseModel `bun:"table:a" mesh:"A" doc:"A."`
		ID            int64 `bun:"id,pk" json:"id" doc:"Id."`
		Count         int64 `bun:"count,notnull" json:"count" doc:"Count."`
	}
	nullableColumn struct {
		bun.BaseModel `bun:"table:a" mesh:"A" doc:"A."`
		ID            int64  `bun:"id,pk" json:"id" doc:"Id."`
		Name          string `bun:"name" json:"name" doc:"Name."`
	}
	pointerNotNull struct {
		bun.BaseModel `bun:"table:a" mesh:"A" doc:"A."`
		ID            int64   `bun:"id,pk" json:"id" doc:"Id."`
		Name          *string `bun:"name,notnull" json:"name" doc:"Name."`
	}
	noJSON struct {
		bun.BaseModel `bun:"table:a" mesh:"A" doc:"A."`
		ID            int64  `bun:"id,pk" json:"id" doc:"Id."`
		Name          string `bun:"name,notnull" doc:"Name."`
	}
	textAggregate struct {
		bun.BaseModel `bun:"table:a" mesh:"A" doc:"A."`
		ID            int64  `bun:"id,pk" json:"id" doc:"Id."`
		Name          string `bun:"name,notnull" json:"name" mesh:"aggregate" doc:"Name."`
	}
	badKey struct {
		bun.BaseModel `bun:"table:a" mesh:"A" doc:"A."`
		Code          string `bun:"code,pk" json:"code" doc:"Code."`
	}
	badRef struct {
		bun.BaseModel `bun:"table:a" mesh:"A" doc:"A."`
		ID            int64 `bun:"id,pk" json:"id" doc:"Id."`
		OrderID       int64 `bun:"order_id,notnull" json:"orderId" mesh:"ref=Order" doc:"Order."`
	}
	piiNumber struct {
		bun.BaseModel `bun:"table:a" mesh:"A" doc:"A."`
		ID            int64 `bun:"id,pk" json:"id" doc:"Id."`
		Age           int   `bun:"age,notnull" json:"age" mesh:"pii" doc:"Age."`
	}
	danglingRef struct {
		bun.BaseModel `bun:"table:a" mesh:"A" doc:"A."`
		ID            int64 `bun:"id,pk" json:"id" doc:"Id."`
		InvoiceID     int64 `bun:"invoice_id,notnull" json:"invoiceId" mesh:"ref=billing.Invoice" doc:"Invoice."`
	}
)

func TestDescribeRefusesMistakes(t *testing.T) {
	for _, tc := range []struct {
		model any
		want  string
	}{
		{(*noDoc)(nil), "A.name: needs a description (a doc tag)"},
		{(*noEntityDoc)(nil), "entity A: needs a description"},
		{(*noName)(nil), "needs a mesh tag naming the GraphQL type"},
		{(*sortedNullable)(nil), "A.name: sortable fields must not be nullable"},
		{(*piiInternal)(nil), "A.email: personal data must be classified CONFIDENTIAL or RESTRICTED"},
		{(*badLevel)(nil), `A.email: unknown classification "SECRET"`},
		{(*piiNumber)(nil), "A.age: personal data that is not a string must be nullable"},
		{(*unknownEnum)(nil), "A.state: enum=Nope is not one of the product's Enums"},
		{(*unknownOption)(nil), `A.name: unknown mesh option "sortable"`},
		{(*bareInt64)(nil), "A.count: an int64 is a key (the id) or a reference"},
		{(*nullableColumn)(nil), "A.name: a non-pointer field must be a NOT NULL column"},
		{(*pointerNotNull)(nil), "A.name: a pointer field may be null, but its column is notnull"},
		{(*noJSON)(nil), "A: field Name needs a json name"},
		{(*textAggregate)(nil), "A.name: only numbers can be aggregated"},
		{(*badKey)(nil), "entity A: the key must be one primary-key column named id"},
		{(*badRef)(nil), `A.orderId: ref="Order" must be product.Entity`},
		{parcel{}, "want a nil pointer to a bun model struct"},
	} {
		err := shop(tc.model).Describe()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%T: %v, want %q", tc.model, err, tc.want)
		}
	}

	p := shop((*danglingRef)(nil))
	if err := p.Describe(); err != nil {
		t.Fatal(err)
	}
	if err := products.CheckReferences([]*products.Product{p}); err == nil || !strings.Contains(err.Error(), "shop.A.invoiceId: references unknown entity billing.Invoice") {
		t.Errorf("dangling reference: %v", err)
	}
	if err := products.CheckReferences([]*products.Product{shop((*order)(nil)), shop((*order)(nil))}); err == nil || !strings.Contains(err.Error(), "two data products are named shop") {
		t.Errorf("two products of one name: %v", err)
	}

	bad := shop((*order)(nil))
	bad.Enums = []*products.Enum{{Name: "ParcelState", Description: "Where.", Values: []products.EnumValue{{Name: "packed", Description: "Packed."}}}}
	if err := bad.Describe(); err == nil || !strings.Contains(err.Error(), `value "packed" must be UPPER_SNAKE_CASE`) {
		t.Errorf("lower-case enum value: %v", err)
	}
	bad.Enums = []*products.Enum{{Name: "ParcelState", Values: []products.EnumValue{{Name: "PACKED", Description: "Packed."}}}}
	if err := bad.Describe(); err == nil || !strings.Contains(err.Error(), "enum ParcelState: needs a description") {
		t.Errorf("undescribed enum: %v", err)
	}
	bad = shop((*order)(nil))
	bad.Owner = ""
	if err := bad.Describe(); err == nil || !strings.Contains(err.Error(), "product shop: needs a owner") {
		t.Errorf("no owner: %v", err)
	}
}

// TestDefinePanics: a product whose tags are wrong stops the program when
// its package is initialised.
func TestDefinePanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(error).Error(), "A.name: needs a description") {
			t.Errorf("Define: recovered %v", r)
		}
	}()
	products.Define(shop((*noDoc)(nil)))
}
