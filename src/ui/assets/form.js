// Search forms: labelled fields, the time range every view shares, and submitting a form
// as a new URL (so a search is a link and the back button returns to it).

import { h } from "./format.js";
import { navigate } from "./app.js";

export const RANGES = [
  ["now-15m", "last 15 minutes"],
  ["now-1h", "last hour"],
  ["now-6h", "last 6 hours"],
  ["now-24h", "last 24 hours"],
  ["now-7d", "last 7 days"],
];

export function field(label, control, hint) {
  return h("label", { class: "field" }, h("span", {}, label), control, hint ? h("small", {}, hint) : null);
}

export function input(name, value, attrs = {}) {
  return h("input", { name, value: value || "", autocomplete: "off", ...attrs });
}

// A select of [value, text] options with `value` chosen.
export function select(name, options, value, attrs = {}) {
  return h(
    "select",
    { name, ...attrs },
    options.map(([v, text]) => h("option", { value: v, selected: v === (value || "") }, text)),
  );
}

export function datalist(id, values) {
  return h("datalist", { id }, values.map((v) => h("option", { value: v })));
}

// Start and end: presets, or any time the API takes (RFC 3339, Unix epoch, now-2h).
export function timeRange(params, defaultStart = "now-1h") {
  const start = params.get("start") || defaultStart;
  const end = params.get("end") || "now";
  const preset = RANGES.some(([v]) => v === start) && end === "now" ? start : "custom";
  const startInput = input("start", start, { placeholder: "now-1h or 2026-11-26T10:00:00Z", "aria-label": "start" });
  const endInput = input("end", end, { placeholder: "now", "aria-label": "end" });
  const presetSelect = select("range", [...RANGES, ["custom", "custom…"]], preset, {
    onchange: (e) => {
      if (e.target.value !== "custom") {
        startInput.value = e.target.value;
        endInput.value = "now";
      }
    },
  });
  return [field("Time range", presetSelect), field("From", startInput), field("To", endInput)];
}

// Submitting goes to `path` with the form's non-empty fields as the query (`range` is only
// a helper for start and end and is left out).
export function searchForm(path, fields, extra = {}) {
  const form = h(
    "form",
    { class: "search", role: "search", ...extra },
    fields,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Search")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) {
      if (k !== "range" && String(v).trim() !== "") q.append(k, String(v).trim());
    }
    navigate(`${path}?${q}`);
  });
  return form;
}
