// What one identity did: its IPs, endpoints, methods and APIs, requests per
// hour, its attacks, and its place on the block and allow lists.

import { h, fmtNum, timeEl, table, badge, counts, identityLink, durationSelect, renderIfChanged } from './dom.js';
import { api, action, block, unblock, unallow, listIndex } from './api.js';
import { attackCard } from './attackcard.js';
import { timeChart } from './chart.js';

export function identityPage(main, params, page) {
  const { kind, value } = params;
  const head = h('div');
  const controls = h('section', { 'aria-labelledby': 'h-lists' });
  const body = h('div');
  const attacks = h('section', { 'aria-labelledby': 'h-attacks' });
  main.append(
    h('h1', { tabindex: -1 }, 'Identity ', h('span', { class: 'muted' }, kind), ' ', h('code', { class: 'identity-value' }, value)),
    head, controls, body, attacks);

  async function refresh() {
    const path = `/v1/forensics/${encodeURIComponent(kind)}/${encodeURIComponent(value)}`;
    const [rec, blocks, allows] = await Promise.all([
      api('GET', path, undefined, { quiet: (e) => e.status === 404 }).catch((e) => (e.status === 404 ? { missing: e.message } : Promise.reject(e))),
      api('GET', '/v1/blocklist'),
      api('GET', '/v1/allowlist'),
    ]);
    if (!page.alive()) return;
    const key = `${kind} ${rec.value || value}`;
    const blocked = listIndex(blocks.entries).get(key);
    const allowed = listIndex(allows.entries).get(key);
    const v = rec.value || value;
    renderIfChanged(controls, [blocked, allowed, v], () => listControls(kind, v, blocked, allowed, page));
    if (rec.missing) {
      renderIfChanged(head, rec.missing, () => h('p', { class: 'empty' }, `Vigil has no activity recorded for this identity (${rec.missing}).`));
      body.replaceChildren();
      attacks.replaceChildren();
      return;
    }
    const { attacks: list, ...rest } = rec;
    renderIfChanged(head, rest, () => summary(rec));
    renderIfChanged(body, rec.details, () => details(rec));
    const index = listIndex(blocks.entries);
    renderIfChanged(attacks, [list, blocks.entries], () => [
      h('h2', { id: 'h-attacks' }, `Attacks (${fmtNum((list || []).length)})`),
      (list || []).length
        ? h('ol', { class: 'feed' }, list.map((a) => h('li', null, attackCard(a, { blocks: index, changed: page.refresh, self: { kind, value: rec.value || value } }))))
        : h('p', { class: 'empty' }, 'No attack recorded for this identity.'),
    ]);
  }
  return { refresh, auto: true };
}

function summary(rec) {
  const s = rec.summary || {};
  return h('dl', { class: 'facts summary-facts' },
    h('dt', null, 'Status'), h('dd', null, badge(rec.status, rec.status)),
    h('dt', null, 'First seen'), h('dd', null, timeEl(rec.first_seen)),
    h('dt', null, 'Last seen'), h('dd', null, timeEl(rec.last_seen)),
    h('dt', null, 'Requests'), h('dd', null, fmtNum(s.total_requests)),
    h('dt', null, 'Attacks'), h('dd', null, fmtNum(s.total_attacks)));
}

