// Command meshgate is a GraphQL gateway over the data products of an
// enterprise data mesh. See README.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/meshgate/meshgate/products"
	"github.com/meshgate/meshgate/products/demo"
	"github.com/meshgate/meshgate/resolvers"
	"github.com/meshgate/meshgate/streaming"
	"github.com/meshgate/meshgate/telemetry"
	"github.com/meshgate/meshgate/web"
	"github.com/meshgate/meshgate/web/auth"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	var ue usageError
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "meshgate:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "meshgate:", err)
		os.Exit(1)
	}
}

// usageError is a mistake in the configuration: exit status 2.
type usageError struct{ error }

// config is everything the gateway is told at start.
type config struct {
	Addr            string
	DataDir         string
	SeedScale       float64
	Stores          storeFlag
	Postgres        string
	PGMaxConns      int
	LogLevel        string
	LogFormat       string
	BatchWait       time.Duration
	FastPath        bool
	MaxBodyBytes    int64
	QueryTimeout    time.Duration
	ShutdownTimeout time.Duration
	AnalyzeInterval time.Duration

	// Authentication.
	APIKeys          apiKeysFlag
	JWTIssuer        string
	JWTAudience      string
	JWKSURL          string
	JWKSFile         string
	JWTSecret        string
	JWTRolesClaim    string
	JWTSubjectClaim  string
	JWTLeeway        time.Duration
	JWKSMaxAge       time.Duration
	JWKSMinRefresh   time.Duration
	CORSOrigins      string
	Limits           web.Limits
	BodyReadTimeout  time.Duration
	ReadTimeout      time.Duration
	ReadHeaderTime   time.Duration
	IdleTimeout      time.Duration
	RateLimit        float64
	RateBurst        int
	MaxSubscriptions int
	WSReadLimit      int64
	WSMessageRate    float64
	WSInitTimeout    time.Duration

	// Authorization.
	Policies     policiesFlag
	MaxGroups    int
	PIIReadAudit bool
	KafkaMaskPII bool

	// file is the config file read, if any; origin tells, per setting
	// given, whether a "flag", "env" or "file" gave it.
	file   string
	origin map[string]string
	// level and policies are what validate made of --log-level and
	// --policies.
	level    slog.Level
	policies *products.Policies

	// given tells which settings were given (flag, environment or file)
	// rather than left at their defaults.
	given map[string]bool

	AllowedOrigins    string
	WSPingInterval    time.Duration
	SubscriberBuffer  int
	LiveRate          float64
	PprofAddr         string
	WSWriteBuffer     int
	KafkaBrokers      string
	EmbeddedKafkaAddr string
	EmbeddedKafkaDir  string
	TopicPrefix       string
	TopicPartitions   int
	TopicReplication  int
	KafkaTLS          bool
	KafkaTLSCA        string
	KafkaTLSCert      string
	KafkaTLSKey       string
	KafkaSASL         string
	KafkaUser         string
	KafkaPassword     string

	// Observability.
	OTelEndpoint          string
	OTelSampleRatio       float64
	MetricsMaxOperations  int
	SubscriptionOutageFor time.Duration
	// Reactions.
	ReactionRetries    int
	ReactionBackoffMax time.Duration
}

// storeFlag collects repeated --store product=DSN.
type storeFlag map[string]string

func (s storeFlag) String() string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + s[k]
	}
	return strings.Join(parts, ",")
}

func (s storeFlag) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		name, dsn, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" || dsn == "" {
			return fmt.Errorf("want product=DSN, e.g. orders=postgres://postgres@127.0.0.1:5432/test, got %q", part)
		}
		known := false
		for _, d := range demo.Products {
			known = known || d.Name == name
		}
		if !known {
			return fmt.Errorf("unknown product %q (products: %s)", name, productNames())
		}
		s[name] = dsn
	}
	return nil
}

// policiesFlag collects row policies: each setting is one policy as a JSON
// object {role, entity, where} or a JSON array of them (what the YAML
// file's list items become).
type policiesFlag struct{ rules *[]products.PolicyRule }

func (f policiesFlag) String() string {
	if f.rules == nil || len(*f.rules) == 0 {
		return ""
	}
	b, _ := json.Marshal(*f.rules)
	return string(b)
}

func (f policiesFlag) Set(v string) error {
	dec := json.NewDecoder(strings.NewReader(v))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "[") {
		var rules []products.PolicyRule
		if err := dec.Decode(&rules); err != nil {
			return fmt.Errorf("want a JSON list of {role, entity, where}: %w", err)
		}
		*f.rules = append(*f.rules, rules...)
		return nil
	}
	var r products.PolicyRule
	if err := dec.Decode(&r); err != nil {
		return fmt.Errorf(`want a JSON object {"role": …, "entity": …, "where": {…}}: %w`, err)
	}
	*f.rules = append(*f.rules, r)
	return nil
}

// apiKeysFlag collects repeated --api-key settings (see auth.ParseAPIKeys).
type apiKeysFlag struct{ keys *[]auth.APIKey }

func (f apiKeysFlag) String() string {
	if f.keys == nil {
		return ""
	}
	names := make([]string, len(*f.keys))
	for i, k := range *f.keys {
		names[i] = k.Name
	}
	return strings.Join(names, ",")
}

func (f apiKeysFlag) Set(v string) error {
	keys, err := auth.ParseAPIKeys(v)
	if err != nil {
		return err
	}
	*f.keys = append(*f.keys, keys...)
	return nil
}

func productNames() string {
	names := make([]string, len(demo.Products))
	for i, d := range demo.Products {
		names[i] = d.Name
	}
	return strings.Join(names, ", ")
}

