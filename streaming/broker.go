package streaming

import (
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is an in-process Kafka-protocol broker (kfake) listening on a real
// TCP port, the default when no Kafka cluster is configured. Its log lives
// in memory: after a restart the relays publish the audit logs again.
type Embedded struct {
	cluster *kfake.Cluster
}

// StartEmbedded starts a one-broker cluster listening on addr (host:port;
// port 0 picks a free one). The caller closes it.
func StartEmbedded(addr string, partitions int32) (*Embedded, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("embedded kafka address %q: %w", addr, err)
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(int(max(partitions, 1))),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, addr) }),
	)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka on %s: %w (choose another --embedded-kafka-addr or set --kafka-brokers)", addr, err)
	}
	return &Embedded{cluster: c}, nil
}

// Addrs returns the broker addresses (host:port).
func (e *Embedded) Addrs() []string { return e.cluster.ListenAddrs() }

// Close stops the broker.
func (e *Embedded) Close() { e.cluster.Close() }
