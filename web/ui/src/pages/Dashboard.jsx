// The live dashboard: headline sales figures pushed by the salesStats
// subscription, charts refetched as change events arrive, relay and consumer
// lag per product, and a live feed of change events or audit entries that
// resumes from its cursor after a reconnect.
import { useEffect, useMemo, useRef, useState } from 'react';
import { dropSocket, request, useLive, useQuery, useThrottledChanges } from '../api.js';
import { useCatalog } from '../catalog.jsx';
import { Link, href } from '../router.jsx';
import { Ago, Card, Empty, ErrorBox, Icon, OpBadge, PageHeader, Value, rowMasked } from '../components.jsx';
import { EChart, AXIS, TOOLTIP, echarts } from '../chart.jsx';
import { fmtClock, fmtCompact, fmtInt, fmtMoney, num } from '../format.js';
import { LagTable } from './Product.jsx';

const CHARTS_QUERY = `query DashboardCharts {
  dailyRevenue(last: 45, orderBy: [{field: DATE}]) { nodes { date orders revenue } }
  byCountry: customerValuesAggregate(groupBy: [COUNTRY]) { group { country } count sum { revenue } }
  topItems: itemSales(first: 10, orderBy: [{field: REVENUE, direction: DESC}]) { nodes { id units orders revenue } }
}`;

const STATS_FIELDS = 'orders revenue customers averageOrderValue at';

// ---------------------------------------------------------------------------
// Headline figures.

function Kpi({ label, value, raw, testid, fmt }) {
  const [flash, setFlash] = useState(false);
  const prev = useRef(raw);
  useEffect(() => {
    if (prev.current != null && raw != null && String(prev.current) !== String(raw)) {
      setFlash(true);
      const t = setTimeout(() => setFlash(false), 900);
      prev.current = raw;
      return () => clearTimeout(t);
    }
    prev.current = raw;
    return undefined;
  }, [raw]);
  return (
    <div className={flash ? 'kpi flash' : 'kpi'} data-testid={testid} data-value={raw ?? ''}>
      <div className="kpi-label">{label}</div>
      <div className="kpi-value">{raw == null ? '…' : fmt(value)}</div>
    </div>
  );
}

function Kpis() {
  const init = useQuery(`{ salesStats { ${STATS_FIELDS} } }`);
  const [stats, setStats] = useState(null);
  const [err, setErr] = useState(null);
  useLive(
    {
      query: `subscription Stats { salesStats { ${STATS_FIELDS} } }`,
      field: 'salesStats',
      onEvent: setStats,
      onError: setErr,
    },
    [],
  );
  const s = stats || init.data?.salesStats;
  return (
    <>
      <ErrorBox error={err || init.error} />
      <div className="kpis">
        <Kpi label="Orders" raw={s?.orders} value={s?.orders} fmt={fmtInt} testid="kpi-orders" />
        <Kpi label="Revenue" raw={s?.revenue} value={s?.revenue} fmt={fmtMoney} testid="kpi-revenue" />
        <Kpi label="Customers with orders" raw={s?.customers} value={s?.customers} fmt={fmtInt} testid="kpi-customers" />
        <Kpi label="Average order" raw={s?.averageOrderValue} value={s?.averageOrderValue} fmt={fmtMoney} testid="kpi-aov" />
      </div>
    </>
  );
}

// ---------------------------------------------------------------------------
// Charts.

