// Building elements and saying values the way people read them: times in the browser's
// zone (UTC on hover), durations in µs/ms/s, span kinds, statuses and severities as words,
// one colour per service.

// h("a", {href, class, onclick}, child, …): an element; children may be strings, nodes,
// arrays, or null (skipped). Attributes go through setAttribute, handlers through on*.
export function h(tag, attrs = {}, ...children) {
  const svg = tag.startsWith("svg:");
  const el = svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.setAttribute("class", value);
    } else if (key === "text") {
      el.textContent = value;
    } else if (key === "value" && !svg) {
      el.value = value;
    } else {
      el.setAttribute(key, value === true ? "" : value);
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

// Nanoseconds since the epoch (a decimal string or a number), or an RFC 3339 string, as
// milliseconds.
export function nsToMs(ns) {
  if (typeof ns === "string" && ns.includes("T")) return Date.parse(ns);
  if (typeof ns === "string") return Number(BigInt(ns) / 1000000n);
  return Math.floor(Number(ns) / 1e6);
}

// The difference of two nanosecond strings, as a number of nanoseconds.
export function nsDiff(a, b) {
  return Number(BigInt(a) - BigInt(b));
}

const local = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  fractionalSecondDigits: 3,
});
const clock = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

export function localTime(ms) {
  return local.format(new Date(ms));
}

export function clockTime(ms) {
  return clock.format(new Date(ms));
}

// A <time> in the browser's zone, with the UTC instant (to the nanosecond when given one) on hover.
export function timeEl(ns) {
  const ms = nsToMs(ns);
  let utc = new Date(ms).toISOString();
  if (typeof ns === "string" && /^\d{10,}$/.test(ns)) {
    utc = `${utc.slice(0, 19)}.${ns.slice(-9)}Z`;
  }
  return h("time", { datetime: new Date(ms).toISOString(), title: `UTC ${utc}` }, localTime(ms));
}

// 850 ns, 12.4 µs, 3.1 ms, 250 ms, 1.25 s, 2 m 5 s.
export function duration(ns) {
  const n = Number(ns);
  if (!Number.isFinite(n)) return "–";
  const a = Math.abs(n);
  const sign = n < 0 ? "−" : "";
  const fixed = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  if (a < 1e3) return `${sign}${a.toFixed(0)} ns`;
  if (a < 1e6) return `${sign}${fixed(a / 1e3)} µs`;
  if (a < 1e9) return `${sign}${fixed(a / 1e6)} ms`;
  if (a < 60e9) return `${sign}${fixed(a / 1e9)} s`;
  const m = Math.floor(a / 60e9);
  return `${sign}${m} m ${Math.round((a - m * 60e9) / 1e9)} s`;
}

export function number(n, digits = 2) {
  if (n === null || n === undefined || !Number.isFinite(Number(n))) return "–";
  const v = Number(n);
  if (Math.abs(v) >= 1000 || Number.isInteger(v)) return v.toLocaleString(undefined, { maximumFractionDigits: 0 });
  return v.toLocaleString(undefined, { maximumFractionDigits: digits });
}

export function percent(x) {
  return `${(Number(x) * 100).toFixed(Number(x) < 0.1 ? 1 : 0)}%`;
}

const KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"];
export function kindWord(k) {
  return KINDS[k] || `kind ${k}`;
}

export function statusWord(code) {
  return code === 2 ? "error" : code === 1 ? "ok" : "unset";
}

export function severityWord(n) {
  if (!n) return "unset";
  return ["trace", "debug", "info", "warn", "error", "fatal"][Math.min(5, Math.floor((n - 1) / 4))];
}

const PALETTE = [
  "#4269d0", "#efb118", "#3ca951", "#ff725c", "#a463f2", "#97bbf5",
  "#9c6b4e", "#ff8ab7", "#6cc5b0", "#8c8c8c", "#d4a017", "#2f7ebc",
];
// One colour per service name, the same on every view.
export function serviceColor(name) {
  let x = 2166136261;
  for (const ch of String(name)) x = Math.imul(x ^ ch.codePointAt(0), 16777619);
  return PALETTE[(x >>> 0) % PALETTE.length];
}

export function serviceChip(name) {
  const dot = h("span", { class: "dot", "aria-hidden": "true" });
  dot.style.background = serviceColor(name);
  return h("span", { class: "chip" }, dot, name);
}

export function shortId(id) {
  return id ? `${id.slice(0, 8)}…` : "";
}

// A Prometheus-style selector of one series: name{label="v", …}.
export function selector(name, labels) {
  const inner = Object.entries(labels || {})
    .filter(([k]) => k !== "quantile")
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${JSON.stringify(String(v))}`);
  return inner.length ? `${name}{${inner.join(",")}}` : name;
}

export function errorBox(err) {
  const status = err && err.status ? `HTTP ${err.status}: ` : "";
  return h("div", { class: "error", role: "alert" }, `${status}${err && err.message ? err.message : err}`);
}

export function empty(text) {
  return h("p", { class: "empty" }, text);
}

// A table in a scrolling box, so wide tables do not widen a phone's page.
export function table(head, rows, attrs = {}) {
  return h(
    "div",
    { class: "table-wrap" },
    h("table", attrs, h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows)),
  );
}
