package streaming

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// KafkaConfig says how to reach the Kafka cluster and how to create topics.
type KafkaConfig struct {
	Brokers           []string
	ClientID          string
	Partitions        int32
	ReplicationFactor int16

	TLS         bool
	TLSCAFile   string
	TLSCertFile string
	TLSKeyFile  string

	// SASLMechanism is "", "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	SASLMechanism string
	SASLUser      string
	SASLPassword  string
}

// Sarama returns the client configuration: an idempotent producer waiting
// for all in-sync replicas, with key-hash partitioning compatible with the
// Java client (so per-key order matches what other producers would get).
func (k KafkaConfig) Sarama() (*sarama.Config, error) {
	c := sarama.NewConfig()
	c.Version = sarama.V3_0_0_0
	c.ClientID = k.ClientID
	if c.ClientID == "" {
		c.ClientID = "meshgate"
	}
	c.Producer.Idempotent = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Retry.Max = 3
	c.Producer.Retry.Backoff = 100 * time.Millisecond
	c.Producer.Partitioner = sarama.NewReferenceHashPartitioner
	c.Net.MaxOpenRequests = 1
	c.Net.DialTimeout = 5 * time.Second
	c.Metadata.Retry.Max = 1
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	if k.TLS || k.TLSCAFile != "" || k.TLSCertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if k.TLSCAFile != "" {
			pem, err := os.ReadFile(k.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("kafka TLS CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka TLS CA %s: no certificates found", k.TLSCAFile)
			}
			tc.RootCAs = pool
		}
		if k.TLSCertFile != "" || k.TLSKeyFile != "" {
			cert, err := tls.LoadX509KeyPair(k.TLSCertFile, k.TLSKeyFile)
			if err != nil {
				return nil, fmt.Errorf("kafka TLS client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		c.Net.TLS.Enable = true
		c.Net.TLS.Config = tc
	}
	switch k.SASLMechanism {
	case "":
	case sarama.SASLTypePlaintext, sarama.SASLTypeSCRAMSHA256, sarama.SASLTypeSCRAMSHA512:
		c.Net.SASL.Enable = true
		c.Net.SASL.Mechanism = sarama.SASLMechanism(k.SASLMechanism)
		c.Net.SASL.User = k.SASLUser
		c.Net.SASL.Password = k.SASLPassword
		switch k.SASLMechanism {
		case sarama.SASLTypeSCRAMSHA256:
			c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.HashGeneratorFcn(sha256.New)} }
		case sarama.SASLTypeSCRAMSHA512:
			c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.HashGeneratorFcn(sha512.New)} }
		}
	default:
		return nil, fmt.Errorf("kafka SASL mechanism %q is not supported; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.SASLMechanism)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("kafka config: %w", err)
	}
	return c, nil
}

// scramClient adapts xdg-go/scram to sarama's SCRAMClient.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (s *scramClient) Begin(user, password, authzID string) error {
	c, err := s.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	s.conv = c.NewConversation()
	return nil
}

func (s *scramClient) Step(challenge string) (string, error) { return s.conv.Step(challenge) }
func (s *scramClient) Done() bool                            { return s.conv.Done() }

// Publisher sends messages to Kafka. It connects lazily and reconnects after
// a failure, creates topics before their first use, and is safe for
// concurrent use. Close releases the connection.
type Publisher struct {
	cfg     KafkaConfig
	mu      sync.Mutex
	client  sarama.Client
	prod    sarama.SyncProducer
	cluster string // id of the cluster connected to
	topics  map[string]bool
}

// NewPublisher returns a publisher for the cluster; it does not connect yet.
func NewPublisher(cfg KafkaConfig) (*Publisher, error) {
	if _, err := cfg.Sarama(); err != nil {
		return nil, err
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 1
	}
	if cfg.ReplicationFactor <= 0 {
		cfg.ReplicationFactor = 1
	}
	return &Publisher{cfg: cfg, topics: map[string]bool{}}, nil
}

// Cluster returns the id of the Kafka cluster the publisher sends to,
// connecting first if needed. A broker that lost its log (for example the
// embedded broker restarted without its data directory) comes back as a
// new cluster with a new id.
func (p *Publisher) Cluster(ctx context.Context) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := p.connect(); err != nil {
		return "", err
	}
	return p.cluster, nil
}

