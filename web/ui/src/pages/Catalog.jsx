// The catalog: products grouped by domain, and search across products,
// entities and fields.
import { useMemo, useRef } from 'react';
import { useCatalog } from '../catalog.jsx';
import { Link, useParams } from '../router.jsx';
import { Ago, Badge, ClassBadge, Empty, ErrorBox, Icon, KindBadge, Loading, PageHeader, PiiBadge, Stat, colorFor, useNow } from '../components.jsx';
import { useChanges } from '../api.js';
import { fmtCompact, fmtInt } from '../format.js';

function totalRows(p) {
  return p.entities.reduce((n, e) => n + Number(e.rowCount || 0), 0);
}

function ProductCard({ p }) {
  const feeds = [...new Set(p.consumers.map((c) => c.consumer))];
  const eats = [...new Set(p.inputs.map((c) => c.producer))];
  return (
    <article className="product-card" data-testid="product-card" data-product={p.name}>
      <div className="pc-head">
        <Link to={`/products/${encodeURIComponent(p.name)}`} className="pc-name">
          {p.name}
        </Link>
        <KindBadge kind={p.kind} />
      </div>
      <p className="pc-desc">{p.description}</p>
      <div className="pc-owner">
        <Icon name="user" size={13} /> {p.owner}
      </div>
      <ul className="pc-entities">
        {p.entities.map((e) => (
          <li key={e.name}>
            <span>{e.name}</span>
            <span className="muted" data-testid="row-count">
              {fmtCompact(e.rowCount)}
            </span>
          </li>
        ))}
      </ul>
      <div className="pc-flows">
        {eats.length > 0 && (
          <span title="consumes the change events of">
            <span className="muted">from</span> {eats.join(', ')}
          </span>
        )}
        {feeds.length > 0 && (
          <span title="its change events are consumed by">
            <span className="muted">feeds</span> {feeds.join(', ')}
          </span>
        )}
      </div>
      <div className="pc-foot">
        <span title="rows over all entities">
          <strong>{fmtInt(totalRows(p))}</strong> rows
        </span>
        <Ago t={p.freshness.lastChangedAt} />
      </div>
    </article>
  );
}

function match(text, q) {
  return String(text || '').toLowerCase().includes(q);
}

function Highlight({ text, q }) {
  const s = String(text || '');
  const i = s.toLowerCase().indexOf(q);
  if (!q || i < 0) return s;
  return (
    <>
      {s.slice(0, i)}
      <mark>{s.slice(i, i + q.length)}</mark>
      {s.slice(i + q.length)}
    </>
  );
}

