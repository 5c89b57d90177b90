// The trace view: the span tree as a waterfall on one time axis (service colours, critical
// path, errors, self time, each span's duration against its operation's recent ones), each
// span's logs on the same axis and in its panel, inferred log candidates kept apart with
// their confidence and reason, the metric series this trace is an exemplar of, and a way to
// compare it with a typical trace of the same operation.

import { get } from "../api.js";
import { navigate, title } from "../app.js";
import {
  duration, empty, errorBox, h, kindWord, nsDiff, nsToMs, number, selector, serviceChip,
  serviceColor, severityWord, shortId, statusWord, table, timeEl,
} from "../format.js";

function bodyText(l) {
  return typeof l.body === "string" ? l.body : JSON.stringify(l.body);
}

function logTime(l) {
  return l.time_unix_nano !== "0" ? l.time_unix_nano : l.observed_time_unix_nano;
}

function attrTable(obj) {
  const rows = Object.entries(obj || {}).map(([k, v]) =>
    h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, typeof v === "string" ? v : JSON.stringify(v))));
  return rows.length ? h("table", { class: "kv" }, h("tbody", {}, rows)) : h("p", { class: "sub" }, "none");
}

function latencyText(lat, op) {
  if (!lat || lat.percentile === null || lat.percentile === undefined) return null;
  const of = op ? ` of the ${number(op.spans)} latest ${op.operation} spans up to this trace (p50 ${duration(op.p50_ns)}, p95 ${duration(op.p95_ns)}, p99 ${duration(op.p99_ns)})` : "";
  return `at least as slow as ${lat.percentile}%${of}`;
}

function logItem(l, how) {
  const sev = severityWord(l.severity_number);
  return h("li", { class: `log sev-${sev}` },
    timeEl(logTime(l)), " ", h("span", { class: `sev sev-${sev}` }, sev), " ", serviceChip(l.service), " ",
    h("span", { class: "body" }, bodyText(l)), " ", h("span", { class: "sub" }, how));
}

function inferredItem(l) {
  return h("li", { class: "log inferred" },
    timeEl(logTime(l)), " ", serviceChip(l.service), " ", h("span", { class: "body" }, bodyText(l)),
    h("div", { class: "sub" },
      h("strong", {}, `inferred, ${Math.round(l.link.confidence * 100)}% confidence`), ` — ${l.link.reason}`));
}

function linkWord(l) {
  if (!l.link) return "trace context";
  return l.link.method + (l.link.pattern ? ` (${l.link.pattern})` : l.link.field ? ` (${l.link.field})` : "");
}

// The details of one span: what it is, how slow for its operation, its attributes, its logs.
function spanPanel(span, t, lat, op) {
  const logs = span.log_indexes.map((i) => t.logs[i]);
  const inferred = t.inferred_logs.filter((l) => l.link.span_id === span.span_id);
  const slow = latencyText(lat, op);
  return h("section", { class: "panel", "aria-label": "span details" },
    h("h2", {}, serviceChip(span.service), " ", span.name),
    h("dl", { class: "facts" },
      h("dt", {}, "Duration"), h("dd", {}, duration(span.duration_ns)),
      h("dt", {}, "Self time"), h("dd", {}, duration(span.self_time_ns)),
      h("dt", {}, "Start"), h("dd", {}, timeEl(span.start_time_unix_nano)),
      h("dt", {}, "Kind"), h("dd", {}, kindWord(span.kind)),
      h("dt", {}, "Status"), h("dd", { class: span.failed ? "bad" : null },
        statusWord(span.status.code) + (span.status.message ? `: ${span.status.message}` : "")
          + (span.failed && span.status.code !== 2 ? " (failed: by its HTTP or gRPC status or an exception)" : "")),
      h("dt", {}, "For its operation"), h("dd", { class: lat && lat.above_p95 ? "bad" : null },
        slow ? `${slow}${lat.above_p95 ? " — slower than p95" : ""}` : "not enough recent spans to compare"),
      h("dt", {}, "Critical path"), h("dd", {}, span.on_critical_path ? "yes" : "no"),
      h("dt", {}, "Span ID"), h("dd", {}, h("code", {}, span.span_id)),
      span.missing_parent ? [h("dt", {}, "Parent"), h("dd", {}, `${span.parent_span_id} (not received)`)] : null),
    h("h3", {}, "Attributes"), attrTable(span.attributes),
    h("h3", {}, "Resource"), attrTable(span.resource),
    span.events.length ? [h("h3", {}, "Events"), h("ul", { class: "plain" },
      span.events.map((e) => h("li", {}, timeEl(e.time_unix_nano), ` ${e.name} `, h("span", { class: "sub" }, JSON.stringify(e.attributes)))))] : null,
    h("h3", {}, `Logs of this span (${logs.length})`),
    logs.length ? h("ul", { class: "plain logs" }, logs.map((l) => logItem(l, `linked by ${linkWord(l)}`))) : h("p", { class: "sub" }, "none linked"),
    inferred.length ? h("div", { class: "inferred-box" },
      h("h3", {}, `Inferred candidates (${inferred.length}) — no trace ID in these logs`),
      h("ul", { class: "plain logs" }, inferred.map(inferredItem))) : null);
}

