package streaming

import (
	"log/slog"

	"github.com/meshgate/meshgate/products"
)

// Consumers returns one consumer per product of the mesh that reacts to
// others (products.Product.Reaction), in consumer group
// "<prefix>.<product>", reading the topics of its inputs.
func Consumers(m *products.Mesh, codec Codec, kafka KafkaConfig, log *slog.Logger) []*Consumer {
	var out []*Consumer
	for i, p := range m.Products {
		if p.Reaction == nil {
			continue
		}
		out = append(out, &Consumer{
			Store:    m.Stores[i],
			Reaction: p.Reaction,
			Topics: func(in products.Input) (string, error) {
				_, e, err := m.Entity(in.Product, in.Entity)
				if err != nil {
					return "", err
				}
				return codec.Topic(in.Product, e), nil
			},
			Codec: codec,
			Kafka: kafka,
			Group: codec.Prefix + "." + p.Name,
			Log:   log,
		})
	}
	return out
}
