// The service map: services and the calls between them (from the spans: a span whose parent
// belongs to another service), with request rate, error rate and p95 per call over a chosen
// window; a service opens its RED charts.

import { get } from "../api.js";
import { title } from "../app.js";
import { searchForm, timeRange } from "../form.js";
import { duration, empty, errorBox, h, number, percent, selector, serviceChip, serviceColor, table, timeEl } from "../format.js";
import { seriesChart } from "./metrics.js";

const NODE_W = 170;
const NODE_H = 54;
const COL = 330;
const ROW = 90;

// Columns by call depth from the services nothing calls (longest path, cycles cut).
function layout(map) {
  const callers = new Map(map.nodes.map((n) => [n.service, []]));
  for (const e of map.edges) callers.get(e.to)?.push(e.from);
  const depth = new Map();
  const visit = (s, seen) => {
    if (depth.has(s)) return depth.get(s);
    if (seen.has(s)) return 0;
    seen.add(s);
    const d = Math.max(-1, ...(callers.get(s) || []).map((c) => visit(c, seen))) + 1;
    depth.set(s, d);
    return d;
  };
  for (const n of map.nodes) visit(n.service, new Set());
  const columns = [];
  for (const n of map.nodes) (columns[depth.get(n.service)] ||= []).push(n.service);
  const pos = new Map();
  columns.forEach((col, c) => col.forEach((s, r) => pos.set(s, { x: 10 + c * COL, y: 10 + r * ROW })));
  return { pos, width: 20 + columns.length * COL, height: 20 + Math.max(...columns.map((c) => c.length), 1) * ROW };
}

function stats(s) {
  return `${number(s.rate_per_sec)}/s · ${percent(s.error_rate)} err · p95 ${duration(s.p95_ns)}`;
}

