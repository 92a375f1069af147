// GraphQL over HTTP conformance: runs the graphql-http server audit (the
// spec's reference audit suite) against <base>/graphql.
//
// Usage: node e2e/graphql-http-audit.mjs http://127.0.0.1:PORT
//
// Prints one line per audit, `ok|notice|warn|error  <id> <name>`, the reason
// under every non-ok one, then the counts and a closing line
// `N passed, M failed` (passed = ok, failed = error). Exits 1 when any MUST
// audit fails (status error) or the server cannot be reached, 2 on bad usage.
//
// This is auditServer() from graphql-http (Promise.all over serverAudits())
// with two guards so a broken server yields a report instead of a crash or a
// hang: an audit that throws (graphql-http calls that "fatal", e.g. a refused
// connection) is reported as an error of its own, and every request has a
// timeout.
import { serverAudits } from 'graphql-http';

const REQUEST_TIMEOUT_MS = 15_000;
const OVERALL_TIMEOUT_MS = 120_000;

const base = (process.argv[2] || process.env.MESHGATE_E2E_URL || '').replace(/\/+$/, '');
if (!/^https?:\/\//.test(base)) {
  console.error('usage: node graphql-http-audit.mjs http://HOST:PORT');
  process.exit(2);
}
const url = `${base}/graphql`;

/** fetch with a per-request timeout; keeps any signal the audit passes. */
function fetchWithTimeout(input, init = {}) {
  const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
  return fetch(input, { ...init, signal });
}

/** A readable one-line cause for a thrown error (fetch hides it in .cause). */
function describe(err) {
  if (!(err instanceof Error)) return String(err);
  let msg = `${err.name}: ${err.message}`;
  for (let c = err.cause, depth = 0; c && depth < 3; c = c.cause, depth++) {
    msg += ` <- ${c.code ? `${c.code} ` : ''}${c.message ?? c}`;
  }
  return msg;
}

async function runAudit({ id, name, fn }) {
  try {
    return await fn();
  } catch (err) {
    return { id, name, status: 'error', reason: `fatal: ${describe(err)}` };
  }
}

const watchdog = setTimeout(() => {
  console.error(`audit did not finish within ${OVERALL_TIMEOUT_MS / 1000} s`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

console.log(`graphql-http audit of ${url}`);
const audits = serverAudits({ url, fetchFn: fetchWithTimeout });

// Preflight: if nothing answers at all, say so once instead of N times.
try {
  const res = await fetchWithTimeout(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query: '{ __typename }' }),
  });
  await res.body?.cancel();
} catch (err) {
  clearTimeout(watchdog);
  console.log(`error  cannot reach ${url}: ${describe(err)}`);
  console.log(`0 passed, ${audits.length} failed`);
  process.exit(1);
}

const results = await Promise.all(audits.map(runAudit));
clearTimeout(watchdog);

const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const r of results) {
  counts[r.status] = (counts[r.status] ?? 0) + 1;
  console.log(`${r.status.padEnd(6)} ${r.id} ${r.name}`);
  if (r.status !== 'ok') {
    const reason = String(r.reason ?? '').replace(/\n/g, '\n         ');
    console.log(`         reason: ${reason}`);
  }
  // Release response bodies the audit did not read.
  try {
    if (r.response?.body && !r.response.bodyUsed) await r.response.body.cancel();
  } catch {
    // already consumed or locked
  }
}

console.log(`${counts.warn} warnings (SHOULD), ${counts.notice} notices (MAY), ${results.length} audits`);
console.log(`${counts.ok} passed, ${counts.error} failed`);
process.exit(counts.error > 0 ? 1 : 0);
