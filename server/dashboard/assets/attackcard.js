// One attack, explained: the variables that fired against their thresholds,
// the client IPs, the decoy call or honeytoken, the block state of the
// identity, and the actions an on-call engineer takes on it.

import { h, fmtNum, fmtTime, timeEl, table, badge, identityHref, identityLink, durationSelect } from './dom.js';
import { api, action, block, unblock, notify } from './api.js';

// features remembers what this Vigil's admin API turned out not to have.
export const features = { falsePositive: true };

let seq = 0;

// attackCard renders attack a. env: {blocks: Map "kind value" → entry,
// changed: () => void (refresh after an action), self: the identity whose
// page this is, if any}.
export function attackCard(a, env) {
  const id = `attack-${++seq}`;
  const ident = a.identity || {};
  const entry = env.blocks.get(`${ident.kind} ${ident.value}`);
  const madeByThis = [...env.blocks.values()].filter((e) => e.reason && e.reason.endsWith(` ${a.id}`) && !(e.kind === ident.kind && e.value === ident.value));

  return h('article', { class: `attack action-${a.action}`, 'aria-labelledby': id, 'data-attack-id': a.id },
    h('header', { class: 'attack-head' },
      h('h3', { id }, badge(a.type, a.type === 'decoy' ? 'decoy' : 'type'), ' on ', h('strong', null, a.api || '?'), ' by ', identityLink(ident.kind, ident.value)),
      h('p', { class: 'meta' },
        badge(actionText(a.action), a.action), ' ',
        a.blocked_until ? ['until ', h('time', { datetime: a.blocked_until }, fmtTime(a.blocked_until)), ' · '] : ' · ',
        'detected ', timeEl(a.detected_at),
        a.repeat ? ` · repeat offence #${a.repeat + 1}` : '',
        ' · id ', h('code', null, a.id))),
    explanation(a),
    facts(a),
    a.false_positive ? fpNote(a.false_positive) : null,
    h('div', { class: 'attack-state' },
      entry
        ? h('p', null, badge('blocked', 'blocked'), ' ', `${ident.kind} `, h('code', null, ident.value), ' is on the block list ',
          entry.expires_at ? ['until ', timeEl(entry.expires_at)] : 'until removed', ` (${entry.reason}).`)
        : h('p', null, `${ident.kind} `, h('code', null, ident.value), ' is not on the block list.'),
      madeByThis.length ? h('ul', { class: 'also' }, madeByThis.map((e) => h('li', null,
        'Also blocked by this attack: ', identityLink(e.kind, e.value), ' ',
        h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Unblock ${e.kind} ${e.value}`,
          onclick: (ev) => action(ev.currentTarget, () => unblock(e.kind, e.value), `Unblocked ${e.kind} ${e.value}.`).then(env.changed) }, 'Unblock')))) : null),
    actions(a, ident, entry, env));
}

function actionText(action) {
  return { blocked: 'blocked', would_block: 'would block (detect mode)', detected: 'detected (learn mode)' }[action] || action || 'unknown';
}

function explanation(a) {
  const vars = a.variables || [];
  if (vars.length && vars[0].detector) {
    // A content attack: where the value was, what matched, the value.
    return table({
      caption: 'Why: the request carried it (content inspection)',
      className: 'vars',
      columns: [{ label: 'Location' }, { label: 'Matched' }, { label: 'Value (excerpt, secrets masked)' }],
      rows: vars.map((v) => [h('code', null, v.name), v.detector, h('code', null, v.excerpt || '')]),
      empty: 'No variables recorded.',
    });
  }
  return table({
    caption: a.type === 'decoy' ? 'Why: a decoy was touched (proof, not a statistic: no threshold applies)' : 'Why: variables against their thresholds (Tn normal, Tx attack)',
    className: 'vars',
    columns: [{ label: 'Variable' }, { label: 'Observed', num: true }, { label: 'Tn', num: true }, { label: 'Tx', num: true },
      { label: 'Deviation from Tn', num: true }, { label: 'Fired' }],
    // A behaviour variable's location is what it was judged against
    // (request_bytes_endpoint: the endpoint).
    rows: vars.map((v) => [[h('code', null, v.name), v.location ? [' on ', h('code', null, v.location)] : null], fmtNum(v.observed), fmtNum(v.tn), fmtNum(v.tx),
      v.tn || v.deviation_pct ? `${v.deviation_pct >= 0 ? '+' : ''}${fmtNum(v.deviation_pct)} %` : '–',
      v.tx > 0 && v.observed >= v.tx ? badge('over Tx', 'blocked') : a.type === 'decoy' ? badge('decoy', 'decoy') : '']),
    empty: 'No variables recorded.',
  });
}

function facts(a) {
  const items = [];
  items.push(['Client IPs', (a.client_ips || []).length
    ? (a.client_ips || []).flatMap((ip, i) => [i ? ', ' : '', identityLink('ip', ip, false)])
    : '–']);
  if (a.first_seen && a.first_seen !== a.detected_at) items.push(['First seen', timeEl(a.first_seen)]);
  if (a.request) {
    const r = a.request;
    items.push([a.type === 'decoy' ? 'Decoy request' : 'Request', [h('code', null, `${r.method} ${r.host}${r.path}`), r.user_agent ? [' · user agent ', h('code', null, r.user_agent)] : '']]);
  }
  if (a.honeytoken) {
    const t = a.honeytoken;
    items.push(['Honeytoken', [`a planted ${t.kind} from `, h('code', null, t.minted_on), ', planted ', timeEl(t.minted_at), ' by attack ', h('code', null, t.minted_by)]]);
  }
  return h('dl', { class: 'facts' }, items.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

function fpNote(fp) {
  const relaxed = (fp.relaxed || []).map((r) => `${r.name} (${r.kind}${r.endpoint ? ` ${r.endpoint}` : ''}) Tx ${fmtNum(r.old_tx)} → ${fmtNum(r.new_tx)}`).join('; ');
  return h('p', { class: 'fp-note' }, badge('false positive', 'fp'), ' Marked as a false positive ', timeEl(fp.at), ': ',
    `${fp.unblocked} block list ${fp.unblocked === 1 ? 'entry' : 'entries'} removed`,
    fp.allowed_until ? ['; allowed until ', h('time', { datetime: fp.allowed_until }, fmtTime(fp.allowed_until))] : '',
    relaxed ? `; thresholds raised: ${relaxed}` : '', '.');
}

function actions(a, ident, entry, env) {
  const sel = durationSelect(`dur-${a.id}`, '1h', `Block ${ident.kind} ${ident.value} for`);
  const bar = h('div', { class: 'actions' });
  if (entry) {
    bar.append(h('button', { type: 'button', class: 'btn',
      onclick: (ev) => action(ev.currentTarget, () => unblock(ident.kind, ident.value), `Unblocked ${ident.kind} ${ident.value}.`).then(env.changed) }, 'Unblock'));
  } else {
    bar.append(h('span', { class: 'inline-control' },
      h('button', { type: 'button', class: 'btn btn-danger',
        onclick: (ev) => action(ev.currentTarget, () => block(ident.kind, ident.value, sel.value, `dashboard: again after attack ${a.id}`),
          `Blocked ${ident.kind} ${ident.value} ${sel.value ? `for ${sel.options[sel.selectedIndex].text}` : 'until removed'}.`).then(env.changed) },
        a.action === 'blocked' ? 'Block again' : 'Block'),
      h('label', { class: 'sr', for: sel.id }, 'for'), sel));
  }
  if (!(env.self && env.self.kind === ident.kind && env.self.value === ident.value)) {
    bar.append(h('a', { class: 'btn', href: identityHref(ident.kind, ident.value) }, 'Open identity'));
  }
  if (features.falsePositive && !a.false_positive) bar.append(fpControl(a, ident, env));
  return bar;
}

// fpControl asks before marking a false positive: it unblocks, allow-lists
// the identity for a while and raises the thresholds that fired.
function fpControl(a, ident, env) {
  const wrap = h('span', { class: 'fp' });
  const open = h('button', { type: 'button', class: 'btn', 'aria-expanded': 'false' }, 'False positive…');
  const sel = h('select', { id: `fp-allow-${a.id}` },
    [['24h', '24 hours'], ['1h', '1 hour'], ['168h', '7 days'], ['0s', 'not at all']].map(([v, t]) => h('option', { value: v }, t)));
  const panel = h('div', { class: 'confirm', role: 'group', 'aria-label': 'Confirm false positive', hidden: true },
    h('p', null, 'Marking this attack as a false positive removes the block list entries it made, puts ',
      `${ident.kind} `, h('code', null, ident.value), ' on the allow list, and raises the thresholds that fired on ', h('strong', null, a.api), '.'),
    h('label', { for: sel.id }, 'Allow for '), sel, ' ',
    h('button', { type: 'button', class: 'btn btn-primary', onclick: (ev) => markFP(ev.currentTarget, a, sel.value, env) }, 'Confirm false positive'), ' ',
    h('button', { type: 'button', class: 'btn', onclick: () => toggle(false) }, 'Cancel'));
  function toggle(show) {
    panel.hidden = !show;
    open.setAttribute('aria-expanded', String(show));
    if (show) sel.focus(); else open.focus();
  }
  open.addEventListener('click', () => toggle(panel.hidden));
  wrap.append(open, panel);
  return wrap;
}

async function markFP(button, a, allowFor, env) {
  button.disabled = true;
  try {
    await api('POST', `/v1/attacks/${encodeURIComponent(a.id)}/false-positive`, { allow_for: allowFor }, { quiet: (e) => e.noRoute });
    notify(`Attack ${a.id} marked as a false positive.`);
  } catch (e) {
    if (e.noRoute) {
      features.falsePositive = false;
      notify('This Vigil cannot mark false positives (no POST /v1/attacks/{id}/false-positive); unblock by hand instead.');
    }
  } finally {
    if (button.isConnected) button.disabled = false;
  }
  env.changed();
}