function useItemNames(ids) {
  const [names, setNames] = useState({});
  const key = ids.join(',');
  useEffect(() => {
    const missing = ids.filter((id) => !(id in names));
    if (!missing.length) return;
    request('query ItemNames($ids: [ID!]) { items(where: {id: {in: $ids}}, first: 50) { nodes { id name sku } } }', { ids: missing }).then(
      ({ data }) => setNames((old) => ({ ...old, ...Object.fromEntries(data.items.nodes.map((n) => [n.id, `${n.name} (${n.sku})`])) })),
      () => setNames((old) => ({ ...old, ...Object.fromEntries(missing.map((id) => [id, `item ${id}`])) })),
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  return names;
}

function Charts() {
  const q = useQuery(CHARTS_QUERY);
  const [version, setVersion] = useState(0);
  // Every change may move a figure: refetch, at most every 300 ms.
  useThrottledChanges(() => true, q.refetch, 300);
  useEffect(() => {
    if (q.data) setVersion((v) => v + 1);
  }, [q.data]);

  const days = q.data?.dailyRevenue?.nodes || [];
  const last = days[days.length - 1];
  const revenueOption = useMemo(
    () => ({
      animationDuration: 300,
      grid: { left: 56, right: 16, top: 16, bottom: 28 },
      tooltip: { ...TOOLTIP, trigger: 'axis', valueFormatter: (v) => fmtMoney(v) },
      xAxis: { type: 'category', data: days.map((d) => d.date.slice(5)), boundaryGap: false, ...AXIS },
      yAxis: { type: 'value', ...AXIS, axisLabel: { ...AXIS.axisLabel, formatter: (v) => fmtCompact(v) } },
      series: [
        {
          name: 'Revenue',
          type: 'line',
          smooth: 0.3,
          symbol: 'circle',
          symbolSize: 5,
          showSymbol: false,
          lineStyle: { width: 2.5, color: '#4f46e5' },
          itemStyle: { color: '#4f46e5' },
          areaStyle: {
            color: new echarts.graphic.LinearGradient(0, 0, 0, 1, [
              { offset: 0, color: 'rgba(79,70,229,.28)' },
              { offset: 1, color: 'rgba(79,70,229,.02)' },
            ]),
          },
          data: days.map((d) => num(d.revenue)),
          markPoint: undefined,
        },
      ],
    }),
    [days],
  );

  const countries = useMemo(
    () =>
      [...(q.data?.byCountry || [])]
        .map((g) => ({ country: g.group?.country || '?', revenue: num(g.sum?.revenue) || 0, count: g.count }))
        .sort((a, b) => b.revenue - a.revenue)
        .slice(0, 12),
    [q.data],
  );
  const countryOption = useMemo(
    () => ({
      animationDuration: 300,
      grid: { left: 56, right: 16, top: 16, bottom: 28 },
      tooltip: { ...TOOLTIP, trigger: 'axis', valueFormatter: (v) => fmtMoney(v) },
      xAxis: { type: 'category', data: countries.map((c) => c.country), ...AXIS },
      yAxis: { type: 'value', ...AXIS, axisLabel: { ...AXIS.axisLabel, formatter: (v) => fmtCompact(v) } },
      series: [
        {
          name: 'Revenue',
          type: 'bar',
          barMaxWidth: 28,
          itemStyle: { color: '#0891b2', borderRadius: [5, 5, 0, 0] },
          data: countries.map((c) => c.revenue),
        },
      ],
    }),
    [countries],
  );

  const items = q.data?.topItems?.nodes || [];
  const names = useItemNames(items.map((i) => i.id));
  const itemOption = useMemo(() => {
    const rev = [...items].reverse();
    return {
      animationDuration: 300,
      grid: { left: 8, right: 56, top: 8, bottom: 8, containLabel: true },
      tooltip: { ...TOOLTIP, trigger: 'axis', axisPointer: { type: 'shadow' }, valueFormatter: (v) => fmtMoney(v) },
      xAxis: { type: 'value', ...AXIS, axisLabel: { ...AXIS.axisLabel, formatter: (v) => fmtCompact(v) } },
      yAxis: {
        type: 'category',
        data: rev.map((i) => names[i.id] || `item ${i.id}`),
        ...AXIS,
        axisLabel: { ...AXIS.axisLabel, width: 170, overflow: 'truncate' },
      },
      series: [
        {
          name: 'Revenue',
          type: 'bar',
          barMaxWidth: 16,
          itemStyle: { color: '#059669', borderRadius: [0, 4, 4, 0] },
          label: { show: true, position: 'right', color: '#475569', fontSize: 11, formatter: (p) => fmtCompact(p.value) },
          data: rev.map((i) => num(i.revenue)),
        },
      ],
    };
  }, [items, names]);

  return (
    <>
      <ErrorBox error={q.error} />
      <div className="chart-grid">
        <Card
          className="span-2"
          title="Revenue per day"
          actions={
            last && (
              <span className="muted small">
                {last.date}: <strong data-testid="revenue-today">{fmtMoney(last.revenue)}</strong> · {fmtInt(last.orders)} orders
              </span>
            )
          }
        >
          <EChart
            option={revenueOption}
            height={260}
            data-testid="revenue-chart"
            data-last-date={last?.date ?? ''}
            data-last-revenue={last?.revenue ?? ''}
            data-last-orders={last?.orders ?? ''}
            data-version={version}
          />
        </Card>
        <Card title="Revenue by country">
          <EChart option={countryOption} height={260} data-testid="country-chart" data-countries={countries.length} />
        </Card>
        <Card title="Top items by revenue">
          <EChart option={itemOption} height={260} data-testid="items-chart" data-items={items.length} />
        </Card>
      </div>
    </>
  );
}

// ---------------------------------------------------------------------------
// Relay and consumer lag per product.

function Pipeline() {
  const cat = useCatalog();
  const lag = useQuery('{ consumerLag { product source appliedSequence appliedAt latestSequence lag } }', {}, { poll: 2000 });
  const relay = useQuery('{ catalog { name freshness { sequence unpublished lastChangedAt } } }', {}, { poll: 3000 });
  const relayRows = relay.data?.catalog || [];
  const maxBacklog = Math.max(1, ...relayRows.map((r) => Number(r.freshness.unpublished || 0)));
  return (
    <div className="two-col pipeline">
      <Card title="Relay to Kafka" actions={<span className="muted small">changes committed, not yet published</span>}>
        <ErrorBox error={relay.error} />
        <table className="table" data-testid="relay-table">
          <thead>
            <tr>
              <th>Product</th>
              <th className="num">Sequence</th>
              <th className="num">Backlog</th>
              <th />
              <th>Last change</th>
            </tr>
          </thead>
          <tbody>
            {relayRows.map((r) => {
              const b = Number(r.freshness.unpublished || 0);
              return (
                <tr key={r.name} data-testid="relay-row" data-product={r.name} data-backlog={b}>
                  <td>
                    <Link to={`/products/${r.name}`}>{r.name}</Link>
                  </td>
                  <td className="num">{fmtInt(r.freshness.sequence)}</td>
                  <td className="num strong">{fmtInt(b)}</td>
                  <td className="w-bar">
                    <span className="lagbar">
                      <span className={b === 0 ? 'fill ok' : b < 100 ? 'fill warn' : 'fill bad'} style={{ width: `${b ? Math.max(3, (b / maxBacklog) * 100) : 0}%` }} />
                    </span>
                  </td>
                  <td>
                    <Ago t={(cat.byName[r.name] || r).freshness.lastChangedAt} />
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </Card>
      <Card title="Consumer lag" actions={<span className="muted small">changes of the source not yet applied</span>}>
        <ErrorBox error={lag.error} />
        <LagTable rows={lag.data?.consumerLag || []} compact />
      </Card>
    </div>
  );
}

// ---------------------------------------------------------------------------
// The live feed.

const FEED_MAX = 150;
const OPS = ['CREATE', 'UPDATE', 'DELETE'];
const EVENT_FIELDS = 'product entity key op actor requestId at sequence cursor before after';

function summary(ev, fields) {
  const b = ev.before || {};
  const a = ev.after || {};
  const mb = rowMasked(ev.before, fields);
  const ma = rowMasked(ev.after, fields);
  const piiOf = (k) => !!fields.find((f) => f.name === k)?.pii;
  if (ev.op === 'UPDATE') {
    const keys = Object.keys(a).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]) && k !== 'updatedAt');
    return keys.slice(0, 4).map((k) => ({ k, from: b[k], to: a[k], pii: piiOf(k), mFrom: mb, mTo: ma }));
  }
  const img = ev.op === 'DELETE' ? b : a;
  return Object.keys(img)
    .filter((k) => k !== 'id' && k !== 'createdAt' && k !== 'updatedAt' && typeof img[k] !== 'object')
    .slice(0, 4)
    .map((k) => ({ k, to: img[k], pii: piiOf(k), mTo: ev.op === 'DELETE' ? mb : ma }));
}

function FeedItem({ ev, fields }) {
  const parts = summary(ev, fields);
  return (
    <li
      className={`feed-item op-${ev.op.toLowerCase()}`}
      data-testid="feed-item"
      data-product={ev.product}
      data-entity={ev.entity}
      data-key={ev.key}
      data-op={ev.op}
      data-sequence={ev.sequence}
    >
      <span className="feed-time">{fmtClock(ev.at)}</span>
      <OpBadge op={ev.op} />
      <span className="feed-what">
        <Link to={href('/history', { product: ev.product, entity: ev.entity, key: ev.key })} title="row history">
          <span className="muted">{ev.product} ›</span> {ev.entity} <strong>{ev.key}</strong>
        </Link>
      </span>
      <span className="feed-summary">
        {parts.map((p) => (
          <span key={p.k} className="kv">
            <span className="k">{p.k}</span>
            {'from' in p && (
              <>
                <Value v={p.from} pii={p.pii} masked={p.mFrom} />
                <span className="arrow">→</span>
              </>
            )}
            <Value v={p.to} pii={p.pii} masked={p.mTo} />
          </span>
        ))}
      </span>
      <span className="feed-actor" title={`request ${ev.requestId || '—'}`}>
        <Icon name="user" size={12} /> {ev.actor}
      </span>
    </li>
  );
}

function Feed() {
  const cat = useCatalog();
  const [stream, setStream] = useState('changes');
  const [product, setProduct] = useState('');
  const [entity, setEntity] = useState('');
  const [ops, setOps] = useState(OPS);
  const [paused, setPaused] = useState(false);
  const [events, setEvents] = useState([]);
  const [state, setState] = useState('live');
  const [err, setErr] = useState(null);
  const [count, setCount] = useState(0);
  const buf = useRef({ list: [], timer: null, seen: new Set(), paused: false });
  buf.current.paused = paused;

  const allOps = ops.length === OPS.length;
  const sub = useMemo(() => {
    if (stream === 'audit') {
      return {
        query: `subscription AuditFeed($product: String, $entity: String, $since: String) { auditEntries(product: $product, entity: $entity, since: $since) { ${EVENT_FIELDS} } }`,
        field: 'auditEntries',
        variables: { product: product || null, entity: entity || null },
      };
    }
    return {
      query: `subscription ChangeFeed($products: [String!], $entities: [String!], $ops: [AuditOp!], $since: String) { changes(products: $products, entities: $entities, ops: $ops, since: $since) { ${EVENT_FIELDS} } }`,
      field: 'changes',
      variables: { products: product ? [product] : null, entities: entity ? [entity] : null, ops: allOps ? null : ops },
    };
  }, [stream, product, entity, ops, allOps]);

  useEffect(() => {
    setEvents([]);
    setCount(0);
    setErr(null);
    buf.current.list = [];
    buf.current.seen = new Set();
  }, [sub]);

  const opsRef = useRef(ops);
  opsRef.current = ops;
  useLive(
    {
      ...sub,
      onEvent: (ev) => {
        const b = buf.current;
        const id = `${ev.product}:${ev.sequence}`;
        if (b.seen.has(id)) return;
        b.seen.add(id);
        if (b.seen.size > 5000) b.seen = new Set([...b.seen].slice(-2000));
        if (!opsRef.current.includes(ev.op)) return; // auditEntries has no ops filter
        b.list.push(ev);
        if (b.timer) return;
        b.timer = setTimeout(() => {
          b.timer = null;
          if (b.paused) return;
          const batch = b.list;
          b.list = [];
          setCount((c) => c + batch.length);
          setEvents((old) => [...batch.reverse(), ...old].slice(0, FEED_MAX));
        }, 80);
      },
      onError: setErr,
      onState: setState,
    },
    [sub],
  );

  useEffect(() => {
    const b = buf.current;
    if (!paused && b.list.length) {
      const batch = b.list;
      b.list = [];
      setCount((c) => c + batch.length);
      setEvents((old) => [...batch.reverse(), ...old].slice(0, FEED_MAX));
    }
  }, [paused]);

  const p = cat.byName[product];

  return (
    <Card
      className="feed-card"
      title={
        <>
          Live feed <span className={`feed-state ${state}`} data-testid="feed-state" data-state={state}>{state === 'live' ? 'live' : 'resuming from cursor…'}</span>
        </>
      }
      actions={
        <>
          <span className="muted small" data-testid="feed-count">
            {fmtInt(count)} received
          </span>
          <button className="btn btn-small" onClick={() => setPaused((x) => !x)} data-testid="feed-pause">
            <Icon name={paused ? 'play' : 'pause'} size={13} /> {paused ? `Resume (${buf.current.list.length})` : 'Pause'}
          </button>
          <button className="btn btn-small" onClick={() => dropSocket()} title="drop the websocket: the feed resumes from its cursor" data-testid="feed-reconnect">
            <Icon name="plug" size={13} /> Reconnect
          </button>
        </>
      }
    >
      <div className="feed-filters">
        <div className="seg" role="radiogroup" aria-label="stream">
          <button className={stream === 'changes' ? 'on' : ''} onClick={() => setStream('changes')} data-testid="stream-changes">
            Change events
          </button>
          <button className={stream === 'audit' ? 'on' : ''} onClick={() => setStream('audit')} data-testid="stream-audit">
            Audit entries
          </button>
        </div>
        <select
          value={product}
          onChange={(e) => {
            setProduct(e.target.value);
            setEntity('');
          }}
          data-testid="feed-product"
        >
          <option value="">all products</option>
          {cat.products.map((x) => (
            <option key={x.name}>{x.name}</option>
          ))}
        </select>
        <select value={entity} onChange={(e) => setEntity(e.target.value)} disabled={!p} data-testid="feed-entity">
          <option value="">all entities</option>
          {(p?.entities || []).map((x) => (
            <option key={x.name}>{x.name}</option>
          ))}
        </select>
        <div className="ops">
          {OPS.map((o) => (
            <label key={o} className={`op-toggle op-${o.toLowerCase()}`}>
              <input
                type="checkbox"
                checked={ops.includes(o)}
                data-testid={`feed-op-${o}`}
                onChange={(e) => setOps((cur) => (e.target.checked ? OPS.filter((x) => x === o || cur.includes(x)) : cur.filter((x) => x !== o)))}
              />
              {o.toLowerCase()}
            </label>
          ))}
        </div>
      </div>
      <ErrorBox error={err} />
      {events.length === 0 ? (
        <Empty>Waiting for changes… place an order or update a customer through the API and it shows up here.</Empty>
      ) : (
        <ul className="feed" data-testid="feed">
          {events.map((ev) => (
            <FeedItem key={`${ev.product}:${ev.sequence}`} ev={ev} fields={cat.entity(ev.product, ev.entity)?.fields || []} />
          ))}
        </ul>
      )}
    </Card>
  );
}

export default function DashboardPage() {
  return (
    <div className="page dashboard" data-testid="dashboard">
      <PageHeader title="Live dashboard" icon="dashboard" subtitle="Sales as they happen, the mesh's pipelines and every change, pushed over the websocket." />
      <Kpis />
      <Charts />
      <Pipeline />
      <Feed />
    </div>
  );
}

