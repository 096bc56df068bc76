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

// A browser resolves "." and ".." segments of a URL before it sends it (even written as
// %2E), so an ID of "." or ".." cannot be addressed from the page: say so, rather than
// act on the resource the resolved path names.
function checkSegments(path) {
  const dotted = path.split("?")[0].split("/").find((seg) => /^(\.|%2e){1,2}$/i.test(seg));
  if (dotted !== undefined) {
    throw new APIError(0, `the ID "${decodeURIComponent(dotted)}" cannot be used from a browser, ` +
      "which reads it as a relative path: use the API directly (curl --path-as-is)");
  }
}

export async function call(method, path, body, contentType = "application/json") {
  checkSegments(path);
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
  checkSegments("/kapacitor/v1preview/logs");
  const response = await fetch("/kapacitor/v1preview/logs", {
    headers: headers({ Accept: "application/json" }), signal });
  if (!response.ok) {
    const text = await response.text();
    let message = text;
    try { message = JSON.parse(text).error || text; } catch (_) { /* plain text */ }
    if (response.status === 401) onUnauthorized(message);
    throw new APIError(response.status, message);
  }
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
