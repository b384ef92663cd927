// The dashboard's shell: hash routes, the identity search, the admin token,
// and the refresh loop that keeps the open page current.

import { h, fmtClock, updateTimes, identityHref, SECRET_KINDS } from './dom.js';
import { api, banner, notify, token, setTokenNeeded } from './api.js';
import { attacksPage } from './attacks.js';
import { apisPage } from './apis.js';
import { modelPage } from './model.js';
import { identityPage } from './identity.js';
import { listsPage } from './lists.js';
import { decoysPage } from './decoys.js';

const REFRESH_MS = 5000;

const routes = [
  { re: /^\/attacks$/, page: attacksPage, nav: 'attacks', title: () => 'Attacks' },
  { re: /^\/apis$/, page: apisPage, nav: 'apis', title: () => 'APIs' },
  { re: /^\/model\/(.+)$/, page: modelPage, nav: 'apis', keys: ['api'], title: (p) => `Model ${p.api}` },
  { re: /^\/identity\/([^/]+)\/(.+)$/, page: identityPage, keys: ['kind', 'value'], title: (p) => `${p.kind} ${p.value}` },
  { re: /^\/lists$/, page: listsPage, nav: 'lists', title: () => 'Lists' },
  { re: /^\/decoys$/, page: decoysPage, nav: 'decoys', title: () => 'Decoys' },
];

const main = document.getElementById('main');
const updated = document.getElementById('updated');
const pauseBtn = document.getElementById('pause');
let current = null;
let paused = false;
let mounts = 0;

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/attacks';
  const [path, qs] = raw.split('?', 2);
  const query = Object.fromEntries(new URLSearchParams(qs || ''));
  for (const r of routes) {
    const m = r.re.exec(path);
    if (!m) continue;
    const params = { query };
    try {
      (r.keys || []).forEach((k, i) => { params[k] = decodeURIComponent(m[i + 1]); });
    } catch {
      return null;
    }
    return { route: r, params };
  }
  return null;
}

function mount() {
  const found = parseHash();
  if (!found) {
    location.replace('#/attacks');
    return;
  }
  const { route, params } = found;
  const id = ++mounts;
  const page = {
    alive: () => id === mounts,
    refresh: () => refresh(state),
  };
  const state = { page, running: null, again: false, impl: null };
  current = state;
  main.replaceChildren();
  main.setAttribute('aria-busy', 'true');
  for (const a of document.querySelectorAll('nav.pages a')) {
    if (a.dataset.nav === route.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${route.title(params)} · Vigil`;
  state.impl = route.page(main, params, page);
  // After a navigation, focus goes to the new page's heading, so that a
  // screen reader announces it and Tab starts from there.
  const h1 = main.querySelector('h1');
  if (h1 && id > 1) h1.focus();
  refresh(state).finally(() => { if (page.alive()) main.removeAttribute('aria-busy'); });
}

// refresh runs the page's refresh, one at a time; a request for another
// while one runs is queued once.
async function refresh(state) {
  if (!state.impl || !state.impl.refresh) return;
  if (state.running) {
    state.again = true;
    return state.running;
  }
  state.running = (async () => {
    do {
      state.again = false;
      try {
        await state.impl.refresh();
        if (state.page.alive()) {
          updateTimes(main);
          updated.textContent = `Updated ${fmtClock(new Date())}`;
        }
      } catch (e) {
        if (!e || !('status' in e)) banner.show(`page ${e && e.message}`, `Dashboard error: ${e && e.message}`);
      }
    } while (state.again && state.page.alive());
    state.running = null;
  })();
  return state.running;
}

setInterval(() => {
  if (paused || document.hidden || !current || !current.impl || !current.impl.auto) return;
  refresh(current);
}, REFRESH_MS);

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && !paused && current) refresh(current);
});

pauseBtn.addEventListener('click', () => {
  paused = !paused;
  pauseBtn.setAttribute('aria-pressed', String(paused));
  pauseBtn.textContent = paused ? 'Resume updates' : 'Pause updates';
  notify(paused ? 'Automatic updates paused.' : 'Automatic updates resumed.');
  if (!paused && current) refresh(current);
});

// The identity search, on every page.
const searchForm = document.getElementById('search');
const searchKind = document.getElementById('search-kind');
const searchValue = document.getElementById('search-value');
searchForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const kind = searchKind.value;
  const value = searchValue.value.trim();
  if (!value) return;
  if (SECRET_KINDS.has(kind) && !/^fp:[0-9a-f]{32}$/i.test(value)) {
    // A raw secret: let Vigil fingerprint it, so that only the fingerprint
    // goes into the address bar and the history.
    let fp = '';
    try {
      const rec = await api('GET', `/v1/forensics/${encodeURIComponent(kind)}/${encodeURIComponent(value)}`, undefined, { quiet: (err) => err.status === 404 });
      fp = rec.value;
    } catch (err) {
      const m = /fp:[0-9a-f]{32}/i.exec((err && err.message) || '');
      if (m) fp = m[0];
    }
    if (!fp) return;
    searchValue.value = '';
    location.hash = identityHref(kind, fp);
    return;
  }
  searchValue.value = '';
  location.hash = identityHref(kind, value);
});

// The admin token, kept in this tab's sessionStorage.
const tokenBox = document.getElementById('token');
const tokenInput = document.getElementById('token-input');
const tokenState = document.getElementById('token-state');
function showTokenState() {
  tokenState.textContent = token.get() ? 'A token is set for this tab.' : 'No token set.';
}
document.getElementById('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  token.set(tokenInput.value.trim());
  tokenInput.value = '';
  showTokenState();
  banner.clearAll();
  notify(token.get() ? 'Admin token saved for this tab.' : 'Admin token cleared.');
  tokenBox.open = false;
  if (current) refresh(current);
});
document.getElementById('token-clear').addEventListener('click', () => {
  token.set('');
  tokenInput.value = '';
  showTokenState();
  notify('Admin token cleared.');
  if (current) refresh(current);
});
setTokenNeeded(() => { tokenBox.open = true; });
showTokenState();

window.addEventListener('hashchange', mount);
window.addEventListener('unhandledrejection', (e) => {
  e.preventDefault();
  const r = e.reason;
  if (!r || !('status' in r)) banner.show('unhandled', `Dashboard error: ${r && r.message ? r.message : r}`);
});
document.getElementById('app-version').replaceChildren(h('span', null, 'Refreshes every 5 s'));
mount();
