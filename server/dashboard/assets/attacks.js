// The live attack feed: the 50 newest attacks, refreshed in place.

import { h, fmtClock, fmtNum } from './dom.js';
import { api, listIndex } from './api.js';
import { attackCard, features } from './attackcard.js';

export const ATTACK_TYPES = ['decoy', 'probing', 'excessive_errors', 'credential_stuffing', 'stolen_token', 'data_exfiltration',
  'extreme_activity', 'bola_enumeration', 'mass_deletion', 'oversized_payload', 'anomalous_behaviour'];

export function attacksPage(main, params, page) {
  const typeSel = h('select', { id: 'filter-type' }, h('option', { value: '' }, 'all types'),
    ATTACK_TYPES.map((t) => h('option', { value: t, selected: t === params.query.type }, t)));
  const apiSel = h('select', { id: 'filter-api' }, h('option', { value: '' }, 'all APIs'),
    params.query.api ? h('option', { value: params.query.api, selected: true }, params.query.api) : null);
  const onFilter = () => {
    const q = new URLSearchParams();
    if (typeSel.value) q.set('type', typeSel.value);
    if (apiSel.value) q.set('api', apiSel.value);
    location.hash = `#/attacks${q.size ? `?${q}` : ''}`;
  };
  typeSel.addEventListener('change', onFilter);
  apiSel.addEventListener('change', onFilter);
  const summary = h('p', { class: 'summary', 'aria-live': 'off' }, 'Loading…');
  const feed = h('ol', { class: 'feed', 'aria-label': 'Attacks, newest first' });
  main.append(
    h('h1', { tabindex: -1 }, 'Live attack feed'),
    h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() },
      h('label', { for: typeSel.id }, 'Type'), typeSel,
      h('label', { for: apiSel.id }, 'API'), apiSel),
    summary, feed);

  // The API filter lists the inventory's APIs, read once it can be.
  let apisListed = false;
  async function listAPIs() {
    const d = await api('GET', '/v1/apis');
    const names = (d.apis || []).map((x) => x.name).sort();
    for (const n of names) if (n !== params.query.api) apiSel.append(h('option', { value: n }, n));
    apisListed = true;
  }

  const cards = new Map(); // attack id → {key, el}
  async function refresh() {
    if (!apisListed) await listAPIs();
    const q = new URLSearchParams({ limit: '50' });
    if (params.query.type) q.set('type', params.query.type);
    if (params.query.api) q.set('api', params.query.api);
    const [data, blocks] = await Promise.all([api('GET', `/v1/attacks?${q}`), api('GET', '/v1/blocklist')]);
    if (!page.alive()) return;
    const index = listIndex(blocks.entries);
    const attacks = data.attacks || [];
    const env = { blocks: index, changed: () => page.refresh() };
    const items = attacks.map((a) => {
      const ident = a.identity || {};
      const related = (blocks.entries || []).filter((e) => (e.kind === ident.kind && e.value === ident.value) || (e.reason || '').endsWith(` ${a.id}`));
      const key = JSON.stringify([a, related, features.falsePositive]);
      let c = cards.get(a.id);
      if (!c || c.key !== key) {
        const li = h('li', null, attackCard(a, env));
        if (c) c.el.replaceWith(li);
        c = { key, el: li };
        cards.set(a.id, c);
      }
      return c.el;
    });
    const current = [...feed.children];
    if (current.length !== items.length || items.some((el, i) => current[i] !== el)) feed.replaceChildren(...items);
    for (const id of [...cards.keys()]) if (!attacks.some((a) => a.id === id)) cards.delete(id);
    summary.textContent = attacks.length
      ? `Showing the ${fmtNum(attacks.length)} newest of ${fmtNum(data.total)} attacks${params.query.type || params.query.api ? ' that match the filter' : ''} · updated ${fmtClock(new Date())}`
      : `No attacks${params.query.type || params.query.api ? ' match the filter' : ' recorded'} · updated ${fmtClock(new Date())}`;
  }
  return { refresh, auto: true };
}
