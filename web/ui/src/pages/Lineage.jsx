// Lineage: data products as nodes, event flows (who consumes whose change
// events) as edges, laid out by dagre; key references across products as
// dashed edges on request. Clicking a product opens it.
import { useMemo, useState } from 'react';
import { ReactFlow, Background, Controls, Handle, Position, MarkerType } from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import dagre from '@dagrejs/dagre';
import { useCatalog, flows } from '../catalog.jsx';
import { navigate, Link } from '../router.jsx';
import { Ago, ErrorBox, Icon, KindBadge, Loading, colorFor } from '../components.jsx';
import { fmtCompact } from '../format.js';

const NODE_W = 250;
const NODE_H = 132;

function ProductNode({ data }) {
  const p = data.product;
  const rows = p.entities.reduce((n, e) => n + Number(e.rowCount || 0), 0);
  return (
    <div className="lin-node" data-testid="lineage-node" data-product={p.name} style={{ '--accent': colorFor(p.domain) }}>
      <Handle type="target" position={Position.Left} id="in" />
      <Handle type="source" position={Position.Right} id="out" />
      <Handle type="target" position={Position.Top} id="back-in" />
      <Handle type="source" position={Position.Top} id="back-out" />
      <Handle type="target" position={Position.Bottom} id="ref-in" />
      <Handle type="source" position={Position.Bottom} id="ref-out" />
      <div className="lin-head">
        <strong>{p.name}</strong>
        <KindBadge kind={p.kind} />
      </div>
      <div className="lin-domain">{p.domain}</div>
      <div className="lin-entities">{p.entities.map((e) => e.name).join(' · ')}</div>
      <div className="lin-foot">
        <span>{fmtCompact(rows)} rows</span>
        <Ago t={p.freshness.lastChangedAt} />
      </div>
    </div>
  );
}

const nodeTypes = { product: ProductNode };

function refEdges(products) {
  const map = new Map();
  for (const p of products) {
    for (const e of p.entities) {
      for (const f of e.fields) {
        const r = f.references;
        if (!r || r.product === p.name) continue;
        const id = `ref:${p.name}->${r.product}`;
        if (!map.has(id)) map.set(id, { id, source: p.name, target: r.product, fields: [] });
        map.get(id).fields.push(`${e.name}.${f.name}`);
      }
    }
  }
  return [...map.values()];
}

function layout(products, edges) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'LR', nodesep: 60, ranksep: 130, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  // Lay out in a stable order, so the picture does not jump between loads.
  for (const p of [...products].sort((a, b) => a.name.localeCompare(b.name))) g.setNode(p.name, { width: NODE_W, height: NODE_H });
  for (const e of edges) g.setEdge(e.source, e.target);
  dagre.layout(g);
  const pos = {};
  for (const n of g.nodes()) {
    const { x, y } = g.node(n);
    pos[n] = { x: x - NODE_W / 2, y: y - NODE_H / 2 };
  }
  return pos;
}

