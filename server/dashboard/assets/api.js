// The admin API client: fetch on the same origin, the bearer token from this
// tab's sessionStorage, and every failure shown in the banner until the same
// request succeeds again or the person dismisses it.

import { h } from './dom.js';

const TOKEN_KEY = 'vigil.adminToken';

export const token = {
  get() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
  },
  set(v) {
    try {
      if (v) sessionStorage.setItem(TOKEN_KEY, v);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch { /* storage disabled: the token lasts until reload */ }
  },
};

export class ApiError extends Error {
  constructor(status, message, method, path) {
    super(message);
    this.status = status;
    this.method = method;
    this.path = path;
    // The admin API answers 404 "no route METHOD PATH" for routes it does
    // not have (an older Vigil), unlike a 404 for a missing attack or API.
    this.noRoute = (status === 404 && /^no route /.test(message)) || status === 405 || status === 501;
  }
}

// api calls the admin API and returns the decoded JSON (null for 204).
// opts.quiet(err) → true keeps an expected failure out of the banner.
export async function api(method, path, body, opts = {}) {
  const key = `${method} ${path}`;
  const headers = { Accept: 'application/json' };
  const t = token.get();
  if (t) headers.Authorization = `Bearer ${t}`;
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    const err = new ApiError(0, `Vigil did not answer (${e.message}). Is it running?`, method, path);
    banner.show(key, describe(err));
    throw err;
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const msg = (data && typeof data.error === 'string' && data.error) || text.trim() || res.statusText || 'no message';
    const err = new ApiError(res.status, msg, method, path);
    if (!(opts.quiet && opts.quiet(err))) banner.show(key, describe(err));
    if (res.status === 401) tokenNeeded();
    throw err;
  }
  if (text && data === null) {
    const err = new ApiError(res.status, 'the answer is not JSON', method, path);
    banner.show(key, describe(err));
    throw err;
  }
  banner.clear(key);
  return data;
}

function describe(err) {
  let m = `${err.method} ${err.path}: ${err.status ? `${err.status} ` : ''}${err.message}`;
  if (err.status === 401) m += ' — enter the admin token under "Admin token" at the top of the page.';
  return m;
}

let onTokenNeeded = () => {};
export function setTokenNeeded(f) { onTokenNeeded = f; }
function tokenNeeded() { onTokenNeeded(); }

// banner is the visible list of errors (role=alert).
export const banner = {
  el: null,
  items: new Map(),
  show(key, message) {
    if (this.items.get(key) === message) return;
    this.items.set(key, message);
    this.render();
  },
  clear(key) {
    if (this.items.delete(key)) this.render();
  },
  clearAll() {
    this.items.clear();
    this.render();
  },
  render() {
    const el = this.el || (this.el = document.getElementById('banner'));
    if (!el) return;
    if (!this.items.size) {
      el.hidden = true;
      el.replaceChildren();
      return;
    }
    el.hidden = false;
    el.replaceChildren(
      h('strong', null, this.items.size === 1 ? 'Error' : `${this.items.size} errors`),
      h('ul', null, [...this.items.values()].map((m) => h('li', null, m))),
      h('button', { type: 'button', class: 'btn btn-small', onclick: () => this.clearAll() }, 'Dismiss'));
  },
};

// notify says what an action did in the polite status region.
let notifyTimer = 0;
export function notify(message) {
  const el = document.getElementById('status');
  if (!el) return;
  el.textContent = message;
  el.hidden = !message;
  clearTimeout(notifyTimer);
  if (message) notifyTimer = setTimeout(() => { el.textContent = ''; el.hidden = true; }, 8000);
}

// action runs an admin call from a button: disables it meanwhile, then
// reports success in the status region. Errors are already in the banner.
export async function action(button, run, success) {
  if (button) button.disabled = true;
  try {
    const out = await run();
    if (success) notify(typeof success === 'function' ? success(out) : success);
    return out;
  } catch (e) {
    if (!(e instanceof ApiError)) banner.show(`action ${e.message}`, `Unexpected error: ${e.message}`);
    return undefined;
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}

const enc = encodeURIComponent;

export const block = (kind, value, ttl, reason) =>
  api('POST', '/v1/blocklist', { kind, value, ttl: ttl || undefined, reason: reason || 'dashboard' });
export const unblock = (kind, value) => api('DELETE', `/v1/blocklist/${enc(kind)}/${enc(value)}`);
export const allow = (kind, value, ttl, reason) =>
  api('POST', '/v1/allowlist', { kind, value, ttl: ttl || undefined, reason: reason || 'dashboard' });
export const unallow = (kind, value) => api('DELETE', `/v1/allowlist/${enc(kind)}/${enc(value)}`);

// listIndex maps "kind value" to list entries.
export function listIndex(entries) {
  const m = new Map();
  for (const e of entries || []) m.set(`${e.kind} ${e.value}`, e);
  return m;
}
