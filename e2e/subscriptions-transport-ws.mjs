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

import { assert, checkBadCursor, checkFilter, describe, suite, EVENT_TIMEOUT_MS, LIVE_TIMEOUT_MS, POLL_MS } from './lib.mjs';

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

const adapters = { newClient, subscribe, dispose };
await checkFilter(s, adapters);

const changesQuery = 'subscription($since: String) { changes(products: ["customers"], since: $since) { sequence cursor } }';

await checkBadCursor(s, adapters, changesQuery);

for (const c of clients) c.close();
s.finish();
