#!/usr/bin/env bash
# End-to-end suites: builds meshgate, starts it on a free loopback port with a
# throw-away data directory and a small demo seed, runs every suite in SUITES
# against it, then stops it with SIGTERM and checks that it exits cleanly.
#
# Adding a suite: drop e2e/<name>.mjs (run with node) or e2e/<name>.sh (run
# with bash) and add <name> to SUITES below. A suite gets the server's base
# URL (http://127.0.0.1:PORT, no trailing slash) as its only argument, exits
# non-zero on failure and should end with a line `N passed, M failed`.
# The same facts are in its environment: MESHGATE_E2E_URL, MESHGATE_E2E_TMP
# (scratch dir, removed afterwards), MESHGATE_E2E_DATA_DIR, MESHGATE_E2E_LOG.
#
# Usage: bash e2e/run.sh [suite ...]   (default: all of SUITES)
# Env:   MESHGATE_E2E_PORT (default: a free port), MESHGATE_E2E_SUITE_TIMEOUT
#        (seconds per suite, default 600), MESHGATE_E2E_KEEP=1 keeps the tmp dir.
#        MESHGATE_E2E_AUTH_ARGS: flags that turn authentication on; with them a
#        second gateway starts (its URL in MESHGATE_E2E_AUTH_URL) for the
#        browser suite's auth-on checks, which also need MESHGATE_E2E_AUTH_TOKEN
#        (a token with customers:read and without pii:read).
set -euo pipefail

SUITES=(
  graphql-http-audit
  graphql-ws
  subscriptions-transport-ws
  apollo-federation
  kcat
  playwright
)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
E2E="$ROOT/e2e"
cd "$ROOT"
export PATH="/usr/local/go/bin:$PATH"

READY_TRIES=120        # × 0.5 s
STOP_TRIES=60          # × 0.5 s after SIGTERM
SUITE_TIMEOUT=${MESHGATE_E2E_SUITE_TIMEOUT:-600}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/meshgate-e2e.XXXXXX")
LOG="$TMP/server.log"
SERVER_PID=""
AUTH_PID=""

log_tail() {
  if [ -f "$LOG" ]; then
    echo "---- last 100 lines of server log ($LOG) ----" >&2
    tail -n 100 "$LOG" >&2 || true
    echo "---- end of server log ----" >&2
  fi
}

