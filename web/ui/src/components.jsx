// Small building blocks shared by the pages.
import { useEffect, useState, useSyncExternalStore } from 'react';
import { ago, freshnessLevel } from './format.js';

// ---------------------------------------------------------------------------
// A clock shared by everything that shows "… ago".

let now = Date.now();
const clockListeners = new Set();
setInterval(() => {
  now = Date.now();
  clockListeners.forEach((l) => l());
}, 1000);

export function useNow() {
  return useSyncExternalStore(
    (l) => {
      clockListeners.add(l);
      return () => clockListeners.delete(l);
    },
    () => now,
  );
}

export function Ago({ t, className = '' }) {
  const n = useNow();
  const level = freshnessLevel(t, n);
  return (
    <span className={`ago ago-${level} ${className}`} title={t || 'no change yet'} data-testid="freshness">
      <span className="dot" />
      {ago(t, n)}
    </span>
  );
}

// ---------------------------------------------------------------------------
// Icons (inline SVG: no icon font, nothing fetched).

const paths = {
  catalog: 'M4 5h16v4H4zM4 10.5h16v4H4zM4 16h16v4H4z',
  lineage: 'M6 6m-2.5 0a2.5 2.5 0 1 0 5 0a2.5 2.5 0 1 0 -5 0M18 6m-2.5 0a2.5 2.5 0 1 0 5 0a2.5 2.5 0 1 0 -5 0M12 18m-2.5 0a2.5 2.5 0 1 0 5 0a2.5 2.5 0 1 0 -5 0M8.5 6h7M7.3 8.2l3.4 7.6M16.7 8.2l-3.4 7.6',
  dashboard: 'M4 13h6v7H4zM14 4h6v16h-6zM4 4h6v6H4z',
  history: 'M12 8v4l3 2M3.05 11a9 9 0 1 1 .5 4M3 4v5h5',
  graphiql: 'M12 2l8.66 5v10L12 22l-8.66-5V7zM12 2v20M3.34 7l17.32 10M20.66 7L3.34 17',
  search: 'M11 11m-7 0a7 7 0 1 0 14 0a7 7 0 1 0 -14 0M21 21l-4.6-4.6',
  lock: 'M6 11h12v10H6zM8.5 11V7.5a3.5 3.5 0 0 1 7 0V11',
  download: 'M12 4v11M7 10l5 5 5-5M5 20h14',
  key: 'M8 15m-4 0a4 4 0 1 0 8 0a4 4 0 1 0 -8 0M11 12l9-9M17 6l3 3M15 8l2 2',
  arrow: 'M5 12h14M13 6l6 6-6 6',
  link: 'M10 14a4 4 0 0 0 5.66 0l3-3a4 4 0 0 0-5.66-5.66l-1 1M14 10a4 4 0 0 0-5.66 0l-3 3a4 4 0 0 0 5.66 5.66l1-1',
  topic: 'M4 6h16M4 12h10M4 18h13',
  user: 'M12 8m-4 0a4 4 0 1 0 8 0a4 4 0 1 0 -8 0M4 21a8 8 0 0 1 16 0',
  pause: 'M7 5h3v14H7zM14 5h3v14h-3z',
  play: 'M7 5l12 7-12 7z',
  plug: 'M9 2v6M15 2v6M6 8h12v3a6 6 0 0 1-12 0zM12 17v5',
  table: 'M4 5h16v14H4zM4 10h16M10 10v9',
};

export function Icon({ name, size = 16, className = '' }) {
  return (
    <svg
      className={`icon ${className}`}
      width={size}
      height={size}
      viewBox="0 0 24 24"
      fill="none"
      stroke="currentColor"
      strokeWidth="1.8"
      strokeLinecap="round"
      strokeLinejoin="round"
      aria-hidden="true"
    >
      <path d={paths[name]} />
    </svg>
  );
}

// ---------------------------------------------------------------------------
// Badges.

export function Badge({ children, tone = 'gray', title, className = '', ...rest }) {
  return (
    <span className={`badge badge-${tone} ${className}`} title={title} {...rest}>
      {children}
    </span>
  );
}

const kindTone = { OPERATIONAL: 'blue', ANALYTICAL: 'violet', ENGAGEMENT: 'amber' };
export function KindBadge({ kind }) {
  return <Badge tone={kindTone[kind] || 'gray'}>{String(kind || '').toLowerCase()}</Badge>;
}

const classTone = { PUBLIC: 'green', INTERNAL: 'slate', CONFIDENTIAL: 'orange', RESTRICTED: 'red' };
export function ClassBadge({ level }) {
  return (
    <Badge tone={classTone[level] || 'gray'} title={`classification: ${level}`} data-testid="classification">
      {String(level || '').toLowerCase()}
    </Badge>
  );
}

export function PiiBadge() {
  return (
    <Badge tone="pii" title="personal data (PII): masked for callers without pii:read" data-testid="pii-badge">
      <Icon name="lock" size={11} /> PII
    </Badge>
  );
}

