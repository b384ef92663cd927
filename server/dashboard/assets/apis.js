// The APIs overview: inventory counters, models' training, traffic charts
// per API and endpoints. Charts come from GET /v1/apis/{api}/activity when
// this Vigil has it; otherwise from sampling the /v1/apis counters in this
// tab, which can only show what happened since the tab started sampling.

import { h, fmtNum, fmtClock, timeEl, table, badge, progress, renderIfChanged, counts, identityLink } from './dom.js';
import { api } from './api.js';
import { timeChart } from './chart.js';

const MAX_CHARTS = 8;
const SAMPLE_MS = 5000;
const RANGES = { '1h': { since: '1h', step: '1m', label: 'last hour, per minute' }, '24h': { since: '24h', step: '1h', label: 'last 24 hours, per hour' } };

// activity: undefined until known, then true (the route answers) or false.
let activitySupported;

// sampler keeps a rolling series of /v1/apis counters, in memory only.
const sampler = {
  started: 0,
  max: 360, // 30 minutes at one sample per 5 s
  series: new Map(), // api → [{t, requests, blocked, would_block}]
  add(apis, t = Date.now()) {
    if (!this.started) this.started = t;
    for (const a of apis) {
      const s = this.series.get(a.name) || [];
      const last = s[s.length - 1];
      if (last && t - last.t < SAMPLE_MS - 1000) continue; // the page and the background timer both sample
      s.push({ t, requests: a.requests, blocked: a.blocked, would_block: a.would_block });
      if (s.length > this.max) s.shift();
      this.series.set(a.name, s);
    }
  },
  // deltas are the counts in each interval between samples.
  deltas(name, field) {
    const s = this.series.get(name) || [];
    const out = [];
    for (let i = 1; i < s.length; i++) out.push({ t: s[i].t, v: Math.max(0, s[i][field] - s[i - 1][field]) });
    return out;
  },
};

// sampleInBackground keeps sampling while other pages are shown, once this
// Vigil turned out to have no activity route.
let backgroundTimer = 0;
function sampleInBackground() {
  if (backgroundTimer) return;
  backgroundTimer = setInterval(() => {
    if (document.hidden) return;
    api('GET', '/v1/apis').then((d) => sampler.add(d.apis || [])).catch(() => {});
  }, SAMPLE_MS);
}

export function apisPage(main, params, page) {
  const range = RANGES[params.query.range] ? params.query.range : '1h';
  const models = h('section', { 'aria-labelledby': 'h-models' });
  const inventory = h('section', { 'aria-labelledby': 'h-inventory' });
  const charts = h('div', { class: 'charts' });
  const chartNote = h('p', { class: 'note' });
  const rangeSel = h('select', { id: 'chart-range' }, Object.entries(RANGES).map(([k, r]) => h('option', { value: k, selected: k === range }, r.label)));
  rangeSel.addEventListener('change', () => { location.hash = `#/apis?range=${rangeSel.value}`; });
  const rangeCtl = h('p', { class: 'filters' }, h('label', { for: rangeSel.id }, 'Range'), rangeSel);
  const endpoints = h('section', { 'aria-labelledby': 'h-endpoints' });
  main.append(
    h('h1', { tabindex: -1 }, 'APIs'),
    h('section', { 'aria-labelledby': 'h-traffic' }, h('h2', { id: 'h-traffic' }, 'Traffic and blocks'), chartNote, rangeCtl, charts),
    inventory, models, endpoints);

  async function refresh() {
    const [inv, mods] = await Promise.all([api('GET', '/v1/apis'), api('GET', '/v1/models')]);
    if (!page.alive()) return;
    const apis = (inv.apis || []).slice().sort((a, b) => b.requests - a.requests || (a.name < b.name ? -1 : 1));
    sampler.add(apis);
    renderIfChanged(inventory, apis.map(({ endpoints: _e, ...rest }) => ({ ...rest, n: (_e || []).length })), () => inventoryTable(apis));
    renderIfChanged(models, mods.models || [], modelsTable);
    renderIfChanged(endpoints, apis.map((a) => [a.name, a.endpoints]), () => endpointsList(apis));
    await drawCharts(apis.slice(0, MAX_CHARTS), apis.length);
  }

  async function drawCharts(top, total) {
    let points = null;
    if (activitySupported !== false && top.length) {
      const r = RANGES[range];
      try {
        points = await Promise.all(top.map((a) => api('GET', `/v1/apis/${encodeURIComponent(a.name)}/activity?since=${r.since}&step=${r.step}`, undefined,
          { quiet: (e) => e.noRoute })));
        activitySupported = true;
      } catch (e) {
        if (!e.noRoute) return;
        activitySupported = false;
        sampleInBackground();
      }
    }
    if (!page.alive()) return;
    rangeCtl.hidden = !activitySupported;
    const more = total > top.length ? ` Charts for the ${top.length} busiest of ${total} APIs.` : '';
    if (!top.length) {
      chartNote.textContent = 'No API has seen traffic yet.';
      charts.replaceChildren();
      return;
    }
    if (activitySupported) {
      chartNote.textContent = `From Vigil's activity record: ${RANGES[range].label}.${more}`;
      renderIfChanged(charts, points, () => top.map((a, i) => activityChart(a, points[i])));
    } else {
      chartNote.textContent = `Since this page opened (${fmtClock(sampler.started)}): this Vigil keeps no activity history, so the dashboard samples the /v1/apis counters every 5 s while this tab is open and shows the counts between samples (the last 30 minutes, in this tab's memory only).${more}`;
      charts.replaceChildren(...top.map(sampledChart));
    }
  }
  return { refresh, auto: true };
}

