// Incidents: the list (open first), and one incident — its window, the suspected origins with
// their evidence and the traces through them, what is different, and the unified timeline in
// one time-ordered column, filtered by kind and service, read page by page as it arrives.

import { get } from "../api.js";
import { title } from "../app.js";
import { duration, empty, h, nsDiff, number, percent, serviceChip, severityWord, shortId, table, timeEl } from "../format.js";

const PAGE = 1000;
// Entries read at most (pages follow the cursor until then) and drawn at once.
const MAX_ENTRIES = 20000;
const SHOWN = 1500;

function windowText(i) {
  return [timeEl(i.start_time_unix_nano), " – ", timeEl(i.end_time_unix_nano),
    ` (${duration(nsDiff(i.end_time_unix_nano, i.start_time_unix_nano))})`];
}

export async function list(ctx) {
  title("Incidents");
  const found = await get("/api/v1/incidents");
  const sorted = [...found.incidents].sort((a, b) =>
    (a.status === "open" ? 0 : 1) - (b.status === "open" ? 0 : 1) || nsDiff(b.start_time_unix_nano, a.start_time_unix_nano));
  ctx.show(
    h("h1", {}, "Incidents"),
    sorted.length
      ? table(["Status", "Window", "Services", "Suspected origin", "Anomalies"], sorted.map((i) => h("tr", {},
        h("td", {}, h("span", { class: `badge ${i.status}` }, i.status)),
        h("td", {}, h("a", { href: `/ui/incidents/${encodeURIComponent(i.id)}` }, windowText(i))),
        h("td", {}, i.services.map(serviceChip)),
        h("td", {}, i.suspected_origins[0] ? [serviceChip(i.suspected_origins[0].service), ` score ${number(i.suspected_origins[0].score)}`] : "–"),
        h("td", { class: "num" }, number(i.anomalies.length)))), { class: "results incidents" })
      : empty("No incident. The detector opens one when a service's error rate, latency or error logs, or an application metric, jumps against its baseline."),
  );
}

function traceLine(tr) {
  const root = tr.root ? `${tr.root.service}: ${tr.root.name} ${duration(tr.root.duration_ns)}` : shortId(tr.trace_id);
  const at = tr.origin_span ? ` — ${tr.origin_span.service} ${tr.origin_span.name} ${duration(tr.origin_span.duration_ns)}${tr.origin_span.failed ? " failed" : ""}` : "";
  return h("li", {}, h("a", { href: `/ui/trace/${tr.trace_id}` }, root), tr.failed ? h("span", { class: "badge err" }, "error") : null, h("span", { class: "sub" }, at));
}

function origins(inc) {
  return h("ol", { class: "origins" }, inc.suspected_origins.map((o, n) => {
    const through = inc.exemplar_traces.filter((t) => t.origin_span && t.origin_span.service === o.service);
    return h("li", {},
      h("h3", {}, serviceChip(o.service), ` score ${number(o.score)}`),
      h("p", { class: "sub" }, `latency share ${percent(o.latency_share)} · error share ${percent(o.error_share)} · timing ${number(o.timing)}`),
      h("ul", { class: "evidence" }, o.evidence.map((e) => h("li", {}, e))),
      through.length ? [h("p", {}, n === 0 ? h("a", { href: `/ui/trace/${through[0].trace_id}`, class: "button origin-trace" }, `Open a trace through ${o.service}`) : null),
        h("ul", { class: "plain" }, through.slice(0, 5).map(traceLine))] : null);
  }));
}

const KINDS = [
  ["spans", "spans", (k) => k === "span_start" || k === "span_end"],
  ["logs", "logs", (k) => k === "log"],
  ["exemplars", "exemplars", (k) => k === "exemplar"],
  ["anomalies", "anomalies", (k) => k.startsWith("anomaly")],
  ["incident", "opened/closed", (k) => k.startsWith("incident")],
];

function entryService(e) {
  return e.service || null;
}

function entryText(e) {
  switch (e.kind) {
    case "span_start":
      return [`▶ ${e.name}`];
    case "span_end":
      return [`■ ${e.name} ${duration(e.duration_ns)}`, e.failed ? h("span", { class: "badge err" }, e.status.message || "error") : null];
    case "log": {
      const sev = severityWord(e.severity_number);
      const how = e.link && e.link.method === "inferred" ? `inferred ${Math.round(e.link.confidence * 100)}%` : e.link ? e.link.method : "unlinked";
      return [h("span", { class: `sev sev-${sev}` }, sev), " ", typeof e.body === "string" ? e.body : JSON.stringify(e.body), " ", h("span", { class: "sub" }, how)];
    }
    case "exemplar":
      return [`exemplar of ${e.series}: ${number(e.value, 4)}`];
    case "anomaly_start":
    case "anomaly_peak":
    case "anomaly_end":
      return [h("span", { class: "badge err" }, e.kind.replace("_", " ")), ` ${e.series} (${e.anomaly}, score ${e.score}, peak ${number(e.peak_value, 4)} against ${number(e.baseline, 4)})`];
    default:
      return [e.kind.replace("_", " ")];
  }
}

