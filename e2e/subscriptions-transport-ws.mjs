// Subscriptions through the legacy npm subscriptions-transport-ws client
// (SubscriptionClient, the graphql-ws subprotocol that Apollo used before
// graphql-transport-ws, the `ws` package as the WebSocket) against
// <base>/graphql:
//
//   (a) customerChanged(where: {country: {eq: "SE"}}) gets the UPDATE of
//       customer 2 moving to SE, and nothing for customer 1 moving to DE;
//   (c) since: <a bad cursor> gets an error with extensions.code BAD_USER_INPUT.
//
// (Resume, check (b) of e2e/graphql-ws.mjs, is about the server, not the
// subprotocol; it runs there.) A subscription registers asynchronously after
// the start message and, without since, gets only what is committed after
// that; so check (a) first mutates repeatedly until an event arrives, then
// checks what follows exactly.
//
// Usage: node e2e/subscriptions-transport-ws.mjs http://127.0.0.1:PORT   (run by e2e/run.sh)
// Prints `ok|FAIL  <check>` per check and closes with `N passed, M failed`;
// exits 1 on any failure, 2 on bad usage.
import { SubscriptionClient } from 'subscriptions-transport-ws';
import WebSocket from 'ws';

import { assert, describe, suite, EVENT_TIMEOUT_MS, LIVE_TIMEOUT_MS, POLL_MS } from './lib.mjs';

const s = suite('subscriptions-transport-ws.mjs', 'stws');
const { run, httpURL, wsURL, clients, check, gql } = s;

/** A SubscriptionClient that never reconnects, tracked for cleanup. */
function newClient() {
  const client = new SubscriptionClient(
    wsURL,
    { reconnect: false, lazy: true, minTimeout: EVENT_TIMEOUT_MS, timeout: 2 * EVENT_TIMEOUT_MS },
    WebSocket,
  );
  // Transport errors end up as silence, which the timeouts report; log them.
  client.onError((e) => console.log(`#     websocket error: ${describe(e?.error ?? e)}`));
  clients.add(client);
  return client;
}

function dispose(client) {
  clients.delete(client);
  client.close();
}

/**
 * Subscribes and queues what the observer receives: {data}, {errors} (data
 * with errors, or an error message: this client passes on its first error),
 * {error} (anything else), {complete}.
 */
function subscribe(client, query, variables = {}) {
  const items = [];
  let wake = null;
  const push = (item) => {
    items.push(item);
    if (wake) wake();
  };
  const subscription = client.request({ query, variables }).subscribe({
    next: (r) => push(r.errors?.length ? { errors: r.errors, data: r.data } : { data: r.data }),
    error: (e) => push(e && typeof e === 'object' && 'message' in e && !(e instanceof Error) ? { errors: [e] } : { error: e }),
    complete: () => push({ complete: true }),
  });
  const unsubscribe = () => subscription.unsubscribe();
  return {
    unsubscribe,
    /** The next item, or null when none comes within ms. */
    async next(ms) {
      if (!items.length) {
        let timer;
        await new Promise((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, ms);
        });
        clearTimeout(timer);
        wake = null;
      }
      return items.shift() ?? null;
    },
    /** The next event's field value; errors, completion or silence throw. */
    async event(field, ms = EVENT_TIMEOUT_MS) {
      const it = await this.next(ms);
      if (!it) throw new Error(`no ${field} event within ${ms} ms`);
      if (it.errors) throw new Error(`${field}: errors ${JSON.stringify(it.errors)}`);
      if (it.error) throw new Error(`${field}: ${describe(it.error)}`);
      if (it.complete) throw new Error(`${field}: the subscription completed`);
      return it.data[field];
    },
    /** Mutates until the subscription reports an event and returns it. */
    async firstEvent(field, mutate) {
      const deadline = Date.now() + LIVE_TIMEOUT_MS;
      for (let i = 0; Date.now() < deadline; i++) {
        await mutate(i);
        const it = await this.next(POLL_MS);
        if (!it) continue;
        if (!it.data || it.errors || it.error || it.complete) {
          throw new Error(`${field}: unexpected ${describe(it.errors ?? it.error ?? it)}`);
        }
        return it.data[field];
      }
      throw new Error(`${field}: the subscription never went live within ${LIVE_TIMEOUT_MS / 1000} s`);
    },
  };
}

console.log(`subscriptions-transport-ws client against ${wsURL}`);

// Preflight: if nothing answers, say so once.
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
    const seen = [];
    const expectSE = (ev) => {
      seen.push(ev);
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
    dispose(client);
  }
});

const changesQuery = 'subscription($since: String) { changes(products: ["customers"], since: $since) { sequence cursor } }';

// (c) A bad cursor is bad input.
await check('since: <bad cursor> gets an error with extensions.code BAD_USER_INPUT', async () => {
  const client = newClient();
  try {
    const sub = subscribe(client, changesQuery, { since: 'garbage' });
    const it = await sub.next(EVENT_TIMEOUT_MS);
    assert(it, `no answer within ${EVENT_TIMEOUT_MS} ms`);
    assert(it.errors, `want GraphQL errors, got ${JSON.stringify(it.data ?? it.error ?? it)}`);
    const codes = it.errors.map((e) => e.extensions?.code);
    assert(codes.includes('BAD_USER_INPUT'), `error codes ${JSON.stringify(codes)}: ${JSON.stringify(it.errors)}`);
  } finally {
    dispose(client);
  }
});

for (const c of clients) c.close();
clearTimeout(s.watchdog);
s.finish();
