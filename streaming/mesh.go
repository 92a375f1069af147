package streaming

import (
	"fmt"
	"log/slog"

	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/products/inventory"
	"github.com/meshgate/meshgate/products/orders"
	"github.com/meshgate/meshgate/products/sales"
)

// Reactions are the demo mesh's products reacting to each other: inventory
// reserves stock for placed orders and releases it for cancelled ones;
// orders takes the reservation's outcome as the order's status; sales
// derives revenue and customer value from orders and customers.
func Reactions(m *demo.Mesh) []*Reaction {
	return []*Reaction{
		{
			Store:    m.Inventory.Store,
			Inputs:   []Input{{Product: "orders", Entity: "Order"}},
			NewBatch: func() Batch { return Each(inventory.ApplyOrder) },
		},
		{
			Store:    m.Orders.Store,
			Inputs:   []Input{{Product: "inventory", Entity: "Reservation"}},
			NewBatch: func() Batch { return Each(orders.ApplyReservation) },
		},
		{
			Store:    m.Sales,
			Inputs:   []Input{{Product: "orders", Entity: "Order"}, {Product: "customers", Entity: "Customer"}},
			NewBatch: func() Batch { return sales.NewBatch() },
		},
	}
}

// Consumers returns one consumer per reaction, in consumer group
// "<prefix>.<product>".
func Consumers(m *demo.Mesh, reactions []*Reaction, codec Codec, kafka KafkaConfig, log *slog.Logger) []*Consumer {
	var out []*Consumer
	for _, r := range reactions {
		out = append(out, &Consumer{
			Reaction: r,
			Topics:   func(in Input) (string, error) { return topic(m, codec, in) },
			Codec:    codec,
			Kafka:    kafka,
			Group:    codec.Prefix + "." + r.Store.Product.Name,
			Log:      log,
		})
	}
	return out
}

func topic(m *demo.Mesh, codec Codec, in Input) (string, error) {
	s := m.Store(in.Product)
	if s == nil {
		return "", fmt.Errorf("unknown input product %q", in.Product)
	}
	e := s.Product.Entity(in.Entity)
	if e == nil {
		return "", fmt.Errorf("product %s has no entity %q", in.Product, in.Entity)
	}
	return codec.Topic(in.Product, e), nil
}