export default function LineagePage() {
  const cat = useCatalog();
  const [showRefs, setShowRefs] = useState(false);
  const fl = useMemo(() => flows(cat.products), [cat.products]);
  const refs = useMemo(() => refEdges(cat.products), [cat.products]);
  const names = cat.products.map((p) => p.name).join(',');
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const pos = useMemo(() => layout(cat.products, fl), [names, fl.map((f) => f.id).join(',')]);

  const nodes = useMemo(
    () =>
      cat.products.map((p) => ({
        id: p.name,
        type: 'product',
        position: pos[p.name] || { x: 0, y: 0 },
        data: { product: p },
        draggable: true,
        connectable: false,
      })),
    [cat.products, pos],
  );

  const edges = useMemo(() => {
    const out = fl.map((f) => {
      const back = (pos[f.target]?.x ?? 0) < (pos[f.source]?.x ?? 0);
      const entities = [...new Set(f.links.map((l) => l.entity))].join(', ');
      return {
        id: f.id,
        source: f.source,
        target: f.target,
        sourceHandle: back ? 'back-out' : 'out',
        targetHandle: back ? 'back-in' : 'in',
        label: entities,
        animated: true,
        type: 'default',
        markerEnd: { type: MarkerType.ArrowClosed, width: 18, height: 18, color: '#6366f1' },
        style: { stroke: '#6366f1', strokeWidth: 2 },
        labelStyle: { fontSize: 12, fontWeight: 600, fill: '#3730a3' },
        labelBgStyle: { fill: '#eef2ff' },
        labelBgPadding: [6, 3],
        labelBgBorderRadius: 6,
        data: { kind: 'flow' },
      };
    });
    if (showRefs) {
      for (const r of refs) {
        out.push({
          id: r.id,
          source: r.source,
          target: r.target,
          sourceHandle: 'ref-out',
          targetHandle: 'ref-in',
          label: r.fields.join(', '),
          type: 'default',
          style: { stroke: '#94a3b8', strokeDasharray: '5 4' },
          labelStyle: { fontSize: 11, fill: '#475569' },
          labelBgStyle: { fill: '#f8fafc' },
          markerEnd: { type: MarkerType.Arrow, color: '#94a3b8' },
          data: { kind: 'ref' },
        });
      }
    }
    return out;
  }, [fl, refs, showRefs, pos]);

  return (
    <div className="lineage" data-testid="lineage">
      <div className="lineage-bar">
        <div className="page-title">
          <span className="page-icon">
            <Icon name="lineage" size={20} />
          </span>
          <div>
            <h1>Lineage</h1>
            <p className="subtitle">Products and the change events that flow between them. Click a product to open it.</p>
          </div>
        </div>
        <label className="toggle">
          <input type="checkbox" checked={showRefs} onChange={(e) => setShowRefs(e.target.checked)} data-testid="show-refs" />
          show key references
        </label>
      </div>
      <ErrorBox error={cat.error} />
      <div className="lineage-body">
        <div className="lineage-canvas">
          {cat.loading ? (
            <Loading />
          ) : (
            <ReactFlow
              nodes={nodes}
              edges={edges}
              nodeTypes={nodeTypes}
              onNodeClick={(_, n) => navigate(`/products/${encodeURIComponent(n.id)}`)}
              fitView
              fitViewOptions={{ padding: 0.15 }}
              minZoom={0.3}
              maxZoom={1.6}
              nodesConnectable={false}
              proOptions={{ hideAttribution: false }}
            >
              <Background gap={22} size={1.2} color="#d7dbe7" />
              <Controls showInteractive={false} />
            </ReactFlow>
          )}
        </div>
        <aside className="lineage-side">
          <h2>Event flows</h2>
          <ul className="flow-edges" data-testid="flow-list">
            {fl.map((f) => (
              <li key={f.id} data-testid="flow" data-source={f.source} data-target={f.target}>
                <div className="flow-pair">
                  <Link to={`/products/${f.source}`}>{f.source}</Link>
                  <Icon name="arrow" size={14} />
                  <Link to={`/products/${f.target}`}>{f.target}</Link>
                </div>
                {f.links.map((l) => (
                  <div key={l.topic} className="flow-topic">
                    <code>{l.topic}</code>
                    <p>{l.description}</p>
                  </div>
                ))}
              </li>
            ))}
          </ul>
          {showRefs && refs.length > 0 && (
            <>
              <h2>Key references</h2>
              <ul className="flow-edges refs">
                {refs.map((r) => (
                  <li key={r.id}>
                    <div className="flow-pair">
                      {r.source} <Icon name="arrow" size={14} /> {r.target}
                    </div>
                    <div className="flow-topic">
                      <code>{r.fields.join(', ')}</code>
                    </div>
                  </li>
                ))}
              </ul>
            </>
          )}
        </aside>
      </div>
    </div>
  );
}
