// Package engagement is the engagement data product: contacts between
// customers and the company and how they felt about them.
package engagement

import (
	"time"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
)

// Channels and kinds of interaction.
var (
	ChannelEnum = &products.Enum{Name: "Channel", Description: "Where an interaction happened.", Values: []products.EnumValue{
		{Name: "EMAIL", Description: "E-mail."},
		{Name: "PHONE", Description: "Telephone."},
		{Name: "CHAT", Description: "Live chat."},
		{Name: "WEB", Description: "The web shop."},
		{Name: "STORE", Description: "A physical store."},
		{Name: "SOCIAL", Description: "Social media."},
	}}
	KindEnum = &products.Enum{Name: "InteractionKind", Description: "What an interaction was about.", Values: []products.EnumValue{
		{Name: "INQUIRY", Description: "A question."},
		{Name: "COMPLAINT", Description: "A complaint."},
		{Name: "FEEDBACK", Description: "Praise or a suggestion."},
		{Name: "SUPPORT", Description: "Help with a product or order."},
		{Name: "MARKETING", Description: "A marketing contact."},
	}}
	Channels = ChannelEnum.Names()
	Kinds    = KindEnum.Names()
)

// Interaction is a row of the interactions table and the GraphQL Interaction type.
type Interaction struct {
	bun.BaseModel `bun:"table:interactions" mesh:"Interaction" doc:"A contact between a customer and the company. Owned by the engagement data product."`

	ID         int64     `bun:"id,pk,autoincrement" json:"id" doc:"Stable identifier, assigned by the engagement product."`
	CustomerID int64     `bun:"customer_id,notnull" json:"customerId" mesh:"ref=customers.Customer,sort,group" doc:"The customer (a key into the customers product)."`
	Channel    string    `bun:"channel,notnull" json:"channel" mesh:"enum=Channel,sort,group" doc:"Where the interaction happened."`
	Kind       string    `bun:"kind,notnull" json:"kind" mesh:"enum=InteractionKind,sort,group" doc:"What the interaction was about."`
	Sentiment  float64   `bun:"sentiment,notnull" json:"sentiment" mesh:"sort,aggregate" doc:"Sentiment from -1 (negative) to 1 (positive)."`
	Note       *string   `bun:"note" json:"note" mesh:"pii,level=RESTRICTED" doc:"Free-text note; may hold personal data."`
	OccurredAt time.Time `bun:"occurred_at,notnull" json:"occurredAt" mesh:"sort,day=occurredDate" doc:"When the interaction happened."`

	products.Window
}

// IsEntity marks Interaction as an Apollo Federation entity (keyed by id) for the
// gateway's generated code.
func (Interaction) IsEntity() {}

// Product is the engagement data product.
var Product = products.Define(&products.Product{
	Descriptor: products.Descriptor{
		Name:        "engagement",
		Domain:      "marketing",
		Owner:       "customer-experience-team",
		Contact:     "cx@example.com",
		Kind:        products.Engagement,
		Description: "Interactions with customers across channels, with their kind and sentiment.",
		Enums:       []*products.Enum{ChannelEnum, KindEnum},
	},
	Models:     []any{(*Interaction)(nil)},
	Migrations: Migrations,
})

// Entity describes the Interaction entity.
var Entity = Product.Entity("Interaction")
