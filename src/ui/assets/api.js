// Every call to weft's REST API goes through `get`: it sends the bearer token or the tenant
// the user gave (kept for the browser session only) and turns a refusal into an ApiError
// that carries the API's own message, which the views show as it is.

const TOKEN = "weft.token";
const TENANT = "weft.tenant";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN) || "";
}

export function tenant() {
  return sessionStorage.getItem(TENANT) || "";
}

export function setAccess(newToken, newTenant) {
  for (const [key, value] of [[TOKEN, newToken], [TENANT, newTenant]]) {
    if (value) sessionStorage.setItem(key, value);
    else sessionStorage.removeItem(key);
  }
}

let onRefused = () => {};

// Called with the error when the API answers 401 or 403, so the page can ask for a token.
export function whenRefused(fn) {
  onRefused = fn;
}

// A URL of the API with `params` as its query (arrays repeat the key; empty values are left out).
export function apiUrl(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== null && v !== "") url.searchParams.append(key, v);
    }
  }
  return url;
}

export async function get(path, params = {}) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (tenant()) headers["X-Scope-OrgID"] = tenant();
  let res;
  try {
    res = await fetch(apiUrl(path, params), { headers });
  } catch (e) {
    throw new ApiError(0, `weft did not answer: ${e.message}`);
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) {
    const message = body?.error?.message || res.statusText || "request failed";
    const err = new ApiError(res.status, message);
    if (res.status === 401 || res.status === 403) onRefused(err);
    throw err;
  }
  return body;
}