function listControls(kind, value, blocked, allowed, page) {
  const out = [h('h2', { id: 'h-lists', class: 'sr' }, 'Block and allow lists')];
  const bar = h('div', { class: 'actions' });
  if (blocked) {
    out.push(h('p', null, badge('blocked', 'blocked'), ' On the block list ',
      blocked.expires_at ? ['until ', timeEl(blocked.expires_at)] : 'until removed', ` (${blocked.reason}).`));
    bar.append(h('button', { type: 'button', class: 'btn',
      onclick: (ev) => action(ev.currentTarget, () => unblock(kind, value), `Unblocked ${kind} ${value}.`).then(page.refresh) }, 'Unblock'));
  } else {
    const sel = durationSelect('identity-block-ttl', '1h', 'Block for');
    out.push(h('p', null, 'Not on the block list.'));
    bar.append(h('span', { class: 'inline-control' },
      h('button', { type: 'button', class: 'btn btn-danger',
        onclick: (ev) => action(ev.currentTarget, () => block(kind, value, sel.value, 'dashboard'),
          `Blocked ${kind} ${value} ${sel.value ? `for ${sel.options[sel.selectedIndex].text}` : 'until removed'}.`).then(page.refresh) }, 'Block'),
      h('label', { for: sel.id }, 'for'), sel));
  }
  if (allowed) {
    out.push(h('p', null, badge('allowed', 'allowed'), ' On the allow list ',
      allowed.expires_at ? ['until ', timeEl(allowed.expires_at)] : 'until removed', ` (${allowed.reason}); the allow list wins over the block list.`));
    bar.append(h('button', { type: 'button', class: 'btn',
      onclick: (ev) => action(ev.currentTarget, () => unallow(kind, value), `Removed ${kind} ${value} from the allow list.`).then(page.refresh) }, 'Remove from allow list'));
  }
  out.push(bar);
  return out;
}

function details(rec) {
  const d = rec.details || {};
  const m = d.metrics || {};
  const ips = m.ip_list || [];
  const sorted = (o) => Object.entries(o || {}).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  return [
    h('section', { 'aria-labelledby': 'h-timeline' },
      h('h2', { id: 'h-timeline' }, 'Timeline'),
      timeline(d.hourly_requests || {})),
    h('section', { 'aria-labelledby': 'h-ips' },
      h('h2', { id: 'h-ips' }, `IP addresses (${fmtNum(ips.length)})`),
      table({
        className: 'ips',
        columns: [{ label: 'IP' }, { label: 'Requests', num: true }, { label: 'Methods' }, { label: 'APIs' }, { label: 'Endpoints' }],
        rows: ips.map((p) => [identityLink('ip', p.ip, false), fmtNum(p.total_requests), counts(p.methods), counts(p.apis), counts(p.urls, 3)]),
        empty: 'No IP recorded.',
      })),
    h('div', { class: 'two-col' },
      h('section', { 'aria-labelledby': 'h-endpoints' },
        h('h2', { id: 'h-endpoints' }, 'Endpoints'),
        table({ columns: [{ label: 'Endpoint' }, { label: 'Requests', num: true }],
          rows: sorted(m.urls).map(([u, n]) => [h('code', null, u), fmtNum(n)]), empty: 'No endpoint recorded.' })),
      h('section', { 'aria-labelledby': 'h-methods' },
        h('h2', { id: 'h-methods' }, 'Methods and APIs'),
        table({ columns: [{ label: 'Method' }, { label: 'Requests', num: true }],
          rows: sorted(m.methods).map(([k, n]) => [k, fmtNum(n)]), empty: 'No method recorded.' }),
        table({ columns: [{ label: 'API' }, { label: 'Requests', num: true }],
          rows: sorted(m.apis).map(([k, n]) => [h('a', { href: `#/model/${encodeURIComponent(k)}` }, k), fmtNum(n)]), empty: 'No API recorded.' }))),
  ];
}

// timeline draws requests per hour, from the first recorded hour to now
// (at most the last 7 days, which is what Vigil keeps).
function timeline(hours) {
  const keys = Object.keys(hours).map(Number).filter((k) => Number.isFinite(k));
  if (!keys.length) return h('p', { class: 'empty' }, 'No hourly activity recorded.');
  const nowHour = Math.floor(Date.now() / 3600e3);
  const last = Math.max(nowHour, ...keys);
  const first = Math.min(Math.max(Math.min(...keys), last - 167), last - 23);
  const points = [];
  for (let k = first; k <= last; k++) points.push({ t: k * 3600e3, v: hours[k] || 0 });
  return timeChart([{ name: 'requests', cls: 's-requests', points }],
    { title: 'Requests per hour', unit: 'per hour', bars: true, step: 3600e3, width: 960, height: 200,
      caption: `Requests per hour, local time (the last ${last - first + 1} hours; Vigil keeps 7 days)` });
}
