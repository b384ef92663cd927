// DOM building and formatting. Every value from the admin API is put in the
// page as text (textContent, attribute values), never parsed as HTML: attack
// records carry what attackers sent (paths, user agents, user names).

// h builds an element: h('button', {class: 'btn', onclick: f}, 'Block').
// Props: class, text, on<event> handlers, checked/value/disabled/hidden as
// properties, anything else as an attribute (true: empty attribute,
// null/false/undefined: left out). Children may be nodes, strings, numbers,
// nested arrays, or null/false (skipped).
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'checked' || k === 'value' || k === 'disabled' || k === 'hidden' || k === 'open') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

// renderIfChanged replaces el's children with render(data) unless data is
// the same as last time, so that a periodic refresh leaves focus, open
// panels and the nodes a person is about to click alone.
const lastKeys = new WeakMap();
export function renderIfChanged(el, data, render) {
  const key = JSON.stringify(data);
  if (lastKeys.get(el) === key) return false;
  lastKeys.set(el, key);
  el.replaceChildren(...[render(data)].flat(Infinity).filter((c) => c != null && c !== false));
  return true;
}

// table builds an accessible data table. columns: [{label, num}] (num:
// right-aligned); rows: arrays of cells (nodes or text).
export function table({ caption, columns, rows, empty, className }) {
  if (!rows.length && empty) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', { class: className || null },
      caption ? h('caption', null, caption) : null,
      h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)))),
      h('tbody', null, rows.map((r) => h('tr', null, r.map((cell, i) => h('td', { class: columns[i] && columns[i].num ? 'num' : null }, cell)))))));
}

const numberFormat = new Intl.NumberFormat('en', { maximumFractionDigits: 2 });
export function fmtNum(n) {
  if (n == null || Number.isNaN(Number(n))) return '–';
  return numberFormat.format(Number(n));
}

export function fmtPct(x) {
  return `${Math.round(Math.max(0, Math.min(1, x || 0)) * 100)} %`;
}

function pad(n) { return String(n).padStart(2, '0'); }

// fmtTime is a local date and time, 2026-11-28 14:03:09.
export function fmtTime(t) {
  if (!t) return '–';
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtClock(t) {
  const d = t instanceof Date ? t : new Date(t);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// relTime is how long ago (or from now) t is: "3 min ago", "in 23 h".
export function relTime(t, now = Date.now()) {
  const d = (t instanceof Date ? t : new Date(t)).getTime();
  if (Number.isNaN(d)) return '';
  let s = Math.round((now - d) / 1000);
  const future = s < 0;
  s = Math.abs(s);
  let text;
  if (s < 5) return 'just now';
  if (s < 60) text = `${s} s`;
  else if (s < 3600) text = `${Math.floor(s / 60)} min`;
  else if (s < 86400) text = `${Math.floor(s / 3600)} h`;
  else text = `${Math.floor(s / 86400)} d`;
  return future ? `in ${text}` : `${text} ago`;
}

// timeEl shows a time as a machine-readable <time>: local time and how long ago.
export function timeEl(t) {
  if (!t) return h('span', { class: 'muted' }, '–');
  return h('time', { class: 'rel', datetime: t, title: new Date(t).toISOString() }, `${fmtTime(t)} (${relTime(t)})`);
}

// updateTimes brings the "… ago" of every timeEl up to date.
export function updateTimes(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll('time.rel')) {
    const text = `${fmtTime(el.dateTime)} (${relTime(el.dateTime, now)})`;
    if (el.textContent !== text) el.textContent = text;
  }
}

// counts renders a {name: n} map, largest first: "GET 12, PUT 3".
export function counts(m, limit = 5) {
  const e = Object.entries(m || {}).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const shown = e.slice(0, limit).map(([k, v]) => `${k} ${fmtNum(v)}`).join(', ');
  return e.length > limit ? `${shown}, … (${e.length - limit} more)` : shown || '–';
}

export function identityHref(kind, value) {
  return `#/identity/${encodeURIComponent(kind)}/${encodeURIComponent(value)}`;
}

// identityLink links to an identity's page, its value in <code>.
export function identityLink(kind, value, withKind = true) {
  return h('a', { href: identityHref(kind, value), class: 'identity' }, withKind ? `${kind} ` : '', h('code', null, value));
}

export function badge(text, kind) {
  return h('span', { class: `badge ${kind ? `badge-${kind}` : ''}` }, text);
}

// progress is a labelled <progress> bar for a fraction from 0 to 1.
export function progress(label, fraction) {
  const pct = fmtPct(fraction);
  return h('div', { class: 'progress' },
    h('span', { class: 'progress-label' }, label),
    h('progress', { max: 100, value: Math.round(Math.max(0, Math.min(1, fraction || 0)) * 100), 'aria-label': `${label}: ${pct}` }),
    h('span', { class: 'progress-value' }, pct));
}

export const KINDS = ['ip', 'token', 'api_key', 'cookie', 'username'];
export const SECRET_KINDS = new Set(['token', 'api_key', 'cookie']);

export function kindSelect(id, selected) {
  return h('select', { id }, KINDS.map((k) => h('option', { value: k, selected: k === selected }, k)));
}

// durationSelect is a select of block durations; "" means until removed.
export const DURATIONS = [['10m', '10 minutes'], ['1h', '1 hour'], ['24h', '24 hours'], ['168h', '7 days'], ['', 'until removed']];
export function durationSelect(id, selected = '1h', label = 'Duration') {
  return h('select', { id, 'aria-label': label }, DURATIONS.map(([v, t]) => h('option', { value: v, selected: v === selected }, t)));
}
