// Talking to the gateway: the bearer token, GraphQL over HTTP, and
// subscriptions over one graphql-ws websocket that resume with their cursor
// after a reconnect. Everything goes to the page's own origin.
import { useEffect, useRef, useState, useSyncExternalStore, useCallback } from 'react';
import { createClient } from 'graphql-ws';

// ---------------------------------------------------------------------------
// The token. Kept in sessionStorage (gone with the tab), never in a cookie.

const TOKEN_KEY = 'meshgate.token';

function readToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

const authState = { token: readToken(), required: false, reason: '' };
let authSnapshot = { ...authState };
const authListeners = new Set();

function emitAuth() {
  authSnapshot = { ...authState };
  authListeners.forEach((l) => l());
}

export const auth = {
  get token() {
    return authState.token;
  },
  /** Stores a token (empty: forget it) and reconnects the websocket with it. */
  setToken(t) {
    authState.token = (t || '').trim().replace(/^Bearer\s+/i, '');
    authState.required = false;
    authState.reason = '';
    try {
      if (authState.token) sessionStorage.setItem(TOKEN_KEY, authState.token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // storage disabled: the token lives in memory only
    }
    emitAuth();
    restartSocket();
  },
  /** Called when the gateway answers 401 / UNAUTHENTICATED: show the login. */
  require(reason) {
    if (authState.required) return;
    authState.required = true;
    authState.reason = reason || '';
    emitAuth();
  },
  headers() {
    return authState.token ? { Authorization: `Bearer ${authState.token}` } : {};
  },
  subscribe(l) {
    authListeners.add(l);
    return () => authListeners.delete(l);
  },
};

export function useAuth() {
  return useSyncExternalStore(auth.subscribe, () => authSnapshot);
}

// ---------------------------------------------------------------------------
// GraphQL over HTTP.

/** An error answer of the gateway: GraphQL errors or an HTTP status. */
export class GraphQLError extends Error {
  constructor(message, { errors = [], status = 0, data = null } = {}) {
    super(message);
    this.errors = errors;
    this.status = status;
    this.data = data;
  }
  get codes() {
    return this.errors.map((e) => e.extensions?.code).filter(Boolean);
  }
}

function errorMessage(errors) {
  return errors
    .map((e) => (e.extensions?.code ? `${e.message} (${e.extensions.code})` : e.message))
    .join('; ');
}

const isAuthCode = (c) => c === 'UNAUTHENTICATED';

/**
 * Posts a GraphQL request. Resolves to { data, errors } when there is data
 * (errors may be partial); rejects with GraphQLError when there is none.
 */
export async function request(query, variables = {}, { signal } = {}) {
  let res;
  try {
    res = await fetch('/graphql', {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Accept: 'application/graphql-response+json, application/json',
        ...auth.headers(),
      },
      body: JSON.stringify({ query, variables }),
      signal,
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new GraphQLError(`cannot reach the gateway: ${err.message}`);
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  const errors = body?.errors || [];
  if (res.status === 401 || errors.some((e) => isAuthCode(e.extensions?.code))) {
    auth.require(errors[0]?.message || 'The gateway asks for a token.');
    throw new GraphQLError(errors.length ? errorMessage(errors) : 'authentication required', { errors, status: 401 });
  }
  if (!body || (body.data == null && errors.length === 0)) {
    throw new GraphQLError(`gateway answered HTTP ${res.status}`, { status: res.status });
  }
  if (body.data == null) {
    throw new GraphQLError(errorMessage(errors), { errors, status: res.status });
  }
  return { data: body.data, errors };
}

/**
 * Runs a query and keeps its result: re-runs when the query or variables
 * change, every `poll` ms if given, and on refetch(). Earlier data stays
 * shown while a new answer is on its way.
 */
export function useQuery(query, variables = {}, { poll = 0, skip = false } = {}) {
  const vars = JSON.stringify(variables);
  const [state, setState] = useState({ data: null, errors: [], error: null, loading: !skip });
  const [tick, setTick] = useState(0);
  const inflight = useRef(false);
  const refetch = useCallback(() => setTick((t) => t + 1), []);

  useEffect(() => {
    if (skip) return undefined;
    const ctl = new AbortController();
    inflight.current = true;
    setState((s) => ({ ...s, loading: true }));
    request(query, JSON.parse(vars), { signal: ctl.signal }).then(
      ({ data, errors }) => {
        inflight.current = false;
        setState({ data, errors, error: null, loading: false });
      },
      (error) => {
        inflight.current = false;
        if (error.name === 'AbortError') return;
        setState((s) => ({ ...s, error, loading: false }));
      },
    );
    return () => ctl.abort();
  }, [query, vars, tick, skip]);

  useEffect(() => {
    if (!poll || skip) return undefined;
    const id = setInterval(() => {
      if (!inflight.current && document.visibilityState !== 'hidden') refetch();
    }, poll);
    return () => clearInterval(id);
  }, [poll, skip, refetch]);

  return { ...state, refetch };
}

// ---------------------------------------------------------------------------
// Subscriptions. One graphql-ws client; every subscription made through
// live() remembers the cursor of the last event and, when the socket drops
// or the gateway cuts it off (SLOW_CONSUMER), subscribes again with
// since: <cursor>, so that nothing is missed and nothing repeats.

const wsURL = () => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;

const connState = { status: 'idle', since: Date.now() };
let connSnapshot = { ...connState };
const connListeners = new Set();

function setConn(status) {
  if (connState.status === status) return;
  connState.status = status;
  connState.since = Date.now();
  connSnapshot = { ...connState };
  connListeners.forEach((l) => l());
}

/** The websocket's state: idle, connecting, live or offline. */
export function useConnection() {
  return useSyncExternalStore(
    (l) => {
      connListeners.add(l);
      return () => connListeners.delete(l);
    },
    () => connSnapshot,
  );
}

// The websocket in use: { client, connected, waiters }. Events of a
// connection that was replaced do not touch the state shown.
let current = null;
const subs = new Set();

function isAuthClose(code) {
  return code === 4401 || code === 4403;
}

function newConnection() {
  const conn = { connected: false, waiters: new Set() };
  conn.client = createClient({
    url: wsURL(),
    lazy: true,
    lazyCloseTimeout: 3000,
    retryAttempts: 0, // live() resubscribes itself, with the cursor
    keepAlive: 10_000,
    connectionParams: () => auth.headers(),
    on: {
      connecting: () => {
        if (conn === current) setConn('connecting');
      },
      connected: () => {
        conn.connected = true;
        if (conn === current) setConn('live');
        const ws = [...conn.waiters];
        conn.waiters.clear();
        ws.forEach((f) => f());
      },
      closed: (ev) => {
        conn.connected = false;
        if (conn === current) setConn(subs.size > 0 ? 'offline' : 'idle');
        if (ev && isAuthClose(ev.code)) auth.require(ev.reason || 'The gateway refused the websocket without a valid token.');
      },
    },
  });
  return conn;
}

function connection() {
  if (!current) current = newConnection();
  return current;
}

/** Calls fn once conn is connected: now if it is. */
function whenConnected(conn, fn) {
  if (conn.connected) fn();
  else conn.waiters.add(fn);
}

/** Drops the websocket (for example after the token changed); live subscriptions resume on a new one. */
export function restartSocket() {
  const old = current;
  current = null;
  subs.forEach((s) => s.restart());
  old?.client.dispose();
}

/** The "reconnect" button (and the browser tests): drops the socket as a network failure would; live subscriptions resume on a new one. */
export function dropSocket() {
  const old = current;
  current = null;
  old?.client.terminate();
}

const BACKOFF_MS = [250, 500, 1000, 2000, 4000];

/**
 * Subscribes to `query`, whose single root field is `field` and whose
 * events carry a cursor, and keeps the subscription alive: after a dropped
 * socket or a SLOW_CONSUMER error it subscribes again with since: <cursor of
 * the last event>. onEvent gets each event; onError gets errors that end it
 * for good (bad input, FORBIDDEN); onState gets 'live' | 'resuming'.
 * Returns a function that stops it.
 */
export function live({ query, variables = {}, field, onEvent, onError, onState }) {
  const sub = {
    cursor: variables.since ?? null,
    stopped: false,
    attempt: 0,
    dispose: null,
    gen: 0,
    timer: null,
  };
  const schedule = (delay) => {
    clearTimeout(sub.timer);
    onState?.('resuming');
    sub.timer = setTimeout(start, delay);
  };
  const retry = () => schedule(BACKOFF_MS[Math.min(sub.attempt++, BACKOFF_MS.length - 1)]);
  function start() {
    if (sub.stopped) return;
    const gen = ++sub.gen;
    const mine = () => gen === sub.gen && !sub.stopped;
    const vars = { ...variables };
    if (sub.cursor) vars.since = sub.cursor;
    else delete vars.since;
    const conn = connection();
    sub.dispose = conn.client.subscribe(
      { query, variables: vars },
      {
        next(result) {
          if (!mine()) return;
          if (result.errors?.length) {
            handleErrors(result.errors);
            return;
          }
          const ev = result.data?.[field];
          if (!ev) return;
          sub.attempt = 0;
          if (ev.cursor) sub.cursor = ev.cursor;
          onEvent(ev);
        },
        error(err) {
          if (!mine()) return;
          if (Array.isArray(err)) {
            handleErrors(err);
            return;
          }
          // A CloseEvent or a socket error.
          if (err && typeof err === 'object' && 'code' in err && isAuthClose(err.code)) {
            onError?.(new GraphQLError(err.reason || 'unauthorised', { status: 401 }));
            return; // the login resumes it through restartSocket()
          }
          retry();
        },
        complete() {
          if (!mine()) return;
          // The server ended the stream (it does not on its own): go on.
          retry();
        },
      },
    );
    whenConnected(conn, () => {
      if (!mine()) return;
      sub.attempt = 0;
      onState?.('live');
    });
  }
  function handleErrors(errors) {
    const slow = errors.find((e) => e.extensions?.code === 'SLOW_CONSUMER');
    if (slow) {
      if (slow.extensions.cursor) sub.cursor = slow.extensions.cursor;
      schedule(0);
      return;
    }
    if (errors.some((e) => isAuthCode(e.extensions?.code))) auth.require(errors[0].message);
    onError?.(new GraphQLError(errorMessage(errors), { errors }));
  }
  sub.restart = () => {
    if (sub.stopped) return;
    sub.gen++;
    const d = sub.dispose;
    sub.dispose = null;
    try {
      d?.();
    } catch {
      // the old client is going away anyway
    }
    schedule(0);
  };
  subs.add(sub);
  start();
  return () => {
    sub.stopped = true;
    clearTimeout(sub.timer);
    subs.delete(sub);
    sub.dispose?.();
  };
}

/** The same as a hook; `deps` restart it (from the beginning). */
export function useLive(opts, deps) {
  const ref = useRef(opts);
  ref.current = opts;
  useEffect(
    () =>
      live({
        ...opts,
        onEvent: (ev) => ref.current.onEvent(ev),
        onError: (e) => ref.current.onError?.(e),
        onState: (s) => ref.current.onState?.(s),
      }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    deps,
  );
}

// ---------------------------------------------------------------------------
// The change bus: one subscription to every change of the mesh, shared by
// the pages that only need to know that something changed (freshness,
// refetching charts).

const busListeners = new Set();
let busStop = null;

function ensureBus() {
  if (busStop) return;
  busStop = live({
    query: 'subscription MeshPulse($since: String) { changes(since: $since) { product entity key op at sequence cursor } }',
    field: 'changes',
    onEvent: (ev) => busListeners.forEach((l) => l(ev)),
  });
}

/** Calls fn for every change event of the mesh while the component is mounted. */
export function useChanges(fn) {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    const l = (ev) => ref.current(ev);
    busListeners.add(l);
    ensureBus();
    return () => busListeners.delete(l);
  }, []);
}

/**
 * Calls fn at most once per `ms` (and once more after the last call) while
 * change events that match accept(ev) arrive.
 */
export function useThrottledChanges(accept, fn, ms = 400) {
  const t = useRef({ timer: null, last: 0, pending: false });
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => () => clearTimeout(t.current.timer), []);
  useChanges((ev) => {
    if (!accept(ev)) return;
    const s = t.current;
    if (s.timer) {
      s.pending = true;
      return;
    }
    const fire = () => {
      s.last = Date.now();
      s.pending = false;
      fnRef.current();
      s.timer = setTimeout(() => {
        s.timer = null;
        if (s.pending) fire();
      }, ms);
    };
    fire();
  });
}

// ---------------------------------------------------------------------------
// Introspection helpers: which root query field lists an entity. Derived
// from the schema, so a new product needs no change here.

let listFieldsPromise = null;

/** Resolves to a map entity type name -> { list, lookup } root field names. */
export function rootFieldsByEntity() {
  if (!listFieldsPromise) {
    listFieldsPromise = request(
      '{ __schema { queryType { fields { name args { name } type { kind name ofType { kind name ofType { kind name } } } } } } }',
    ).then(
      ({ data }) => {
        const out = {};
        const named = (t) => (t ? (t.name ? t : named(t.ofType)) : null);
        for (const f of data.__schema.queryType.fields) {
          const t = named(f.type);
          if (!t) continue;
          const m = /^(.*)Connection$/.exec(t.name);
          if (m && f.args.some((a) => a.name === 'where')) {
            (out[m[1]] ||= {}).list = f.name;
          } else if (t.kind === 'OBJECT' && f.args.length === 1 && f.args[0].name === 'id') {
            (out[t.name] ||= {}).lookup = f.name;
          }
        }
        return out;
      },
      (err) => {
        listFieldsPromise = null;
        throw err;
      },
    );
  }
  return listFieldsPromise;
}

if (typeof window !== 'undefined') {
  // For the browser tests and for the curious: window.meshgate.dropSocket().
  window.meshgate = { dropSocket, restartSocket, auth };
}
