// Shared by the e2e subscription suites: arguments, per-check reporting with
// timeouts, the closing `N passed, M failed` line, and a GraphQL POST helper.

export const REQUEST_TIMEOUT_MS = 15_000; // one HTTP request
export const EVENT_TIMEOUT_MS = 10_000; // one awaited event
export const LIVE_TIMEOUT_MS = 20_000; // until a fresh subscription reports its first event
export const POLL_MS = 200; // wait for an event between two mutations while going live
export const CHECK_TIMEOUT_MS = 60_000; // one check
export const OVERALL_TIMEOUT_MS = 180_000; // the whole suite

/** A readable one-line cause for a thrown value. */
export function describe(err) {
  if (Array.isArray(err)) return `GraphQL errors ${JSON.stringify(err)}`;
  if (err && typeof err === 'object' && 'code' in err && 'reason' in err) {
    return `websocket closed: ${err.code} ${err.reason}`; // a CloseEvent
  }
  if (!(err instanceof Error)) return JSON.stringify(err);
  let msg = err.message;
  for (let c = err.cause, depth = 0; c && depth < 3; c = c.cause, depth++) {
    msg += ` <- ${c.code ? `${c.code} ` : ''}${c.message ?? c}`;
  }
  return msg;
}

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

/**
 * Starts a suite run by `node e2e/<script> http://HOST:PORT`: parses the base
 * URL (exit 2 on bad usage), arms the overall watchdog (overallMs), and
 * returns the run's state and helpers. finish() prints the closing line and
 * exits.
 */
export function suite(script, prefix, { overallMs = OVERALL_TIMEOUT_MS } = {}) {
  const base = (process.argv[2] || process.env.MESHGATE_E2E_URL || '').replace(/\/+$/, '');
  if (!/^https?:\/\//.test(base)) {
    console.error(`usage: node ${script} http://HOST:PORT`);
    process.exit(2);
  }
  const s = {
    base,
    httpURL: `${base}/graphql`,
    wsURL: `${base.replace(/^http/, 'ws')}/graphql`,
    run: `${prefix}-${process.pid}-${Date.now()}`,
    passed: 0,
    failed: 0,
    clients: new Set(),
  };
  s.watchdog = setTimeout(() => {
    console.log(`FAIL  the suite did not finish within ${overallMs / 1000} s`);
    console.log(`${s.passed} passed, ${s.failed + 1} failed`);
    process.exit(1);
  }, overallMs);

  /** Runs one named check with a timeout and prints its result. */
  s.check = async (name, fn) => {
    let timer;
    try {
      await Promise.race([
        fn(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${CHECK_TIMEOUT_MS / 1000} s`)), CHECK_TIMEOUT_MS);
        }),
      ]);
      s.passed++;
      console.log(`ok    ${name}`);
      return true;
    } catch (err) {
      s.failed++;
      console.log(`FAIL  ${name}: ${describe(err)}`);
      return false;
    } finally {
      clearTimeout(timer);
    }
  };

  /** Posts a GraphQL request and returns data; GraphQL errors throw. */
  s.gql = async (query, variables = {}) => {
    const res = await fetch(s.httpURL, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const body = await res.json();
    if (body.errors?.length) throw new Error(`${query.slice(0, 60)}…: ${JSON.stringify(body.errors)}`);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return body.data;
  };

  /** Prints the closing line and exits (1 on any failure). */
  s.finish = () => {
    clearTimeout(s.watchdog);
    console.log(`${s.passed} passed, ${s.failed} failed`);
    process.exit(s.failed > 0 ? 1 : 0);
  };
  return s;
}

/**
 * The checks both subscription suites run with their own client library,
 * given as { newClient, subscribe, dispose } (see e2e/graphql-ws.mjs): a
 * preflight that stops the suite when nothing answers, then (a) a typed
 * subscription honours its where filter.
 */
export async function checkFilter(s, { newClient, subscribe, dispose }) {
  const { run, httpURL, check, gql } = s;
  try {
    await gql('{ __typename }');
  } catch (err) {
    clearTimeout(s.watchdog);
    console.log(`FAIL  cannot reach ${httpURL}: ${describe(err)}`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  // (a) A typed subscription with a where filter.
  await check('customerChanged(where: country SE) delivers the UPDATE of customer 2, nothing of customer 1', async () => {
    const client = newClient();
    try {
      const sub = subscribe(client, 'subscription { customerChanged(where: {country: {eq: "SE"}}) { op after { id name country } cursor } }');
      const setNames = new Set();
      const round = async (tag) => {
        const name = `Sven ${run} ${tag}`;
        setNames.add(name);
        await gql(
          'mutation($a: String!, $b: String!) { a: updateCustomer(id: 1, input: {country: "DE", name: $a}) { id } b: updateCustomer(id: 2, input: {country: "SE", name: $b}) { id } }',
          { a: `Anna ${run} ${tag}`, b: name },
        );
        return name;
      };
      const expectSE = (ev) => {
        assert(ev.op === 'UPDATE', `op ${ev.op}, want UPDATE: ${JSON.stringify(ev)}`);
        assert(ev.after?.id === '2', `an event for customer ${ev.after?.id} passed the filter: ${JSON.stringify(ev)}`);
        assert(ev.after.country === 'SE', `country ${ev.after.country}: ${JSON.stringify(ev)}`);
        assert(setNames.has(ev.after.name), `unexpected name ${ev.after.name}`);
        assert(typeof ev.cursor === 'string' && ev.cursor.length > 0, `cursor ${ev.cursor}`);
      };
      expectSE(await sub.firstEvent('customerChanged', (i) => round(`warm ${i}`)));
      // Live now: one more round. Customer 1's change commits first (mutation
      // fields run in order), so if the filter let it through it would come
      // before customer 2's marker.
      const marker = await round('marker');
      for (;;) {
        const ev = await sub.event('customerChanged');
        expectSE(ev);
        if (ev.after.name === marker) break;
      }
      const d = await gql('{ customer(id: 1) { name country } }');
      assert(d.customer.name === `Anna ${run} marker` && d.customer.country === 'DE', `customer 1 is ${JSON.stringify(d.customer)}`);
      sub.unsubscribe();
    } finally {
      await dispose(client);
    }
  });
}

/** (c) A bad since cursor is bad input; query takes $since. */
export async function checkBadCursor(s, { newClient, subscribe, dispose }, query) {
  await s.check('since: <bad cursor> gets an error with extensions.code BAD_USER_INPUT', async () => {
    const client = newClient();
    try {
      const sub = subscribe(client, query, { since: 'garbage' });
      const it = await sub.next(EVENT_TIMEOUT_MS);
      assert(it, `no answer within ${EVENT_TIMEOUT_MS} ms`);
      assert(it.errors, `want GraphQL errors, got ${JSON.stringify(it.data ?? it.error ?? it)}`);
      const codes = it.errors.map((e) => e.extensions?.code);
      assert(codes.includes('BAD_USER_INPUT'), `error codes ${JSON.stringify(codes)}: ${JSON.stringify(it.errors)}`);
    } finally {
      await dispose(client);
    }
  });
}