function SearchResults({ products, q }) {
  const res = useMemo(() => {
    const ps = products.filter((p) => [p.name, p.description, p.owner, p.domain, p.kind].some((t) => match(t, q)));
    const ents = [];
    const fields = [];
    for (const p of products) {
      for (const e of p.entities) {
        if ([e.name, e.description, e.table, e.topic].some((t) => match(t, q))) ents.push({ p, e });
        for (const f of e.fields) {
          if ([f.name, f.description, f.type, f.column, f.classification, f.pii ? 'pii' : ''].some((t) => match(t, q))) fields.push({ p, e, f });
        }
      }
    }
    return { ps, ents, fields };
  }, [products, q]);
  const none = !res.ps.length && !res.ents.length && !res.fields.length;
  return (
    <div className="search-results" data-testid="search-results">
      {none && <Empty>Nothing in the catalog matches “{q}”.</Empty>}
      {res.ps.length > 0 && (
        <section>
          <h2 className="section-title">Products · {res.ps.length}</h2>
          <div className="grid">
            {res.ps.map((p) => (
              <ProductCard key={p.name} p={p} />
            ))}
          </div>
        </section>
      )}
      {res.ents.length > 0 && (
        <section>
          <h2 className="section-title">Entities · {res.ents.length}</h2>
          <div className="result-list">
            {res.ents.map(({ p, e }) => (
              <Link key={p.name + e.name} to={`/products/${p.name}#entity-${e.name}`} className="result" data-testid="entity-result">
                <span className="crumb">{p.name} ›</span> <strong><Highlight text={e.name} q={q} /></strong>
                <span className="muted"> — <Highlight text={e.description} q={q} /></span>
              </Link>
            ))}
          </div>
        </section>
      )}
      {res.fields.length > 0 && (
        <section>
          <h2 className="section-title">Fields · {res.fields.length}</h2>
          <table className="table" data-testid="field-results">
            <thead>
              <tr>
                <th>Field</th>
                <th>Type</th>
                <th>Classification</th>
                <th>Description</th>
              </tr>
            </thead>
            <tbody>
              {res.fields.slice(0, 200).map(({ p, e, f }) => (
                <tr key={`${p.name}.${e.name}.${f.name}`} data-testid="field-result">
                  <td>
                    <Link to={`/products/${p.name}#field-${e.name}-${f.name}`}>
                      <span className="crumb">
                        {p.name} › {e.name} ›
                      </span>{' '}
                      <strong>
                        <Highlight text={f.name} q={q} />
                      </strong>
                    </Link>
                  </td>
                  <td>
                    <code>{f.type}</code>
                  </td>
                  <td className="nowrap">
                    <ClassBadge level={f.classification} /> {f.pii && <PiiBadge />}
                  </td>
                  <td className="muted">
                    <Highlight text={f.description} q={q} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {res.fields.length > 200 && <p className="muted">Showing 200 of {res.fields.length} fields.</p>}
        </section>
      )}
    </div>
  );
}

/** Change events of the whole mesh in the last minute, counted as they arrive. */
function useChangesPerMinute() {
  const times = useRef([]);
  const now = useNow();
  useChanges(() => {
    times.current.push(Date.now());
    if (times.current.length > 100_000) times.current.splice(0, 50_000);
  });
  const t = times.current;
  while (t.length && t[0] < now - 60_000) t.shift();
  return t.length;
}

export default function CatalogPage() {
  const cat = useCatalog();
  const params = useParams();
  const q = (params.get('q') || '').trim().toLowerCase();
  const domains = useMemo(() => {
    const m = new Map();
    for (const p of cat.products) {
      if (!m.has(p.domain)) m.set(p.domain, []);
      m.get(p.domain).push(p);
    }
    return [...m.entries()].sort((a, b) => a[0].localeCompare(b[0]));
  }, [cat.products]);
  const entities = cat.products.reduce((n, p) => n + p.entities.length, 0);
  const rows = cat.products.reduce((n, p) => n + totalRows(p), 0);
  const pii = cat.products.reduce((n, p) => n + p.entities.reduce((m, e) => m + e.fields.filter((f) => f.pii).length, 0), 0);
  const perMinute = useChangesPerMinute();

  return (
    <div className="page">
      <PageHeader
        title="Data catalog"
        icon="catalog"
        subtitle="The data products of the mesh: who owns them, what they hold, how fresh they are."
      >
        <a className="btn" href="/catalog/">
          <Icon name="download" size={15} /> Exports
        </a>
      </PageHeader>
      <ErrorBox error={cat.error} />
      {cat.loading && <Loading label="Loading the catalog…" />}
      {!q && cat.products.length > 0 && (
        <div className="stats" data-testid="catalog-stats">
          <Stat label="Data products" value={cat.products.length} hint={`in ${domains.length} ${domains.length === 1 ? 'domain' : 'domains'}`} />
          <Stat label="Entities" value={entities} hint="one table and one topic each" />
          <Stat label="Rows" value={fmtInt(rows)} hint="over all entities" />
          <Stat label="PII fields" value={pii} hint="masked without pii:read" />
          <Stat label="Changes" value={fmtInt(perMinute)} hint="in the last minute, live" testid="changes-per-minute" />
        </div>
      )}
      {q ? (
        <SearchResults products={cat.products} q={q} />
      ) : (
        <div className="domains">
          {domains.map(([domain, ps]) => (
            <section key={domain} className="domain" data-testid="domain" data-domain={domain}>
              <h2 className="domain-title">
                <span className="swatch" style={{ background: colorFor(domain) }} />
                {domain}
                <Badge tone="gray">{ps.length === 1 ? '1 product' : `${ps.length} products`}</Badge>
                <span className="domain-link">{fmtInt(ps.reduce((n, p) => n + totalRows(p), 0))} rows</span>
              </h2>
              <div className="lane">
                {ps.map((p) => (
                  <ProductCard key={p.name} p={p} />
                ))}
              </div>
            </section>
          ))}
        </div>
      )}
    </div>
  );
}
