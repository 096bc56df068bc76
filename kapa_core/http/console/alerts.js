// Alerts: the topics with their level, one topic's events (newest first) and handlers,
// and a handler defined from YAML (the file `kapacitor define-topic-handler` reads).

import * as api from "./api.js";
import { h, clear, confirmDialog, notice, unescapeHTML, poll, syncRows } from "./dom.js";

const BASE = "/alerts/topics";
const HANDLER_EXAMPLE = `id: log-cpu
kind: log
options:
  path: /tmp/cpu-alerts.log
`;

// RFC 3339 times with up to nine fractional digits, compared as instants (as text,
// "…:00Z" would sort before "…:00.5Z").
function instant(text) {
  const m = String(text).match(/^(.*?:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/);
  if (!m) return [Date.parse(text) || 0, 0];
  return [Date.parse(m[1] + m[3]), Number((m[2] || "").padEnd(9, "0").slice(0, 9))];
}
export function compareTimes(a, b) {
  const [sa, na] = instant(a), [sb, nb] = instant(b);
  return sa - sb || na - nb;
}

const level = (name) => h("span", { class: "level level-" + String(name).toLowerCase(), text: name });

export function topicsView() {
  return async (main) => {
    const body = h("tbody");
    main.append(h("div", { class: "bar" }, h("h2", { text: "Alert topics" })),
      h("div", { class: "scroll" }, h("table", { id: "topic-list", class: "list" },
        h("thead", {}, h("tr", {}, ["Topic", "Level", "Events collected", "Handlers"].map((t) => h("th", { text: t })))), body)));
    return poll(async () => {
      const { topics } = await api.get(BASE);
      const handlers = await Promise.all(topics.map((t) =>
        api.get(`${BASE}/${encodeURIComponent(t.id)}/handlers`).then((x) => x.handlers, (err) => err)));
      syncRows(body, topics.map((t, i) => h("tr", { "data-key": t.id, "data-topic": t.id },
        h("td", {}, h("a", { href: `#/alerts/${encodeURIComponent(t.id)}`, text: t.id })),
        h("td", {}, level(t.level)), h("td", { class: "num", text: t.collected }),
        handlers[i] instanceof Error
          ? h("td", { class: "error", text: "handlers not read: " + handlers[i].message })
          : h("td", { text: handlers[i].map((x) => `${x.id} (${x.kind})`).join(", ") }))));
      if (!topics.length) body.append(h("tr", {}, h("td", { colspan: 4, class: "muted", text: "No topics yet: they appear when an alert node or a handler names one." })));
    }, 2000);
  };
}

export function topicView(topic) {
  return async (main) => {
    const path = `${BASE}/${encodeURIComponent(topic)}`;
    const levelBox = h("span", { id: "topic-level" });
    const events = h("tbody");
    const handlers = h("tbody");
    const yaml = h("textarea", { id: "handler-yaml", class: "code plain", rows: 7, spellcheck: "false", wrap: "off",
      "aria-label": "handler YAML" });
    yaml.value = HANDLER_EXAMPLE;
    const save = h("button", { id: "handler-save", class: "primary", text: "Save handler" });
    const yamlError = h("p", { id: "handler-error", class: "error" });
    main.append(
      h("div", { class: "bar" }, h("h2", {}, "Topic ", h("span", { id: "topic-id", text: topic })), levelBox,
        h("button", { class: "danger", "data-action": "delete-topic", text: "Delete topic", onclick: async () => {
          if (!await confirmDialog(`Delete topic "${topic}" with its events and handlers?`)) return;
          await api.del(path);
          location.hash = "#/alerts";
        } })),
      h("h3", { text: "Events" }),
      h("div", { class: "scroll" }, h("table", { id: "events", class: "list" },
        h("thead", {}, h("tr", {}, ["Event", "Level", "Message", "Time", "Duration", "Details"].map((t) => h("th", { text: t })))), events)),
      h("h3", { text: "Handlers" }),
      h("div", { class: "scroll" }, h("table", { id: "handlers", class: "list" },
        h("thead", {}, h("tr", {}, ["ID", "Kind", "Match", "Options", ""].map((t) => h("th", { text: t })))), handlers)),
      h("h3", { text: "Define a handler (YAML)" }),
      h("p", { class: "muted", text: "The file kapacitor define-topic-handler takes: id, kind, match, options. A handler with the same ID is replaced." }),
      yaml, h("div", { class: "bar" }, save), yamlError);

    let known = new Set();
    const refresh = async () => {
      const [t, ev, hs] = await Promise.all([api.get(path), api.get(`${path}/events?min-level=OK`), api.get(`${path}/handlers`)]);
      clear(levelBox).append(level(t.level));
      const sorted = [...ev.events].sort((a, b) => compareTimes(b.state.time, a.state.time));
      syncRows(events, sorted.map((e) => h("tr", { "data-key": e.id, "data-event": e.id },
        h("td", { class: "mono", text: e.id }), h("td", {}, level(e.state.level)),
        h("td", { class: "message", text: e.state.message }), h("td", { class: "mono", text: e.state.time }),
        h("td", { text: e.state.duration }),
        h("td", {}, h("details", {}, h("summary", { text: "details" }), h("pre", { class: "details", text: unescapeHTML(e.state.details) }))))));
      if (!sorted.length) events.append(h("tr", {}, h("td", { colspan: 6, class: "muted", text: "No events." })));
      known = new Set(hs.handlers.map((x) => x.id));
      syncRows(handlers, hs.handlers.map((x) => h("tr", { "data-key": x.id, "data-handler": x.id },
        h("td", { class: "mono", text: x.id }), h("td", { text: x.kind }), h("td", { class: "mono", text: x.match || "" }),
        h("td", {}, h("pre", { class: "options", text: JSON.stringify(x.options || {}, null, 1) })),
        h("td", { class: "actions" }, h("button", { class: "danger", "data-action": "delete-handler", text: "Delete", onclick: async () => {
          if (!await confirmDialog(`Delete handler "${x.id}" of topic "${topic}"?`)) return;
          await api.del(`${path}/handlers/${encodeURIComponent(x.id)}`);
          notice(`handler ${x.id} deleted`);
          refresh();
        } })))));
      if (!hs.handlers.length) handlers.append(h("tr", {}, h("td", { colspan: 5, class: "muted", text: "No handlers." })));
    };
    save.addEventListener("click", async () => {
      yamlError.textContent = "";
      const id = (yaml.value.match(/^id:\s*["']?([^"'\n]+?)["']?\s*$/m) || [])[1];
      try {
        if (id && known.has(id)) await api.call("PUT", `${path}/handlers/${encodeURIComponent(id)}`, yaml.value, "application/yaml");
        else await api.post(`${path}/handlers`, yaml.value, "application/yaml");
        notice("handler saved");
        await refresh();
      } catch (err) {
        yamlError.textContent = err.message;
      }
    });
    return poll(refresh, 2000);
  };
}
