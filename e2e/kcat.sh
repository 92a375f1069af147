#!/usr/bin/env bash
# Change events through kcat: performs a few mutations over GraphQL, then
# reads the change topics from the server's Kafka broker (the embedded one
# on 127.0.0.1:9092 unless MESHGATE_E2E_KAFKA says otherwise) with kcat, a
# client nobody here wrote, and checks topic, key, Debezium envelope,
# CloudEvents headers and that source.sequence increases.
#
# Usage: bash e2e/kcat.sh http://127.0.0.1:PORT   (run by e2e/run.sh)
# Needs curl, kcat and node (for JSON). Ends with `N passed, M failed`.
set -uo pipefail

BASE=${1:-${MESHGATE_E2E_URL:-}}
BASE=${BASE%/}
BROKER=${MESHGATE_E2E_KAFKA:-127.0.0.1:9092}
PREFIX=${MESHGATE_E2E_TOPIC_PREFIX:-meshgate}
READ_TIMEOUT=${MESHGATE_E2E_KCAT_TIMEOUT:-30}   # seconds to wait for the events

if [[ ! "$BASE" =~ ^https?:// ]]; then
  echo "usage: bash e2e/kcat.sh http://HOST:PORT" >&2
  exit 2
fi
for tool in curl kcat node; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "kcat suite: $tool is not installed" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
done

TMP=$(mktemp -d "${MESHGATE_E2E_TMP:-${TMPDIR:-/tmp}}/kcat.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok    $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*"; }
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

# json EXPR FILE: evaluates a JavaScript expression over the JSON in FILE
# (as `d`) and prints the result (strings bare, anything else as JSON).
json() {
  node -e '
    const d = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
    const v = (0, eval)("(d) => (" + process.argv[1] + ")")(d);
    if (v !== undefined && v !== null) console.log(typeof v === "string" ? v : JSON.stringify(v));
  ' "$1" "$2"
}

# gql REQUEST_ID QUERY OUT: posts a GraphQL request with an X-Request-Id.
gql() {
  local body
  body=$(node -e 'console.log(JSON.stringify({query: process.argv[1]}))' "$2")
  curl -sS --max-time 20 -o "$3" -w '%{http_code}' \
    -H 'Content-Type: application/json' -H 'Accept: application/graphql-response+json' \
    -H "X-Request-Id: $1" --data "$body" "$BASE/graphql"
}

TAG="e2e-kcat-$$-$RANDOM"
EMAIL="kim.lee.$$.$RANDOM@example.org"

# ---------------------------------------------------------------------------
# Mutations
status=$(gql "$TAG-1" "mutation { createCustomer(input: {name: \"Kim Lee\", email: \"$EMAIL\", country: \"DE\", segment: CONSUMER}) { id } }" "$TMP/create.json")
CUSTOMER=$(json 'd.data && d.data.createCustomer && d.data.createCustomer.id' "$TMP/create.json" 2>/dev/null)
if [ "$status" = 200 ] && [ -n "$CUSTOMER" ]; then
  ok "createCustomer -> id $CUSTOMER"
else
  fail "createCustomer: HTTP $status $(head -c 400 "$TMP/create.json")"
  finish
fi

status=$(gql "$TAG-2" "mutation { updateCustomer(id: \"$CUSTOMER\", input: {segment: ENTERPRISE}) { id segment } }" "$TMP/update.json")
if [ "$status" = 200 ] && [ "$(json 'd.data && d.data.updateCustomer && d.data.updateCustomer.segment' "$TMP/update.json" 2>/dev/null)" = ENTERPRISE ]; then
  ok "updateCustomer $CUSTOMER -> ENTERPRISE"
else
  fail "updateCustomer: HTTP $status $(head -c 400 "$TMP/update.json")"
fi

status=$(gql "$TAG-3" "mutation { placeOrder(customerId: \"$CUSTOMER\", lines: [{itemId: \"1\", quantity: 2}, {itemId: \"2\", quantity: 1}]) { id } }" "$TMP/order.json")
ORDER=$(json 'd.data && d.data.placeOrder && d.data.placeOrder.id' "$TMP/order.json" 2>/dev/null)
if [ "$status" = 200 ] && [ -n "$ORDER" ]; then
  ok "placeOrder for customer $CUSTOMER -> order $ORDER"
else
  fail "placeOrder: HTTP $status $(head -c 400 "$TMP/order.json")"
fi

# ---------------------------------------------------------------------------
# Read the topics with kcat until our events are there (or the deadline).
T_CUSTOMERS="$PREFIX.customers.customers"
T_ORDERS="$PREFIX.orders.orders"
T_LINES="$PREFIX.orders.order_lines"

# read_topic TOPIC: all records of TOPIC as a JSON array in $TMP/TOPIC.json.
read_topic() {
  local out="$TMP/$1.jsonl"
  if ! timeout 20 kcat -b "$BROKER" -C -t "$1" -o beginning -e -q -J -X fetch.wait.max.ms=50 >"$out" 2>"$TMP/$1.err"; then
    : >"$out"
  fi
  node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
    console.log(JSON.stringify(lines.map((l) => JSON.parse(l))));
  ' "$out" >"$TMP/$1.json"
}

# count TOPIC REQUEST_ID_PREFIX: records of TOPIC whose requestId starts so.
# The events of this run's own requests: reactions to them (inventory
# reserving stock, then orders marking the order RESERVED) carry the same
# request id, with the actor reaction:<product>, and are not counted.
count() {
  json "d.filter((r) => { try { const e = JSON.parse(r.payload); return e.requestId.startsWith('$2') && !e.actor.startsWith('reaction:'); } catch (e) { return false; } }).length" "$TMP/$1.json"
}

want_customers=2 want_orders=1 want_lines=2
[ -n "$ORDER" ] || want_orders=0 want_lines=0
deadline=$((SECONDS + READ_TIMEOUT))
while :; do
  read_topic "$T_CUSTOMERS"
  read_topic "$T_ORDERS"
  read_topic "$T_LINES"
  nc=$(count "$T_CUSTOMERS" "$TAG-")
  no=$(count "$T_ORDERS" "$TAG-")
  nl=$(count "$T_LINES" "$TAG-")
  if [ "$nc" -ge "$want_customers" ] && [ "$no" -ge "$want_orders" ] && [ "$nl" -ge "$want_lines" ]; then
    break
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "after ${READ_TIMEOUT}s kcat read $nc/$want_customers customer, $no/$want_orders order, $nl/$want_lines order-line events of this run" >&2
    for t in "$T_CUSTOMERS" "$T_ORDERS" "$T_LINES"; do
      [ -s "$TMP/$t.err" ] && echo "kcat $t: $(head -c 300 "$TMP/$t.err")" >&2
    done
    break
  fi
  sleep 0.5
done
if [ "$nc" -ge "$want_customers" ]; then
  ok "kcat read the $nc customer events from $T_CUSTOMERS"
else
  fail "kcat read $nc customer events from $T_CUSTOMERS, want $want_customers"
fi
if [ -n "$ORDER" ]; then
  if [ "$no" -ge 1 ]; then ok "kcat read the order event from $T_ORDERS"; else fail "kcat read no order event from $T_ORDERS"; fi
  if [ "$nl" -ge "$want_lines" ]; then
    ok "kcat read the $nl order-line events from $T_LINES"
  else
    fail "kcat read $nl order-line events from $T_LINES, want $want_lines"
  fi
fi

# ---------------------------------------------------------------------------
# Check the events. One node run per topic prints `ok …`/`FAIL …` lines.
check() {
  node - "$@" <<'EOF'
const [file, topic, product, table, entity, tag, keysJSON, specJSON] = process.argv.slice(2);
const records = JSON.parse(require('fs').readFileSync(file, 'utf8'));
const keys = JSON.parse(keysJSON); // ids whose events to check ([] = all of this run)
const spec = JSON.parse(specJSON); // [[requestId suffix, op], …] in expected order
const mine = records
  .map((r) => ({ ...r, env: JSON.parse(r.payload), keyObj: JSON.parse(r.key) }))
  .filter((r) => r.env.requestId.startsWith(tag + '-') && !r.env.actor.startsWith('reaction:'))
  .filter((r) => keys.length === 0 || keys.includes(String(r.keyObj.id)))
  .sort((a, b) => a.env.source.sequence - b.env.source.sequence);
const out = [];
const check = (cond, what) => out.push(`${cond ? 'ok  ' : 'FAIL'}  ${topic}: ${what}`);
check(mine.length === spec.length, `${mine.length} events of this run, want ${spec.length}`);
const verbs = { c: 'created', u: 'updated', d: 'deleted' };
let lastSeq = 0;
mine.forEach((r, i) => {
  const e = r.env, s = e.source || {};
  const h = {};
  for (let j = 0; j + 1 < (r.headers || []).length; j += 2) h[r.headers[j]] = r.headers[j + 1];
  const [suffix, op] = spec[i] || [];
  const what = `event ${i + 1} (sequence ${s.sequence})`;
  check(r.topic === topic, `${what} topic ${r.topic}`);
  check(/^\{"id":\d+\}$/.test(r.key), `${what} key ${r.key} is {"id":N}`);
  check(e.op === op, `${what} op ${e.op}, want ${op}`);
  check(e.requestId === `${tag}-${suffix}`, `${what} requestId ${e.requestId}, want ${tag}-${suffix}`);
  check(typeof e.actor === 'string' && e.actor !== '', `${what} actor ${e.actor}`);
  check(Number.isInteger(e.ts_ms) && Math.abs(Date.now() - e.ts_ms) < 3600e3, `${what} ts_ms ${e.ts_ms} is recent`);
  check(s.connector === 'meshgate' && s.db === product && s.table === table, `${what} source ${s.connector}/${s.db}/${s.table}`);
  check(Number.isInteger(s.sequence) && s.sequence > lastSeq, `${what} source.sequence ${s.sequence} > ${lastSeq}`);
  lastSeq = s.sequence;
  if (op === 'c') check(e.before === null && e.after && String(e.after.id) === String(r.keyObj.id), `${what} before null, after.id = key`);
  if (op === 'u') check(e.before && e.after && e.before.id === e.after.id, `${what} before and after of the same row`);
  check(h.ce_specversion === '1.0' && h.ce_id === `${product}-${s.sequence}` && h.ce_source && h.ce_time &&
        h.ce_type && h.ce_type.endsWith(`.${product}.${entity}.${verbs[op]}`) && h['content-type'] === 'application/json',
        `${what} CloudEvents headers ${JSON.stringify(h)}`);
});
console.log(out.join('\n'));
EOF
}

tally() {
  while IFS= read -r line; do
    case "$line" in
      ok*) passed=$((passed + 1)); echo "$line" ;;
      FAIL*) failed=$((failed + 1)); echo "$line" ;;
      *) [ -n "$line" ] && echo "$line" ;;
    esac
  done
}

