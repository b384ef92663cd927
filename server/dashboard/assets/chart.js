// Small time charts drawn as inline SVG: lines or bars over a time axis,
// with a legend and a text summary for screen readers.

import { h, fmtNum } from './dom.js';

const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v != null) el.setAttribute(k, String(v));
  for (const c of children) if (c != null) el.append(c instanceof Node ? c : String(c));
  return el;
}

// niceMax rounds up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function pad(n) { return String(n).padStart(2, '0'); }

function timeLabel(ms, span) {
  const d = new Date(ms);
  if (span > 2 * 86400e3) return `${d.getMonth() + 1}/${d.getDate()} ${pad(d.getHours())}h`;
  if (span > 600e3) return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

const INTERVALS = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].map((x) => x * 1000);

// timeTicks are round local times between t0 and t1, at most six of them.
function timeTicks(t0, t1) {
  const iv = INTERVALS.find((i) => (t1 - t0) / i <= 6) || 86400e3 * Math.ceil((t1 - t0) / 86400e3 / 6);
  const off = -new Date(t0).getTimezoneOffset() * 60e3;
  const out = [];
  for (let t = Math.ceil((t0 + off) / iv) * iv - off; t <= t1; t += iv) out.push(t);
  return out;
}

// timeChart draws series [{name, cls, points: [{t: ms, v}]}] over time.
// opts: {title, unit, bars, width, height, step (ms, the width of a bar)}.
export function timeChart(series, opts = {}) {
  const W = opts.width || 640;
  const H = opts.height || 220;
  const m = { l: 52, r: 14, t: 12, b: 30 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const all = series.flatMap((x) => x.points);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'chart', role: 'img', 'aria-label': summary(series, opts) });
  svg.append(s('title', null, opts.title || 'chart'));
  if (!all.length) {
    svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'chart-empty' }, 'No data yet'));
    return figure(svg, series, opts);
  }
  const step = opts.step || 0;
  let t0 = Math.min(...all.map((p) => p.t));
  let t1 = Math.max(...all.map((p) => p.t)) + (opts.bars ? step : 0);
  if (t1 <= t0) { t0 -= 30e3; t1 += 30e3; }
  const ymax = niceMax(Math.max(...all.map((p) => p.v), 0));
  const x = (t) => m.l + ((t - t0) / (t1 - t0)) * pw;
  const y = (v) => m.t + ph - (v / ymax) * ph;

  const grid = s('g', { class: 'chart-grid' });
  for (let i = 0; i <= 4; i++) {
    const v = (ymax * i) / 4;
    grid.append(s('line', { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }));
    grid.append(s('text', { x: m.l - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmtNum(v)));
  }
  for (const t of timeTicks(t0, t1)) {
    const px = x(t);
    const anchor = px - m.l < 20 ? 'start' : W - m.r - px < 20 ? 'end' : 'middle';
    grid.append(s('line', { class: 'chart-tick', x1: px, x2: px, y1: y(0), y2: y(0) + 4 }));
    grid.append(s('text', { x: px, y: H - 8, 'text-anchor': anchor }, timeLabel(t, t1 - t0)));
  }
  grid.append(s('line', { class: 'chart-axis', x1: m.l, x2: W - m.r, y1: y(0), y2: y(0) }));
  svg.append(grid);

  if (opts.bars) {
    const bw = Math.max(1, (step / (t1 - t0)) * pw - 1);
    series.forEach((ser, i) => {
      const g = s('g', { class: `series ${ser.cls}` });
      const w = bw / series.length;
      for (const p of ser.points) {
        if (!p.v) continue;
        g.append(s('rect', { x: x(p.t) + i * w, y: y(p.v), width: Math.max(1, w), height: Math.max(0.5, y(0) - y(p.v)) },
          s('title', null, `${timeLabel(p.t, t1 - t0)}: ${fmtNum(p.v)} ${ser.name}`)));
      }
      svg.append(g);
    });
  } else {
    for (const ser of series) {
      const g = s('g', { class: `series ${ser.cls}` });
      if (ser.area && ser.points.length > 1) {
        const pts = ser.points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
        g.append(s('polygon', { class: 'area', points: `${x(ser.points[0].t).toFixed(1)},${y(0)} ${pts.join(' ')} ${x(ser.points[ser.points.length - 1].t).toFixed(1)},${y(0)}` }));
      }
      if (ser.points.length === 1) {
        const p = ser.points[0];
        g.append(s('circle', { cx: x(p.t), cy: y(p.v), r: 3 }));
      } else if (ser.points.length) {
        g.append(s('polyline', { points: ser.points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ') }));
      }
      svg.append(g);
    }
  }
  return figure(svg, series, opts);
}

function figure(svg, series, opts) {
  return h('figure', { class: 'chart-figure' },
    opts.caption ? h('figcaption', null, opts.caption) : null,
    svg,
    h('ul', { class: 'legend', 'aria-hidden': 'true' },
      series.map((ser) => h('li', null, h('span', { class: `swatch ${ser.cls}` }), ser.name))));
}

function summary(series, opts) {
  const parts = series.map((ser) => {
    const vs = ser.points.map((p) => p.v);
    const total = vs.reduce((a, b) => a + b, 0);
    const peak = vs.length ? Math.max(...vs) : 0;
    return `${ser.name}: total ${fmtNum(total)}, peak ${fmtNum(peak)}${opts.unit ? ` ${opts.unit}` : ''}`;
  });
  return `${opts.title || 'Chart'}. ${parts.join('; ')}.`;
}