// newFlagSet defines every setting of the gateway on a flag set that fills
// c; configFile receives --config. The README's configuration table is
// tested against it (config_test.go).
func newFlagSet(c *config, stderr io.Writer) (fs *flag.FlagSet, configFile *string) {
	*c = config{Stores: storeFlag{}, APIKeys: apiKeysFlag{keys: new([]auth.APIKey)}, Policies: policiesFlag{rules: new([]products.PolicyRule)}}
	fs = flag.NewFlagSet("meshgate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile = fs.String("config", "", "YAML file with settings named like the flags (env MESHGATE_CONFIG)")
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory of the embedded SQLite stores (one file per product)")
	fs.Float64Var(&c.SeedScale, "seed-scale", 1, "size of the demo data seeded into empty stores (1 = 2,000 customers, 20,000 orders; 0 = none)")
	fs.Var(c.Stores, "store", "a product's store as product=DSN (sqlite:<file> or postgres://…); repeatable")
	fs.StringVar(&c.Postgres, "postgres", "", "PostgreSQL DSN for every product without --store, each in a schema named after it")
	fs.IntVar(&c.PGMaxConns, "pg-max-conns", products.DefaultMaxConns, "most PostgreSQL sessions each product's store keeps open, busy or idle (a DSN's pool_max_conns wins)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.DurationVar(&c.BatchWait, "batch-wait", 2*time.Millisecond, "ignored, kept for old configurations: batch loaders query as soon as a level's first field asks")
	fs.BoolVar(&c.FastPath, "fast-path", true, "answer plain reads (entity lists and lookups, their fields and relations) without gqlgen's per-field execution; false: gqlgen answers every operation")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", 1<<20, "maximum size of a request body (413 beyond)")
	fs.DurationVar(&c.QueryTimeout, "query-timeout", 30*time.Second, "maximum time of one GraphQL query or mutation, parsing and validation included (0 = none)")

	fs.Var(c.APIKeys, "api-key", "an accepted API key as name=sha256:<hex>[=role,role…] (see: meshgate apikey new); repeatable")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", "", "issuer (iss) that JWTs must carry")
	fs.StringVar(&c.JWTAudience, "jwt-audience", "", "audience (aud) that JWTs must carry")
	fs.StringVar(&c.JWKSURL, "jwt-jwks-url", "", "URL of the JWKS that verifies RS256/ES256/EdDSA JWTs")
	fs.StringVar(&c.JWKSFile, "jwt-jwks-file", "", "file of the JWKS that verifies RS256/ES256/EdDSA JWTs")
	fs.StringVar(&c.JWTSecret, "jwt-hs256-secret", "", "shared secret (32+ bytes) that verifies HS256 JWTs (prefer MESHGATE_JWT_HS256_SECRET)")
	fs.StringVar(&c.JWTRolesClaim, "jwt-roles-claim", "roles", "claim holding the caller's roles; dotted paths reach into objects (realm_access.roles)")
	fs.StringVar(&c.JWTSubjectClaim, "jwt-subject-claim", "sub", "claim naming the caller, recorded as the actor of its changes")
	fs.DurationVar(&c.JWTLeeway, "jwt-leeway", 30*time.Second, "clock skew allowed on exp, nbf and iat")
	fs.DurationVar(&c.JWKSMaxAge, "jwt-jwks-max-age", time.Hour, "the JWKS is read again when older than this")
	fs.DurationVar(&c.JWKSMinRefresh, "jwt-jwks-min-refresh", 30*time.Second, "the JWKS is read at most this often, even for tokens with unknown key ids")
	fs.Var(c.Policies, "policies", `row policies, each {"role": r, "entity": E, "where": {…}} (JSON object or list; where written like the GraphQL where input, "$claims.<path>" for a claim of the caller's token); repeatable`)
	fs.BoolVar(&c.PIIReadAudit, "pii-read-audit", true, "record every response that returns personal data unmasked (who, which fields of which rows, which operation): the piiReads query and subscription")
	fs.BoolVar(&c.KafkaMaskPII, "kafka-mask-pii", false, "mask personal data (\"***\") in the change events published to Kafka (the stores keep the values)")
	fs.StringVar(&c.CORSOrigins, "cors-origins", "", "origins (scheme://host:port, comma-separated, * for any) that browsers may call the API from; none by default")

	d := web.DefaultLimits()
	fs.IntVar(&c.Limits.Tokens, "max-tokens", d.Tokens, "most lexical tokens in a GraphQL document, counted before parsing")
	fs.IntVar(&c.Limits.Depth, "max-depth", d.Depth, "deepest nesting of fields in an operation")
	fs.IntVar(&c.Limits.Fields, "max-fields", d.Fields, "most field selections in an operation, fragments expanded")
	fs.IntVar(&c.Limits.RepeatedFields, "max-repeated-fields", d.RepeatedFields, "most fields with one response name in one selection set")
	fs.IntVar(&c.Limits.Aliases, "max-aliases", d.Aliases, "most aliases in a document")
	fs.IntVar(&c.Limits.RootFields, "max-root-fields", d.RootFields, "most root fields in an operation")
	fs.IntVar(&c.Limits.Directives, "max-directives", d.Directives, "most directives in a document")
	fs.IntVar(&c.Limits.IntrospectionDepth, "max-introspection-depth", d.IntrospectionDepth, "deepest nesting of fields/inputFields/interfaces/possibleTypes in introspection")
	fs.IntVar(&c.Limits.Cost, "max-cost", d.Cost, "highest cost of an operation: values it may resolve, list sizes counted (see README)")
	fs.IntVar(&c.Limits.Cost, "complexity-limit", d.Cost, "old name of --max-cost")
	fs.IntVar(&c.Limits.ListSize, "cost-list-size", d.ListSize, "items a list without first/last counts for in the cost")
	fs.IntVar(&c.Limits.WhereDepth, "max-where-depth", d.WhereDepth, "deepest nesting of a where/having argument")
	fs.IntVar(&c.Limits.WhereNodes, "max-where-nodes", d.WhereNodes, "most values in a where/having argument")
	fs.IntVar(&c.MaxGroups, "max-groups", 10_000, "most groups an aggregate returns (LIMIT_EXCEEDED beyond; 0 = none)")
	fs.DurationVar(&c.BodyReadTimeout, "body-read-timeout", 10*time.Second, "time allowed to receive a request body (408 beyond)")
	fs.DurationVar(&c.ReadHeaderTime, "read-header-timeout", 10*time.Second, "time allowed to receive a request's headers")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", time.Minute, "time allowed to receive a request on routes other than /graphql")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 2*time.Minute, "how long an idle keep-alive connection stays open")
	fs.Float64Var(&c.RateLimit, "rate-limit", 100, "requests (and websocket subscribes) per second per identity, or per IP for anonymous callers (0 = none; in dev mode none unless set)")
	fs.IntVar(&c.RateBurst, "rate-burst", 0, "requests allowed in a burst above --rate-limit (0 = twice the rate)")
	fs.IntVar(&c.MaxSubscriptions, "max-subscriptions", 100, "most subscriptions on one websocket")
	fs.Int64Var(&c.WSReadLimit, "ws-max-message-bytes", 256<<10, "largest websocket message a client may send")
	fs.DurationVar(&c.WSInitTimeout, "ws-init-timeout", 10*time.Second, "time a websocket client has to send connection_init (closed with 4408 beyond)")
	fs.Float64Var(&c.WSMessageRate, "ws-message-rate", 100, "messages per second a websocket client may send (bursts of twice as many); floods are cut off")
	fs.DurationVar(&c.AnalyzeInterval, "analyze-interval", products.AnalyzeEvery, "how often each PostgreSQL store refreshes the planner statistics of its tables that changed enough since their last ANALYZE (autovacuum's rule; 0 = leave it to autovacuum)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long a graceful shutdown (SIGTERM, SIGINT) may take: finishing requests in flight, ending subscriptions with their cursors, publishing what is committed, committing consumer offsets")
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", "", "origins (scheme://host:port, comma-separated, * for any) allowed to open websockets besides the gateway's own")
	fs.DurationVar(&c.WSPingInterval, "ws-ping-interval", 15*time.Second, "websocket ping interval; peers silent for two intervals are dropped")
	fs.IntVar(&c.SubscriberBuffer, "subscriber-buffer", 1024, "events queued per subscription before a slow subscriber is dropped with SLOW_CONSUMER")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "serve Go's net/http/pprof profiles on this address (e.g. 127.0.0.1:6060; off when empty)")
	fs.Float64Var(&c.LiveRate, "live-rate", 4, "most pushes per second of live aggregate subscriptions (salesStats, customerValue)")
	fs.IntVar(&c.WSWriteBuffer, "ws-write-buffer", 64<<10, "kernel send buffer per websocket in bytes (0 = system default)")
	fs.StringVar(&c.KafkaBrokers, "kafka-brokers", "", "Kafka bootstrap brokers host:port,…; empty starts the embedded broker")
	fs.StringVar(&c.EmbeddedKafkaAddr, "embedded-kafka-addr", "127.0.0.1:9092", "address of the embedded Kafka-protocol broker (without --kafka-brokers)")
	fs.StringVar(&c.EmbeddedKafkaDir, "embedded-kafka-dir", "", `where the embedded broker keeps its log and consumer offsets (default <data-dir>/kafka; "none" keeps them in memory)`)
	fs.StringVar(&c.TopicPrefix, "topic-prefix", "meshgate", "first part of every change topic: <prefix>.<product>.<table>")
	fs.IntVar(&c.TopicPartitions, "topic-partitions", 3, "partitions of change topics created by meshgate")
	fs.IntVar(&c.TopicReplication, "topic-replication", 1, "replication factor of change topics created by meshgate")
	fs.BoolVar(&c.KafkaTLS, "kafka-tls", false, "connect to Kafka over TLS (system roots unless --kafka-tls-ca)")
	fs.StringVar(&c.KafkaTLSCA, "kafka-tls-ca", "", "PEM file of the CA that signs the brokers' certificates")
	fs.StringVar(&c.KafkaTLSCert, "kafka-tls-cert", "", "PEM client certificate for mutual TLS")
	fs.StringVar(&c.KafkaTLSKey, "kafka-tls-key", "", "PEM key of the client certificate")
	fs.StringVar(&c.KafkaSASL, "kafka-sasl-mechanism", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	fs.StringVar(&c.KafkaUser, "kafka-sasl-user", "", "SASL user name")
	fs.StringVar(&c.KafkaPassword, "kafka-sasl-password", "", "SASL password (prefer MESHGATE_KAFKA_SASL_PASSWORD)")
	fs.StringVar(&c.OTelEndpoint, "otel-endpoint", "", "OTLP/HTTP endpoint to send traces to (e.g. http://collector:4318); off when empty unless OTEL_EXPORTER_OTLP_ENDPOINT is set")
	fs.Float64Var(&c.OTelSampleRatio, "otel-sample-ratio", 1, "share of the traces started here that are recorded, from 0 (exclusive) to 1; callers' sampled traces are always followed")
	fs.IntVar(&c.MetricsMaxOperations, "metrics-max-operations", web.DefaultMaxOperationNames, "most distinct GraphQL operation names in the metrics; later names count as \"other\"")
	fs.DurationVar(&c.SubscriptionOutageFor, "subscription-outage-grace", 30*time.Second, "how long a subscription's read of an unreachable store retries before the subscription ends with UNAVAILABLE and its cursor")
	fs.IntVar(&c.ReactionRetries, "reaction-retries", streaming.DefaultReactionRetries, "times an event a product's reaction fails on is tried alone before it is parked in <prefix>.dlq.<product> (store failures retry without counting)")
	fs.DurationVar(&c.ReactionBackoffMax, "reaction-backoff-max", streaming.DefaultReactionBackoffMax, "longest wait between attempts at a failing reaction (exponential from 50ms, jittered)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: meshgate [flags]\n       meshgate config check [--config file] [flags]\n       meshgate replay <product> [flags]\n       meshgate dlq list|retry <product> [--id N|--all] [flags]\n       meshgate apikey new [--name n] [--roles r,…]\n\n"+
			"Serves the data products of the mesh behind one GraphQL endpoint.\n"+
			"config check validates the settings (file, MESHGATE_* variables, flags) without starting anything:\n"+
			"it lists every problem and exits with status 2, or prints a summary and exits with 0.\n"+
			"Every flag can also be set as MESHGATE_<FLAG> (e.g. MESHGATE_DATA_DIR) or in the --config file.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs, configFile
}

// parseConfig reads, in rising precedence: defaults, the config file
// (--config or MESHGATE_CONFIG), MESHGATE_* environment variables, flags;
// then checks the result as the server would at start (see validate),
// without opening stores or connecting anywhere. Every problem found is
// reported, not just the first: a usageError listing them (exit status 2).
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	return parseConfigFor(args, getenv, stderr, true)
}

// parseConfigFor is parseConfig; serving tells whether the configuration
// is for serving (a replay listens nowhere: its address needs no
// authentication).
func parseConfigFor(args []string, getenv func(string) string, stderr io.Writer, serving bool) (*config, error) {
	c := &config{}
	fs, configFile := newFlagSet(c, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected argument %q; see --help", fs.Arg(0))}
	}
	var problems []error
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.given = map[string]bool{}
	c.origin = map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		c.given[f.Name] = set[f.Name] || getenv(envName(f.Name)) != ""
		switch {
		case set[f.Name]:
			c.origin[f.Name] = "flag"
		case getenv(envName(f.Name)) != "":
			c.origin[f.Name] = "env"
		}
	})
	if *configFile == "" {
		*configFile = getenv("MESHGATE_CONFIG")
	}
	c.file = *configFile
	if *configFile != "" {
		b, err := os.ReadFile(*configFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("config file: %w (fix --config or MESHGATE_CONFIG)", err)}
		}
		var file map[string]any
		if err := yaml.Unmarshal(b, &file); err != nil {
			return nil, usageError{fmt.Errorf("config file %s is not a YAML mapping of settings: %w", *configFile, err)}
		}
		keys := make([]string, 0, len(file))
		for k := range file {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := file[k]
			f := fs.Lookup(k)
			if f == nil || k == "config" {
				problems = append(problems, fmt.Errorf("config file %s: unknown setting %q; settings are named like the flags%s", *configFile, k, suggest(fs, k)))
				continue
			}
			if set[k] || getenv(envName(k)) != "" {
				continue
			}
			c.given[k] = true
			c.origin[k] = "file"
			values := []any{v}
			if list, ok := v.([]any); ok {
				values = list
			}
			for _, item := range values {
				text := fmt.Sprint(item)
				if m, ok := item.(map[string]any); ok {
					// Structured settings (API keys) reach the flag as JSON.
					b, err := json.Marshal(m)
					if err != nil {
						problems = append(problems, fmt.Errorf("config file %s: %s: %w", *configFile, k, err))
						continue
					}
					text = string(b)
				}
				if err := f.Value.Set(text); err != nil {
					problems = append(problems, fmt.Errorf("config file %s: %s: %w", *configFile, k, err))
				}
			}
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "config" {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := f.Value.Set(v); err != nil {
				problems = append(problems, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
		}
	})
	problems = append(problems, c.validate(serving)...)
	if len(problems) > 0 {
		return nil, usageError{configProblems(problems)}
	}
	return c, nil
}

// validate checks the settings as the server would at start, without
// opening stores, reading the JWKS URL or connecting to Kafka, and returns
// every problem, each naming the setting and what to do. It fills in what
// run uses of the checks (the log level, the row policies).
func (c *config) validate(serving bool) []error {
	var out []error
	bad := func(format string, args ...any) { out = append(out, fmt.Errorf(format, args...)) }
	if c.SeedScale < 0 || c.SeedScale > 100 {
		bad("%s must be between 0 and 100, got %g", c.setting("seed-scale"), c.SeedScale)
	}
	if c.PGMaxConns < 2 {
		bad("%s must be at least 2 (a migration holds one session for its lock), got %d", c.setting("pg-max-conns"), c.PGMaxConns)
	}
	if c.MaxGroups < 0 {
		bad("%s must not be negative (0 = none), got %d", c.setting("max-groups"), c.MaxGroups)
	}
	if c.ReactionRetries < 1 {
		bad("%s must be at least 1, got %d", c.setting("reaction-retries"), c.ReactionRetries)
	}
	if c.ReactionBackoffMax < time.Millisecond {
		bad("%s must be at least 1ms, got %v", c.setting("reaction-backoff-max"), c.ReactionBackoffMax)
	}
	if c.TopicPartitions < 1 || c.TopicPartitions > math.MaxInt32 {
		bad("%s must be at least 1, got %d", c.setting("topic-partitions"), c.TopicPartitions)
	}
	if c.TopicReplication < 1 || c.TopicReplication > math.MaxInt16 {
		bad("%s must be at least 1, got %d", c.setting("topic-replication"), c.TopicReplication)
	}
	if strings.TrimSpace(c.TopicPrefix) == "" || strings.ContainsAny(c.TopicPrefix, " /\\,:") {
		bad("%s must be a non-empty Kafka topic name part (letters, digits, '.', '_', '-'), got %q", c.setting("topic-prefix"), c.TopicPrefix)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("%s must be text or json, got %q", c.setting("log-format"), c.LogFormat)
	}
	if err := c.level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		bad("%s must be debug, info, warn or error, got %q", c.setting("log-level"), c.LogLevel)
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("%s must be host:port (e.g. 0.0.0.0:8080), got %q", c.setting("addr"), c.Addr)
	}
	if c.PprofAddr != "" {
		if _, _, err := net.SplitHostPort(c.PprofAddr); err != nil {
			bad("%s must be host:port (e.g. 127.0.0.1:6060) or empty, got %q", c.setting("pprof-addr"), c.PprofAddr)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"batch-wait", c.BatchWait}, {"query-timeout", c.QueryTimeout}, {"shutdown-timeout", c.ShutdownTimeout}, {"analyze-interval", c.AnalyzeInterval},
		{"body-read-timeout", c.BodyReadTimeout}, {"read-timeout", c.ReadTimeout}, {"read-header-timeout", c.ReadHeaderTime},
		{"idle-timeout", c.IdleTimeout}, {"ws-init-timeout", c.WSInitTimeout}, {"ws-ping-interval", c.WSPingInterval},
		{"jwt-jwks-max-age", c.JWKSMaxAge}, {"jwt-jwks-min-refresh", c.JWKSMinRefresh},
	} {
		if d.v < 0 {
			bad("%s must not be negative, got %s", c.setting(d.name), d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    float64
	}{
		{"rate-limit", c.RateLimit}, {"rate-burst", float64(c.RateBurst)}, {"live-rate", c.LiveRate}, {"ws-message-rate", c.WSMessageRate},
		{"max-subscriptions", float64(c.MaxSubscriptions)}, {"ws-write-buffer", float64(c.WSWriteBuffer)},
	} {
		if n.v < 0 || math.IsNaN(n.v) {
			bad("%s must not be negative (0 = none), got %g", c.setting(n.name), n.v)
		}
	}
	if c.MaxBodyBytes < 1 {
		bad("%s must be at least 1, got %d", c.setting("max-body-bytes"), c.MaxBodyBytes)
	}
	if c.WSReadLimit < 1 {
		bad("%s must be at least 1, got %d", c.setting("ws-max-message-bytes"), c.WSReadLimit)
	}
	if c.SubscriberBuffer < 1 {
		bad("%s must be at least 1, got %d", c.setting("subscriber-buffer"), c.SubscriberBuffer)
	}
	for _, l := range []struct {
		name string
		v    int
	}{
		{"max-tokens", c.Limits.Tokens}, {"max-depth", c.Limits.Depth}, {"max-fields", c.Limits.Fields},
		{"max-repeated-fields", c.Limits.RepeatedFields}, {"max-aliases", c.Limits.Aliases}, {"max-root-fields", c.Limits.RootFields},
		{"max-directives", c.Limits.Directives}, {"max-introspection-depth", c.Limits.IntrospectionDepth}, {"max-cost", c.Limits.Cost},
		{"cost-list-size", c.Limits.ListSize}, {"max-where-depth", c.Limits.WhereDepth}, {"max-where-nodes", c.Limits.WhereNodes},
	} {
		if l.v < 0 {
			bad("%s must not be negative (0 = the default), got %d", c.setting(l.name), l.v)
		}
	}

	// Stores: every product's DSN must parse (nothing is opened).
	if c.Postgres != "" && !strings.HasPrefix(c.Postgres, "postgres://") && !strings.HasPrefix(c.Postgres, "postgresql://") {
		bad("%s must be a postgres:// DSN (e.g. postgres://meshgate@db:5432/mesh?sslmode=require), got %q", c.setting("postgres"), products.RedactDSN(c.Postgres))
	} else {
		for _, d := range demo.Products {
			if err := products.CheckDSN(d.Name, c.dsn(d.Name)); err != nil {
				setting := c.setting("data-dir")
				if _, ok := c.Stores[d.Name]; ok {
					setting = c.setting("store")
				} else if c.Postgres != "" {
					setting = c.setting("postgres")
				}
				bad("%s: %v", setting, err)
			}
		}
	}

	// Kafka: what the client would be configured with (TLS files are read).
	if c.KafkaSASL != "" && (c.KafkaUser == "" || c.KafkaPassword == "") {
		bad("%s %s needs --kafka-sasl-user and --kafka-sasl-password (prefer MESHGATE_KAFKA_SASL_PASSWORD)", c.setting("kafka-sasl-mechanism"), c.KafkaSASL)
	} else if _, err := c.kafka().Sarama(); err != nil {
		bad("kafka settings (--kafka-tls*, --kafka-sasl-*): %v", err)
	}
	if c.KafkaBrokers != "" {
		for _, b := range splitList(c.KafkaBrokers) {
			if _, _, err := net.SplitHostPort(b); err != nil {
				bad("%s: %q is not host:port", c.setting("kafka-brokers"), b)
			}
		}
	} else if _, _, err := net.SplitHostPort(c.EmbeddedKafkaAddr); err != nil {
		bad("%s must be host:port, got %q", c.setting("embedded-kafka-addr"), c.EmbeddedKafkaAddr)
	}

	// Authentication, as auth.New checks it, without reading the JWKS URL.
	authCfg := c.auth()
	if authCfg.JWKSURL != "" {
		if u, err := url.Parse(authCfg.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("%s must be an http(s) URL, got %q", c.setting("jwt-jwks-url"), authCfg.JWKSURL)
		}
		if authCfg.JWKSFile == "" {
			// auth.New would read it; check the rest without it.
			authCfg.JWKSURL = ""
			if authCfg.HS256Secret == "" && (authCfg.Issuer == "" || authCfg.Audience == "") {
				bad("authentication: JWTs need the expected issuer and audience (jwt-issuer, jwt-audience)")
			}
		}
	}
	if _, err := auth.New(context.Background(), authCfg, nil); err != nil {
		bad("authentication: %v", err)
	}
	if serving && !c.auth().Configured() && !isLoopback(c.Addr) {
		bad("refusing to serve %s (%s) without authentication: configure API keys (--api-key name=sha256:…=roles; make one with: meshgate apikey new --name NAME --roles ROLE,…) "+
			"or JWTs (--jwt-jwks-url URL or --jwt-jwks-file FILE or --jwt-hs256-secret, with --jwt-issuer and --jwt-audience), "+
			"as flags, MESHGATE_* variables or keys of the --config file (see README, \"Authentication\"); "+
			"or listen on loopback only (--addr 127.0.0.1:8080) for dev mode", c.Addr, c.setting("addr"))
	}

	// Authorization: the row policies against the products' entities.
	descriptors := make([]*products.Descriptor, len(demo.Products))
	for i, p := range demo.Products {
		descriptors[i] = &p.Descriptor
	}
	var err error
	if c.policies, err = products.NewPolicies(descriptors, *c.Policies.rules); err != nil {
		bad("%s: %v", c.setting("policies"), err)
	}
	return out
}

// setting names a setting as it was given: the flag, the environment
// variable, or the key of the config file.
func (c *config) setting(name string) string {
	switch c.origin[name] {
	case "env":
		return envName(name)
	case "file":
		return fmt.Sprintf("%s (config file %s)", name, c.file)
	}
	return "--" + name
}

// kafka is the Kafka client part of the configuration (brokers apart).
func (c *config) kafka() streaming.KafkaConfig {
	return streaming.KafkaConfig{
		Partitions: int32(c.TopicPartitions), ReplicationFactor: int16(c.TopicReplication),
		TLS: c.KafkaTLS, TLSCAFile: c.KafkaTLSCA, TLSCertFile: c.KafkaTLSCert, TLSKeyFile: c.KafkaTLSKey,
		SASLMechanism: c.KafkaSASL, SASLUser: c.KafkaUser, SASLPassword: c.KafkaPassword,
	}
}

// configProblems joins the problems of a configuration: one is shown as
// is, several as a numbered list.
func configProblems(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems in the configuration:", len(errs))
	for i, err := range errs {
		fmt.Fprintf(&b, "\n  %d. %v", i+1, err)
	}
	return errors.New(b.String())
}

// suggest names the setting closest to an unknown one, if any is close.
func suggest(fs *flag.FlagSet, name string) string {
	best, bestD := "", 4
	fs.VisitAll(func(f *flag.Flag) {
		if d := editDistance(name, f.Name); d < bestD && f.Name != "config" {
			best, bestD = f.Name, d
		}
	})
	if best == "" {
		return " (see meshgate --help)"
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func envName(flagName string) string {
	return "MESHGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// dsn returns the store of a product: --store, else --postgres, else a
// SQLite file in the data directory. A PostgreSQL DSN gets --pg-max-conns
// as its pool_max_conns unless it sets one.
func (c *config) dsn(product string) string {
	if d, ok := c.Stores[product]; ok {
		return withMaxConns(d, c.PGMaxConns)
	}
	if c.Postgres != "" {
		return withMaxConns(c.Postgres, c.PGMaxConns)
	}
	return "sqlite:" + filepath.Join(c.DataDir, product+".db")
}

// withMaxConns sets pool_max_conns=n on a PostgreSQL DSN without one; other
// DSNs, and those that do not parse (products.Open reports them), pass
// unchanged.
func withMaxConns(dsn string, n int) string {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	if q.Has("pool_max_conns") {
		return dsn
	}
	q.Set("pool_max_conns", strconv.Itoa(n))
	u.RawQuery = q.Encode()
	return u.String()
}

// kafkaDir returns the embedded broker's data directory ("" for none).
func (c *config) kafkaDir() string {
	switch c.EmbeddedKafkaDir {
	case "":
		return filepath.Join(c.DataDir, "kafka")
	case "none":
		return ""
	}
	return c.EmbeddedKafkaDir
}

// run starts the gateway and blocks until ctx ends, then shuts down
// gracefully. Every goroutine it starts belongs to its errgroup.
//
// "meshgate replay <product> [flags]" instead rebuilds a derived product
// from the beginning of its inputs and exits.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "apikey" {
		return runAPIKey(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "config" {
		return runConfigCheck(args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "dlq" {
		return runDLQ(ctx, args[1:], getenv, stdout, stderr)
	}
	var replay string
	if len(args) > 0 && args[0] == "replay" {
		if len(args) < 2 || strings.HasPrefix(args[1], "-") {
			return usageError{fmt.Errorf("usage: meshgate replay <product> [flags]; derived products: %s", strings.Join(replayable(), ", "))}
		}
		replay, args = args[1], args[2:]
		if p := product(replay); p == nil || p.Reset == nil {
			return usageError{fmt.Errorf("%q is not a derived product; derived products: %s", replay, strings.Join(replayable(), ", "))}
		}
	}
	cfg, err := parseConfigFor(args, getenv, stderr, replay == "")
	if err != nil {
		return err
	}
	authCfg := cfg.auth()
	dev := !authCfg.Configured()
	policies := cfg.policies
	opts := &slog.HandlerOptions{Level: cfg.level}
	var log *slog.Logger
	if cfg.LogFormat == "json" {
		log = slog.New(slog.NewJSONHandler(stderr, opts))
	} else {
		log = slog.New(slog.NewTextHandler(stderr, opts))
	}
	// Lines logged for a request carry its id, operation and caller.
	log = telemetry.Logger(log)
	if cfg.OTelSampleRatio <= 0 || cfg.OTelSampleRatio > 1 {
		return usageError{fmt.Errorf("--otel-sample-ratio %v: want a share above 0 and at most 1", cfg.OTelSampleRatio)}
	}
	tracing, stopTracing, err := telemetry.StartTracing(ctx, telemetry.TracingConfig{
		Endpoint: cfg.OTelEndpoint, Version: version, SampleRatio: cfg.OTelSampleRatio, Getenv: getenv, Log: log})
	if err != nil {
		return usageError{err}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			log.Warn("tracing: flushing spans failed", "error", err)
		}
	}()
	if tracing {
		log.Info("tracing: sending spans over OTLP/HTTP", "endpoint", cfg.OTelEndpoint)
	}

	if dev && !cfg.given["rate-limit"] {
		// On loopback in dev mode every caller is the developer (and the
		// tests, and load tests): no rate limit unless asked for.
		cfg.RateLimit = 0
	}
	var authn *auth.Authenticator
	if !dev {
		if authn, err = auth.New(ctx, authCfg, log); err != nil {
			return usageError{fmt.Errorf("authentication: %w", err)}
		}
	}

	mesh, err := demo.Open(ctx, cfg.dsn, telemetry.SQLHook{})
	if err != nil {
		return usageError{fmt.Errorf("%w\n(fix the store settings: --data-dir, --store product=DSN or --postgres)", err)}
	}
	defer mesh.Close()
	for _, s := range mesh.Stores {
		log.Info("store open", "product", s.Product.Name, "dialect", s.Dialect().String())
	}

	start := time.Now()
	lastReport := map[string]time.Time{}
	if replay != "" {
		cfg.SeedScale = 0
	}
	seeded, err := mesh.Seed(ctx, cfg.SeedScale, func(product, entity string, done, total int) {
		if done == total || time.Since(lastReport[entity]) > time.Second {
			lastReport[entity] = time.Now()
			log.Info("seeding", "product", product, "entity", entity, "rows", done, "of", total)
		}
	})
	if err != nil {
		return fmt.Errorf("seed demo data: %w", err)
	}
	if seeded {
		log.Info("demo data seeded", "scale", cfg.SeedScale, "took", time.Since(start).Round(time.Millisecond))
	}

	kafka := cfg.kafka()
	if cfg.KafkaBrokers != "" {
		kafka.Brokers = splitList(cfg.KafkaBrokers)
	} else {
		addr, dir := cfg.EmbeddedKafkaAddr, cfg.kafkaDir()
		if replay != "" {
			// A private, empty broker: a running gateway may hold the
			// usual port and the data directory. The replay publishes the
			// history to it from the audit logs.
			addr, dir = "127.0.0.1:0", ""
		}
		broker, err := streaming.StartEmbedded(addr, int32(cfg.TopicPartitions), dir)
		if err != nil {
			return usageError{err}
		}
		defer broker.Close()
		kafka.Brokers = broker.Addrs()
		// A broker that kept its log (its data directory) needs nothing
		// republished; one that starts empty is a new cluster, and the
		// relays publish the audit logs to it from the beginning.
		log.Info("embedded kafka started", "addr", strings.Join(kafka.Brokers, ","), "dir", dir)
	}
	publisher, err := streaming.NewPublisher(kafka)
	if err != nil {
		return usageError{err}
	}
	defer publisher.Close()
	codec := streaming.Codec{Prefix: cfg.TopicPrefix, Version: version}
	consumers := streaming.Consumers(mesh, codec, kafka, log)
	for _, c := range consumers {
		c.DeadLetters, c.Retries, c.MaxBackoff = publisher, cfg.ReactionRetries, cfg.ReactionBackoffMax
	}
	if replay != "" {
		return runReplay(ctx, replay, mesh, consumers, publisher, codec, cfg.KafkaBrokers == "", cfg.KafkaMaskPII, log, stdout)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return usageError{fmt.Errorf("listen on %s: %w (choose another --addr)", cfg.Addr, err)}
	}
	hub := &streaming.Hub{Stores: mesh.Stores, Codec: codec, Kafka: kafka, Log: log, Buffer: cfg.SubscriberBuffer, OutageGrace: cfg.SubscriptionOutageFor}
	var relays []*streaming.Relay
	for _, s := range mesh.Stores {
		relays = append(relays, &streaming.Relay{Store: s, Sender: publisher, Codec: codec, Log: log, MaskPII: cfg.KafkaMaskPII})
	}
	streamStats := newStreamMetrics(mesh, consumers, relays, hub)
	res := &resolvers.Resolver{Data: mesh, Version: version, BatchWait: cfg.BatchWait, Hub: hub, LiveRate: cfg.LiveRate, Consumers: consumers, Codec: codec,
		Policies: policies, ReadAudit: cfg.PIIReadAudit, NoFastPath: !cfg.FastPath, MaxGroups: cfg.MaxGroups, Log: log}
	sockets := web.NewWebsockets()
	srv := &http.Server{
		Handler: web.NewServer(web.Config{
			Resolver: res, Logger: log, Ready: readiness(mesh, kafka.Brokers, relays), Auth: authn, Limits: cfg.Limits,
			MaxBodyBytes: cfg.MaxBodyBytes, BodyReadTimeout: cfg.BodyReadTimeout, QueryTimeout: cfg.QueryTimeout,
			RateLimit: cfg.RateLimit, RateBurst: cfg.RateBurst, CORSOrigins: splitList(cfg.CORSOrigins),
			AllowedOrigins: splitList(cfg.AllowedOrigins), PingInterval: cfg.WSPingInterval, WSWriteBuffer: cfg.WSWriteBuffer,
			MaxSubscriptions: cfg.MaxSubscriptions, WSReadLimit: cfg.WSReadLimit, WSMessageRate: cfg.WSMessageRate, WSInitTimeout: cfg.WSInitTimeout,
			Collectors: []prometheus.Collector{streamStats}, MaxOperationNames: cfg.MetricsMaxOperations,
			Websockets: sockets,
		}),
		ReadHeaderTimeout: cfg.ReadHeaderTime,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
	}
	base := "http://" + ln.Addr().String()
	mode := "authentication required (" + authCfg.Describe() + ")"
	if dev {
		mode = "DEV MODE: no authentication configured; every caller is a dev admin (loopback only)"
		log.Warn("dev mode: no authentication configured; every caller is a dev admin with all roles", "addr", ln.Addr().String())
	}
	// The profiling address listens before the banner says the gateway
	// serves, as the API's does: a client that reads the banner may use it.
	var pl net.Listener
	if cfg.PprofAddr != "" {
		var err error
		if pl, err = net.Listen("tcp", cfg.PprofAddr); err != nil {
			return usageError{fmt.Errorf("--pprof-addr %s: %w", cfg.PprofAddr, err)}
		}
	}
	fmt.Fprintf(stdout, "meshgate %s serving %s\n  mode     %s\n  GraphQL  %s/graphql\n  health   %s/healthz  %s/readyz\n  metrics  %s/metrics\n  kafka    %s (topics %s.<product>.<table>)\n",
		version, productNames(), mode, base, base, base, base, strings.Join(kafka.Brokers, ","), cfg.TopicPrefix)

	// The components run on a context of their own: a signal (ctx) starts
	// the graceful shutdown, which stops them in order; a component that
	// fails (gctx) stops everything at once.
	g, gctx := errgroup.WithContext(context.WithoutCancel(ctx))
	relayCtx, stopRelays := context.WithCancel(gctx)
	consumerCtx, stopConsumers := context.WithCancel(gctx)
	defer stopRelays()
	defer stopConsumers()
	var relaysDone, consumersDone sync.WaitGroup
	stopped := make(chan struct{}) // closed when the shutdown is over
	if pl != nil {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		ps := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error {
			if err := ps.Serve(pl); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		g.Go(func() error {
			select {
			case <-gctx.Done():
			case <-stopped:
			}
			return ps.Close()
		})
	}
	hubCtx, stopHub := context.WithCancel(gctx)
	defer stopHub()
	g.Go(func() error { return hub.Run(hubCtx) })
	for _, s := range mesh.Stores {
		// Its first turn analyzes what seeding just wrote; it stops with
		// the hub, at the end of the shutdown.
		g.Go(func() error { s.Upkeep(hubCtx, cfg.AnalyzeInterval, log); return nil })
	}
	for _, c := range consumers {
		consumersDone.Add(1)
		g.Go(func() error { defer consumersDone.Done(); return c.Run(consumerCtx) })
	}
	for _, relay := range relays {
		relaysDone.Add(1)
		g.Go(func() error { defer relaysDone.Done(); return relay.Run(relayCtx) })
	}
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		defer close(stopped)
		defer stopHub()
		select {
		case <-ctx.Done():
		case <-gctx.Done():
			// A component failed: no graceful shutdown.
			srv.Close()
			sockets.Shutdown(gctx)
			return nil
		}
		return shutdown(ctx, cfg.ShutdownTimeout, log, shutdownSteps{
			srv: srv, hub: hub, sockets: sockets, relays: relays,
			stopRelays: func() { stopRelays(); relaysDone.Wait() }, stopConsumers: func() { stopConsumers(); consumersDone.Wait() },
		})
	})
	return g.Wait()
}

// shutdownSteps are what a graceful shutdown stops.
type shutdownSteps struct {
	srv           *http.Server
	hub           *streaming.Hub
	sockets       *web.Websockets
	relays        []*streaming.Relay
	stopRelays    func() // cancels the relays' Run and waits for them
	stopConsumers func() // cancels the consumers' Run and waits for them
}

// shutdown stops the gateway gracefully within timeout, in this order:
//
//  1. stop accepting connections and let the HTTP requests in flight
//     finish (http.Server.Shutdown); at the same time end every
//     subscription with a last message carrying its cursor (Hub.Drain:
//     UNAVAILABLE, extensions.cursor, then complete) and close each
//     websocket with 1001 going away once its operations have ended, on
//     which clients reconnect — to another instance — and resume with
//     since: cursor;
//  2. flush the relays: publish what the requests committed;
//  3. stop the consumers: their sessions end and commit the offsets of
//     what they applied.
//
// Requests and websockets that do not finish in time are cut off, and
// shutdown returns an error saying so. A relay that cannot publish (Kafka
// unreachable, time up) only logs it: its entries stay in the outbox for
// the next instance to run, and offsets not committed mean redeliveries
// that consumers skip by position; nothing is lost.
func shutdown(ctx context.Context, timeout time.Duration, log *slog.Logger, s shutdownSteps) error {
	start := time.Now()
	log.Info("shutting down", "timeout", timeout, "websockets", s.sockets.Len())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	var problems []error
	s.hub.Drain()
	var wsErr error
	var wg sync.WaitGroup
	wg.Go(func() { wsErr = s.sockets.Shutdown(sctx) })
	if err := s.srv.Shutdown(sctx); err != nil {
		s.srv.Close()
		problems = append(problems, fmt.Errorf("requests in flight did not finish: %w", err))
	}
	wg.Wait()
	if wsErr != nil {
		problems = append(problems, fmt.Errorf("websockets did not end their operations: %w", wsErr))
	}
	log.Info("shutdown: requests finished, websockets closed", "took", time.Since(start).Round(time.Millisecond))
	s.stopRelays()
	for _, r := range s.relays {
		if err := r.Flush(sctx); err != nil {
			// Nothing is lost: the entries stay in the outbox.
			log.Warn("shutdown: could not publish what is committed; the next instance to run publishes it",
				"product", r.Store.Product.Name, "error", err)
		}
	}
	s.stopConsumers()
	if len(problems) > 0 {
		return fmt.Errorf("graceful shutdown incomplete within --shutdown-timeout %s: %w", timeout, errors.Join(problems...))
	}
	log.Info("shutdown complete", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// auth is the authentication part of the configuration.
func (c *config) auth() auth.Config {
	return auth.Config{
		APIKeys: *c.APIKeys.keys, HS256Secret: c.JWTSecret, JWKSURL: c.JWKSURL, JWKSFile: c.JWKSFile,
		Issuer: c.JWTIssuer, Audience: c.JWTAudience, RolesClaim: c.JWTRolesClaim, SubjectClaim: c.JWTSubjectClaim,
		Leeway: c.JWTLeeway, JWKSMaxAge: c.JWKSMaxAge, JWKSMinInterval: c.JWKSMinRefresh,
	}
}

// isLoopback tells whether addr (host:port) listens on loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// runAPIKey is "meshgate apikey new": it prints a new random key, once,
// and the setting that makes the gateway accept it (its hash only).
func runAPIKey(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "new" {
		return usageError{errors.New("usage: meshgate apikey new [--name NAME] [--roles ROLE,…]")}
	}
	fs := flag.NewFlagSet("meshgate apikey new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "name of the key, recorded as apikey:<name> in audit entries (default: key-<random>)")
	roles := fs.String("roles", "", "roles the key grants, comma-separated")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	key, hash := auth.NewKey()
	if *name == "" {
		*name = "key-" + hash[len("sha256:"):len("sha256:")+8]
	}
	k := auth.APIKey{Name: *name, Hash: hash, Roles: splitList(*roles)}
	line := k.Name + "=" + k.Hash
	if len(k.Roles) > 0 {
		line += "=" + strings.Join(k.Roles, ",")
	}
	if _, err := auth.ParseAPIKeys(line); err != nil {
		return usageError{err}
	}
	yamlRoles, _ := json.Marshal(k.Roles)
	if k.Roles == nil {
		yamlRoles = []byte("[]")
	}
	fmt.Fprintf(stdout, "API key %q (shown once: hand it to the client, keep it in a secret store):\n\n  %s\n\n"+
		"Clients send:  Authorization: Bearer %s\n\n"+
		"Configure the gateway with its hash (not the key), as a flag or MESHGATE_API_KEY:\n\n  --api-key '%s'\n\n"+
		"or in the --config file:\n\n  api-key:\n    - {name: %q, hash: %q, roles: %s}\n",
		k.Name, key, key, line, k.Name, k.Hash, yamlRoles)
	return nil
}

// splitList splits a comma-separated setting, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// product returns the registered product of the name, or nil.
func product(name string) *products.Product {
	for _, p := range demo.Products {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// replayable lists the derived products: those that can rebuild what they
// derived (products.Product.Reset).
func replayable() []string {
	return productsWhere(func(p *products.Product) bool { return p.Reset != nil })
}

// productsWhere lists, sorted, the names of the registered products for
// which keep is true.
func productsWhere(keep func(*products.Product) bool) []string {
	var out []string
	for _, p := range demo.Products {
		if keep(p) {
			out = append(out, p.Name)
		}
	}
	sort.Strings(out)
	return out
}

// runReplay rebuilds product name from the beginning of its inputs and
// reports progress on stdout. With the embedded broker (private to the
// replay, empty) the replay publishes the inputs' audit logs to it itself;
// with a Kafka cluster the relays run so that the topics hold every change,
// and the replay fails, saying why, if the topics lost their beginning.
func runReplay(ctx context.Context, name string, mesh *products.Mesh, consumers []*streaming.Consumer,
	publisher *streaming.Publisher, codec streaming.Codec, embedded, maskPII bool, log *slog.Logger, stdout io.Writer) error {
	var consumer *streaming.Consumer
	for _, c := range consumers {
		if c.Store.Product.Name == name {
			consumer = c
		}
	}
	if consumer == nil {
		return usageError{fmt.Errorf("%s reacts to no other product", name)}
	}
	rctx, cancel := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(rctx)
	opts := streaming.ReplayOptions{}
	if embedded {
		opts.Publish = publisher
	} else {
		for _, s := range mesh.Stores {
			relay := &streaming.Relay{Store: s, Sender: publisher, Codec: codec, Log: log, MaskPII: maskPII}
			g.Go(func() error { return relay.Run(gctx) })
		}
	}
	sources := map[string]*products.Store{}
	for _, s := range mesh.Stores {
		sources[s.Product.Name] = s
	}
	opts.Progress = func(p streaming.ReplayProgress) {
		pct := 100.0
		if p.Total > 0 {
			pct = 100 * float64(p.Done) / float64(p.Total)
		}
		switch p.Phase {
		case "publishing":
			fmt.Fprintf(stdout, "replay %s: %d of %d changes published to the private broker (%.0f%%)\n", name, p.Done, p.Total, pct)
		case "waiting":
			fmt.Fprintf(stdout, "replay %s: waiting for the relays to publish %d changes\n", name, p.Total)
		default:
			fmt.Fprintf(stdout, "replay %s: %d of %d changes applied (%.0f%%)\n", name, p.Done, p.Total, pct)
		}
	}
	start := time.Now()
	err := streaming.Replay(gctx, consumer, mesh.Product(name).Reset, sources, opts)
	cancel()
	if gerr := g.Wait(); err == nil {
		err = gerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "replay %s: done in %s\n", name, time.Since(start).Round(time.Millisecond))
	return nil
}

// streamMetrics exposes the streaming figures on /metrics, computed at
// scrape time from counters: per reacting product and source, the changes
// not applied yet (meshgate_consumer_lag) and the source sequence applied
// (meshgate_consumer_applied_sequence), read from a few counter rows the
// stores keep as they commit (never a count over an audit log); and the
// counters of the relays, consumers and hub of this process.
//
// Besides: per product, the relay's backlog (unpublished entries, from the
// same counters), whether its last attempt failed, and the time from a
// change's commit to Kafka's acknowledgement (a histogram the relays feed);
// the hub's active subscriptions, slow subscribers dropped and store reads
// retried; and each store's connection pool (database/sql's DBStats).
type streamMetrics struct {
	mesh      *products.Mesh
	consumers []*streaming.Consumer
	relays    []*streaming.Relay
	hub       *streaming.Hub

	lag, appliedSeq, published, restarts, applied, duplicates, hubReads, deadLettered *prometheus.Desc
	appliedEvents, applySeconds, batches                                              *prometheus.Desc
	backlog, relayFailing, relayFailures, subscriptions, drops, storeRetries          *prometheus.Desc
	poolOpen, poolInUse, poolIdle, poolMax, poolWaits, poolWaitSeconds                *prometheus.Desc
	publishLatency                                                                    *prometheus.HistogramVec
}

func newStreamMetrics(mesh *products.Mesh, consumers []*streaming.Consumer, relays []*streaming.Relay, hub *streaming.Hub) *streamMetrics {
	ps := []string{"product", "source"}
	p := []string{"product"}
	m := &streamMetrics{
		mesh: mesh, consumers: consumers, relays: relays, hub: hub,
		backlog:         prometheus.NewDesc("meshgate_relay_backlog", "Audit entries of the product not yet published to Kafka (-1: the store could not be read).", p, nil),
		relayFailing:    prometheus.NewDesc("meshgate_relay_failing", "1 while this instance's relay's last attempt to publish failed.", p, nil),
		relayFailures:   prometheus.NewDesc("meshgate_relay_failures_total", "Failed publish attempts of this instance's relay.", p, nil),
		subscriptions:   prometheus.NewDesc("meshgate_subscriptions_active", "Subscriptions this instance's hub feeds.", nil, nil),
		drops:           prometheus.NewDesc("meshgate_subscriptions_dropped_total", "Subscriptions ended because they fell behind (SLOW_CONSUMER) or their filter failed.", nil, nil),
		storeRetries:    prometheus.NewDesc("meshgate_subscription_store_retries_total", "Subscription reads of an audit log repeated while its store was unreachable.", nil, nil),
		poolOpen:        prometheus.NewDesc("meshgate_store_connections_open", "Open connections of the store's pool.", p, nil),
		poolInUse:       prometheus.NewDesc("meshgate_store_connections_in_use", "Connections of the store's pool in use.", p, nil),
		poolIdle:        prometheus.NewDesc("meshgate_store_connections_idle", "Idle connections of the store's pool.", p, nil),
		poolMax:         prometheus.NewDesc("meshgate_store_connections_max", "Most connections the store's pool opens (0: unlimited).", p, nil),
		poolWaits:       prometheus.NewDesc("meshgate_store_connection_waits_total", "Times a statement waited for a free connection of the store's pool.", p, nil),
		poolWaitSeconds: prometheus.NewDesc("meshgate_store_connection_wait_seconds_total", "Time statements waited for a free connection of the store's pool.", p, nil),
		publishLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meshgate_relay_publish_latency_seconds",
			Help:    "Time from a change's commit to Kafka's acknowledgement of its event, by product (published by this instance).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, p),
		lag:        prometheus.NewDesc("meshgate_consumer_lag", "Changes of the source not yet applied by the reacting product.", ps, nil),
		appliedSeq: prometheus.NewDesc("meshgate_consumer_applied_sequence", "Highest source sequence applied by the reacting product.", ps, nil),
		published:  prometheus.NewDesc("meshgate_relay_published_total", "Audit entries this instance's relay published.", p, nil),
		restarts:   prometheus.NewDesc("meshgate_relay_restarts_total", "Times this instance's relay published the whole log again (a new Kafka cluster).", p, nil),
		applied:    prometheus.NewDesc("meshgate_consumer_applied_total", "Changes of other products this instance applied.", p, nil),
		appliedEvents: prometheus.NewDesc("meshgate_consumer_events_applied_total",
			"Changes of the source this instance applied to the reacting product (redeliveries skipped): its rate is the reaction's throughput.", ps, nil),
		applySeconds: prometheus.NewDesc("meshgate_consumer_apply_seconds_total",
			"Time this instance spent applying batches of the reacting product (at least one in progress, waiting for its turn included).", p, nil),
		batches: prometheus.NewDesc("meshgate_consumer_batches_total",
			"Batches of changes this instance applied to the reacting product in one transaction each.", p, nil),
		duplicates:   prometheus.NewDesc("meshgate_consumer_duplicates_total", "Redelivered changes this instance skipped (applied before).", p, nil),
		hubReads:     prometheus.NewDesc("meshgate_hub_log_reads_total", "Audit log reads of the subscription hub (out-of-order arrivals, reconnects).", nil, nil),
		deadLettered: prometheus.NewDesc("meshgate_dead_lettered_total", "Events of the source this instance parked after the reacting product's reaction failed on them (see meshgate dlq).", ps, nil),
	}
	for _, r := range relays {
		h := m.publishLatency.WithLabelValues(r.Store.Product.Name)
		r.OnPublished = func(entries []products.AuditEntry) {
			now := time.Now()
			for i := range entries {
				h.Observe(now.Sub(entries[i].At).Seconds())
			}
		}
	}
	return m
}

// Describe sends the metrics' descriptions.
func (m *streamMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.lag, m.appliedSeq, m.published, m.restarts, m.applied, m.duplicates, m.hubReads, m.deadLettered,
		m.appliedEvents, m.applySeconds, m.batches,
		m.backlog, m.relayFailing, m.relayFailures, m.subscriptions, m.drops, m.storeRetries,
		m.poolOpen, m.poolInUse, m.poolIdle, m.poolMax, m.poolWaits, m.poolWaitSeconds} {
		ch <- d
	}
	m.publishLatency.Describe(ch)
}

// Collect computes the figures; a lag that cannot be read is -1.
func (m *streamMetrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, c := range m.consumers {
		product := c.Store.Product.Name
		lags, err := c.Lag(ctx, m.mesh.Store)
		if err != nil {
			seen := map[string]bool{}
			for _, in := range c.Reaction.Inputs {
				if !seen[in.Product] {
					seen[in.Product] = true
					ch <- prometheus.MustNewConstMetric(m.lag, prometheus.GaugeValue, -1, product, in.Product)
				}
			}
		}
		for _, l := range lags {
			ch <- prometheus.MustNewConstMetric(m.lag, prometheus.GaugeValue, float64(l.Pending), l.Product, l.Source)
			ch <- prometheus.MustNewConstMetric(m.appliedSeq, prometheus.GaugeValue, float64(l.AppliedSequence), l.Product, l.Source)
		}
		ch <- prometheus.MustNewConstMetric(m.applied, prometheus.CounterValue, float64(c.Applied()), product)
		ch <- prometheus.MustNewConstMetric(m.duplicates, prometheus.CounterValue, float64(c.Duplicates()), product)
		ch <- prometheus.MustNewConstMetric(m.applySeconds, prometheus.CounterValue, c.Busy().Seconds(), product)
		ch <- prometheus.MustNewConstMetric(m.batches, prometheus.CounterValue, float64(c.Batches()), product)
		bySource := c.AppliedBySource()
		seenApplied := map[string]bool{}
		for _, in := range c.Reaction.Inputs {
			if !seenApplied[in.Product] {
				seenApplied[in.Product] = true
				ch <- prometheus.MustNewConstMetric(m.appliedEvents, prometheus.CounterValue, float64(bySource[in.Product]), product, in.Product)
			}
		}
		parked := c.DeadLettered()
		seen := map[string]bool{}
		for _, in := range c.Reaction.Inputs {
			if !seen[in.Product] {
				seen[in.Product] = true
				ch <- prometheus.MustNewConstMetric(m.deadLettered, prometheus.CounterValue, float64(parked[in.Product]), product, in.Product)
			}
		}
	}
	for _, r := range m.relays {
		name := r.Store.Product.Name
		ch <- prometheus.MustNewConstMetric(m.published, prometheus.CounterValue, float64(r.Published()), name)
		ch <- prometheus.MustNewConstMetric(m.restarts, prometheus.CounterValue, float64(r.Restarts()), name)
		ch <- prometheus.MustNewConstMetric(m.relayFailures, prometheus.CounterValue, float64(r.Failures()), name)
		failing := 0.0
		if r.Failing() != nil {
			failing = 1
		}
		ch <- prometheus.MustNewConstMetric(m.relayFailing, prometheus.GaugeValue, failing, name)
		// Two counter rows (the published prefix, the log's position):
		// never a count over the log.
		pending, _, err := r.Store.Backlog(ctx)
		if err != nil {
			pending = -1
		}
		ch <- prometheus.MustNewConstMetric(m.backlog, prometheus.GaugeValue, float64(pending), name)
	}
	m.publishLatency.Collect(ch)
	for _, s := range m.mesh.Stores {
		st := s.DB.Stats()
		name := s.Product.Name
		ch <- prometheus.MustNewConstMetric(m.poolOpen, prometheus.GaugeValue, float64(st.OpenConnections), name)
		ch <- prometheus.MustNewConstMetric(m.poolInUse, prometheus.GaugeValue, float64(st.InUse), name)
		ch <- prometheus.MustNewConstMetric(m.poolIdle, prometheus.GaugeValue, float64(st.Idle), name)
		ch <- prometheus.MustNewConstMetric(m.poolMax, prometheus.GaugeValue, float64(st.MaxOpenConnections), name)
		ch <- prometheus.MustNewConstMetric(m.poolWaits, prometheus.CounterValue, float64(st.WaitCount), name)
		ch <- prometheus.MustNewConstMetric(m.poolWaitSeconds, prometheus.CounterValue, st.WaitDuration.Seconds(), name)
	}
	if m.hub != nil {
		hs := m.hub.Stats()
		ch <- prometheus.MustNewConstMetric(m.hubReads, prometheus.CounterValue, float64(hs.HubReads))
		ch <- prometheus.MustNewConstMetric(m.subscriptions, prometheus.GaugeValue, float64(hs.Subscribers))
		ch <- prometheus.MustNewConstMetric(m.drops, prometheus.CounterValue, float64(hs.Dropped))
		ch <- prometheus.MustNewConstMetric(m.storeRetries, prometheus.CounterValue, float64(hs.StoreRetries))
	}
}

// runConfigCheck is "meshgate config check": it reads the configuration as
// the server does (file, MESHGATE_* variables, flags) and checks it without
// opening stores or connecting to Kafka or the JWKS URL. Problems come back
// as one usageError listing them all (exit status 2); a good configuration
// prints a short summary.
func runConfigCheck(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return usageError{errors.New("usage: meshgate config check [--config file] [flags]")}
	}
	cfg, err := parseConfig(args[1:], getenv, stderr)
	if err != nil {
		return err
	}
	source := "defaults, MESHGATE_* variables and flags"
	if cfg.file != "" {
		source = cfg.file
	}
	authCfg := cfg.auth()
	mode := authCfg.Describe()
	if !authCfg.Configured() {
		mode = "none: dev mode, every caller is a dev admin (loopback only)"
	}
	kafka := cfg.KafkaBrokers
	if kafka == "" {
		kafka = "embedded broker on " + cfg.EmbeddedKafkaAddr
	}
	kafka += fmt.Sprintf(" (topics %s.<product>.<table>, %d partitions, replication %d", cfg.TopicPrefix, cfg.TopicPartitions, cfg.TopicReplication)
	if cfg.KafkaTLS || cfg.KafkaTLSCA != "" || cfg.KafkaTLSCert != "" {
		kafka += ", TLS"
	}
	if cfg.KafkaSASL != "" {
		kafka += ", SASL " + cfg.KafkaSASL
	}
	kafka += ")"
	fmt.Fprintf(stdout, "configuration OK (%s)\n  addr            %s\n  authentication  %s\n  row policies    %d\n  kafka           %s\n  stores\n",
		source, cfg.Addr, mode, len(*cfg.Policies.rules), kafka)
	for _, d := range demo.Products {
		fmt.Fprintf(stdout, "    %-12s  %s\n", d.Name, products.RedactDSN(cfg.dsn(d.Name)))
	}
	fmt.Fprintf(stdout, "  shutdown        within %s\nNothing was opened or connected to: stores, Kafka and the JWKS URL are checked at start.\n", cfg.ShutdownTimeout)
	return nil
}

// runDLQ is "meshgate dlq list|retry <product>": it lists a reacting
// product's dead letters (the events its reaction failed on and parked),
// or retries them: each is applied through the reaction exactly once and
// marked resolved, even while gateways run on the same stores. It opens
// the stores like the gateway (the same flags, environment and --config)
// and needs no Kafka.
func runDLQ(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	usage := usageError{fmt.Errorf("usage: meshgate dlq list <product> [--status PARKED|RESOLVED] [flags]\n"+
		"       meshgate dlq retry <product> (--id N[,N…] | --all) [flags]\n"+
		"(flags: the gateway's store settings: --data-dir, --store, --postgres or --config); products with reactions: %s", strings.Join(reacting(), ", "))}
	if len(args) < 2 || (args[0] != "list" && args[0] != "retry") || strings.HasPrefix(args[1], "-") {
		return usage
	}
	cmd, name := args[0], args[1]
	p := product(name)
	if p == nil || p.Reaction == nil {
		return usageError{fmt.Errorf("%q reacts to no other product, so it has no dead letters; products with reactions: %s", name, strings.Join(reacting(), ", "))}
	}
	// Its own flags are taken out; the rest are the gateway's.
	var ids []int64
	var all bool
	var status string
	var rest []string
	for i := 2; i < len(args); i++ {
		flagName, value, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") || (flagName != "id" && flagName != "all" && flagName != "status") {
			rest = append(rest, args[i])
			continue
		}
		if flagName == "all" {
			all = !hasValue || value == "true"
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return usageError{fmt.Errorf("--%s needs a value", flagName)}
			}
			i++
			value = args[i]
		}
		if flagName == "status" {
			status = strings.ToUpper(value)
			continue
		}
		for _, v := range splitList(value) {
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil || id < 1 {
				return usageError{fmt.Errorf("--id takes dead letter ids (see meshgate dlq list %s), got %q", name, v)}
			}
			ids = append(ids, id)
		}
	}
	switch {
	case cmd == "list" && (len(ids) > 0 || all):
		return usageError{fmt.Errorf("dlq list takes no --id or --all; use --status PARKED or RESOLVED")}
	case cmd == "retry" && status != "":
		return usageError{fmt.Errorf("dlq retry takes no --status; it retries parked dead letters")}
	case cmd == "retry" && len(ids) > 0 && all:
		return usageError{fmt.Errorf("give --id or --all, not both")}
	case cmd == "retry" && len(ids) == 0 && !all:
		return usageError{fmt.Errorf("name the dead letters to retry with --id N[,N…] (see meshgate dlq list %s), or retry every parked one with --all", name)}
	}
	if status != "" && status != products.Parked && status != products.Resolved {
		return usageError{fmt.Errorf("--status must be %s or %s, got %q", products.Parked, products.Resolved, status)}
	}
	cfg, err := parseConfig(rest, getenv, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level: %w", err)}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	mesh, err := demo.Open(ctx, cfg.dsn)
	if err != nil {
		return usageError{fmt.Errorf("%w\n(fix the store settings: --data-dir, --store product=DSN or --postgres)", err)}
	}
	defer mesh.Close()
	var consumer *streaming.Consumer
	for _, c := range streaming.Consumers(mesh, streaming.Codec{Prefix: cfg.TopicPrefix, Version: version}, streaming.KafkaConfig{}, log) {
		if c.Store.Product.Name == name {
			consumer = c
		}
	}
	var letters []products.DeadLetter
	if cmd == "list" {
		if letters, err = consumer.Store.DeadLetters(ctx, products.DeadLetterQuery{Status: status}); err != nil {
			return err
		}
	} else {
		actor := "cli"
		if u := getenv("USER"); u != "" {
			actor += ":" + u
		}
		var b [8]byte
		rand.Read(b[:])
		rctx := products.WithRequestID(products.WithActor(ctx, actor), "cli-"+hex.EncodeToString(b[:]))
		if letters, err = consumer.Retry(rctx, ids); err != nil {
			if products.ErrorCode(err) == products.NotFound {
				return usageError{err}
			}
			return err
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tPOSITION\tENTITY\tKEY\tSOURCE\tATTEMPTS\tLAST FAILURE\tREASON")
	var parked int
	for _, d := range letters {
		if d.Status == products.Parked {
			parked++
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s/%d@%d\t%d\t%s\t%s\n", d.ID, d.Status, d.Position(), d.Entity, d.Key,
			d.Topic, d.Partition, d.Offset, d.Attempts, d.LastFailureAt.Format(time.RFC3339), d.Reason)
	}
	tw.Flush()
	if cmd == "retry" {
		fmt.Fprintf(stdout, "dlq retry %s: %d applied, %d still parked\n", name, len(letters)-parked, parked)
		if parked > 0 {
			return fmt.Errorf("dlq retry %s: %d of %d dead letters failed again (reasons above); fix the cause and retry", name, parked, len(letters))
		}
	}
	return nil
}

// reacting lists the products that react to others (and may park events).
func reacting() []string {
	return productsWhere(func(p *products.Product) bool { return p.Reaction != nil })
}
