// The app shell: sidebar, top bar (search, live connection, token), the
// login shown when the gateway asks for a token, and the pages.
import { StrictMode, Suspense, lazy, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import './styles.css';
import { auth, useAuth, useConnection, useQuery } from './api.js';
import { CatalogProvider } from './catalog.jsx';
import { Link, navigate, useLocation, href } from './router.jsx';
import { Icon, Loading, Delayed } from './components.jsx';
import CatalogPage from './pages/Catalog.jsx';
import ProductPage from './pages/Product.jsx';
import HistoryPage from './pages/History.jsx';

const LineagePage = lazy(() => import('./pages/Lineage.jsx'));
const DashboardPage = lazy(() => import('./pages/Dashboard.jsx'));
const GraphiQLPage = lazy(() => import('./pages/GraphiQL.jsx'));

const NAV = [
  { to: '/', label: 'Catalog', icon: 'catalog', match: (p) => p === '/' || p.startsWith('/products/') },
  { to: '/lineage', label: 'Lineage', icon: 'lineage' },
  { to: '/dashboard', label: 'Live dashboard', icon: 'dashboard' },
  { to: '/history', label: 'Row history', icon: 'history' },
  { to: '/graphiql', label: 'GraphiQL', icon: 'graphiql' },
];

function route(pathname) {
  if (pathname === '/' || pathname === '/index.html') return { page: 'catalog' };
  let m = /^\/products\/([^/]+)\/?$/.exec(pathname);
  if (m) return { page: 'product', name: decodeURIComponent(m[1]) };
  m = /^\/(lineage|dashboard|history|graphiql)\/?$/.exec(pathname);
  if (m) return { page: m[1] };
  return { page: 'notfound' };
}

function Sidebar({ pathname }) {
  const mesh = useQuery('{ mesh { version } }');
  return (
    <aside className="sidebar">
      <Link to="/" className="brand">
        <img src="/favicon.svg" alt="" width="28" height="28" />
        <span>
          meshgate
          <small>data mesh gateway</small>
        </span>
      </Link>
      <nav className="nav">
        {NAV.map((n) => {
          const active = n.match ? n.match(pathname) : pathname.startsWith(n.to);
          return (
            <Link key={n.to} to={n.to} className={active ? 'nav-item active' : 'nav-item'} data-testid={`nav-${n.icon}`}>
              <Icon name={n.icon} size={18} />
              {n.label}
            </Link>
          );
        })}
      </nav>
      <div className="sidebar-foot">
        <div className="foot-title">Endpoints</div>
        <a href="/graphql">/graphql</a>
        <a href="/catalog/">/catalog/</a>
        <a href="/metrics">/metrics</a>
        <a href="/readyz">/readyz</a>
        {mesh.data && <div className="version">version {mesh.data.mesh.version}</div>}
      </div>
    </aside>
  );
}

function ConnectionPill() {
  const c = useConnection();
  const label = { idle: 'idle', connecting: 'connecting…', live: 'live', offline: 'reconnecting…' }[c.status];
  return (
    <span className={`conn conn-${c.status}`} data-testid="connection" data-status={c.status} title="websocket to /graphql">
      <span className="dot" />
      {label}
    </span>
  );
}

function TokenButton() {
  const a = useAuth();
  const [open, setOpen] = useState(false);
  return (
    <div className="token-menu">
      <button className="btn btn-ghost" onClick={() => setOpen((o) => !o)} data-testid="token-button">
        <Icon name="key" size={15} />
        {a.token ? 'Token set' : 'No token'}
      </button>
      {open && (
        <div className="popover" onMouseLeave={() => setOpen(false)}>
          <TokenForm onDone={() => setOpen(false)} compact />
        </div>
      )}
    </div>
  );
}

function TokenForm({ onDone, compact = false }) {
  const a = useAuth();
  const [value, setValue] = useState('');
  return (
    <form
      className={compact ? 'token-form compact' : 'token-form'}
      onSubmit={(e) => {
        e.preventDefault();
        auth.setToken(value);
        setValue('');
        onDone?.();
      }}
    >
      <label htmlFor="token-input">API key or JWT</label>
      <input
        id="token-input"
        data-testid="token-input"
        type="password"
        autoComplete="off"
        spellCheck="false"
        placeholder="paste a token"
        value={value}
        onChange={(e) => setValue(e.target.value)}
        autoFocus={!compact}
      />
      <p className="hint">
        Sent as <code>Authorization: Bearer …</code> on HTTP and in the websocket's <code>connection_init</code>. Kept in
        this tab's session storage only, never in a cookie.
      </p>
      <div className="row">
        <button className="btn btn-primary" type="submit" data-testid="token-submit" disabled={!value.trim()}>
          Use token
        </button>
        {a.token && (
          <button
            type="button"
            className="btn"
            onClick={() => {
              auth.setToken('');
              onDone?.();
            }}
          >
            Forget token
          </button>
        )}
      </div>
    </form>
  );
}

function Login() {
  const a = useAuth();
  return (
    <div className="login" data-testid="login">
      <div className="login-card">
        <img src="/favicon.svg" alt="" width="44" height="44" />
        <h1>Sign in to meshgate</h1>
        <p className="subtitle">{a.token ? 'The gateway did not accept this token.' : 'This gateway needs a token.'}</p>
        {a.reason && (
          <p className="reason" data-testid="login-reason">
            The gateway said: <q>{a.reason}</q>
          </p>
        )}
        <TokenForm />
      </div>
    </div>
  );
}

function TopBar({ pathname, search }) {
  const [q, setQ] = useState(() => (pathname === '/' ? new URLSearchParams(search).get('q') || '' : ''));
  useEffect(() => {
    if (pathname === '/') setQ(new URLSearchParams(search).get('q') || '');
  }, [pathname, search]);
  return (
    <div className="topbar">
      <form
        className="search"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          navigate(href('/', { q }));
        }}
      >
        <Icon name="search" size={16} />
        <input
          data-testid="search"
          placeholder="Search products, entities and fields…"
          value={q}
          onChange={(e) => {
            setQ(e.target.value);
            if (pathname === '/') navigate(href('/', { q: e.target.value }), { replace: true });
          }}
        />
      </form>
      <div className="topbar-right">
        <ConnectionPill />
        <TokenButton />
      </div>
    </div>
  );
}