// Send publishes msgs to the cluster with the given id and returns when
// every one is acknowledged by all in-sync replicas, or with the first
// error. After the acknowledgements it asks the cluster for its id again:
// if the messages may have gone to another cluster (a broker replaced
// behind the same address while sending), Send fails, so that the caller
// never records them as published to cluster. On error the connection is
// dropped; the next call reconnects.
func (p *Publisher) Send(ctx context.Context, cluster string, msgs []*sarama.ProducerMessage) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.connect(); err != nil {
		return err
	}
	if p.cluster != cluster {
		got := p.cluster
		p.reset()
		return fmt.Errorf("kafka: connected to cluster %q, not %q", got, cluster)
	}
	for _, m := range msgs {
		if !p.topics[m.Topic] {
			if err := p.createTopic(m.Topic); err != nil {
				p.reset()
				return err
			}
		}
	}
	if err := p.prod.SendMessages(msgs); err != nil {
		p.reset()
		var perrs sarama.ProducerErrors
		if errors.As(err, &perrs) && len(perrs) > 0 {
			return fmt.Errorf("kafka: produce %d of %d messages failed: %w", len(perrs), len(msgs), perrs[0].Err)
		}
		return fmt.Errorf("kafka: produce: %w", err)
	}
	if len(msgs) > 0 {
		now, err := clusterID(p.client, msgs[0].Topic)
		if err != nil {
			p.reset()
			return err
		}
		if now != cluster {
			p.reset()
			return fmt.Errorf("kafka: the cluster changed while publishing (was %q, now %q)", cluster, now)
		}
	}
	return nil
}

// clusterID asks a broker of the client's cluster for the cluster id (in a
// Metadata response, here for one topic to keep it small).
func clusterID(client sarama.Client, topic string) (string, error) {
	b := client.LeastLoadedBroker()
	if b == nil {
		return "", errors.New("kafka: no broker to ask for the cluster id")
	}
	var topics []string
	if topic != "" {
		topics = []string{topic}
	}
	md, err := b.GetMetadata(sarama.NewMetadataRequest(client.Config().Version, topics))
	if err != nil {
		_ = b.Close() // reconnect next time: the broker may have been replaced
		return "", fmt.Errorf("kafka: cluster id: %w", err)
	}
	if md.ClusterID == nil {
		return "", nil
	}
	return *md.ClusterID, nil
}

func (p *Publisher) connect() error {
	if p.prod != nil {
		return nil
	}
	cfg, err := p.cfg.Sarama()
	if err != nil {
		return err
	}
	client, err := sarama.NewClient(p.cfg.Brokers, cfg)
	if err != nil {
		return fmt.Errorf("kafka: connect to %v: %w", p.cfg.Brokers, err)
	}
	cluster, err := clusterID(client, "")
	if err != nil {
		client.Close()
		return err
	}
	prod, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		client.Close()
		return fmt.Errorf("kafka: producer: %w", err)
	}
	p.client, p.prod, p.cluster = client, prod, cluster
	return nil
}

func (p *Publisher) createTopic(topic string) error {
	if err := createTopic(p.client, topic, p.cfg.Partitions, p.cfg.ReplicationFactor); err != nil {
		return err
	}
	p.topics[topic] = true
	return nil
}

// createTopic creates a topic unless it exists.
func createTopic(client sarama.Client, topic string, partitions int32, replication int16) error {
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return fmt.Errorf("kafka: admin: %w", err)
	}
	// Not closed: closing an admin made from a client closes the client.
	err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: max(partitions, 1), ReplicationFactor: max(replication, 1)}, false)
	var te *sarama.TopicError
	if err != nil && !(errors.As(err, &te) && te.Err == sarama.ErrTopicAlreadyExists) && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		return fmt.Errorf("kafka: create topic %s: %w", topic, err)
	}
	return nil
}

func (p *Publisher) reset() {
	if p.prod != nil {
		p.prod.Close()
	}
	if p.client != nil && !p.client.Closed() {
		p.client.Close()
	}
	p.prod, p.client, p.cluster = nil, nil, ""
	p.topics = map[string]bool{}
}

// Close drops the connection.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reset()
	return nil
}
