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

import { assert, checkBadCursor, checkFilter, describe, suite, EVENT_TIMEOUT_MS, LIVE_TIMEOUT_MS, POLL_MS } from './lib.mjs';

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

const adapters = { newClient, subscribe, dispose };
await checkFilter(s, adapters);

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

await checkBadCursor(s, adapters, changesQuery);

for (const c of clients) await c.dispose();
s.finish();