function graph(map, window) {
  const { pos, width, height } = layout(map);
  const svg = h("svg:svg", { viewBox: `0 0 ${width} ${height}`, class: "map", role: "img", "aria-label": "service map; the table below lists the same" },
    h("svg:defs", {}, h("svg:marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "8", markerHeight: "8", orient: "auto-start-reverse" },
      h("svg:path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }))));
  for (const e of map.edges) {
    const a = pos.get(e.from);
    const b = pos.get(e.to);
    if (!a || !b) continue;
    const [x1, y1, x2, y2] = [a.x + NODE_W, a.y + NODE_H / 2, b.x, b.y + NODE_H / 2];
    const back = x2 <= x1;
    const d = back
      ? `M${a.x + NODE_W / 2},${a.y + NODE_H} C${a.x + NODE_W / 2},${a.y + NODE_H + 40} ${b.x + NODE_W / 2},${b.y + NODE_H + 40} ${b.x + NODE_W / 2},${b.y + NODE_H}`
      : `M${x1},${y1} C${x1 + 40},${y1} ${x2 - 40},${y2} ${x2},${y2}`;
    svg.append(h("svg:path", { d, class: e.error_rate > 0.05 ? "edge bad" : "edge", "marker-end": "url(#arrow)" },
      h("svg:title", {}, `${e.from} → ${e.to}: ${stats(e)}`)));
    // Labels sit by the callee, where edges arrive one by one.
    const lx = back ? b.x + NODE_W / 2 : x2 - 12;
    const ly = back ? b.y + NODE_H + 34 : y2 - 8;
    svg.append(h("svg:text", { x: lx, y: ly, class: "edge-label", "text-anchor": back ? "middle" : "end" }, stats(e)));
  }
  for (const n of map.nodes) {
    const p = pos.get(n.service);
    const href = `/ui/services/${encodeURIComponent(n.service)}?${new URLSearchParams(window)}`;
    const rect = h("svg:rect", { x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: 8, class: n.error_rate > 0.05 ? "node bad" : "node" });
    rect.style.stroke = serviceColor(n.service);
    svg.append(h("svg:a", { href, "aria-label": `${n.service}: ${stats(n)}` }, rect,
      h("svg:text", { x: p.x + 10, y: p.y + 22, class: "node-name" }, n.service),
      h("svg:text", { x: p.x + 10, y: p.y + 42, class: "node-stats" }, stats(n))));
  }
  svg.style.maxWidth = `${width}px`;
  return svg;
}

export async function map(ctx, _match, params) {
  title("Service map");
  const window = { start: params.get("start") || "now-15m", end: params.get("end") || "now" };
  const form = searchForm("/ui/services", timeRange(params, "now-15m"), { "aria-label": "Service map window" });
  const m = await get("/api/v1/service-map", window);
  const nodeHref = (s) => `/ui/services/${encodeURIComponent(s)}?${new URLSearchParams(window)}`;
  ctx.show(
    h("h1", {}, "Service map"), form,
    h("p", { class: "summary", role: "status" },
      `${m.nodes.length} services, ${m.edges.length} calls, from ${number(m.spans_read)} spans`,
      m.complete ? "" : [" — the newest ", number(m.spans_read), " of ", number(m.spans_in_window), " spans, covering from ", timeEl(m.covered_from_unix_nano)]),
    m.nodes.length ? h("div", { class: "map-wrap" }, graph(m, window)) : empty("No spans in this window."),
    m.edges.length ? table(["Caller", "Callee", "Requests/s", "Error rate", "p95"], m.edges.map((e) => h("tr", {},
      h("td", {}, h("a", { href: nodeHref(e.from) }, serviceChip(e.from))), h("td", {}, h("a", { href: nodeHref(e.to) }, serviceChip(e.to))),
      h("td", { class: "num" }, number(e.rate_per_sec)), h("td", { class: e.error_rate > 0.05 ? "num bad" : "num" }, percent(e.error_rate)),
      h("td", { class: "num" }, duration(e.p95_ns)))), { class: "results edges" }) : null,
    m.nodes.length ? table(["Service", "Requests/s", "Error rate", "p95", "Spans"], m.nodes.map((n) => h("tr", {},
      h("td", {}, h("a", { href: nodeHref(n.service) }, serviceChip(n.service))), h("td", { class: "num" }, number(n.rate_per_sec)),
      h("td", { class: n.error_rate > 0.05 ? "num bad" : "num" }, percent(n.error_rate)),
      h("td", { class: "num" }, duration(n.p95_ns)), h("td", { class: "num" }, number(n.spans)))), { class: "results nodes" }) : null,
  );
}

// One service: its RED charts (requests, errors, latency quantiles) with exemplars, and its operations.
export async function one(ctx, [service], params) {
  title(service);
  const window = { start: params.get("start") || "now-1h", end: params.get("end") || "now" };
  const sel = (name) => selector(name, { "service.name": service });
  const q = (name, extra = {}) => get("/api/v1/metrics/anomalies", { query: sel(name), by: "service.name", ...window, ...extra });
  const [requests, errors, latency, ops] = await Promise.all([
    q("weft.span.requests").catch((e) => e),
    q("weft.span.errors").catch((e) => e),
    q("weft.span.duration", { quantiles: "0.5,0.95,0.99" }).catch((e) => e),
    get(`/api/v1/services/${encodeURIComponent(service)}/operations`, window).catch((e) => e),
  ]);
  const charts = (label, found) => {
    if (found instanceof Error) return errorBox(found);
    if (!found.series.length) return [h("h2", {}, label), empty("No points in this window.")];
    return [h("h2", {}, label), found.series.map((s) => h("figure", { class: "series" },
      h("figcaption", {}, s.kind === "quantile" ? `quantile ${s.labels.quantile}` : "per second",
        h("span", { class: "sub" }, ` · ${s.exemplars.length} exemplars · `, h("a", { href: `/ui/metrics?${new URLSearchParams({ query: s.selector, ...window })}` }, "open in Metrics"))),
      seriesChart(s)))];
  };
  ctx.show(
    h("h1", {}, serviceChip(service)),
    h("p", {}, h("a", { href: `/ui/search?${new URLSearchParams({ service, ...window })}` }, "its traces"), " · ",
      h("a", { href: `/ui/search/logs?${new URLSearchParams({ service, ...window })}` }, "its logs"), " · ",
      h("a", { href: `/ui/services?${new URLSearchParams(window)}` }, "the map")),
    searchForm(`/ui/services/${encodeURIComponent(service)}`, timeRange(params), { "aria-label": "window" }),
    charts("Requests", requests), charts("Errors", errors), charts("Latency (ms)", latency),
    h("h2", {}, "Operations"),
    ops instanceof Error ? errorBox(ops) : h("ul", { class: "plain columns" }, ops.values.map((o) =>
      h("li", {}, h("a", { href: `/ui/search?${new URLSearchParams({ service, operation: o, ...window })}` }, o)))),
  );
}
