// Subscriptions through the npm graphql-ws client (graphql-transport-ws
// subprotocol, the `ws` package as the WebSocket) against <base>/graphql:
//
//   (a) customerChanged(where: {country: {eq: "SE"}}) gets the UPDATE of
//       customer 2 moving to SE, and nothing for customer 1 moving to DE;
//   (b) resume: a client takes events from changes(products: ["customers"]),
//       disposes, 50 changes happen, a new client subscribes with since: its
//       last cursor and receives exactly the 50 missed sequences in order,
//       then the next live one (no duplicate at the seam);
//   (c) since: <a bad cursor> gets an error with extensions.code BAD_USER_INPUT.
//
// A subscription registers asynchronously after the subscribe message and,
// without since, gets only what is committed after that; so each check first
// mutates repeatedly until an event arrives, then checks what follows exactly.
//
// Usage: node e2e/graphql-ws.mjs http://127.0.0.1:PORT   (run by e2e/run.sh)
// Prints `ok|FAIL  <check>` per check and closes with `N passed, M failed`;
// exits 1 on any failure, 2 on bad usage.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

import { assert, describe, suite, EVENT_TIMEOUT_MS, LIVE_TIMEOUT_MS, POLL_MS } from './lib.mjs';

const s = suite('graphql-ws.mjs', 'gws');
const { run, httpURL, wsURL, clients, check, gql } = s;

/** The last sequence of the customers product's log. */
async function latestCustomersSequence() {
  const d = await gql('{ auditLog(product: "customers", last: 1) { nodes { sequence } } }');
  return d.auditLog.nodes[0]?.sequence ?? 0;
}

/** A graphql-ws client that never retries, tracked for cleanup. */
function newClient() {
  const client = createClient({
    url: wsURL,
    webSocketImpl: WebSocket,
    lazy: true,
    retryAttempts: 0,
    connectionAckWaitTimeout: EVENT_TIMEOUT_MS,
  });
  clients.add(client);
  return client;
}

async function dispose(client) {
  clients.delete(client);
  await client.dispose();
}

/**
 * Subscribes and queues what the sink receives: {data}, {errors} (a next
 * with errors or an error message), {error} (a transport failure), {complete}.
 */
function subscribe(client, query, variables = {}) {
  const items = [];
  let wake = null;
  const push = (item) => {
    items.push(item);
    if (wake) wake();
  };
  const unsubscribe = client.subscribe(
    { query, variables },
    {
      next: (r) => push(r.errors?.length ? { errors: r.errors, data: r.data } : { data: r.data }),
      error: (e) => push(Array.isArray(e) ? { errors: e } : { error: e }),
      complete: () => push({ complete: true }),
    },
  );
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

console.log(`graphql-ws client against ${wsURL}`);

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
    await dispose(client);
  }
});

// (b) Resume with since after a drop.
const changesQuery = 'subscription($since: String) { changes(products: ["customers"], since: $since) { sequence cursor } }';
const MISSED = 50;
await check(`resume: since: <last cursor> after a drop delivers exactly the ${MISSED} missed changes in order`, async () => {
  let client = newClient();
  let last;
  try {
    const sub = subscribe(client, changesQuery);
    last = await sub.firstEvent('changes', (i) => gql(`mutation { updateCustomer(id: 3, input: {name: "First ${run} ${i}"}) { id } }`));
    // Take events up to the log's end so that the cursor kept is the last
    // change made so far: the 50 below are then exactly the missed ones.
    const end = await latestCustomersSequence();
    while (last.sequence < end) {
      const ev = await sub.event('changes');
      assert(ev.sequence === last.sequence + 1, `live: sequence ${ev.sequence} after ${last.sequence} (gap or duplicate)`);
      last = ev;
    }
  } finally {
    await dispose(client); // the drop
  }

  const aliases = [];
  for (let j = 0; j < MISSED; j++) {
    aliases.push(`m${j}: updateCustomer(id: ${1 + (j % 20)}, input: {name: "Missed ${run} ${j}"}) { id }`);
  }
  await gql(`mutation { ${aliases.join(' ')} }`);
  const end = await latestCustomersSequence();
  assert(end === last.sequence + MISSED, `the log went from ${last.sequence} to ${end}, want +${MISSED} (another writer?)`);

  client = newClient();
  try {
    const sub = subscribe(client, changesQuery, { since: last.cursor });
    for (let i = 1; i <= MISSED; i++) {
      const ev = await sub.event('changes');
      assert(ev.sequence === last.sequence + i, `replayed event ${i}: sequence ${ev.sequence}, want ${last.sequence + i} (gap or duplicate)`);
      assert(typeof ev.cursor === 'string' && ev.cursor !== last.cursor, `replayed event ${i}: cursor ${ev.cursor}`);
    }
    // Live after the replay, with no duplicate at the seam.
    await gql(`mutation { updateCustomer(id: 3, input: {name: "After ${run}"}) { id } }`);
    const ev = await sub.event('changes');
    assert(ev.sequence === last.sequence + MISSED + 1, `first live event after the replay: sequence ${ev.sequence}, want ${last.sequence + MISSED + 1}`);
    sub.unsubscribe();
  } finally {
    await dispose(client);
  }
});

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
    await dispose(client);
  }
});

for (const c of clients) await c.dispose();
clearTimeout(s.watchdog);
s.finish();