// Where on the axis (0–100 %) a nanosecond time falls.
function place(ns, start, total) {
  return Math.min(100, Math.max(0, (100 * nsDiff(ns, start)) / Math.max(total, 1)));
}

// Rows drawn at first; a larger trace offers the rest on request.
const FIRST_ROWS = 1500;

function waterfall(t, latency, onSelect, all = false) {
  const start = t.start_time_unix_nano;
  const total = t.duration_ns || 1;
  const bySpan = new Map((latency ? latency.spans : []).map((s) => [s.span_id, s]));
  const axis = h("div", { class: "wf-axis", "aria-hidden": "true" },
    h("span", { class: "wf-label" }),
    h("span", { class: "wf-track" }, [0, 0.25, 0.5, 0.75, 1].map((f) => {
      const tick = h("span", { class: "wf-tick" }, duration(total * f));
      tick.style.left = `${f * 100}%`;
      return tick;
    })));
  const shown = all ? t.spans : t.spans.slice(0, FIRST_ROWS);
  const rows = shown.map((s, i) => {
    const lat = bySpan.get(s.span_id);
    const bar = h("span", { class: "wf-bar" }, h("span", { class: "wf-self" }));
    bar.style.left = `${place(s.start_time_unix_nano, start, total)}%`;
    bar.style.width = `${Math.max(0.3, (100 * s.duration_ns) / total)}%`;
    bar.style.background = serviceColor(s.service);
    const selfShare = s.duration_ns ? (100 * s.self_time_ns) / s.duration_ns : 0;
    bar.firstChild.style.width = `${selfShare}%`;
    const marks = [];
    for (const li of s.log_indexes) {
      const l = t.logs[li];
      const m = h("span", { class: `wf-log sev-${severityWord(l.severity_number)}`, title: `${severityWord(l.severity_number)}: ${bodyText(l)}` });
      m.style.left = `${place(logTime(l), start, total)}%`;
      marks.push(m);
    }
    for (const l of t.inferred_logs.filter((x) => x.link.span_id === s.span_id)) {
      const m = h("span", { class: "wf-log inferred", title: `inferred (${Math.round(l.link.confidence * 100)}%): ${bodyText(l)}` });
      m.style.left = `${place(logTime(l), start, total)}%`;
      marks.push(m);
    }
    const badges = [
      s.on_critical_path ? h("span", { class: "badge crit", title: "on the critical path" }, "critical") : null,
      s.failed ? h("span", { class: "badge err", title: s.status.message || "error" }, "error") : null,
      lat && lat.above_p95 ? h("span", { class: "badge slow", title: `p${lat.percentile} of its operation` }, `slow p${Math.round(lat.percentile)}`) : null,
    ];
    const label = h("span", { class: "wf-label" },
      h("span", { class: "wf-indent" }), h("span", { class: "dot", "aria-hidden": "true" }),
      h("span", { class: "wf-name" }, h("span", { class: "svc" }, s.service), " ", s.name), ...badges);
    label.firstChild.style.width = `${Math.min(s.depth, 12) * 0.9}em`;
    label.children[1].style.background = serviceColor(s.service);
    const row = h("div", {
      class: `wf-row${s.on_critical_path ? " critical" : ""}${s.failed ? " error" : ""}${lat && lat.above_p95 ? " slow" : ""}`,
      role: "button", tabindex: "0", "data-span": s.span_id,
      "aria-label": `${s.service} ${s.name}, ${duration(s.duration_ns)}, self ${duration(s.self_time_ns)}, ${s.failed ? "failed" : statusWord(s.status.code)}${s.on_critical_path ? ", on the critical path" : ""}`,
      onclick: () => onSelect(i),
      onkeydown: (e) => {
        const rowsNow = [...e.currentTarget.parentElement.querySelectorAll(".wf-row")];
        const at = rowsNow.indexOf(e.currentTarget);
        if (e.key === "ArrowDown" && rowsNow[at + 1]) { rowsNow[at + 1].focus(); e.preventDefault(); }
        if (e.key === "ArrowUp" && rowsNow[at - 1]) { rowsNow[at - 1].focus(); e.preventDefault(); }
        if (e.key === "Enter" || e.key === " ") { onSelect(i); e.preventDefault(); }
      },
    }, label, h("span", { class: "wf-track" }, bar, marks,
      h("span", { class: "wf-dur" }, `${duration(s.duration_ns)} · self ${duration(s.self_time_ns)}`)));
    const offset = place(s.start_time_unix_nano, start, total);
    row.lastChild.lastChild.style.left = `${Math.min(offset, 70)}%`;
    return row;
  });
  const box = h("div", { class: "waterfall", role: "group", "aria-label": "span waterfall; arrow keys move, Enter opens a span" }, axis, rows);
  if (shown.length < t.spans.length) {
    box.append(h("button", {
      type: "button", class: "link",
      onclick: () => box.replaceWith(waterfall(t, latency, onSelect, true)),
    }, `show all ${t.spans.length} spans (the first ${shown.length} are drawn)`));
  }
  return box;
}

