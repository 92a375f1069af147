// Formatting. Money may arrive as a JSON number or, as an exact decimal, a
// string: num() takes both.

export function num(v) {
  if (v == null || v === '') return null;
  if (typeof v === 'number') return v;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

const intFmt = new Intl.NumberFormat('en-US');
const moneyFmt = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const compactFmt = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

export const fmtInt = (v) => (num(v) == null ? '—' : intFmt.format(num(v)));
export const fmtCompact = (v) => (num(v) == null ? '—' : compactFmt.format(num(v)));

/** A money amount with two decimals; an exact decimal string keeps its digits. */
export function fmtMoney(v) {
  if (v == null || v === '') return '—';
  const m = typeof v === 'string' ? /^(-?)(\d+)(?:\.(\d+))?$/.exec(v) : null;
  if (m) return `${m[1]}${intFmt.format(BigInt(m[2]))}.${(m[3] || '').padEnd(2, '0')}`;
  const n = num(v);
  return n == null ? String(v) : moneyFmt.format(n);
}

/** "3 s ago", "5 min ago", "2 h ago", "4 d ago". */
export function ago(t, now = Date.now()) {
  if (!t) return 'never';
  const ms = now - new Date(t).getTime();
  if (!Number.isFinite(ms)) return '—';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ago`;
  return `${Math.floor(h / 24)} d ago`;
}

/** How fresh: 'live' (under a minute), 'recent' (an hour), 'stale'. */
export function freshnessLevel(t, now = Date.now()) {
  if (!t) return 'stale';
  const ms = now - new Date(t).getTime();
  if (ms < 60_000) return 'live';
  if (ms < 3_600_000) return 'recent';
  return 'stale';
}

export function fmtTime(t) {
  if (!t) return '—';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z').replace(/Z$/, ' UTC');
}

export function fmtClock(t) {
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return '';
  return d.toISOString().slice(11, 23);
}