cleanup() {
  local rc=$?
  set +e
  if [ -n "$AUTH_PID" ] && kill -0 "$AUTH_PID" 2>/dev/null; then
    kill -TERM "$AUTH_PID" 2>/dev/null
    wait "$AUTH_PID" 2>/dev/null
  fi
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null
    for _ in $(seq 1 20); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.5
    done
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  if [ "$rc" -ne 0 ]; then
    log_tail
  fi
  if [ "${MESHGATE_E2E_KEEP:-}" = 1 ]; then
    echo "kept $TMP" >&2
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

banner() { printf '\n==> e2e: %s\n' "$*"; }
die() { echo "e2e: error: $*" >&2; exit 1; }

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

if [ "$#" -gt 0 ]; then
  SUITES=("$@")
fi
for suite in "${SUITES[@]}"; do
  [ -f "$E2E/$suite.mjs" ] || [ -f "$E2E/$suite.sh" ] \
    || die "suite $suite: neither e2e/$suite.mjs nor e2e/$suite.sh exists"
done

# ---------------------------------------------------------------------------
banner "npm ci"
lock_hash=$(sha256sum "$E2E/package-lock.json" | cut -d' ' -f1)
stamp="$E2E/node_modules/.meshgate-lock-sha256"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_hash" ]; then
  echo "node_modules matches package-lock.json; skipping npm ci"
else
  (cd "$E2E" && npm ci --no-audit --no-fund)
  echo "$lock_hash" >"$stamp"
fi

# ---------------------------------------------------------------------------
banner "build server"
go build -o "$TMP/meshgate" .

PORT=${MESHGATE_E2E_PORT:-$(free_port)}
BASE="http://127.0.0.1:$PORT"
# The embedded broker gets a free port too, so that a gateway already
# running on the machine (on 9092) does not stop the suites.
KAFKA_PORT=$(free_port)
export MESHGATE_E2E_KAFKA="127.0.0.1:$KAFKA_PORT"
DATA="$TMP/data"
mkdir -p "$DATA"

banner "start server on $BASE"
"$TMP/meshgate" --addr "127.0.0.1:$PORT" --embedded-kafka-addr "$MESHGATE_E2E_KAFKA" --data-dir "$DATA" --seed-scale 0.05 \
  </dev/null >"$LOG" 2>&1 &
SERVER_PID=$!
echo "pid $SERVER_PID, log $LOG"

ready=false
for _ in $(seq 1 "$READY_TRIES"); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    rc=0; wait "$SERVER_PID" || rc=$?
    SERVER_PID=""
    die "server exited (status $rc) before $BASE/readyz answered"
  fi
  if curl -fsS --max-time 2 -o /dev/null "$BASE/readyz" 2>/dev/null; then
    ready=true
    break
  fi
  sleep 0.5
done
$ready || die "server not ready: $BASE/readyz did not answer 2xx within $((READY_TRIES / 2)) s"
echo "ready: $(curl -sS --max-time 2 "$BASE/readyz" | head -c 200)"

export MESHGATE_E2E_URL="$BASE" MESHGATE_E2E_TMP="$TMP" MESHGATE_E2E_DATA_DIR="$DATA" MESHGATE_E2E_LOG="$LOG"

if [ -n "${MESHGATE_E2E_AUTH_ARGS:-}" ]; then
  AUTH_PORT=$(free_port)
  AUTH_BASE="http://127.0.0.1:$AUTH_PORT"
  banner "start a gateway with authentication on $AUTH_BASE"
  mkdir -p "$TMP/auth-data"
  # shellcheck disable=SC2086 # MESHGATE_E2E_AUTH_ARGS is a list of flags
  "$TMP/meshgate" --addr "127.0.0.1:$AUTH_PORT" --embedded-kafka-addr "127.0.0.1:$(free_port)" \
    --data-dir "$TMP/auth-data" --seed-scale 0.02 $MESHGATE_E2E_AUTH_ARGS </dev/null >"$TMP/auth-server.log" 2>&1 &
  AUTH_PID=$!
  ready=false
  for _ in $(seq 1 "$READY_TRIES"); do
    kill -0 "$AUTH_PID" 2>/dev/null || { tail -n 20 "$TMP/auth-server.log" >&2; die "the gateway with authentication exited"; }
    if curl -fsS --max-time 2 -o /dev/null "$AUTH_BASE/healthz" 2>/dev/null; then ready=true; break; fi
    sleep 0.5
  done
  $ready || die "the gateway with authentication did not answer $AUTH_BASE/healthz"
  export MESHGATE_E2E_AUTH_URL="$AUTH_BASE"
fi

# ---------------------------------------------------------------------------
total_passed=0
total_failed=0
failed_suites=()
for suite in "${SUITES[@]}"; do
  banner "suite $suite"
  out="$TMP/suite-$suite.out"
  if [ -f "$E2E/$suite.mjs" ]; then
    cmd=(node "$E2E/$suite.mjs" "$BASE")
  else
    cmd=(bash "$E2E/$suite.sh" "$BASE")
  fi
  rc=0 p=0 f=0
  timeout --kill-after=10 "$SUITE_TIMEOUT" "${cmd[@]}" 2>&1 | tee "$out" || rc=$?
  [ "$rc" -eq 124 ] && echo "suite $suite: timed out after $SUITE_TIMEOUT s" >&2
  summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1 || true)
  if [ -n "$summary" ]; then
    p=${summary%% passed*}
    f=${summary#*passed, }; f=${f%% failed*}
    total_passed=$((total_passed + p))
    total_failed=$((total_failed + f))
  fi
  if [ "$rc" -ne 0 ]; then
    failed_suites+=("$suite")
    # A suite that failed without counting a failure still counts as one.
    if [ "$f" -eq 0 ]; then
      total_failed=$((total_failed + 1))
    fi
  fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    failed_suites+=("server-died-during-$suite")
    total_failed=$((total_failed + 1))
    echo "server is no longer running after suite $suite" >&2
    break
  fi
done

# ---------------------------------------------------------------------------
banner "stop server (SIGTERM)"
if kill -0 "$SERVER_PID" 2>/dev/null; then
  kill -TERM "$SERVER_PID"
  stopped=false
  for _ in $(seq 1 "$STOP_TRIES"); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then stopped=true; break; fi
    sleep 0.5
  done
  if $stopped; then
    rc=0; wait "$SERVER_PID" || rc=$?
    SERVER_PID=""
    if [ "$rc" -eq 0 ]; then
      echo "server exited cleanly"
    else
      echo "server exited with status $rc after SIGTERM (want 0)" >&2
      failed_suites+=("shutdown")
      total_failed=$((total_failed + 1))
    fi
  else
    echo "server still running $((STOP_TRIES / 2)) s after SIGTERM" >&2
    failed_suites+=("shutdown")
    total_failed=$((total_failed + 1))
  fi
fi

if [ "${#failed_suites[@]}" -gt 0 ]; then
  echo "failed: ${failed_suites[*]}" >&2
fi
echo "e2e: $total_passed passed, $total_failed failed"
[ "${#failed_suites[@]}" -eq 0 ]
