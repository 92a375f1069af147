// A data product: entities and fields with classification and PII, sample
// rows (masked as the gateway masks them), lineage and lag, SDL, downloads.
import { useEffect, useMemo, useState } from 'react';
import { useCatalog } from '../catalog.jsx';
import { rootFieldsByEntity, useQuery, useThrottledChanges } from '../api.js';
import { Link, href } from '../router.jsx';
import {
  Ago,
  Badge,
  Card,
  ClassBadge,
  Empty,
  ErrorBox,
  Icon,
  KindBadge,
  Loading,
  PiiBadge,
  Stat,
  Tabs,
  Value,
  colorFor,
  rowMasked,
} from '../components.jsx';
import { fmtInt } from '../format.js';

const LAG_QUERY = '{ consumerLag { product source appliedSequence appliedAt latestSequence lag } }';

function FieldsTable({ entity }) {
  return (
    <table className="table fields">
      <thead>
        <tr>
          <th>Field</th>
          <th>Type</th>
          <th>Column</th>
          <th>Classification</th>
          <th>Description</th>
        </tr>
      </thead>
      <tbody>
        {entity.fields.map((f) => (
          <tr
            key={f.name}
            id={`field-${entity.name}-${f.name}`}
            data-testid="field-row"
            data-entity={entity.name}
            data-field={f.name}
            data-pii={f.pii ? 'true' : 'false'}
          >
            <td className="nowrap">
              <code className="field-name">{f.name}</code>
              {f.primaryKey && (
                <span className="pk" title="primary key">
                  <Icon name="key" size={12} />
                </span>
              )}
            </td>
            <td className="nowrap">
              <code className="type">{f.type}</code>
            </td>
            <td className="nowrap muted">
              <code>{f.column}</code> <span className="sqltype">{f.sqlType}</span>
            </td>
            <td className="nowrap">
              <ClassBadge level={f.classification} /> {f.pii && <PiiBadge />}
            </td>
            <td>
              {f.description}
              {f.references && (
                <div className="ref">
                  <Icon name="link" size={12} /> references{' '}
                  <Link to={`/products/${f.references.product}#entity-${f.references.entity}`}>
                    {f.references.product} › {f.references.entity}.{f.references.field}
                  </Link>
                </div>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function EntityCard({ entity }) {
  return (
    <Card
      id={`entity-${entity.name}`}
      className="entity"
      data-testid="entity-card"
      data-entity={entity.name}
      title={
        <>
          {entity.name} <span className="muted small">{entity.description}</span>
        </>
      }
      actions={
        <Link className="btn btn-small" to={href('/history', { product: entity.product, entity: entity.name })}>
          <Icon name="history" size={13} /> Recent changes
        </Link>
      }
    >
      <div className="chips">
        <span className="chip" title="table in the product's store">
          <Icon name="table" size={12} /> {entity.table}
        </span>
        <span className="chip" title="Kafka topic with the entity's change events" data-testid="topic">
          <Icon name="topic" size={12} /> {entity.topic}
        </span>
        <span className="chip" title="key">
          <Icon name="key" size={12} /> {entity.primaryKey.join(', ')}
        </span>
        <span className="chip" title="rows now">
          {fmtInt(entity.rowCount)} rows
        </span>
      </div>
      <FieldsTable entity={entity} />
    </Card>
  );
}

function SampleRows({ product, entity }) {
  const [roots, setRoots] = useState(null);
  const [err, setErr] = useState(null);
  useEffect(() => {
    rootFieldsByEntity().then(setRoots, setErr);
  }, []);
  const list = roots?.[entity.name]?.list;
  const fields = entity.fields.map((f) => f.name);
  const query = list ? `query Sample { rows: ${list}(last: 8) { totalCount nodes { ${fields.join(' ')} } } }` : '{ __typename }';
  const q = useQuery(query, {}, { skip: !list });
  useThrottledChanges((ev) => ev.product === product.name && ev.entity === entity.name, q.refetch, 1500);
  const rows = q.data?.rows?.nodes ? [...q.data.rows.nodes].reverse() : [];
  return (
    <Card
      title={
        <>
          {entity.name}
          {list && (
            <span className="muted small">
              {' '}
              newest {rows.length} of {fmtInt(q.data?.rows?.totalCount)} · <code>{list}</code>
            </span>
          )}
        </>
      }
      data-testid="sample"
      data-entity={entity.name}
    >
      <ErrorBox error={err || q.error} />
      {q.errors?.length > 0 && <ErrorBox error={{ message: q.errors.map((e) => e.message).join('; '), codes: q.errors.map((e) => e.extensions?.code) }} />}
      {roots && !list && <Empty>The API has no list field for {entity.name}; its rows are reached through their parent.</Empty>}
      {list && !q.data && q.loading && <Loading />}
      {rows.length > 0 && (
        <div className="scroll-x">
          <table className="table data">
            <thead>
              <tr>
                {entity.fields.map((f) => (
                  <th key={f.name}>
                    {f.name} {f.pii && <PiiBadge />}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.id ?? JSON.stringify(r)} data-testid="sample-row">
                  {entity.fields.map((f) => (
                    <td key={f.name} data-field={f.name}>
                      {f.primaryKey && r[f.name] != null ? (
                        <Link
                          className="row-link"
                          to={href('/history', { product: product.name, entity: entity.name, key: r[f.name] })}
                          title="this row's history"
                          data-testid="row-history-link"
                        >
                          <Icon name="history" size={12} /> {r[f.name]}
                        </Link>
                      ) : (
                        <Value v={r[f.name]} pii={f.pii} masked={rowMasked(r, entity.fields)} />
                      )}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Card>
  );
}

function LagBar({ lag, latest }) {
  const l = Number(lag || 0);
  const pct = latest ? Math.min(100, (l / Math.max(1, Number(latest))) * 100) : 0;
  return (
    <span className="lagbar" title={`${fmtInt(l)} changes behind`}>
      <span className={l === 0 ? 'fill ok' : l < 100 ? 'fill warn' : 'fill bad'} style={{ width: `${Math.max(l ? 3 : 0, pct)}%` }} />
    </span>
  );
}

export function LagTable({ rows, highlight, compact = false }) {
  if (!rows.length) return <Empty>No product consumes these change events.</Empty>;
  return (
    <table className="table lag" data-testid="lag-table">
      <thead>
        <tr>
          <th>Consumer</th>
          <th>Source</th>
          {!compact && <th className="num">Applied</th>}
          {!compact && <th className="num">Latest</th>}
          <th className="num">Lag</th>
          <th />
          <th>Applied change from</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={`${r.product}<-${r.source}`} data-testid="lag-row" data-consumer={r.product} data-source={r.source} data-lag={r.lag}>
            <td className={highlight === r.product ? 'strong' : ''}>
              <Link to={`/products/${r.product}`}>{r.product}</Link>
            </td>
            <td className={highlight === r.source ? 'strong' : ''}>
              <Link to={`/products/${r.source}`}>{r.source}</Link>
            </td>
            {!compact && <td className="num">{fmtInt(r.appliedSequence)}</td>}
            {!compact && <td className="num">{fmtInt(r.latestSequence)}</td>}
            <td className="num strong" title={`applied ${fmtInt(r.appliedSequence)} of ${fmtInt(r.latestSequence)}`}>
              {fmtInt(r.lag)}
            </td>
            <td className="w-bar">
              <LagBar lag={r.lag} latest={r.latestSequence} />
            </td>
            <td>
              <Ago t={r.appliedAt} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Flows({ p }) {
  return (
    <div className="two-col">
      <Card title="Consumes (inputs)">
        {p.inputs.length === 0 && <Empty>{p.name} reacts to no other product's changes.</Empty>}
        <ul className="flow-list">
          {p.inputs.map((l) => (
            <li key={l.topic} data-testid="input">
              <div>
                <Link to={`/products/${l.producer}`}>{l.producer}</Link> › {l.entity} <Icon name="arrow" size={13} /> <strong>{p.name}</strong>
              </div>
              <code className="muted">{l.topic}</code>
              <p className="muted">{l.description}</p>
            </li>
          ))}
        </ul>
      </Card>
      <Card title="Consumed by">
        {p.consumers.length === 0 && <Empty>No product consumes {p.name}'s change events.</Empty>}
        <ul className="flow-list">
          {p.consumers.map((l) => (
            <li key={l.consumer + l.topic} data-testid="consumer">
              <div>
                <strong>{p.name}</strong> › {l.entity} <Icon name="arrow" size={13} /> <Link to={`/products/${l.consumer}`}>{l.consumer}</Link>
              </div>
              <code className="muted">{l.topic}</code>
              <p className="muted">{l.description}</p>
            </li>
          ))}
        </ul>
      </Card>
    </div>
  );
}

const SDL_TOKENS = /("""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*"|#[^\n]*|@\w+|\b(?:type|extend|schema|input|enum|scalar|directive|interface|union|implements|on|repeatable)\b|\b[A-Z]\w*)/g;

function Sdl({ text }) {
  const parts = useMemo(() => {
    const out = [];
    let last = 0;
    let i = 0;
    for (const m of text.matchAll(SDL_TOKENS)) {
      if (m.index > last) out.push(text.slice(last, m.index));
      const t = m[0];
      const cls = t.startsWith('"') || t.startsWith('#') ? 'tok-str' : t.startsWith('@') ? 'tok-dir' : /^[A-Z]/.test(t) ? 'tok-type' : 'tok-kw';
      out.push(
        <span key={i++} className={cls}>
          {t}
        </span>,
      );
      last = m.index + t.length;
    }
    out.push(text.slice(last));
    return out;
  }, [text]);
  return (
    <pre className="sdl" data-testid="sdl">
      {parts}
    </pre>
  );
}

function SdlTab({ p }) {
  const q = useQuery('query Sdl($name: String!) { catalog(product: $name) { sdl } }', { name: p.name });
  const sdl = q.data?.catalog?.[0]?.sdl;
  return (
    <Card
      title="SDL"
      actions={
        <a className="btn btn-small" href={p.downloads.sdl} download={`${p.name}.graphql`}>
          <Icon name="download" size={13} /> {p.name}.graphql
        </a>
      }
    >
      <ErrorBox error={q.error} />
      {sdl ? <Sdl text={sdl} /> : <Loading />}
    </Card>
  );
}

export default function ProductPage({ name }) {
  const cat = useCatalog();
  const p = cat.byName[name];
  const [tab, setTab] = useState('schema');
  const lag = useQuery(LAG_QUERY, {}, { poll: 3000 });
  const relay = useQuery('query Relay($name: String!) { catalog(product: $name) { freshness { unpublished } } }', { name }, { poll: 5000 });
  useEffect(() => setTab('schema'), [name]);
  useEffect(() => {
    const id = decodeURIComponent(location.hash.slice(1));
    if (!id || !p) return;
    const el = document.getElementById(id);
    if (el) {
      el.scrollIntoView({ block: 'center' });
      el.classList.add('flash');
    }
  }, [p, name]);

  if (!p) {
    if (cat.loading) return <Loading label="Loading the catalog…" />;
    return (
      <div className="page">
        <ErrorBox error={cat.error} />
        <Empty>
          No data product named “{name}”. <Link to="/">Back to the catalog</Link>.
        </Empty>
      </div>
    );
  }
  const lagRows = (lag.data?.consumerLag || []).filter((r) => r.product === p.name || r.source === p.name);
  const inLag = lagRows.filter((r) => r.product === p.name).reduce((n, r) => n + Number(r.lag || 0), 0);
  const rows = p.entities.reduce((n, e) => n + Number(e.rowCount || 0), 0);
  const pii = p.entities.reduce((n, e) => n + e.fields.filter((f) => f.pii).length, 0);
  const unpublished = relay.data?.catalog?.[0]?.freshness?.unpublished;

  return (
    <div className="page" data-testid="product-page" data-product={p.name}>
      <div className="crumbs">
        <Link to="/">Catalog</Link> › <Link to={href('/', { q: p.domain })}>{p.domain}</Link> › {p.name}
      </div>
      <header className="product-header">
        <div className="ph-main">
          <div className="ph-title">
            <span className="swatch big" style={{ background: colorFor(p.domain) }} />
            <h1>{p.name}</h1>
            <KindBadge kind={p.kind} />
            <Badge tone="gray">domain: {p.domain}</Badge>
          </div>
          <p className="ph-desc">{p.description}</p>
          <div className="ph-meta">
            <span>
              <Icon name="user" size={14} /> owned by <strong>{p.owner}</strong>
            </span>
            <a href={`mailto:${p.contact}`}>{p.contact}</a>
          </div>
        </div>
        <div className="ph-actions">
          <a className="btn" href={p.downloads.odps} download={`${p.name}-odps.yaml`} data-testid="download-odps">
            <Icon name="download" size={14} /> ODPS
          </a>
          <a className="btn" href={p.downloads.odcs} download={`${p.name}-odcs.yaml`} data-testid="download-odcs">
            <Icon name="download" size={14} /> ODCS
          </a>
          <a className="btn" href={p.downloads.sdl} download={`${p.name}.graphql`} data-testid="download-sdl">
            <Icon name="download" size={14} /> SDL
          </a>
        </div>
      </header>
      <div className="stats">
        <Stat label="Rows" value={fmtInt(rows)} hint={`${p.entities.length} ${p.entities.length === 1 ? 'entity' : 'entities'}`} />
        <Stat label="Last change" value={<Ago t={p.freshness.lastChangedAt} />} hint={`sequence ${fmtInt(p.freshness.sequence)}`} testid="stat-freshness" />
        <Stat label="Relay backlog" value={unpublished == null ? '…' : fmtInt(unpublished)} hint="changes not yet on Kafka" />
        <Stat
          label="Consumer lag"
          value={p.inputs.length ? fmtInt(inLag) : '—'}
          hint={p.inputs.length ? `behind ${[...new Set(p.inputs.map((i) => i.producer))].join(', ')}` : 'consumes nothing'}
          testid="stat-lag"
        />
        <Stat label="PII fields" value={pii} hint={pii ? 'masked without pii:read' : 'no personal data'} />
      </div>
      <Tabs
        active={tab}
        onChange={setTab}
        tabs={[
          { id: 'schema', label: 'Schema', count: p.entities.length },
          { id: 'data', label: 'Sample rows' },
          { id: 'lineage', label: 'Lineage & lag', count: p.inputs.length + p.consumers.length },
          { id: 'sdl', label: 'SDL' },
        ]}
      />
      {tab === 'schema' && p.entities.map((e) => <EntityCard key={e.name} entity={e} />)}
      {tab === 'data' && p.entities.map((e) => <SampleRows key={e.name} product={p} entity={e} />)}
      {tab === 'lineage' && (
        <>
          <Flows p={p} />
          <Card title="Consumer lag" actions={<span className="muted small">refreshed every 3 s</span>}>
            <ErrorBox error={lag.error} />
            <LagTable rows={lagRows} highlight={p.name} />
          </Card>
        </>
      )}
      {tab === 'sdl' && <SdlTab p={p} />}
    </div>
  );
}