// A link to the series an exemplar belongs to, around the point's time.
function seriesLink(p) {
  const labels = { ...(p.labels || {}) };
  if (p.service) labels["service.name"] = p.service;
  const sel = selector(p.metric, labels);
  const at = nsToMs(p.time_unix_nano);
  const q = new URLSearchParams({ query: sel, start: String(at - 15 * 60e3), end: String(at + 5 * 60e3) });
  const value = p.exemplars[0] ? ` — exemplar value ${number(p.exemplars[0].value, 4)}${p.unit ? ` ${p.unit}` : ""}` : "";
  return h("li", {}, h("a", { href: `/ui/metrics?${q}` }, sel), " at ", timeEl(p.time_unix_nano), value);
}

// A typical trace of the same root operation in the hour around this one, to compare with.
async function typicalTrace(t, root) {
  try {
    const at = nsToMs(t.start_time_unix_nano);
    const found = await get("/api/v1/traces", {
      service: root.service, operation: root.name, start: String(at - 3600e3), end: String(at + 600e3), limit: 50,
    });
    const others = found.traces.filter((x) => x.trace_id !== t.trace_id && x.error_count === 0);
    if (!others.length) return null;
    others.sort((a, b) => a.duration_ns - b.duration_ns);
    return others[Math.floor(others.length / 2)];
  } catch {
    return null;
  }
}