const opTone = { CREATE: 'green', UPDATE: 'blue', DELETE: 'red' };
export function OpBadge({ op }) {
  return (
    <Badge tone={opTone[op] || 'gray'} className="op" data-op={op}>
      {op === 'CREATE' ? 'create' : op === 'UPDATE' ? 'update' : op === 'DELETE' ? 'delete' : op}
    </Badge>
  );
}

// ---------------------------------------------------------------------------
// Values: PII masked by the gateway (e.g. "***" or null for a caller without
// pii:read) are shown as masked, not as data.

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const MASK = /^\*{3,}$|^\[(masked|redacted)\]$/i;

/**
 * True for a value the gateway masked. A masked PII field is "***" or null;
 * a null counts as masked only when the row is masked (rowMasked), since a
 * nullable field may simply be empty.
 */
export function isMasked(v, pii, rowMasked = false) {
  if (typeof v === 'string' && MASK.test(v)) return true;
  return pii && v == null && rowMasked;
}

/**
 * Whether the gateway masked this row (an image or a query result) for the
 * caller: a PII field holds the mask, or a non-null PII field is null.
 * fields are the entity's catalog fields.
 */
export function rowMasked(row, fields = []) {
  if (!row) return false;
  return fields.some((f) => f.pii && ((typeof row[f.name] === 'string' && MASK.test(row[f.name])) || (row[f.name] == null && !f.nullable && f.name in row)));
}

export function Value({ v, pii = false, masked = false }) {
  if (isMasked(v, pii, masked)) {
    return (
      <span className="masked" title="masked: your token has no pii:read" data-testid="masked">
        <Icon name="lock" size={11} /> masked
      </span>
    );
  }
  if (v == null) return <span className="null">null</span>;
  if (typeof v === 'object') return <code className="json">{JSON.stringify(v)}</code>;
  if (typeof v === 'boolean') return <code>{String(v)}</code>;
  if (typeof v === 'string' && ISO_TIME.test(v)) {
    return (
      <span className="val time" title={v}>
        {v.slice(0, 10)} {v.slice(11, 19)}
      </span>
    );
  }
  return <span className="val">{String(v)}</span>;
}

// ---------------------------------------------------------------------------
// Layout pieces.

export function PageHeader({ title, subtitle, children, icon }) {
  return (
    <header className="page-header">
      <div className="page-title">
        {icon && (
          <span className="page-icon">
            <Icon name={icon} size={20} />
          </span>
        )}
        <div>
          <h1>{title}</h1>
          {subtitle && <p className="subtitle">{subtitle}</p>}
        </div>
      </div>
      {children && <div className="page-actions">{children}</div>}
    </header>
  );
}

export function Card({ title, children, className = '', actions, ...rest }) {
  return (
    <section className={`card ${className}`} {...rest}>
      {(title || actions) && (
        <div className="card-head">
          {title && <h2>{title}</h2>}
          {actions && <div className="card-actions">{actions}</div>}
        </div>
      )}
      <div className="card-body">{children}</div>
    </section>
  );
}

export function Stat({ label, value, hint, testid }) {
  return (
    <div className="stat" data-testid={testid}>
      <div className="stat-label">{label}</div>
      <div className="stat-value">{value}</div>
      {hint && <div className="stat-hint">{hint}</div>}
    </div>
  );
}

export function ErrorBox({ error }) {
  if (!error) return null;
  const codes = error.codes || [];
  return (
    <div className="error-box" role="alert">
      <strong>{codes.includes('FORBIDDEN') ? 'Not allowed' : 'Something went wrong'}</strong>
      <span>{error.message}</span>
    </div>
  );
}

export function Loading({ label = 'Loading…' }) {
  return (
    <div className="loading">
      <span className="spinner" /> {label}
    </div>
  );
}

export function Empty({ children }) {
  return <div className="empty">{children}</div>;
}

/** Shows its children only after `ms`, to avoid flashing spinners. */
export function Delayed({ ms = 250, children }) {
  const [show, setShow] = useState(false);
  useEffect(() => {
    const t = setTimeout(() => setShow(true), ms);
    return () => clearTimeout(t);
  }, [ms]);
  return show ? children : null;
}

export function Tabs({ tabs, active, onChange }) {
  return (
    <nav className="tabs" role="tablist">
      {tabs.map((t) => (
        <button
          key={t.id}
          role="tab"
          aria-selected={active === t.id}
          className={active === t.id ? 'tab active' : 'tab'}
          onClick={() => onChange(t.id)}
          data-testid={`tab-${t.id}`}
        >
          {t.label}
          {t.count != null && <span className="tab-count">{t.count}</span>}
        </button>
      ))}
    </nav>
  );
}

const palette = ['#4f46e5', '#0891b2', '#059669', '#d97706', '#db2777', '#7c3aed', '#2563eb', '#65a30d', '#dc2626', '#0d9488'];
/** A stable colour per name (a domain, a product). */
export function colorFor(name) {
  let h = 0;
  for (const c of String(name)) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return palette[h % palette.length];
}
