package streaming

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is an in-process Kafka-protocol broker (kfake) listening on a real
// TCP port, the default when no Kafka cluster is configured.
//
// With a data directory the broker keeps its log, topics and the consumer
// groups' committed offsets there, and a restart over the same directory
// comes back as the same cluster (same cluster id): nothing needs to be
// published again and consumers resume where they committed. Without one
// (or with a fresh directory) it starts empty under a new random cluster
// id, which tells the relays to publish the audit logs again from the
// beginning.
type Embedded struct {
	cluster *kfake.Cluster
}

// StartEmbedded starts a one-broker cluster listening on addr (host:port;
// port 0 picks a free one), persisting to dataDir unless it is empty. One
// process at a time may use a data directory. The caller closes it.
func StartEmbedded(addr string, partitions int32, dataDir string) (*Embedded, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("embedded kafka address %q: %w", addr, err)
	}
	var id [8]byte
	rand.Read(id[:])
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(int(max(partitions, 1))),
		// A persisted cluster reloads its own id instead.
		kfake.ClusterID("meshgate-" + hex.EncodeToString(id[:])),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, addr) }),
	}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka on %s: %w (choose another --embedded-kafka-addr or set --kafka-brokers)", addr, err)
	}
	return &Embedded{cluster: c}, nil
}

// Addrs returns the broker addresses (host:port).
func (e *Embedded) Addrs() []string { return e.cluster.ListenAddrs() }

// Close stops the broker and, with a data directory, writes its state there.
func (e *Embedded) Close() { e.cluster.Close() }