export async function render(ctx, [id]) {
  const traceId = id.toLowerCase();
  title(`Trace ${shortId(traceId)}`);
  const [t, latency] = await Promise.all([
    get(`/api/v1/traces/${traceId}`),
    get(`/api/v1/traces/${traceId}/latency`).catch(() => null),
  ]);
  if (!t.spans.length) {
    ctx.show(h("h1", {}, `Trace ${traceId}`), empty("No spans of this trace (yet); its logs and exemplars:"),
      h("ul", { class: "plain logs" }, t.logs.map((l) => logItem(l, `linked by ${linkWord(l)}`))));
    return;
  }
  const root = t.spans[0];
  title(`${root.service}: ${root.name}`);
  const errors = t.spans.filter((s) => s.failed).length;
  const ops = new Map((latency ? latency.operations : []).map((o) => [`${o.service}\u0000${o.operation}`, o]));
  const bySpan = new Map((latency ? latency.spans : []).map((s) => [s.span_id, s]));
  const slow = latency ? latency.spans.filter((s) => s.above_p95) : [];
  const detail = h("div", { class: "span-detail" });
  const select = (i) => {
    const s = t.spans[i];
    detail.replaceChildren(spanPanel(s, t, bySpan.get(s.span_id), ops.get(`${s.service}\u0000${s.name}`)));
    for (const r of document.querySelectorAll(".waterfall .wf-row")) r.classList.toggle("selected", r.dataset.span === s.span_id);
  };
  const wf = waterfall(t, latency, select);
  const compareBox = h("div", { class: "compare-box" });
  const otherInput = h("input", { name: "other", placeholder: "another trace ID", "aria-label": "trace ID to compare with", autocomplete: "off" });
  const compareForm = h("form", { class: "inline" }, otherInput, h("button", { type: "submit" }, "Compare"));
  compareForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const other = otherInput.value.trim();
    if (other) navigate(`/ui/compare/${other}/${traceId}`);
  });
  typicalTrace(t, root).then((typical) => {
    if (typical && ctx.current()) {
      compareBox.replaceChildren(h("a", { href: `/ui/compare/${typical.trace_id}/${traceId}`, class: "button" },
        `Compare with a typical ${root.name} (${duration(typical.duration_ns)})`));
    }
  });
  const exactLogs = t.logs.map((l) => logItem(l, `linked by ${linkWord(l)}`));
  ctx.show(
    h("h1", {}, serviceChip(root.service), " ", root.name),
    h("p", { class: "facts-line" },
      h("code", {}, traceId), " · ", timeEl(t.start_time_unix_nano), " · ", h("strong", {}, duration(t.duration_ns)),
      ` · ${t.spans.length} spans · `, h("span", { class: errors ? "bad" : null }, `${errors} errors`),
      ` · ${t.logs.length} logs · ${t.inferred_logs.length} inferred`),
    h("p", { class: "legend" }, t.services.map(serviceChip),
      h("span", { class: "badge crit" }, "critical"), " critical path ",
      h("span", { class: "badge err" }, "error"), " failed ",
      h("span", { class: "badge slow" }, "slow"), " above its operation's p95",
      h("span", { class: "legend-self" }), " self time"),
    slow.length ? h("p", { class: "warn" }, `Why slow: ${slow.map((s) => `${s.service} ${s.operation} at p${s.percentile} (${duration(s.duration_ns)})`).join("; ")}`) : null,
    h("div", { class: "toolbar" }, compareBox, compareForm,
      h("a", { href: `/ui/search/logs?q=${encodeURIComponent(`"${traceId}"`)}&start=${String(nsToMs(t.start_time_unix_nano) - 3600e3)}` }, "logs mentioning it")),
    wf,
    detail,
    h("section", { "aria-label": "logs" },
      h("h2", {}, `Logs linked to the trace (${t.logs.length})`),
      exactLogs.length ? h("ul", { class: "plain logs" }, exactLogs) : h("p", { class: "sub" }, "none"),
      h("div", { class: "inferred-box" },
        h("h2", {}, `Inferred candidates (${t.inferred_logs.length})`),
        h("p", { class: "sub" }, "Logs without a trace ID that may belong here: same service and place, around a span's time. A guess, with its confidence and reason; never mixed with the links above."),
        t.inferred_logs.length ? h("ul", { class: "plain logs" }, t.inferred_logs.map(inferredItem)) : h("p", { class: "sub" }, "none"))),
    h("section", { "aria-label": "exemplars" },
      h("h2", {}, `Metric series this trace is an exemplar of (${t.exemplars.length + t.red_exemplars.length})`),
      t.exemplars.length ? h("ul", { class: "plain" }, t.exemplars.map(seriesLink)) : h("p", { class: "sub" }, "no application metric names it"),
      t.red_exemplars.length ? [h("h3", {}, "weft's RED metrics (slowest or failed span of a bucket)"), h("ul", { class: "plain" }, t.red_exemplars.map(seriesLink))] : null),
    latency && !latency.complete ? h("p", { class: "sub" }, "More operations than are compared; some spans have no percentile.") : null,
    latency ? table(["Operation", "Latest spans compared", "p50", "p95", "p99"], latency.operations.map((o) =>
      h("tr", {}, h("td", {}, serviceChip(o.service), " ", o.operation), h("td", { class: "num" }, number(o.spans)),
        h("td", { class: "num" }, duration(o.p50_ns)), h("td", { class: "num" }, duration(o.p95_ns)), h("td", { class: "num" }, duration(o.p99_ns)))),
    { class: "ops" }) : errorBox("operation percentiles are not available"),
  );
  // The deepest failed span (where the errors begin) shows first; else the root.
  let first = 0;
  t.spans.forEach((s, i) => {
    if (s.failed && (!t.spans[first].failed || s.depth > t.spans[first].depth)) first = i;
  });
  select(first);
}