function entryRow(e) {
  const traceLink = (e.links || []).find((l) => l.trace_id);
  return h("li", { class: `entry kind-${e.kind}` },
    h("span", { class: "when" }, timeEl(e.time_unix_nano)),
    h("span", { class: "what" }, entryService(e) ? [serviceChip(entryService(e)), " "] : null, entryText(e)),
    traceLink ? h("a", { href: `/ui/trace/${traceLink.trace_id}`, class: "sub" }, `trace ${shortId(traceLink.trace_id)} (${traceLink.how})`) : null);
}

function timeline(inc, firstPage) {
  const entries = [...firstPage.entries];
  let cursor = firstPage.next_cursor;
  const kinds = new Set(KINDS.map(([k]) => k).filter((k) => k !== "spans"));
  let service = "";
  let errorsOnly = false;
  const listEl = h("ol", { class: "timeline", "aria-label": "timeline" });
  const status = h("p", { class: "summary", role: "status" });
  const serviceSel = h("select", { name: "service", "aria-label": "service", onchange: (e) => { service = e.target.value; draw(); } },
    h("option", { value: "" }, "every service"), inc.services.map((s) => h("option", { value: s }, s)));
  const boxes = KINDS.map(([k, label]) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "kind", value: k, checked: kinds.has(k), onchange: (e) => { if (e.target.checked) kinds.add(k); else kinds.delete(k); draw(); } }),
    ` ${label}`));
  const errBox = h("label", { class: "check" },
    h("input", { type: "checkbox", name: "errors", onchange: (e) => { errorsOnly = e.target.checked; draw(); } }), " errors and warnings only");
  function keep(e) {
    const kind = KINDS.find(([, , test]) => test(e.kind));
    if (!kind || !kinds.has(kind[0])) return false;
    if (service && entryService(e) !== service) return false;
    if (errorsOnly) {
      if (e.kind === "log") return e.severity_number >= 13;
      if (e.kind === "span_end") return e.failed;
      if (e.kind === "span_start") return false;
    }
    return true;
  }
  function draw() {
    const kept = entries.filter(keep);
    listEl.replaceChildren(...kept.slice(0, SHOWN).map(entryRow));
    status.textContent = `${number(kept.length)} of ${number(entries.length)} entries read${cursor ? " (reading more…)" : ""}${kept.length > SHOWN ? `; the first ${SHOWN} shown, narrow the filters` : ""}`;
  }
  async function more() {
    while (cursor && entries.length < MAX_ENTRIES && listEl.isConnected) {
      const page = await get("/api/v1/timeline", { incident: inc.id, limit: PAGE, cursor });
      entries.push(...page.entries);
      cursor = page.next_cursor;
      draw();
    }
    if (cursor) status.append(" — more in the API: /api/v1/timeline?incident=…");
  }
  draw();
  setTimeout(() => more().catch((err) => { status.textContent = `timeline: ${err.message}`; }), 0);
  return h("section", { "aria-label": "timeline" },
    h("h2", {}, "Timeline"),
    h("div", { class: "filters", role: "group", "aria-label": "timeline filters" }, boxes, errBox, serviceSel),
    status, listEl);
}

export async function one(ctx, [id]) {
  const inc = await get(`/api/v1/incidents/${encodeURIComponent(id)}`);
  title(`Incident ${inc.services.join(", ")}`);
  const diff = inc.what_is_different || [];
  ctx.show(
    h("h1", {}, "Incident ", h("span", { class: `badge ${inc.status}` }, inc.status)),
    h("p", { class: "facts-line" }, windowText(inc), " · detected ", timeEl(inc.detected_at), " · ", inc.services.map(serviceChip)),
    h("section", { "aria-label": "suspected origins" }, h("h2", {}, "Suspected origins"),
      inc.suspected_origins.length ? origins(inc) : empty("No origin ranked yet.")),
    h("section", { "aria-label": "anomalies" }, h("h2", {}, `Anomalies (${inc.anomalies.length})`),
      h("ul", { class: "plain" }, inc.anomalies.map((a) => h("li", {},
        serviceChip(a.service), ` ${a.signal} · ${a.series} · ${a.kind} `, timeEl(a.start_time_unix_nano), " – ", timeEl(a.end_time_unix_nano),
        ` · score ${a.score}`,
        a.exemplars.length ? [" · ", h("a", { href: `/ui/trace/${a.exemplars[0].trace_id}` }, "an exemplar trace")] : null)))),
    h("section", { "aria-label": "what is different" }, h("h2", {}, "What is different"),
      diff.length ? table(["Kind", "Feature", "In the incident", "Before", "Lift"], diff.map((d) => h("tr", {},
        h("td", {}, d.kind), h("td", { class: "body" }, d.feature),
        h("td", { class: "num" }, `${number(d.window.count)} of ${number(d.window.total)}`),
        h("td", { class: "num" }, `${number(d.baseline.count)} of ${number(d.baseline.total)}`),
        h("td", { class: "num" }, `${number(d.lift)}×`)))) : empty("Nothing stands out against the window before.")),
    h("section", { "aria-label": "exemplar traces" }, h("h2", {}, "Exemplar traces"),
      h("ul", { class: "plain" }, inc.exemplar_traces.map(traceLine))),
    timeline(inc, inc.timeline),
  );
}
