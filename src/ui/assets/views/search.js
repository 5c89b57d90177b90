// Search: traces (service, operation, duration, status, attributes, time; newest or slowest)
// and logs (full text, service, severity, time). Every trace hit opens the trace view; every
// log hit that carries a trace links to it. The form's values are the URL's query.

import { get } from "../api.js";
import { title } from "../app.js";
import { chart } from "../chart.js";
import { datalist, field, input, searchForm, select, timeRange } from "../form.js";
import {
  duration, empty, errorBox, h, nsToMs, number, serviceChip, severityWord, shortId, table, timeEl,
} from "../format.js";

function tabs(current) {
  const tab = (href, name, text) =>
    h("a", { href, class: "tab", "aria-current": current === name ? "page" : null }, text);
  return h("nav", { class: "tabs", "aria-label": "Search" }, tab("/ui/search", "traces", "Traces"), tab("/ui/search/logs", "logs", "Logs"));
}

// The services of the window, for the form (an empty list when the API refuses).
async function serviceNames(params) {
  try {
    const body = await get("/api/v1/services", { start: params.get("start") || "now-24h", end: params.get("end") });
    return body.values;
  } catch {
    return [];
  }
}

function serviceSelect(services, value, onchange) {
  const options = [["", "any service"], ...services.map((s) => [s, s])];
  if (value && !services.includes(value)) options.push([value, value]);
  return select("service", options, value, { onchange });
}

// Attribute fields: key=value, each with suggestions of keys and, once a key is typed, its values.
function attributeFields(params) {
  const box = h("div", { class: "attrs" });
  const keys = datalist("attr-keys", []);
  const window = { start: params.get("start") || "now-1h", end: params.get("end") };
  get("/api/v1/spans/attributes", window)
    .then((b) => keys.replaceChildren(...b.keys.map((k) => h("option", { value: `${k.key}=` }))))
    .catch(() => {});
  let n = 0;
  const add = (value) => {
    const id = `attr-values-${n++}`;
    const values = datalist(id, []);
    const inp = input("attr", value, {
      placeholder: "user.id=u-4242",
      list: "attr-keys",
      "aria-label": "attribute key=value",
      oninput: async (e) => {
        const v = e.target.value;
        const eq = v.indexOf("=");
        if (eq <= 0) {
          e.target.setAttribute("list", "attr-keys");
          return;
        }
        e.target.setAttribute("list", id);
        const key = v.slice(0, eq);
        try {
          const b = await get(`/api/v1/spans/attributes/${encodeURIComponent(key)}/values`, {
            ...window, prefix: v.slice(eq + 1), limit: 20,
          });
          values.replaceChildren(...b.values.map((x) => h("option", { value: `${key}=${x}` })));
        } catch {
          values.replaceChildren();
        }
      },
    });
    box.insertBefore(h("div", { class: "attr" }, inp, values), more);
  };
  const more = h("button", { type: "button", class: "link", onclick: () => add("") }, "+ attribute");
  box.append(keys, more);
  const given = params.getAll("attr");
  (given.length ? given : [""]).forEach(add);
  return field("Attributes (all on one span)", box);
}

async function operationOptions(service, params) {
  if (!service) return [];
  try {
    const body = await get(`/api/v1/services/${encodeURIComponent(service)}/operations`, {
      start: params.get("start") || "now-24h", end: params.get("end"),
    });
    return body.values;
  } catch {
    return [];
  }
}

function traceRow(t, longest) {
  const bar = h("span", { class: "bar" });
  bar.style.width = `${Math.max(1, (100 * t.duration_ns) / longest)}%`;
  if (t.error_count) bar.classList.add("err");
  const root = t.root_span_missing ? `${t.root_operation} (root not received)` : t.root_operation;
  return h(
    "tr",
    {},
    h("td", {}, timeEl(t.start_time_unix_nano)),
    h("td", {},
      h("a", { href: `/ui/trace/${t.trace_id}`, class: "trace-link" }, `${t.root_service}: ${root}`),
      h("div", { class: "sub" }, h("code", {}, shortId(t.trace_id)),
        ` matched ${t.matched_span.service}: ${t.matched_span.operation} (${duration(t.matched_span.duration_ns)})`)),
    h("td", { class: "num" }, duration(t.duration_ns), h("div", { class: "barbox" }, bar)),
    h("td", { class: "num" }, number(t.span_count)),
    h("td", { class: t.error_count ? "num bad" : "num" }, number(t.error_count)),
    h("td", {}, t.services.map((s) => serviceChip(s.service))),
  );
}

