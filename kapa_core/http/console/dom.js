// Small DOM helpers: elements are built with h(), never from HTML strings, so no value
// from the daemon is ever parsed as markup.

export function h(tag, attrs, ...children) {
  const svg = tag.startsWith("svg:");
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
                 : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else if (key === "value" && !svg) el.value = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function $(selector, root = document) { return root.querySelector(selector); }

export function fmtNumber(n) {
  if (typeof n !== "number" || !isFinite(n)) return String(n ?? "");
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

export function fmtDuration(seconds) {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400), hh = Math.floor(s % 86400 / 3600);
  const mm = Math.floor(s % 3600 / 60), ss = s % 60;
  return (d ? d + "d " : "") + (d || hh ? hh + "h " : "") + (d || hh || mm ? mm + "m " : "") + ss + "s";
}

export function fmtNanos(ns) {
  if (typeof ns !== "number") return String(ns ?? "");
  if (ns >= 1e9) return (ns / 1e9).toFixed(2) + "s";
  if (ns >= 1e6) return (ns / 1e6).toFixed(2) + "ms";
  if (ns >= 1e3) return (ns / 1e3).toFixed(1) + "µs";
  return ns + "ns";
}

// Alert details come HTML-escaped, as Kapacitor stores them (Go's html/template: named
// entities and numeric ones such as &#43; for "+"); shown as text.
const NAMED = { lt: "<", gt: ">", amp: "&", quot: "\"", apos: "'" };
export function unescapeHTML(text) {
  return String(text).replace(/&(?:#(\d+)|#[xX]([0-9a-fA-F]+)|(lt|gt|amp|quot|apos));/g, (m, dec, hex, name) => {
    if (name) return NAMED[name];
    const code = dec !== undefined ? parseInt(dec, 10) : parseInt(hex, 16);
    return code <= 0x10ffff ? String.fromCodePoint(code) : m;
  });
}

// A modal question; resolves true when confirmed.
export function confirmDialog(message) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = message;
  return new Promise((resolve) => {
    const done = (answer) => () => { dialog.close(); cleanup(); resolve(answer); };
    const yes = done(true), no = done(false);
    const cleanup = () => {
      $("#confirm-yes").removeEventListener("click", yes);
      $("#confirm-no").removeEventListener("click", no);
      dialog.removeEventListener("cancel", no);
    };
    $("#confirm-yes").addEventListener("click", yes);
    $("#confirm-no").addEventListener("click", no);
    dialog.addEventListener("cancel", no);
    dialog.showModal();
  });
}

export function notice(text, kind = "info") {
  const box = $("#notice");
  box.textContent = text;
  box.className = "notice " + kind;
  box.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { box.hidden = true; }, kind === "error" ? 8000 : 3000);
}

// Debounce: call fn once input has been quiet for `ms`.
export function debounce(fn, ms) {
  let timer;
  const call = (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  call.cancel = () => clearTimeout(timer);
  return call;
}

// Call fn now and then every `ms` after it finished, until the returned stop() is
// called; a failure is shown and the polling goes on.
export function poll(fn, ms) {
  let stopped = false, timer = null;
  const tick = async () => {
    if (stopped) return;
    try { await fn(); } catch (err) { if (!stopped) notice(err.message, "error"); }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

// Put `rows` (each with a data-key) into tbody, keeping every cell whose content did not
// change: a polled table then does not replace the button under the user's pointer, and
// what a test or a screen reader holds stays in the page.
const same = (cell) => cell.outerHTML.replace(/ open=""/g, "");  // a <details> the user opened stays open

export function syncRows(tbody, rows) {
  const old = new Map([...tbody.children].filter((r) => r.dataset.key !== undefined)
    .map((r) => [r.dataset.key, r]));
  const kept = rows.map((row) => {
    const prev = old.get(row.dataset.key);
    if (prev === undefined || prev.children.length !== row.children.length) return row;
    const cells = [...row.children];
    [...prev.children].forEach((was, i) => { if (same(was) !== same(cells[i])) was.replaceWith(cells[i]); });
    for (const { name, value } of [...row.attributes]) prev.setAttribute(name, value);
    return prev;
  });
  tbody.replaceChildren(...kept);
}
