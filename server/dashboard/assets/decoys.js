// Decoy paths with their hits, and how many honeytokens were planted.

import { h, fmtNum, timeEl, table, renderIfChanged } from './dom.js';
import { api } from './api.js';

export function decoysPage(main, params, page) {
  const body = h('div');
  main.append(h('h1', { tabindex: -1 }, 'Decoys and honeytokens'),
    h('p', { class: 'note' }, 'A decoy is a path no real client calls; a hit blocks every identity of the call. ',
      'Honeytokens are fake credentials in decoy answers; their use counts as a hit. ',
      h('a', { href: '#/attacks?type=decoy' }, 'See decoy attacks'), '.'),
    body);
  async function refresh() {
    const d = await api('GET', '/v1/decoys');
    if (!page.alive()) return;
    const decoys = (d.decoys || []).slice().sort((a, b) => b.hits - a.hits || (a.api < b.api ? -1 : a.api > b.api ? 1 : a.path < b.path ? -1 : 1));
    renderIfChanged(body, d, () => {
      const hit = decoys.filter((x) => x.hits > 0);
      return [
        h('ul', { class: 'stats' },
          h('li', null, h('strong', null, fmtNum(decoys.length)), ' decoy paths'),
          h('li', null, h('strong', null, fmtNum(hit.length)), ' hit'),
          h('li', null, h('strong', null, fmtNum(hit.reduce((a, x) => a + x.hits, 0))), ' hits in all'),
          h('li', null, h('strong', null, fmtNum(d.honeytokens_planted)), ' honeytokens planted')),
        table({
          caption: 'Decoys, most hit first',
          className: 'decoys',
          columns: [{ label: 'API' }, { label: 'Path' }, { label: 'Hits', num: true }, { label: 'Last hit' }],
          rows: decoys.map((x) => [h('a', { href: `#/attacks?type=decoy&api=${encodeURIComponent(x.api)}` }, x.api), h('code', null, x.path),
            x.hits ? h('strong', null, fmtNum(x.hits)) : '0', x.last_hit ? timeEl(x.last_hit) : 'never']),
          empty: 'No decoys configured: set decoy_builtin, apis[].decoys or decoy_apis.',
        }),
      ];
    });
  }
  return { refresh, auto: true };
}