function NotFound() {
  return (
    <div className="page">
      <div className="empty big">
        <h1>Not found</h1>
        <p>
          Nothing lives at this address. <Link to="/">Back to the catalog</Link>.
        </p>
      </div>
    </div>
  );
}

function App() {
  const { pathname, search } = useLocation();
  const a = useAuth();
  const r = route(pathname);
  useEffect(() => {
    const names = { catalog: 'Catalog', product: r.name, lineage: 'Lineage', dashboard: 'Live dashboard', history: 'Row history', graphiql: 'GraphiQL' };
    document.title = names[r.page] ? `${names[r.page]} · meshgate` : 'meshgate';
  }, [r.page, r.name]);
  if (a.required) return <Login />;
  const full = r.page === 'graphiql' || r.page === 'lineage';
  return (
    <CatalogProvider>
      <div className="shell">
        <Sidebar pathname={pathname} />
        <div className="main">
          <TopBar pathname={pathname} search={search} />
          <main className={full ? 'content full' : 'content'}>
            <Suspense
              fallback={
                <Delayed>
                  <Loading />
                </Delayed>
              }
            >
              {r.page === 'catalog' && <CatalogPage />}
              {r.page === 'product' && <ProductPage name={r.name} />}
              {r.page === 'lineage' && <LineagePage />}
              {r.page === 'dashboard' && <DashboardPage />}
              {r.page === 'history' && <HistoryPage />}
              {r.page === 'graphiql' && <GraphiQLPage />}
              {r.page === 'notfound' && <NotFound />}
            </Suspense>
          </main>
        </div>
      </div>
    </CatalogProvider>
  );
}

createRoot(document.getElementById('root')).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
