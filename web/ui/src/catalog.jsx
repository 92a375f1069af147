// The catalog, loaded once for the whole app and kept fresh: polled, refetched
// shortly after changes, and its freshness moved forward by every change
// event as it arrives. Everything the UI knows about products comes from here
// (no product is named in the code).
import { createContext, useContext, useMemo, useState } from 'react';
import { useQuery, useChanges, useThrottledChanges } from './api.js';

export const CATALOG_QUERY = `query Catalog {
  catalog {
    name domain owner contact kind description
    entities {
      name product description table topic primaryKey rowCount
      fields { name type column sqlType nullable primaryKey classification pii description references { product entity field } }
    }
    inputs { consumer producer entity topic description }
    consumers { consumer producer entity topic description }
    freshness { lastChangedAt sequence }
    downloads { sdl odps odcs }
  }
}`;

const Ctx = createContext(null);

export function CatalogProvider({ children }) {
  const q = useQuery(CATALOG_QUERY, {}, { poll: 15_000 });
  // Freshness from change events, ahead of the next catalog answer.
  const [live, setLive] = useState({});
  const pending = useMemo(() => ({ map: {}, timer: null }), []);
  useChanges((ev) => {
    const cur = pending.map[ev.product];
    if (!cur || Number(ev.sequence) > Number(cur.sequence)) pending.map[ev.product] = { lastChangedAt: ev.at, sequence: ev.sequence };
    if (!pending.timer) {
      pending.timer = setTimeout(() => {
        pending.timer = null;
        const batch = pending.map;
        pending.map = {};
        setLive((old) => ({ ...old, ...batch }));
      }, 250);
    }
  });
  // Row counts move with the data: refetch a little after changes.
  useThrottledChanges(() => true, q.refetch, 3000);

  const value = useMemo(() => {
    const products = (q.data?.catalog || []).map((p) => {
      const l = live[p.name];
      if (l && Number(l.sequence) > Number(p.freshness.sequence)) {
        return { ...p, freshness: { ...p.freshness, ...l } };
      }
      return p;
    });
    const byName = Object.fromEntries(products.map((p) => [p.name, p]));
    const entity = (product, name) => byName[product]?.entities.find((e) => e.name === name);
    return { products, byName, entity, error: q.error, errors: q.errors, loading: q.loading && !q.data, refetch: q.refetch };
  }, [q.data, q.error, q.errors, q.loading, q.refetch, live]);

  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useCatalog() {
  return useContext(Ctx);
}

/** Event flows between products: one edge per producer → consumer pair. */
export function flows(products) {
  const map = new Map();
  for (const p of products) {
    for (const l of p.inputs) {
      const id = `${l.producer}->${l.consumer}`;
      if (!map.has(id)) map.set(id, { id, source: l.producer, target: l.consumer, links: [] });
      map.get(id).links.push(l);
    }
  }
  return [...map.values()];
}
