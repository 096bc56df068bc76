// The daemon's HTTP API, as the console calls it: same origin, credentials from the
// login form kept for this tab only (sessionStorage), errors as exceptions carrying the
// API's own message.

const V1 = "/kapacitor/v1";

export class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export const auth = {
  get header() { return sessionStorage.getItem("kapa-auth") || ""; },
  login(username, password) {
    const bytes = new TextEncoder().encode(username + ":" + password);
    sessionStorage.setItem("kapa-auth", "Basic " + btoa(String.fromCharCode(...bytes)));
  },
  logout() { sessionStorage.removeItem("kapa-auth"); },
};

export let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

function headers(extra) {
  const out = { Accept: "application/json", ...extra };
  if (auth.header) out.Authorization = auth.header;
  return out;
}

export async function call(method, path, body, contentType = "application/json") {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": contentType }) };
  if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
  let response;
  try {
    response = await fetch(path.startsWith("/") && !path.startsWith(V1) && !path.startsWith("/write")
      ? V1 + path : path, init);
  } catch (err) {
    throw new APIError(0, "the daemon cannot be reached: " + err.message);
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!response.ok) {
    const message = (data && data.error) || text || response.statusText;
    if (response.status === 401) onUnauthorized(message);
    throw new APIError(response.status, message);
  }
  return data;
}

export const get = (path) => call("GET", path);
export const post = (path, body, type) => call("POST", path, body, type);
export const patch = (path, body) => call("PATCH", path, body);
export const put = (path, body) => call("PUT", path, body);
export const del = (path) => call("DELETE", path);

// Follow the daemon's log: calls onLine(object) for each JSON line until signal aborts.
export async function followLogs(onLine, signal) {
  const response = await fetch("/kapacitor/v1preview/logs", {
    headers: headers({ Accept: "application/json" }), signal });
  if (!response.ok) throw new APIError(response.status, await response.text());
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let rest = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    rest += decoder.decode(value, { stream: true });
    const lines = rest.split("\n");
    rest = lines.pop();
    for (const line of lines) {
      if (!line.trim()) continue;
      try { onLine(JSON.parse(line)); } catch (_) { onLine({ msg: line }); }
    }
  }
}