// The trace search view.
export async function traces(ctx, _match, params) {
  title("Search traces");
  const services = await serviceNames(params);
  const service = params.get("service") || "";
  const operations = await operationOptions(service, params);
  const opSelect = select("operation", [["", "any operation"], ...operations.map((o) => [o, o])], params.get("operation"));
  const svcSelect = serviceSelect(services, service, async (e) => {
    const ops = await operationOptions(e.target.value, params);
    opSelect.replaceChildren(...[["", "any operation"], ...ops.map((o) => [o, o])].map(([v, t]) => h("option", { value: v }, t)));
  });
  const form = searchForm("/ui/search", [
    field("Service", svcSelect),
    field("Operation", opSelect),
    attributeFields(params),
    field("Min duration", input("min_duration", params.get("min_duration"), { placeholder: "500ms" })),
    field("Max duration", input("max_duration", params.get("max_duration"), { placeholder: "2s" })),
    field("Status", select("status", [["", "any"], ["error", "error"], ["ok", "ok"], ["unset", "unset"]], params.get("status"))),
    ...timeRange(params),
    field("Order", select("order", [["newest", "newest first"], ["slowest", "slowest first"]], params.get("order"))),
    field("Limit", select("limit", [["20", "20"], ["50", "50"], ["100", "100"], ["200", "200"]], params.get("limit") || "20")),
  ], { "aria-label": "Trace search" });
  const query = {
    service, operation: params.get("operation"), min_duration: params.get("min_duration"),
    max_duration: params.get("max_duration"), status: params.get("status"), attr: params.getAll("attr"),
    start: params.get("start") || "now-1h", end: params.get("end"), order: params.get("order"), limit: params.get("limit"),
  };
  let results;
  try {
    const found = await get("/api/v1/traces", query);
    results = traceResults(found);
  } catch (err) {
    results = errorBox(err);
  }
  ctx.show(h("h1", {}, "Search"), tabs("traces"), form, results);
}

function traceResults(found) {
  const list = found.traces;
  const head = h("p", { class: "summary", role: "status" },
    `${list.length} trace${list.length === 1 ? "" : "s"} · ${number(found.spans_matched)} matching spans · ${found.order} first`);
  if (!list.length) return [head, empty("No trace has a span matching every condition in this window.")];
  const longest = Math.max(...list.map((t) => t.duration_ns), 1);
  const dots = list.map((t) => ({
    t: nsToMs(t.start_time_unix_nano),
    v: t.duration_ns / 1e6,
    href: `/ui/trace/${t.trace_id}`,
    error: t.error_count > 0,
    label: `${t.root_service}: ${t.root_operation}, ${duration(t.duration_ns)}${t.error_count ? `, ${t.error_count} errors` : ""}`,
  }));
  return [
    head,
    found.complete ? null : h("p", { class: "warn", role: "note" }, found.note),
    h("figure", { class: "scatter" },
      chart({ dots, height: 160, format: (v) => duration(v * 1e6), caption: "trace durations over time; each dot opens its trace" }),
      h("figcaption", {}, "Duration of each trace found, over time; red ones have errors.")),
    table(["Start", "Trace", "Duration", "Spans", "Errors", "Services"], list.map((t) => traceRow(t, longest)), { class: "results traces" }),
  ];
}

const SEVERITIES = [["", "any"], ["debug", "debug+"], ["info", "info+"], ["warn", "warn+"], ["error", "error+"], ["fatal", "fatal"]];

function logRow(l) {
  const sev = severityWord(l.severity_number);
  const traceCell = l.trace_id
    ? h("a", { href: `/ui/trace/${l.trace_id}`, class: "trace-link", title: `linked by ${l.link ? l.link.method : "trace context"}` },
        `trace ${shortId(l.trace_id)}`, h("div", { class: "sub" }, `via ${l.link ? l.link.method : "trace context"}`))
    : h("span", { class: "sub" }, "no trace ID");
  const body = typeof l.body === "string" ? l.body : JSON.stringify(l.body);
  return h("tr", {},
    h("td", {}, timeEl(l.time_unix_nano !== "0" ? l.time_unix_nano : l.observed_time_unix_nano)),
    h("td", {}, h("span", { class: `sev sev-${sev}` }, sev)),
    h("td", {}, serviceChip(l.service)),
    h("td", { class: "body" }, body),
    h("td", {}, traceCell));
}

// The log search view.
export async function logs(ctx, _match, params) {
  title("Search logs");
  const services = await serviceNames(params);
  const form = searchForm("/ui/search/logs", [
    field("Text", input("q", params.get("q"), { placeholder: "timeout OR \"card declined\"", type: "search" }),
      "Words are ANDed; attrs.key:value, resource.key:value"),
    field("Service", serviceSelect(services, params.get("service") || "")),
    field("Severity", select("severity", SEVERITIES, params.get("severity"))),
    ...timeRange(params),
    field("Limit", select("limit", [["100", "100"], ["500", "500"], ["1000", "1000"]], params.get("limit") || "100")),
  ], { "aria-label": "Log search" });
  let results;
  try {
    const found = await get("/api/v1/logs", {
      q: params.get("q"), service: params.get("service"), severity: params.get("severity"),
      start: params.get("start") || "now-1h", end: params.get("end"), limit: params.get("limit") || 100,
    });
    results = found.logs.length
      ? [h("p", { class: "summary", role: "status" }, `${found.count} logs, newest first`),
         table(["Time", "Severity", "Service", "Message", "Trace"], found.logs.map(logRow), { class: "results logs" })]
      : [h("p", { class: "summary", role: "status" }, "0 logs"), empty("No log matches in this window.")];
  } catch (err) {
    results = errorBox(err);
  }
  ctx.show(h("h1", {}, "Search"), tabs("logs"), form, results);
}
