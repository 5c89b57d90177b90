// Metrics: a chart per series with its exemplars as dots (each opens its trace) and its
// anomalies shaded; for each anomaly, "traces behind this spike" opens the ranked list of
// the traces that explain it.

import { get } from "../api.js";
import { title } from "../app.js";
import { chart, valueAt } from "../chart.js";
import { datalist, field, input, searchForm, timeRange } from "../form.js";
import { duration, empty, errorBox, h, nsToMs, number, serviceChip, shortId, timeEl } from "../format.js";

const MAX_CHARTS = 12;

// How a series' values read: durations for time units, plain numbers otherwise.
export function valueFormat(unit) {
  const ns = { s: 1e9, ms: 1e6, us: 1e3, ns: 1 }[unit];
  return ns ? (v) => duration(v * ns) : (v) => number(v, 3);
}

function seriesTitle(s) {
  const labels = Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(", ");
  const what = s.kind === "rate" ? "per second" : s.kind === "quantile" ? `quantile ${s.labels.quantile}` : s.kind;
  return `${s.metric}${labels ? ` {${labels}}` : ""} — ${what}`;
}

// A chart of one series: line, exemplar dots, anomaly bands.
export function seriesChart(s, from, to) {
  const points = s.points.map((p) => [nsToMs(p.time_unix_nano), p.value]);
  const fmt = valueFormat(s.unit);
  // A quantile shares the exemplars' unit; a rate or a level does not, so its dots sit on the line.
  const own = s.kind === "quantile" || s.kind === "gauge";
  const dots = s.exemplars.filter((e) => e.trace_id).map((e) => {
    const t = nsToMs(e.time_unix_nano);
    return {
      t,
      v: own ? e.value : valueAt(points, t),
      href: `/ui/trace/${e.trace_id}`,
      label: `exemplar: trace ${shortId(e.trace_id)}, value ${number(e.value, 4)}${s.unit ? ` ${s.unit}` : ""}`,
    };
  });
  const bands = (s.anomalies || []).map((a) => ({
    from: nsToMs(a.start_time_unix_nano),
    to: nsToMs(a.end_time_unix_nano),
    label: `${a.kind}: peak ${fmt(a.peak_value)} against ${fmt(a.baseline)}, score ${a.score}`,
  }));
  return chart({ lines: [{ points, label: seriesTitle(s) }], dots, bands, from, to, format: fmt, caption: seriesTitle(s) });
}

function explained(report) {
  if (!report.traces.length) return empty("No trace of these services in the window.");
  return h("ol", { class: "ranked" }, report.traces.map((t) => h("li", {},
    h("a", { href: `/ui/trace/${t.trace_id}` }, t.root ? `${t.root.service}: ${t.root.name}` : shortId(t.trace_id)),
    t.root ? ` ${duration(t.root.duration_ns)}` : "",
    t.exemplar ? h("span", { class: "badge crit" }, "exemplar") : null,
    ` score ${t.score}`,
    h("div", { class: "sub" }, t.reasons.join("; ")),
    t.error_logs.length ? h("div", { class: "sub bad" }, `${t.error_logs.length} error logs, first: ${typeof t.error_logs[0].body === "string" ? t.error_logs[0].body : ""}`) : null)));
}

function anomalyList(s, step) {
  const fmt = valueFormat(s.unit);
  return h("ul", { class: "plain anomalies" }, (s.anomalies || []).map((a) => {
    const out = h("div", { class: "explained" });
    const button = h("button", {
      type: "button",
      onclick: async () => {
        button.disabled = true;
        out.replaceChildren(h("p", { class: "loading" }, "Ranking traces…"));
        try {
          const start = BigInt(a.start_time_unix_nano) - BigInt(step);
          const report = await get("/api/v1/correlate/metric", {
            query: s.selector, start: String(start / 1000000n), end: String(nsToMs(a.end_time_unix_nano) + 1),
          });
          out.replaceChildren(h("h4", {}, `Traces behind this ${a.kind} (${report.services.join(", ") || "no service"})`), explained(report));
        } catch (err) {
          out.replaceChildren(errorBox(err));
        }
        button.disabled = false;
      },
    }, "Traces behind this spike");
    return h("li", {},
      h("span", { class: "badge err" }, a.kind), " ", timeEl(a.start_time_unix_nano), " – ", timeEl(a.end_time_unix_nano),
      ` peak ${fmt(a.peak_value)} against ${fmt(a.baseline)} (score ${a.score})${a.ongoing ? ", ongoing" : ""} `, button, out);
  }));
}

export async function render(ctx, _match, params) {
  title("Metrics");
  const query = params.get("query") || "";
  const names = datalist("metric-names", []);
  get("/api/v1/metrics/names", { start: params.get("start") || "now-24h" })
    .then((b) => names.replaceChildren(...b.names.map((n) => h("option", { value: n }))))
    .catch(() => {});
  const form = searchForm("/ui/metrics", [
    field("Series", input("query", query, { list: "metric-names", placeholder: 'http.server.request.duration{http.route="/checkout"}', class: "wide" }),
      "name{label=\"v\", other=~\"re\"}; histograms show quantiles, counters rates"),
    names,
    field("By", input("by", params.get("by"), { placeholder: "service.name" })),
    field("Step", input("step", params.get("step"), { placeholder: "15s" })),
    ...timeRange(params),
  ], { "aria-label": "Metric query" });
  if (!query) {
    const list = h("ul", { class: "plain columns" });
    try {
      const b = await get("/api/v1/metrics/names", { start: params.get("start") || "now-24h" });
      list.append(...b.names.map((n) => h("li", {}, h("a", { href: `/ui/metrics?${new URLSearchParams({ query: n, start: params.get("start") || "now-1h" })}` }, n))));
    } catch (err) {
      list.append(errorBox(err));
    }
    ctx.show(h("h1", {}, "Metrics"), form, h("h2", {}, "Metrics of the last day"), list);
    return;
  }
  title(query);
  const found = await get("/api/v1/metrics/anomalies", {
    query, start: params.get("start") || "now-1h", end: params.get("end"), step: params.get("step"), by: params.get("by"),
  });
  const from = found.series.length ? Math.min(...found.series.map((s) => (s.points[0] ? nsToMs(s.points[0].time_unix_nano) : Infinity))) : 0;
  const to = found.series.length ? Math.max(...found.series.map((s) => (s.points.length ? nsToMs(s.points[s.points.length - 1].time_unix_nano) : 0))) : 0;
  const figures = found.series.slice(0, MAX_CHARTS).map((s) =>
    h("figure", { class: "series" },
      h("figcaption", {}, seriesTitle(s), s.labels["service.name"] ? [" ", serviceChip(s.labels["service.name"])] : null,
        h("span", { class: "sub" }, ` · ${s.exemplars.length} exemplars · ${(s.anomalies || []).length} anomalies`)),
      seriesChart(s, from, to),
      anomalyList(s, found.step_ns)));
  ctx.show(
    h("h1", {}, "Metrics"), form,
    h("p", { class: "summary", role: "status" }, `${found.series.length} series, ${duration(found.step_ns)} steps`,
      found.series.length > MAX_CHARTS ? ` (the first ${MAX_CHARTS} shown; narrow the selector)` : ""),
    found.series.length ? figures : empty("No series matches in this window."),
  );
}
