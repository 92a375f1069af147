// Row history: the audit trail of one row as a timeline of before/after
// differences with actor and request id; without a key, the entity's most
// recent changes to pick a row from.
import { useEffect, useState } from 'react';
import { useCatalog } from '../catalog.jsx';
import { useQuery, useThrottledChanges } from '../api.js';
import { Link, href, navigate, useParams } from '../router.jsx';
import { Ago, Card, Empty, ErrorBox, Icon, Loading, OpBadge, PageHeader, Value, rowMasked } from '../components.jsx';
import { fmtInt, fmtTime } from '../format.js';

const ROW_QUERY = `query RowHistory($product: String!, $entity: String, $key: ID) {
  auditLog(product: $product, entity: $entity, key: $key, last: 50) {
    totalCount
    nodes { sequence entity key op actor requestId at before after }
  }
}`;

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

function Diff({ entry, fields }) {
  const [showAll, setShowAll] = useState(false);
  const before = entry.before || {};
  const after = entry.after || {};
  // The catalog's field order first, then anything else the image holds.
  const order = fields.map((f) => f.name);
  const keys = [...new Set([...order, ...Object.keys(before), ...Object.keys(after)])].filter((k) => k in before || k in after);
  const isPii = (k) => !!fields.find((f) => f.name === k)?.pii;
  const maskedBefore = rowMasked(entry.before, fields);
  const maskedAfter = rowMasked(entry.after, fields);
  const changed = keys.filter((k) => !same(before[k], after[k]) || entry.op !== 'UPDATE');
  const unchanged = keys.filter((k) => !changed.includes(k));
  const shown = showAll ? keys : changed;
  return (
    <div className="diff">
      <table className="table diff-table">
        <thead>
          <tr>
            <th>Field</th>
            {entry.op !== 'CREATE' && <th>Before</th>}
            {entry.op !== 'DELETE' && <th>After</th>}
          </tr>
        </thead>
        <tbody>
          {shown.map((k) => {
            const diff = entry.op === 'UPDATE' && !same(before[k], after[k]);
            return (
              <tr key={k} className={diff ? 'changed' : ''} data-testid="diff-row" data-field={k} data-changed={diff ? 'true' : 'false'}>
                <td>
                  <code>{k}</code>
                </td>
                {entry.op !== 'CREATE' && (
                  <td className={diff ? 'before' : ''}>
                    <Value v={before[k]} pii={isPii(k)} masked={maskedBefore} />
                  </td>
                )}
                {entry.op !== 'DELETE' && (
                  <td className={diff ? 'after' : ''} data-testid="after-value">
                    <Value v={after[k]} pii={isPii(k)} masked={maskedAfter} />
                  </td>
                )}
              </tr>
            );
          })}
        </tbody>
      </table>
      {unchanged.length > 0 && (
        <button className="link-button" onClick={() => setShowAll((s) => !s)}>
          {showAll ? 'hide unchanged fields' : `show ${unchanged.length} unchanged ${unchanged.length === 1 ? 'field' : 'fields'}`}
        </button>
      )}
    </div>
  );
}

function Timeline({ entries, product, entity }) {
  const cat = useCatalog();
  return (
    <ol className="timeline" data-testid="timeline">
      {entries.map((e) => (
        <li
          key={e.sequence}
          className={`tl-item tl-${e.op.toLowerCase()}`}
          data-testid="history-entry"
          data-sequence={e.sequence}
          data-op={e.op}
          data-actor={e.actor}
        >
          <span className="tl-dot" />
          <div className="tl-card">
            <div className="tl-head">
              <OpBadge op={e.op} />
              <span className="tl-seq">#{e.sequence}</span>
              <span className="tl-time" title={e.at}>
                {fmtTime(e.at)} · <Ago t={e.at} />
              </span>
              <span className="tl-actor" data-testid="actor">
                <Icon name="user" size={13} /> {e.actor || 'unknown'}
              </span>
              <span className="tl-req" title="request id (X-Request-Id)">
                request <code data-testid="request-id">{e.requestId || '—'}</code>
              </span>
            </div>
            <Diff entry={e} fields={cat.entity(product, entity || e.entity)?.fields || []} />
          </div>
        </li>
      ))}
    </ol>
  );
}

