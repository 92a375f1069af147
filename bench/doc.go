// Package bench holds meshgate's benchmarks. None of them runs in CI.
//
// The side-by-side comparison of issue 12 is the program bench/compare: it
// builds meshgate and runs it as its own process on a fresh PostgreSQL
// database (and on SQLite), next to PostGraphile v5 (installed from
// bench/peers into $HOME/.cache/meshgate-bench with npm ci, Node 22 from the
// npm package node@22) and pgbench replaying the SQL meshgate issued,
// captured through a PostgreSQL protocol proxy; wrk drives HTTP. It checks
// that meshgate and PostGraphile answer alike before timing, interleaves
// rounds, and prints rps, p50, p99, ratios, SQL statements per request,
// PostgreSQL sessions opened, and CPU profiles of meshgate:
//
//	go run ./bench/compare                       # everything (about 30 min at scale 1)
//	go run ./bench/compare nested-read           # one scenario: nested-read, large-result,
//	                                             # point-lookup, place-order, catch-up,
//	                                             # encode, kafka, fanout
//	go run ./bench/compare -scale 5 -duration 20s -rounds 3   # the setting
//
// In-process Go benchmarks, which bench/compare also runs (encode, kafka,
// fanout):
//
//   - BenchmarkEncode: meshgate's GraphQL executor answering 10,000
//     customers × 8 fields held in memory against encoding/json of the
//     same structs (issue 12, large result).
//
// The change-capture benchmarks (issue 3, item 7) measure meshgate against
// a baseline in the same run and report the ratio:
//
//   - BenchmarkMutationVsPgbench: transactions/s of the meshgate write path
//     (customers.Store.Create: entity insert + audit insert + counter
//     update, 8 concurrent writers for 5 s) against pgbench running the
//     same SQL (-c 8 -j 2 -T 5) on the same PostgreSQL. Needs
//     MESHGATE_TEST_POSTGRES and pgbench.
//   - BenchmarkCommitToKafka: commit-to-ack and commit-to-consumer latency
//     p50/p99 at a fixed 1,000 mutations/s (MESHGATE_KAFKA_RATE) for 3 s,
//     on SQLite and (with MESHGATE_TEST_POSTGRES) PostgreSQL, one instance
//     and two on one store, through the embedded broker; the ratio of the
//     ack p99 to issue 12's 20 ms (target A).
//   - BenchmarkRelayPublish: entries/s through Store.Outbox and the
//     Publisher against a raw sarama SyncProducer sending the same bytes to
//     the same broker.
//   - BenchmarkStoreDriver: the PostgreSQL driver under bun alone (pool
//     fixed at 8): point selects and the write path's insert transaction
//     from 1 and 8 clients, ops/s and client CPU per op.
//   - BenchmarkPoolRead: 16 and 64 concurrent point-select clients on a
//     store's pool as products.Open sizes it (--pg-max-conns, a DSN's
//     pool_max_conns): reads/s and the sessions the pool opened.
//
// and the subscription fan-out benchmark (issue 4, item 6), which has no
// peer here and reports absolute numbers:
//
//   - BenchmarkFanout: 1,000 / 5,000 / 10,000 websocket subscribers of
//     changes(products: ["customers"]) on one gateway (assembled as run()
//     does, served with httptest; the subscribers live in a child process
//     of the test binary) while customers are updated at 20/s
//     (MESHGATE_FANOUT_RATE) for 5 s:
//     commit-to-client latency p50/p99 over all deliveries, deliveries/s,
//     server CPU per delivery, heap + stacks per idle subscription.
//     MESHGATE_FANOUT_SUBSCRIBERS picks the counts (-bench Fanout).
//   - BenchmarkFilteredFanout (issue 9, item 3): 1,000 subscribers of
//     orderChanged(where: {customerId: {eq: K}}) matching about 1% of 200
//     orders/s, against 10 unfiltered subscribers with the same delivery
//     rate: SQL statements on the subscription path per delivered event,
//     commit-to-client p50/p99 of both; SQLite, then PostgreSQL.
//   - BenchmarkSubscriberLatency (issue 12, target B): on PostgreSQL,
//     commit-to-subscriber p99 with 1,000 websocket subscribers while
//     orders are placed at 200/s, each subscriber filtered to about 1 %
//     of them or getting all; the ratio to 50 ms.
//   - BenchmarkCatchUp (issue 12, target C): on PostgreSQL, each reaction
//     (inventory, shipments, orders, sales) catching up alone on the
//     seeded demo's backlog: events applied per second and the ratio to
//     5,000/s, SQL statements per batch, changes written per event.
//   - BenchmarkRestart (issue 9, item 5): the binary restarted over an
//     existing data directory: time to /healthz, then to nothing
//     unpublished and zero lag, and to the first reaction
//     (MESHGATE_RESTART_SCALES, MESHGATE_RESTART_BIN).
//
// and the hostile-input benchmark (issue 11, item 7):
//
//   - BenchmarkHostileDocuments: CPU per request of the worst GraphQL
//     documents for the parser and validator (repeated fields, aliases,
//     fragment bombs and cycles, directives, deep nesting, huge strings)
//     through the handler with the default limits; fails above 50 ms.
//
// The soak of issue 13 (item 8) is the program bench/soak: one meshgate
// process on PostgreSQL under mixed load with subscription churn for
// -duration (10 minutes by default); it reports error counts, p99 drift,
// goroutine and heap slope, and the reconciliation of the books
// (internal/meshtest):
//
//	MESHGATE_TEST_POSTGRES=… go run ./bench/soak -duration 10m
//
// Each benchmark measures for a fixed time or amount of work and runs once:
//
//	MESHGATE_TEST_POSTGRES='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	  go test -run XXX -bench . -benchtime 1x ./bench/
package bench
