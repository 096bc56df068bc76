// The daemon: version and uptime, ingress by database, retention policy and measurement,
// loaded plugins, configuration sections (redacted values stay hidden; changes go
// through the config API), and the log, live.

import * as api from "./api.js";
import { h, clear, fmtNumber, fmtDuration, notice, poll, syncRows } from "./dom.js";
import { can } from "./session.js";

const MAX_LOG_LINES = 300;

const table = (id, headings, body) => h("div", { class: "scroll" }, h("table", { id, class: "list" },
  h("thead", {}, h("tr", {}, headings.map((t) => h("th", { text: t })))), body));

function aboutSection(stops) {
  const dl = h("dl", { id: "about", class: "facts" });
  const plugins = h("tbody");
  let about = null, fetchedAt = 0;
  const uptime = h("dd", { id: "daemon-uptime" });
  const load = async () => {
    about = await api.get("/about");
    fetchedAt = performance.now();
    clear(dl).append(
      h("dt", { text: "Version" }), h("dd", { id: "daemon-version", text: `kapa-core ${about.version} (Kapacitor ${about.kapacitor_version} API)` }),
      h("dt", { text: "Started" }), h("dd", { text: about.started }),
      h("dt", { text: "Uptime" }), uptime,
      h("dt", { text: "Host" }), h("dd", { text: about.hostname }),
      h("dt", { text: "Server ID" }), h("dd", { class: "mono", text: about.server_id }),
      h("dt", { text: "Cluster ID" }), h("dd", { class: "mono", text: about.cluster_id }),
      h("dt", { text: "Line protocol" }), h("dd", { text: about.line_protocol_parser }),
      h("dt", { text: "Authentication" }), h("dd", { text: about.auth_enabled ? "on" : "off" }));
    clear(plugins).append(...about.plugins.map((p) => h("tr", { "data-plugin": p.name },
      h("td", { class: "mono", text: p.name }), h("td", { text: p.distribution }), h("td", { text: p.version }),
      h("td", { class: "mono small", text: p.module }))),
    ...about.broken_plugins.map((p) => h("tr", { class: "failed" }, h("td", { class: "mono", text: p.name }),
      h("td", { text: p.distribution }), h("td", { class: "error", text: "not loaded" }), h("td", { class: "error small", text: p.reason }))));
  };
  const tickUptime = () => { if (about) uptime.textContent = fmtDuration(about.uptime + (performance.now() - fetchedAt) / 1000); };
  const timer = setInterval(tickUptime, 1000);
  stops.push(() => clearInterval(timer));
  const summary = h("summary", { id: "plugins-summary", text: "Plugins" });
  const pluginsBox = h("details", { class: "plugins" }, summary, table("plugins", ["Plugin", "Package", "Version", "Module"], plugins));
  const facts = h("section", {}, dl);
  const setSummary = () => {
    summary.textContent = `Plugins: ${about.plugins.length} loaded` + (about.broken_plugins.length ? `, ${about.broken_plugins.length} failed` : "");
  };
  return { el: facts, plugins: h("section", {}, h("h3", { text: "Plugins" }), pluginsBox), setSummary,
  load: async () => { await load(); tickUptime(); setSummary(); } };
}

function ingressSection(stops) {
  const body = h("tbody");
  const last = new Map();
  let lastAt = 0;
  stops.push(poll(async () => {
    const vars = await api.get("/debug/vars");
    const now = performance.now();
    // the statistics sit under "kapacitor", as in Kapacitor's expvar output
    const rows = Object.values(vars.kapacitor || {}).filter((v) => v && v.name === "ingress" && v.tags && v.tags.task_master === "main")
      .sort((a, b) => (a.tags.database + a.tags.retention_policy + a.tags.measurement)
        .localeCompare(b.tags.database + b.tags.retention_policy + b.tags.measurement));
    syncRows(body, rows.map((v) => {
      const key = `${v.tags.database}.${v.tags.retention_policy}.${v.tags.measurement}`;
      const points = v.values.points_received || 0;
      const rate = last.has(key) && lastAt ? (points - last.get(key)) / ((now - lastAt) / 1000) : null;
      last.set(key, points);
      return h("tr", { "data-key": key, "data-ingress": key }, h("td", { text: v.tags.database }), h("td", { text: v.tags.retention_policy }),
        h("td", { text: v.tags.measurement }), h("td", { class: "num points", text: fmtNumber(points) }),
        h("td", { class: "num", text: rate === null ? "" : fmtNumber(Math.max(0, rate)) + "/s" }));
    }));
    lastAt = now;
    if (!rows.length) body.append(h("tr", {}, h("td", { colspan: 5, class: "muted", text: "No points written yet." })));
  }, 2000));
  return h("section", {}, h("h3", { text: "Ingress" }),
    table("ingress", ["Database", "Retention policy", "Measurement", "Points", "Rate"], body));
}

function optionInput(name, value, redacted) {
  if (redacted) return h("input", { type: "password", "data-option": name, placeholder: value ? "(set: type to replace)" : "(not set)", autocomplete: "off" });
  if (typeof value === "boolean") return h("input", { type: "checkbox", "data-option": name, checked: value });
  if (typeof value === "number") return h("input", { type: "number", step: "any", "data-option": name, value: String(value) });
  if (Array.isArray(value)) return h("input", { "data-option": name, "data-kind": "list", value: value.map((v) => typeof v === "object" ? JSON.stringify(v) : v).join(", ") });
  if (value !== null && typeof value === "object") return h("input", { "data-option": name, "data-kind": "json", value: JSON.stringify(value) });
  return h("input", { "data-option": name, value: value ?? "" });
}

