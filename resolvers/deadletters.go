package resolvers

import (
	"sort"
	"strings"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/streaming"
)

// reactionOf returns the consumer of the named product's reaction, or
// BAD_USER_INPUT naming the products that react to others.
func (r *Resolver) reactionOf(product string) (*streaming.Consumer, error) {
	var names []string
	for _, c := range r.Consumers {
		if c.Store.Product.Name == product {
			return c, nil
		}
		names = append(names, c.Store.Product.Name)
	}
	sort.Strings(names)
	return nil, products.Invalid("product", "%q reacts to no other product, so it has no dead letters; products with reactions: %s",
		product, strings.Join(names, ", "))
}

// pointers returns pointers to the dead letters, as gqlgen wants lists.
func pointers(letters []products.DeadLetter) []*products.DeadLetter {
	out := make([]*products.DeadLetter, len(letters))
	for i := range letters {
		out[i] = &letters[i]
	}
	return out
}
