// A small client-side router over the History API: the gateway answers every
// UI path with index.html, and the app picks the page from the path.
import { useSyncExternalStore } from 'react';

const listeners = new Set();
let snapshot = { pathname: location.pathname, search: location.search };

function update() {
  if (snapshot.pathname !== location.pathname || snapshot.search !== location.search) {
    snapshot = { pathname: location.pathname, search: location.search };
    listeners.forEach((l) => l());
  }
}

window.addEventListener('popstate', update);

/** Goes to `to` (a path with an optional query); replace keeps the history entry. */
export function navigate(to, { replace = false } = {}) {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  update();
  if (!replace) window.scrollTo(0, 0);
}

export function useLocation() {
  return useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => snapshot,
  );
}

/** The query parameters of the current location. */
export function useParams() {
  const { search } = useLocation();
  return new URLSearchParams(search);
}

/** Builds a path with query parameters, leaving out empty ones. */
export function href(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

export function Link({ to, children, className, onClick, ...rest }) {
  return (
    <a
      href={to}
      className={className}
      onClick={(e) => {
        onClick?.(e);
        if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(to);
      }}
      {...rest}
    >
      {children}
    </a>
  );
}
