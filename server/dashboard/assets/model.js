// One API's model: training state, the attack types with their switches and
// sensitivity, and the thresholds (Tn, Tx) per variable and identity kind.

import { h, fmtNum, timeEl, table, badge, progress, renderIfChanged, KINDS } from './dom.js';
import { api, action } from './api.js';

export function modelPage(main, params, page) {
  const name = params.api;
  const path = `/v1/models/${encodeURIComponent(name)}`;
  const status = h('section', { 'aria-labelledby': 'h-status' });
  const types = h('section', { 'aria-labelledby': 'h-types' });
  const kindSel = h('select', { id: 'threshold-kind' }, h('option', { value: '' }, 'all kinds'),
    KINDS.map((k) => h('option', { value: k, selected: k === (params.query.kind || 'ip') }, k)));
  const thresholds = h('div');
  let last = null;
  kindSel.addEventListener('change', () => { if (last) drawThresholds(last); });
  main.append(
    h('h1', { tabindex: -1 }, 'Model: ', h('span', null, name)),
    h('p', null, h('a', { href: `#/attacks?api=${encodeURIComponent(name)}` }, `Attacks on ${name}`), ' · ', h('a', { href: '#/apis' }, 'All APIs')),
    status, types,
    h('section', { 'aria-labelledby': 'h-thresholds' },
      h('h2', { id: 'h-thresholds' }, 'Thresholds'),
      h('p', { class: 'note' }, 'Tn is the normal level (99th percentile of training samples), Tx the level that raises an attack. ',
        'Mode "user" values were set by a person or by a false positive and are kept across relearning; "Use learned" gives them back to the model.'),
      h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() }, h('label', { for: kindSel.id }, 'Population'), kindSel),
      thresholds));

  const put = (body) => api('PUT', path, body);

  function drawThresholds(doc) {
    const kind = kindSel.value;
    const vars = (doc.variables || []).filter((v) => !kind || v.kind === kind);
    renderIfChanged(thresholds, [vars, kind], () => table({
      caption: `Thresholds of ${name}${kind ? ` for the ${kind} population` : ''}`,
      className: 'thresholds',
      columns: [{ label: 'Variable' }, { label: 'Attack type' }, { label: 'Population' }, { label: 'Mode' }, { label: 'Tn', num: true },
        { label: 'Tx', num: true }, { label: 'Samples', num: true }, { label: '' }],
      // request_bytes_endpoint's thresholds are an endpoint's, not a population's.
      rows: vars.map((v) => [h('code', null, v.name), v.type, v.endpoint ? [v.kind, ' ', h('code', null, v.endpoint)] : v.kind,
        v.mode === 'user' ? badge('user', 'user') : 'system',
        fmtNum(v.tn), fmtNum(v.tx), fmtNum(v.samples),
        v.mode === 'user' ? h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Use learned thresholds for ${v.name} (${v.endpoint || v.kind})`,
          onclick: (ev) => action(ev.currentTarget, () => put({ variables: [{ name: v.name, kind: v.kind, endpoint: v.endpoint, mode: 'system' }] }),
            `${v.name} (${v.endpoint || v.kind}) uses learned thresholds again.`).then(page.refresh) }, 'Use learned') : '']),
      empty: 'No variables.',
    }));
  }

  async function refresh() {
    const doc = await api('GET', path);
    if (!page.alive()) return;
    last = doc;
    const st = doc.status || {};
    renderIfChanged(status, st, () => [
      h('h2', { id: 'h-status' }, 'Training'),
      h('dl', { class: 'facts' },
        h('dt', null, 'State'), h('dd', null, badge(st.state || 'unknown', st.state === 'ready' ? 'ready' : 'learning')),
        h('dt', null, 'Learning since'), h('dd', null, timeEl(st.start)),
        st.ready_at ? [h('dt', null, 'Ready since'), h('dd', null, timeEl(st.ready_at))] : null,
        h('dt', null, 'Requests'), h('dd', null, fmtNum(st.requests)),
        h('dt', null, 'Identities'), h('dd', null, fmtNum(st.identities)),
        h('dt', null, 'Would-be detections'), h('dd', null, fmtNum(st.would_be_detections), st.state !== 'ready' ? ' (no attack is raised while learning)' : '')),
      st.state !== 'ready' && st.progress ? h('div', { class: 'progress-group' },
        progress('time', st.progress.duration), progress('requests', st.progress.requests), progress('identities', st.progress.identities)) : null,
    ]);
    const typeRows = Object.entries(doc.types || {}).sort((a, b) => (a[0] < b[0] ? -1 : 1));
    renderIfChanged(types, typeRows, () => [
      h('h2', { id: 'h-types' }, 'Attack types'),
      table({
        columns: [{ label: 'Type' }, { label: 'Detection' }, { label: 'Sensitivity' }],
        rows: typeRows.map(([t, k]) => {
          const cb = h('input', { type: 'checkbox', id: `type-${t}`, role: 'switch', checked: !!k.enabled });
          cb.addEventListener('change', () => action(cb, () => put({ types: { [t]: { enabled: cb.checked } } }),
            `${t} detection turned ${cb.checked ? 'on' : 'off'} for ${name}.`).then((out) => {
            if (out === undefined) cb.checked = !cb.checked; // refused: show what the server has
            page.refresh();
          }));
          const sens = h('input', { type: 'number', id: `sens-${t}`, min: '0.1', max: '10', step: '0.1', value: String(k.sensitivity), class: 'narrow' });
          return [h('code', null, t),
            h('span', { class: 'switch' }, cb, h('label', { for: cb.id }, h('span', { class: 'sr' }, `${t} detection `), k.enabled ? 'on' : 'off')),
            h('form', { class: 'inline-control', onsubmit: (e) => {
              e.preventDefault();
              const v = Number(sens.value);
              action(e.submitter, () => put({ types: { [t]: { sensitivity: v } } }), `${t} sensitivity set to ${v} for ${name}.`).then(page.refresh);
            } }, h('label', { class: 'sr', for: sens.id }, `Sensitivity of ${t}`), sens, h('button', { class: 'btn btn-small' }, 'Set'))];
        }),
      }),
      h('p', { class: 'note' }, 'Sensitivity divides Tx: above 1 detects more, below 1 less.'),
    ]);
    addPopulations(doc);
    drawThresholds(doc);
  }

  // Populations beyond the identity kinds (ip_shared, network,
  // token_on_shared_ip …) become choices once the model lists them.
  function addPopulations(doc) {
    const have = new Set([...kindSel.options].map((o) => o.value));
    for (const v of doc.variables || []) {
      if (have.has(v.kind)) continue;
      have.add(v.kind);
      kindSel.append(h('option', { value: v.kind, selected: v.kind === params.query.kind }, v.kind));
    }
  }
  return { refresh, auto: true };
}