function activityChart(a, data) {
  const pts = (data && data.points) || [];
  const stepMs = parseStep(data && data.step);
  const ser = (name, cls, f) => ({ name, cls, points: pts.map((p) => ({ t: Date.parse(p.time), v: f(p) })) });
  const series = [
    { ...ser('requests', 's-requests', (p) => p.requests), area: true },
    ser('4xx', 's-4xx', (p) => p.errors_4xx),
    ser('5xx', 's-5xx', (p) => p.errors_5xx),
    ser('blocked', 's-blocked', (p) => p.blocked),
    ser('would block', 's-would', (p) => p.would_block),
  ];
  const top = (data && data.top_identities) || [];
  return h('article', { class: 'card chart-card', 'aria-label': `Traffic of ${a.name}` },
    h('h3', null, a.name, ' ', h('a', { href: `#/model/${encodeURIComponent(a.name)}`, class: 'small' }, 'model')),
    timeChart(series, { title: `Traffic of ${a.name} per ${data && data.step}`, unit: `per ${data && data.step}`, step: stepMs }),
    top.length ? h('p', { class: 'small' }, 'Busiest identities: ',
      top.slice(0, 5).flatMap((t, i) => [i ? ', ' : '', identityLink(t.kind, t.value), ` (${fmtNum(t.requests)})`])) : null);
}

function sampledChart(a) {
  const series = [
    { name: 'requests', cls: 's-requests', area: true, points: sampler.deltas(a.name, 'requests') },
    { name: 'blocked', cls: 's-blocked', points: sampler.deltas(a.name, 'blocked') },
    { name: 'would block', cls: 's-would', points: sampler.deltas(a.name, 'would_block') },
  ];
  return h('article', { class: 'card chart-card', 'aria-label': `Traffic of ${a.name}` },
    h('h3', null, a.name, ' ', h('a', { href: `#/model/${encodeURIComponent(a.name)}`, class: 'small' }, 'model')),
    timeChart(series, { title: `Traffic of ${a.name} since this page opened, per sample`, unit: 'per sample' }));
}

function parseStep(s) {
  if (!s) return 60e3;
  let ms = 0;
  for (const [, n, u] of String(s).matchAll(/([\d.]+)(h|m|s)/g)) ms += Number(n) * { h: 3600e3, m: 60e3, s: 1e3 }[u];
  return ms || 60e3;
}

function inventoryTable(apis) {
  return [h('h2', { id: 'h-inventory' }, 'Inventory'), table({
    columns: [{ label: 'API' }, { label: 'Mode' }, { label: 'Hosts and base path' }, { label: 'Requests', num: true },
      { label: 'Blocked', num: true }, { label: 'Would block', num: true }, { label: 'Endpoints', num: true }, { label: 'Last seen' }],
    rows: apis.map((a) => [
      [h('a', { href: `#/model/${encodeURIComponent(a.name)}` }, a.name), a.discovered ? [' ', badge('discovered')] : null],
      badge(a.mode, `mode-${a.mode}`),
      h('code', null, `${(a.hosts || []).join(', ') || '*'} ${a.base_path || '/'}`),
      fmtNum(a.requests), fmtNum(a.blocked), fmtNum(a.would_block), fmtNum((a.endpoints || []).length), timeEl(a.last_seen),
    ]),
    empty: 'No APIs yet: configure some, or send traffic.',
  })];
}

function modelsTable(models) {
  return [h('h2', { id: 'h-models' }, 'Models and training'), table({
    columns: [{ label: 'API' }, { label: 'State' }, { label: 'Requests', num: true }, { label: 'Identities', num: true },
      { label: 'Would-be detections', num: true }, { label: 'Training progress' }],
    rows: models.map((m) => [
      h('a', { href: `#/model/${encodeURIComponent(m.api)}` }, m.api),
      badge(m.state, m.state === 'ready' ? 'ready' : 'learning'),
      fmtNum(m.requests), fmtNum(m.identities), fmtNum(m.would_be_detections),
      m.state === 'ready' ? ['ready since ', timeEl(m.ready_at)] : h('div', { class: 'progress-group' },
        progress('time', m.progress && m.progress.duration),
        progress('requests', m.progress && m.progress.requests),
        progress('identities', m.progress && m.progress.identities)),
    ]),
    empty: 'No models yet: a model starts with an API\'s first traffic.',
  })];
}

function endpointsList(apis) {
  return [h('h2', { id: 'h-endpoints' }, 'Endpoints'), apis.length ? apis.map((a) => h('details', { class: 'endpoints' },
    h('summary', null, `${a.name}: ${fmtNum((a.endpoints || []).length)} endpoint${(a.endpoints || []).length === 1 ? '' : 's'}`),
    table({
      columns: [{ label: 'Method' }, { label: 'Path' }, { label: 'Requests', num: true }, { label: 'Status classes' }, { label: 'Last seen' }],
      rows: (a.endpoints || []).map((e) => [e.method, h('code', null, e.path), fmtNum(e.requests), counts(e.status, 5), timeEl(e.last_seen)]),
      empty: a.overflow_requests ? `No endpoint templates kept; ${fmtNum(a.overflow_requests)} requests were not attributed to one.` : 'No endpoints seen yet.',
    }))) : h('p', { class: 'empty' }, 'No APIs yet.')];
}
