// The UI's router: every view is a URL under /ui (the server answers each with this page),
// links and form submissions move through the history API, and the back button re-renders
// the view the URL names. Also the access panel: a bearer token (when weft asks for one)
// or a tenant, kept for this browser session.

import { h, errorBox } from "./format.js";
import { setAccess, tenant, token, whenRefused } from "./api.js";
import * as search from "./views/search.js";
import * as trace from "./views/trace.js";
import * as compare from "./views/compare.js";
import * as metrics from "./views/metrics.js";
import * as incidents from "./views/incidents.js";
import * as services from "./views/services.js";

const ROUTES = [
  [/^\/(ui\/?)?$/, "search", search.traces],
  [/^\/ui\/search\/?$/, "search", search.traces],
  [/^\/ui\/search\/logs\/?$/, "search", search.logs],
  [/^\/ui\/trace\/([0-9A-Fa-f]{1,32})\/?$/, "search", trace.render],
  [/^\/ui\/compare\/([0-9A-Fa-f]{1,32})\/([0-9A-Fa-f]{1,32})\/?$/, "search", compare.render],
  [/^\/ui\/metrics\/?$/, "metrics", metrics.render],
  [/^\/ui\/incidents\/?$/, "incidents", incidents.list],
  [/^\/ui\/incidents\/([^/]+)\/?$/, "incidents", incidents.one],
  [/^\/ui\/services\/?$/, "services", services.map],
  [/^\/ui\/services\/([^/]+)\/?$/, "services", services.one],
];

let generation = 0;

export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  render();
}

// Sets the page title; views call it once they know what they show.
export function title(text) {
  document.title = text ? `${text} · weft` : "weft";
}

async function render() {
  const mine = ++generation;
  const root = document.getElementById("view");
  const path = location.pathname;
  const params = new URLSearchParams(location.search);
  const route = ROUTES.find(([re]) => re.test(path));
  for (const a of document.querySelectorAll("nav a")) {
    if (route && a.dataset.nav === route[1]) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!route) {
    title("not found");
    root.replaceChildren(h("h1", {}, "Nothing here"), h("p", {}, `No view at ${path}. `, h("a", { href: "/ui/search" }, "Search")));
    return;
  }
  const [re, , view] = route;
  const match = path.match(re).slice(1).map(decodeURIComponent);
  root.replaceChildren(h("p", { class: "loading", role: "status" }, "Loading…"));
  root.setAttribute("aria-busy", "true");
  // Each view draws into its own fragment and swaps it in, unless the user moved on meanwhile.
  const ctx = {
    current: () => mine === generation,
    show: (...nodes) => {
      if (mine === generation) root.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
    },
  };
  try {
    await view(ctx, match, params);
  } catch (err) {
    ctx.show(errorBox(err));
  } finally {
    if (mine === generation) root.removeAttribute("aria-busy");
  }
}

function accessPanel(err) {
  const panel = document.getElementById("access");
  const who = document.getElementById("who");
  const tokenInput = h("input", { name: "token", type: "password", value: token(), autocomplete: "off" });
  const tenantInput = h("input", { name: "tenant", value: tenant(), placeholder: "default", autocomplete: "off" });
  const form = h(
    "form",
    { class: "access-form" },
    err ? h("p", { class: "error", role: "alert" }, `weft refused: ${err.message}`) : null,
    h("label", { class: "field" }, h("span", {}, "Bearer token"), tokenInput,
      h("small", {}, "Needed when weft runs with [auth] on; kept for this browser session only.")),
    h("label", { class: "field" }, h("span", {}, "Tenant (X-Scope-OrgID)"), tenantInput,
      h("small", {}, "Without auth; with a token, the token's tenant.")),
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary" }, "Use"),
      h("button", { type: "button", onclick: () => { setAccess("", ""); close(); render(); } }, "Forget"),
      h("button", { type: "button", onclick: () => close() }, "Close")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    setAccess(tokenInput.value.trim(), tenantInput.value.trim());
    close();
    render();
  });
  function close() {
    panel.hidden = true;
    who.setAttribute("aria-expanded", "false");
    showWho();
  }
  panel.replaceChildren(form);
  panel.hidden = false;
  who.setAttribute("aria-expanded", "true");
  tokenInput.focus();
}

function showWho() {
  const who = document.getElementById("who");
  const t = tenant() || "default";
  who.textContent = token() ? `token · ${tenant() || "its tenant"}` : `tenant · ${t}`;
}

function start() {
  showWho();
  document.getElementById("who").addEventListener("click", () => {
    const panel = document.getElementById("access");
    if (panel.hidden) accessPanel(null);
    else panel.hidden = true;
  });
  whenRefused((err) => accessPanel(err));
  document.addEventListener("click", (e) => {
    const a = e.target.closest("a");
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    if (a.target || a.hasAttribute("download")) return;
    const url = new URL(a.href instanceof SVGAnimatedString ? a.href.baseVal : a.href, location.href);
    const ours = url.origin === location.origin && (url.pathname === "/" || /^\/ui(\/|$)/.test(url.pathname));
    if (!ours || url.pathname.startsWith("/ui/assets/")) return;
    e.preventDefault();
    navigate(url.pathname + url.search + url.hash);
  });
  window.addEventListener("popstate", render);
  render();
}

start();
