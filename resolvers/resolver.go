// Package resolvers maps GraphQL fields onto the data products. Resolvers
// are thin: they turn arguments into product-store calls and leave error
// presentation to the web layer. Cross-product fields go through per-operation
// batch loaders (loaders.go) so that a nested query issues one statement per
// product and level.
package resolvers

import (
	"log/slog"
	"sync"
	"time"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/streaming"
)

// Resolver is the root of all resolvers: the dependencies they share.
type Resolver struct {
	// Data is the mesh of data products the gateway serves, with their
	// stores.
	Data    *products.Mesh
	Version string
	// Hub streams live changes to subscriptions.
	Hub *streaming.Hub
	// Codec names the change topics the catalog lists (when its Prefix is
	// empty, the Hub's codec is used).
	Codec streaming.Codec
	// LiveRate bounds the pushes per second of live aggregates (default 4).
	LiveRate float64
	// Consumers are the products' reactions to each other, for lag reports.
	Consumers []*streaming.Consumer
	// BatchWait is ignored: batch loaders no longer wait for more keys
	// (see loaders). Kept so that callers setting it still build.
	BatchWait time.Duration
	// NoFastPath makes FastSchema leave every query to gqlgen's executor
	// (--fast-path=false).
	NoFastPath bool
	// Policies are the row policies (nil: none).
	Policies *products.Policies
	// ReadAudit records every response that returns personal data
	// unmasked (see reads.go).
	ReadAudit bool
	// MaxGroups bounds the groups an aggregate returns (0: none).
	MaxGroups int
	// ReadFlush is how often a subscription's reads of personal data are
	// written (default 1s; also when it ends).
	ReadFlush time.Duration
	// ReadPoll is how often a piiReads subscription looks for records
	// written by other instances (default 500ms).
	ReadPoll time.Duration
	// Log receives what cannot be reported to a client (default
	// slog.Default()).
	Log *slog.Logger

	rulesOnce sync.Once
	rules     *rules
	readsOnce sync.Once
	reads     *readSignal
}