function Recent({ product, entity }) {
  const q = useQuery(ROW_QUERY, { product, entity: entity || null, key: null });
  useThrottledChanges((ev) => ev.product === product && (!entity || ev.entity === entity), q.refetch, 1000);
  const nodes = q.data ? [...q.data.auditLog.nodes].reverse() : [];
  return (
    <Card title={`Recent changes in ${product}${entity ? ` › ${entity}` : ''}`} actions={q.data && <span className="muted small">{fmtInt(q.data.auditLog.totalCount)} in the log</span>}>
      <ErrorBox error={q.error} />
      {!q.data && q.loading && <Loading />}
      {q.data && nodes.length === 0 && <Empty>No changes recorded yet.</Empty>}
      {nodes.length > 0 && (
        <table className="table" data-testid="recent">
          <thead>
            <tr>
              <th>#</th>
              <th>Row</th>
              <th>Change</th>
              <th>Actor</th>
              <th>When</th>
            </tr>
          </thead>
          <tbody>
            {nodes.map((n) => (
              <tr key={n.sequence}>
                <td className="muted">{n.sequence}</td>
                <td>
                  <Link to={href('/history', { product, entity: n.entity, key: n.key })}>
                    {n.entity} {n.key}
                  </Link>
                </td>
                <td>
                  <OpBadge op={n.op} />
                </td>
                <td>{n.actor}</td>
                <td>
                  <Ago t={n.at} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Card>
  );
}

function RowHistory({ product, entity, rowKey }) {
  const q = useQuery(ROW_QUERY, { product, entity: entity || null, key: rowKey });
  useThrottledChanges((ev) => ev.product === product && (!entity || ev.entity === entity) && String(ev.key) === String(rowKey), q.refetch, 300);
  const nodes = q.data ? [...q.data.auditLog.nodes].reverse() : [];
  return (
    <Card
      title={
        <>
          {entity || 'Row'} <code>{rowKey}</code> <span className="muted small">in {product}</span>
        </>
      }
      actions={q.data && <span className="muted small">{fmtInt(q.data.auditLog.totalCount)} {q.data.auditLog.totalCount === 1 ? 'change' : 'changes'} · newest first</span>}
    >
      <ErrorBox error={q.error} />
      {!q.data && q.loading && <Loading />}
      {q.data && nodes.length === 0 && <Empty>The audit log has no entry for this row.</Empty>}
      {nodes.length > 0 && <Timeline entries={nodes} product={product} entity={entity} />}
      {q.data && q.data.auditLog.totalCount > nodes.length && <p className="muted">Showing the newest {nodes.length}.</p>}
    </Card>
  );
}

export default function HistoryPage() {
  const cat = useCatalog();
  const params = useParams();
  const product = params.get('product') || '';
  const entity = params.get('entity') || '';
  const key = params.get('key') || '';
  const [form, setForm] = useState({ product, entity, key });
  useEffect(() => setForm({ product, entity, key }), [product, entity, key]);
  const p = cat.byName[form.product];
  return (
    <div className="page">
      <PageHeader title="Row history" icon="history" subtitle="Every change of a row from its product's audit log: what changed, who changed it and in which request." />
      <form
        className="card history-form"
        onSubmit={(e) => {
          e.preventDefault();
          navigate(href('/history', form));
        }}
      >
        <label>
          Product
          <select
            data-testid="history-product"
            value={form.product}
            onChange={(e) => setForm({ product: e.target.value, entity: cat.byName[e.target.value]?.entities[0]?.name || '', key: '' })}
          >
            <option value="">choose…</option>
            {cat.products.map((x) => (
              <option key={x.name}>{x.name}</option>
            ))}
          </select>
        </label>
        <label>
          Entity
          <select data-testid="history-entity" value={form.entity} onChange={(e) => setForm({ ...form, entity: e.target.value })}>
            <option value="">any</option>
            {(p?.entities || []).map((x) => (
              <option key={x.name}>{x.name}</option>
            ))}
          </select>
        </label>
        <label>
          Key
          <input data-testid="history-key" value={form.key} placeholder="id, e.g. 5" onChange={(e) => setForm({ ...form, key: e.target.value })} />
        </label>
        <button className="btn btn-primary" type="submit" disabled={!form.product}>
          Show history
        </button>
      </form>
      <ErrorBox error={cat.error} />
      {product && key ? (
        <RowHistory product={product} entity={entity} rowKey={key} />
      ) : product ? (
        <Recent product={product} entity={entity} />
      ) : (
        <Empty>Choose a product, an entity and a row's key — or a product alone for its latest changes. Rows link here from the “Sample rows” tab of a product.</Empty>
      )}
    </div>
  );
}
