// Two traces compared: the second against the first (typically a slow one against a normal
// one of the same operation) — spans added, missing, slower or faster, in all and in self time.

import { get } from "../api.js";
import { title } from "../app.js";
import { duration, h, serviceChip, shortId, table } from "../format.js";

function side(s) {
  if (!s.spans) return h("td", { class: "num sub" }, "–");
  return h("td", { class: "num" }, `${s.spans}× ${duration(s.duration_ns)}`, h("div", { class: "sub" }, `self ${duration(s.self_time_ns)}`));
}

function delta(ns) {
  return h("td", { class: `num ${ns > 0 ? "bad" : ns < 0 ? "good" : ""}` }, `${ns > 0 ? "+" : ""}${duration(ns)}`);
}

function row(r) {
  const last = r.path[r.path.length - 1];
  const parents = r.path.slice(0, -1).map((p) => `${p.service} ${p.operation}`).join(" › ");
  return h("tr", { class: `change-${r.change}` },
    h("td", {}, h("span", { class: `badge ${r.change}` }, r.change)),
    h("td", {}, serviceChip(last.service), " ", h("strong", {}, last.operation), parents ? h("div", { class: "sub" }, parents) : null),
    side(r.base), side(r.other), delta(r.duration_delta_ns), delta(r.self_time_delta_ns));
}

export async function render(ctx, [a, b]) {
  title(`Compare ${shortId(b)} with ${shortId(a)}`);
  const c = await get(`/api/v1/traces/${a}/compare/${b}`);
  const body = h("tbody", {}, c.rows.filter((r) => r.change !== "same").map(row));
  const all = h("input", {
    type: "checkbox", id: "show-same",
    onchange: (e) => body.replaceChildren(...c.rows.filter((r) => e.target.checked || r.change !== "same").map(row)),
  });
  const t = table(["Change", "Span (path)", "First", "Second", "Δ duration", "Δ self time"], [], { class: "compare" });
  t.querySelector("table").replaceChild(body, t.querySelector("tbody"));
  ctx.show(
    h("h1", {}, "Two traces compared"),
    h("p", { class: "facts-line" },
      "First ", h("a", { href: `/ui/trace/${a}` }, h("code", {}, shortId(a))), ` ${duration(c.base.duration_ns)}, ${c.base.spans} spans, ${c.base.errors} errors · `,
      "second ", h("a", { href: `/ui/trace/${b}` }, h("code", {}, shortId(b))), ` ${duration(c.other.duration_ns)}, ${c.other.spans} spans, ${c.other.errors} errors · `,
      h("strong", {}, `${c.duration_delta_ns >= 0 ? "+" : ""}${duration(c.duration_delta_ns)}`)),
    h("p", { class: "summary", role: "status" },
      `${c.added} added · ${c.missing} missing · ${c.slower} slower · ${c.faster} faster (in the second)`),
    h("label", { class: "check" }, all, " show unchanged spans too"),
    t,
  );
}
