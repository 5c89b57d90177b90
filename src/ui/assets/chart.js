// Charts drawn as SVG: lines over time, dots (exemplars, or traces in a scatter) that open
// what they point at, shaded bands (anomalies). One function draws them all; every dot is a
// focusable link, so a chart works from the keyboard too.

import { h, clockTime } from "./format.js";

const W = 800;
const PAD = { left: 58, right: 12, top: 10, bottom: 26 };

// Round tick values covering [lo, hi].
function ticks(lo, hi, count) {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
  return out;
}

// chart({lines: [{points: [[ms, value]], label}], dots: [{t, v, label, href, error}],
//        bands: [{from, to, label}], from, to, height, unit, format, caption})
// Times are milliseconds since the epoch; `format` turns a value into text.
export function chart(opts) {
  const height = opts.height || 200;
  const fmt = opts.format || ((v) => String(Math.round(v * 1000) / 1000));
  const lines = opts.lines || [];
  const dots = opts.dots || [];
  const bands = opts.bands || [];
  const times = [...lines.flatMap((l) => l.points.map((p) => p[0])), ...dots.map((d) => d.t)];
  const from = opts.from ?? Math.min(...times);
  const to = Math.max(opts.to ?? Math.max(...times), from + 1);
  const values = [...lines.flatMap((l) => l.points.map((p) => p[1])), ...dots.map((d) => d.v)].filter(Number.isFinite);
  const top = Math.max(...values, 0) * 1.08 || 1;
  const x = (t) => PAD.left + ((t - from) / (to - from)) * (W - PAD.left - PAD.right);
  const y = (v) => height - PAD.bottom - (v / top) * (height - PAD.top - PAD.bottom);
  const svg = h("svg:svg", {
    viewBox: `0 0 ${W} ${height}`,
    class: "chart",
    role: "img",
    "aria-label": opts.caption || "chart",
    preserveAspectRatio: "xMinYMin meet",
  });
  for (const b of bands) {
    const x0 = x(Math.max(b.from, from));
    const x1 = x(Math.min(Math.max(b.to, b.from), to));
    svg.append(
      h("svg:rect", { class: "band", x: x0, y: PAD.top, width: Math.max(x1 - x0, 3), height: height - PAD.top - PAD.bottom },
        h("svg:title", {}, b.label || "")),
    );
  }
  for (const v of ticks(0, top, 4)) {
    svg.append(
      h("svg:line", { class: "grid", x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }),
      h("svg:text", { class: "tick", x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, fmt(v)),
    );
  }
  for (const t of ticks(from, to, 6)) {
    svg.append(h("svg:text", { class: "tick", x: x(t), y: height - 8, "text-anchor": "middle" }, clockTime(t)));
  }
  lines.forEach((l, i) => {
    const pts = l.points.filter((p) => Number.isFinite(p[1]));
    if (!pts.length) return;
    const d = pts.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    svg.append(h("svg:path", { class: `line line-${i % 4}`, d }, h("svg:title", {}, l.label || "")));
  });
  for (const d of dots) {
    const circle = h("svg:circle", { class: d.error ? "dot err" : "dot", cx: x(d.t), cy: y(d.v), r: 4 });
    const link = h("svg:a", { href: d.href, class: "dot-link", "aria-label": d.label }, circle, h("svg:title", {}, d.label));
    svg.append(link);
  }
  return svg;
}

// The value of a line at time t, between its points (for dots that have no value of their own).
export function valueAt(points, t) {
  if (!points.length) return 0;
  let prev = points[0];
  for (const p of points) {
    if (p[0] >= t) {
      if (p[0] === prev[0]) return p[1];
      return prev[1] + ((p[1] - prev[1]) * (t - prev[0])) / (p[0] - prev[0]);
    }
    prev = p;
  }
  return prev[1];
}
