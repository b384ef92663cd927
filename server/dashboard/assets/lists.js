// The block list and the allow list: entries, an add form and remove buttons.

import { h, timeEl, table, identityLink, kindSelect, renderIfChanged, fmtNum } from './dom.js';
import { api, action } from './api.js';

const LISTS = [
  { name: 'blocklist', id: 'block', title: 'Block list', noun: 'block list', help: 'Requests from these identities get 403 (in APIs in block mode).' },
  { name: 'allowlist', id: 'allow', title: 'Allow list', noun: 'allow list', help: 'These identities are never refused: the allow list wins over the block list.' },
];

export function listsPage(main, params, page) {
  main.append(h('h1', { tabindex: -1 }, 'Block and allow lists'));
  const views = LISTS.map((l) => {
    const entries = h('div');
    main.append(h('section', { 'aria-labelledby': `h-${l.id}` },
      h('h2', { id: `h-${l.id}` }, l.title),
      h('p', { class: 'note' }, l.help),
      addForm(l, page),
      entries));
    return { l, entries };
  });

  async function refresh() {
    const data = await Promise.all(views.map((v) => api('GET', `/v1/${v.l.name}`)));
    if (!page.alive()) return;
    views.forEach((v, i) => {
      const list = (data[i].entries || []).slice().sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
      renderIfChanged(v.entries, list, () => table({
        caption: `${v.l.title}: ${fmtNum(list.length)} ${list.length === 1 ? 'entry' : 'entries'}`,
        className: `list-${v.l.id}`,
        columns: [{ label: 'Kind' }, { label: 'Value' }, { label: 'Reason' }, { label: 'Added' }, { label: 'Expires' }, { label: '' }],
        rows: list.map((e) => [e.kind, identityLink(e.kind, e.value, false), e.reason, timeEl(e.created_at),
          e.expires_at ? timeEl(e.expires_at) : 'never',
          h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Remove ${e.kind} ${e.value} from the ${v.l.noun}`,
            onclick: (ev) => action(ev.currentTarget, () => api('DELETE', `/v1/${v.l.name}/${encodeURIComponent(e.kind)}/${encodeURIComponent(e.value)}`),
              `Removed ${e.kind} ${e.value} from the ${v.l.noun}.`).then(page.refresh) }, 'Remove')]),
        empty: `The ${v.l.noun} is empty.`,
      }));
    });
  }
  return { refresh, auto: true };
}

function addForm(l, page) {
  const kind = kindSelect(`${l.id}-kind`, 'ip');
  const value = h('input', { id: `${l.id}-value`, required: true, autocomplete: 'off', spellcheck: 'false', placeholder: '203.0.113.7, fp:…, or a raw secret' });
  const ttl = h('input', { id: `${l.id}-ttl`, autocomplete: 'off', placeholder: 'e.g. 1h', class: 'narrow' });
  const reason = h('input', { id: `${l.id}-reason`, autocomplete: 'off', maxlength: '512', placeholder: 'manual' });
  return h('form', { class: 'add-form', 'aria-label': `Add to the ${l.noun}`, onsubmit: (e) => {
    e.preventDefault();
    const body = { kind: kind.value, value: value.value.trim(), ttl: ttl.value.trim() || undefined, reason: reason.value.trim() || undefined };
    action(e.submitter, () => api('POST', `/v1/${l.name}`, body), (out) => `Added ${out.kind} ${out.value} to the ${l.noun}.`)
      .then((out) => {
        if (out) { value.value = ''; reason.value = ''; }
        page.refresh();
      });
  } },
  h('div', { class: 'field' }, h('label', { for: kind.id }, 'Kind'), kind),
  h('div', { class: 'field grow' }, h('label', { for: value.id }, 'Value'), value),
  h('div', { class: 'field' }, h('label', { for: ttl.id }, 'Time to live (empty: until removed)'), ttl),
  h('div', { class: 'field grow' }, h('label', { for: reason.id }, 'Reason'), reason),
  h('div', { class: 'field' }, h('button', { type: 'submit', class: `btn ${l.id === 'block' ? 'btn-danger' : 'btn-primary'}` }, `Add to ${l.noun}`)));
}
