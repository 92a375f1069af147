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
	Channels = []string{"EMAIL", "PHONE", "CHAT", "WEB", "STORE", "SOCIAL"}
	Kinds    = []string{"INQUIRY", "COMPLAINT", "FEEDBACK", "SUPPORT", "MARKETING"}
)

// Interaction is a row of the interactions table and the GraphQL Interaction type.
type Interaction struct {
	bun.BaseModel `bun:"table:interactions"`

	ID         int64     `bun:"id,pk,autoincrement" json:"id"`
	CustomerID int64     `bun:"customer_id,notnull" json:"customerId"`
	Channel    string    `bun:"channel,notnull" json:"channel"`
	Kind       string    `bun:"kind,notnull" json:"kind"`
	Sentiment  float64   `bun:"sentiment,notnull" json:"sentiment"`
	Note       *string   `bun:"note" json:"note"`
	OccurredAt time.Time `bun:"occurred_at,notnull" json:"occurredAt"`

	products.Window
}

// IsEntity marks Interaction as an Apollo Federation entity (keyed by id) for the
// gateway's generated code.
func (Interaction) IsEntity() {}

// Entity describes the Interaction entity.
var Entity = &products.Entity{
	Name: "Interaction", Table: "interactions",
	Description: "A contact between a customer and the company.",
	Model:       (*Interaction)(nil),
	Fields: []*products.Field{
		{Name: "id", Column: "id", Type: products.TypeID, Sort: "ID", Description: "Stable identifier."},
		{Name: "customerId", Column: "customer_id", Type: products.TypeID, Sort: "CUSTOMER_ID", Group: "CUSTOMER_ID", Description: "The customer.", References: &products.Reference{Product: "customers", Entity: "Customer"}},
		{Name: "channel", Column: "channel", Type: products.TypeEnum, Sort: "CHANNEL", Group: "CHANNEL", Description: "Where it happened."},
		{Name: "kind", Column: "kind", Type: products.TypeEnum, Sort: "KIND", Group: "KIND", Description: "What it was about."},
		{Name: "sentiment", Column: "sentiment", Type: products.TypeFloat, Sort: "SENTIMENT", Numeric: true, Description: "Sentiment, -1 to 1."},
		{Name: "note", Column: "note", Type: products.TypeString, Nullable: true, PII: true, Classification: products.Restricted, Description: "Free-text note."},
		{Name: "occurredAt", Column: "occurred_at", Type: products.TypeTime, Sort: "OCCURRED_AT", Description: "When it happened."},
		{Name: "occurredDate", Type: products.TypeString, Group: "OCCURRED_DATE", DateOf: "occurredAt", Derived: true, Description: "UTC day it happened."},
	},
}

// Product is the engagement data product's descriptor.
var Product = &products.Descriptor{
	Name:        "engagement",
	Domain:      "marketing",
	Owner:       "customer-experience-team",
	Contact:     "cx@example.com",
	Kind:        products.Engagement,
	Description: "Interactions with customers across channels, with their kind and sentiment.",
	Entities:    []*products.Entity{Entity},
}