tally < <(check "$TMP/$T_CUSTOMERS.json" "$T_CUSTOMERS" customers customers Customer "$TAG" "[\"$CUSTOMER\"]" '[["1","c"],["2","u"]]' 2>&1)
if [ -n "$ORDER" ]; then
  tally < <(check "$TMP/$T_ORDERS.json" "$T_ORDERS" orders orders Order "$TAG" "[\"$ORDER\"]" '[["3","c"]]' 2>&1)
  tally < <(check "$TMP/$T_LINES.json" "$T_LINES" orders order_lines OrderLine "$TAG" '[]' '[["3","c"],["3","c"]]' 2>&1)
  # The order and its lines are one transaction: consecutive positions.
  seqs=$(node -e '
    const fs = require("fs");
    const read = (f) => JSON.parse(fs.readFileSync(f, "utf8")).map((r) => JSON.parse(r.payload))
      .filter((e) => e.requestId === process.argv[3] && !e.actor.startsWith("reaction:"));
    const s = [...read(process.argv[1]), ...read(process.argv[2])].map((e) => e.source.sequence).sort((a, b) => a - b);
    console.log(s.join(" "));
  ' "$TMP/$T_ORDERS.json" "$TMP/$T_LINES.json" "$TAG-3")
  read -r -a arr <<<"$seqs"
  consecutive=true
  for ((i = 1; i < ${#arr[@]}; i++)); do
    [ "${arr[i]}" -eq $((arr[i - 1] + 1)) ] || consecutive=false
  done
  if [ "${#arr[@]}" -eq 3 ] && $consecutive; then
    ok "order and its lines have consecutive orders positions ($seqs)"
  else
    fail "order and its lines: positions '$seqs', want 3 consecutive"
  fi
fi

finish