function readOption(input, original) {
  if (input.type === "checkbox") return input.checked;
  if (input.type === "number") {
    if (input.value.trim() === "" || !isFinite(Number(input.value))) throw new Error(`${input.dataset.option} needs a number`);
    return Number(input.value);
  }
  if (input.dataset.kind === "list") return input.value.split(",").map((s) => s.trim()).filter(Boolean);
  if (input.dataset.kind === "json") return JSON.parse(input.value);
  return input.value;
}

function configSection() {
  const box = h("div", { id: "config-sections" });
  const load = async () => {
    const { sections } = await api.get("/config");
    clear(box).append(...Object.entries(sections).map(([name, section]) => h("details", { class: "config", "data-section": name },
      h("summary", { text: name }),
      section.elements.map((element) => {
        const redacted = new Set(element.redacted || []);
        const inputs = Object.entries(element.options).map(([key, value]) => [key, value, optionInput(key, value, redacted.has(key))]);
        const status = h("span", { class: "muted" });
        const form = h("form", { class: "config-form", "data-element": element.link.href },
          h("table", { class: "list compact" }, h("tbody", {}, inputs.map(([key, , input]) =>
            h("tr", {}, h("td", { class: "mono", text: key }), h("td", {}, input))))),
          h("div", { class: "bar" }, h("button", { type: "submit", class: "primary", text: `Save ${name}` }), status));
        form.addEventListener("submit", async (ev) => {
          ev.preventDefault();
          const set = {};
          try {
            for (const [key, value, input] of inputs) {
              if (redacted.has(key)) { if (input.value) set[key] = input.value; continue; }
              const now = readOption(input, value);
              if (JSON.stringify(now) !== JSON.stringify(value)) set[key] = now;
            }
          } catch (err) { status.textContent = "bad value: " + err.message; return; }
          if (!Object.keys(set).length) { status.textContent = "nothing changed"; return; }
          try {
            await api.post(element.link.href, { set });
            status.textContent = "saved: " + Object.keys(set).join(", ");
            notice(`${name}: configuration saved`);
          } catch (err) {
            status.textContent = err.message;
            status.className = "error";
          }
        });
        return form;
      }))));
  };
  return { el: h("section", {}, h("h3", { text: "Configuration" }),
    h("p", { class: "muted", text: "Overrides are stored by the daemon and survive restarts; secret values are never shown." }), box), load };
}

function logSection(stops) {
  const pre = h("pre", { id: "log-tail", class: "log" });
  const filter = h("input", { id: "log-filter", type: "search", placeholder: "show lines containing…",
    "aria-label": "filter log lines" });
  const matches = (line) => !filter.value || line.textContent.toLowerCase().includes(filter.value.toLowerCase());
  filter.addEventListener("input", () => { for (const line of lines) line.hidden = !matches(line); });
  const controller = new AbortController();
  stops.push(() => controller.abort());
  const lines = [];
  const add = (entry) => {
    const { ts, lvl, msg, ...rest } = entry;
    const text = `${ts || ""} ${lvl || ""} ${msg || ""} ${Object.entries(rest).map(([k, v]) => `${k}=${typeof v === "string" && /\s/.test(v) ? JSON.stringify(v) : v}`).join(" ")}`;
    const line = h("div", { class: "log-line lvl-" + (lvl || "info") }, text);
    line.hidden = !matches(line);
    lines.push(line);
    pre.append(line);
    while (lines.length > MAX_LOG_LINES) lines.shift().remove();
    if (pre.scrollHeight - pre.scrollTop - pre.clientHeight < 60) pre.scrollTop = pre.scrollHeight;
  };
  // the stream ends when the daemon restarts or a proxy cuts it: follow it again
  const follow = async () => {
    while (!controller.signal.aborted) {
      try {
        await api.followLogs(add, controller.signal);
        if (!controller.signal.aborted) add({ lvl: "warn", msg: "the log stream ended; following it again" });
      } catch (err) {
        if (controller.signal.aborted || err.name === "AbortError") return;
        add({ lvl: "error", msg: "cannot follow the log: " + err.message });
      }
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  };
  follow();
  return h("section", {}, h("div", { class: "bar" }, h("h3", { text: "Log (live)" }), filter), pre);
}

export function daemonView() {
  return async (main) => {
    const stops = [];
    main.append(h("div", { class: "bar" }, h("h2", { text: "Daemon" })));
    if (can("api")) {
      const about = aboutSection(stops);
      main.append(about.el);
      try {
        await about.load();
      } catch (err) {  // the rest of the page still works; its clean-up is still returned
        about.el.append(h("p", { class: "error", text: err.message }));
      }
      main.append(ingressSection(stops), logSection(stops), about.plugins);
    }
    if (can("config_api")) {
      const config = configSection();
      main.append(config.el);
      config.load().catch((err) => config.el.append(h("p", { class: "error", text: err.message })));
    }
    if (!can("api") && !can("config_api")) {
      main.append(h("p", { class: "denied", text: "This user may only write points." }));
    }
    return () => stops.forEach((stop) => stop());
  };
}
