// The editor: create or change a task or a template. The daemon checks the script as
// you type (POST /kapacitor/v1/scripts/check, debounced): errors appear at their line and
// column and the graph of the script is drawn before it is saved. "Try it" runs the
// script on points you type, in the daemon, without creating anything
// (POST /kapacitor/v1/scripts/try), and shows what each node emitted.

import * as api from "./api.js";
import { h, clear, debounce, notice } from "./dom.js";
import { drawGraph } from "./graph.js";
import { ScriptEditor } from "./editor.js";

const CHECK_DELAY_MS = 350;
const EXAMPLE = `stream
    |from()
        .measurement('cpu')
    |window()
        .period(10s)
        .every(10s)
    |mean('usage_user')
    |alert()
        .crit(lambda: "mean" > 80)
        .topic('cpu')
`;
const EXAMPLE_POINTS = `cpu,host=a usage_user=85 0
cpu,host=a usage_user=90 5
cpu,host=a usage_user=20 12
`;

// DBRPs as the editor shows them, read as `kapacitor define -dbrp` reads one: "db"."rp"
// (a quote inside written \") or db.rp, separated by commas (a comma inside quotes
// belongs to the name). Stricter than the flag where it would guess: nothing may follow
// a pair but a comma, and a bare name has no spaces around its dot and no second dot.
export function parseDbrps(text) {
  const out = [];
  const n = text.length;
  let pos = 0;
  const fail = (why) => {
    throw new Error(`bad DBRP ${text.trim()}: ${why}; write "db"."rp" or db.rp, separated by commas`);
  };
  const skip = () => { while (pos < n && /\s/.test(text[pos])) pos++; };
  const name = (last) => {
    if (text[pos] === '"') {
      let value = "";
      pos++;
      while (pos < n && text[pos] !== '"') {
        if (text[pos] === "\\" && text[pos + 1] === '"') { value += '"'; pos += 2; continue; }
        value += text[pos++];
      }
      if (pos >= n) fail("a quote is not closed");
      pos++;
      return value;
    }
    const start = pos;
    while (pos < n && text[pos] !== "." && text[pos] !== ",") pos++;
    let value = text.slice(start, pos);
    if (last) value = value.replace(/\s+$/, "");  // spaces before the next comma
    if (!value) fail("a name is missing");
    if (value.includes('"') || value !== value.trim()) fail(`"${value}" is not a name`);
    return value;
  };
  skip();
  while (pos < n) {
    if (text[pos] === ",") { pos++; skip(); continue; }  // an empty entry
    const db = name(false);
    if (text[pos] !== ".") fail("a retention policy is missing");
    pos++;
    const rp = name(true);
    out.push({ db, rp });
    skip();
    if (pos < n) {
      if (text[pos] !== ",") fail("expected a comma after a pair");
      pos++;
      skip();
    }
  }
  return out;
}

const quoteName = (name) => `"${String(name).replace(/"/g, '\\"')}"`;
const dbrpText = (dbrps) => (dbrps || []).map((d) => `${quoteName(d.db)}.${quoteName(d.rp)}`).join(", ");

// A var's text from the form as the API's typed value.
function typedValue(type, text) {
  switch (type) {
    case "int": {
      if (!/^-?\d+$/.test(text.trim())) throw new Error(`"${text}" is not an int`);
      return parseInt(text, 10);
    }
    case "float": {
      const v = Number(text);
      if (text.trim() === "" || !isFinite(v)) throw new Error(`"${text}" is not a float`);
      return v;
    }
    case "bool": {
      const word = text.trim().toLowerCase();
      if (word !== "true" && word !== "false") throw new Error(`"${text}" is not true or false`);
      return word === "true";
    }
    case "list": return text.split(",").map((s) => s.trim()).filter(Boolean)
      .map((value) => value === "*" ? { type: "star", value: null } : { type: "string", value });
    default: return text;
  }
}

// Nanoseconds as Go writes a duration: 90000000000 -> "1m30s", 1500000 -> "1.5ms".
export function goDuration(ns) {
  if (!Number.isSafeInteger(ns)) return String(ns);
  if (ns === 0) return "0s";
  const sign = ns < 0 ? "-" : "";
  let rest = Math.abs(ns);
  const fixed = (value, unit, digits) => {  // value/unit with the fraction's zeros cut
    const whole = Math.floor(value / unit);
    const frac = String(value % unit).padStart(digits, "0").replace(/0+$/, "");
    return frac ? `${whole}.${frac}` : String(whole);
  };
  if (rest < 1e3) return `${sign}${rest}ns`;
  if (rest < 1e6) return `${sign}${fixed(rest, 1e3, 3)}µs`;
  if (rest < 1e9) return `${sign}${fixed(rest, 1e6, 6)}ms`;
  let out = "";
  const hours = Math.floor(rest / 3.6e12);
  if (hours) { out += hours + "h"; rest -= hours * 3.6e12; }
  const minutes = Math.floor(rest / 6e10);
  if (hours || minutes) { out += minutes + "m"; rest -= minutes * 6e10; }
  return `${sign}${out}${fixed(rest, 1e9, 9)}s`;
}

function shownValue(v) {
  if (!v) return "";
  if (v.type === "duration" && typeof v.value === "number") return goDuration(v.value);
  if (v.type === "list" && Array.isArray(v.value)) return v.value.map((x) => x.type === "star" ? "*" : x.value).join(", ");
  return v.value === undefined || v.value === null ? "" : String(v.value);
}

export function editorView(kind, id) {
  return async (main) => {
    const editing = Boolean(kind);
    let existing = null;
    if (editing) existing = await api.get(`/${kind}s/${encodeURIComponent(id)}`);
    const templates = (await api.get("/templates?fields=type&fields=vars&fields=script")).templates;

    const kindSelect = h("select", { id: "kind", disabled: editing },
      h("option", { value: "task", text: "Task" }), h("option", { value: "template", text: "Template" }));
    kindSelect.value = kind || "task";
    const idInput = h("input", { id: "task-id", placeholder: "cpu_alert", required: true, value: id || "", readonly: editing });
    const typeSelect = h("select", { id: "task-type" },
      h("option", { value: "stream", text: "stream" }), h("option", { value: "batch", text: "batch" }));
    typeSelect.value = existing?.type || "stream";
    const dbrpInput = h("input", { id: "task-dbrps", placeholder: "\"telegraf\".\"autogen\"",
      value: existing ? dbrpText(existing.dbrps) : "\"telegraf\".\"autogen\"" });
    const templateSelect = h("select", { id: "task-template" }, h("option", { value: "", text: "(none: own script)" }),
      templates.map((t) => h("option", { value: t.id, text: t.id })));
    templateSelect.value = existing?.["template-id"] || "";
    const enableBox = h("input", { id: "task-enable", type: "checkbox", checked: !editing || existing?.status === "enabled" });
    const checkStatus = h("span", { id: "check-status", class: "muted" });
    const errorList = h("ul", { id: "script-errors", class: "errors" });
    const varsBox = h("div", { id: "vars" });
    const graphBox = h("div", { id: "editor-graph", class: "graph-box small" });
    const saveButton = h("button", { id: "save", class: "primary", text: "Save" });
    const editor = new ScriptEditor("script", { value: existing?.script ?? EXAMPLE, onChange: () => check() });

    const taskOnly = [];
    const field = (label, input, forTask = false) => {
      const el = h("label", { class: "field" }, label, input);
      if (forTask) taskOnly.push(el);
      return el;
    };
    main.append(
      h("div", { class: "bar" }, h("h2", { text: editing ? `Edit ${kind} ${id}` : "New task or template" })),
      h("div", { class: "form-row" }, field("Kind", kindSelect), field("ID", idInput), field("Type", typeSelect),
        field("DBRPs", dbrpInput, true), field("Template", templateSelect, true),
        field("Enabled", enableBox, true)),
      h("div", { class: "editor-grid" },
        h("div", {}, editor.el, h("div", { class: "bar" }, checkStatus, saveButton), errorList,
          h("h3", { text: "Vars" }), varsBox),
        h("div", {}, h("h3", { class: "first", text: "Graph" }), graphBox)));

    let lastVars = null;
    const varInputs = new Map();
    const originals = new Map();  // a var's value as stored, kept unless its field is edited
    const showVars = (vars, values) => {
      clear(varsBox);
      varInputs.clear();
      originals.clear();
      const names = Object.keys(vars || {});
      if (!names.length) { varsBox.append(h("p", { class: "muted", text: "The script declares no vars." })); return; }
      const template = kindSelect.value === "template";
      varsBox.append(h("table", { class: "list vars" },
        h("thead", {}, h("tr", {}, ["Name", "Type", template ? "Default" : "Value", "Description"].map((t) => h("th", { text: t })))),
        h("tbody", {}, names.map((name) => {
          const v = vars[name];
          const stored = values && values[name];
          const input = h("input", { "data-var": name, "data-type": v.type, placeholder: shownValue(v),
            value: stored ? shownValue(stored) : "", readonly: template });
          input.dataset.initial = input.value;
          if (stored) originals.set(name, { type: stored.type, value: stored.value });
          varInputs.set(name, input);
          return h("tr", {}, h("td", { class: "mono", text: name }), h("td", { class: "type", text: v.type }),
            h("td", {}, input), h("td", { class: "muted", text: v.description || "" }));
        }))));
    };
    const formVars = () => {
      const out = {};
      for (const [name, input] of varInputs) {
        if (input.readOnly) continue;
        if (input.value === input.dataset.initial && originals.has(name)) {
          out[name] = originals.get(name);  // untouched: saved back exactly as it was
          continue;
        }
        if (input.value.trim() === "") continue;  // empty: the script's default
        const type = input.dataset.type;
        try {
          out[name] = { type, value: typedValue(type, input.value) };
        } catch (err) {
          throw new Error(`var ${name}: ${err.message}`);
        }
      }
      return out;
    };

    const syncKind = () => {
      const template = kindSelect.value === "template";
      taskOnly.forEach((el) => { el.hidden = template; });
      const fromTemplate = !template && templateSelect.value;
      editor.readOnly = Boolean(fromTemplate);
      if (fromTemplate) {
        const t = templates.find((x) => x.id === templateSelect.value);
        if (t) { editor.value = t.script; typeSelect.value = t.type; }
      }
    };
    kindSelect.addEventListener("change", () => { syncKind(); check(); });
    templateSelect.addEventListener("change", () => { syncKind(); check(); });
    typeSelect.addEventListener("change", () => check());

    let checking = 0, stopped = false;
    const runCheck = async () => {
      if (stopped) return;
      const mine = ++checking;
      let dbrps = [];
      try { dbrps = kindSelect.value === "task" ? parseDbrps(dbrpInput.value) : []; } catch (_) { dbrps = []; }
      let result;
      try {
        // a template's script, or a task's from a template, may leave vars without values
        result = await api.post("/scripts/check", { script: editor.value, type: typeSelect.value, dbrps,
          template: kindSelect.value === "template" || Boolean(templateSelect.value) });
      } catch (err) {
        if (mine === checking) { checkStatus.textContent = "check failed: " + err.message; }
        return;
      }
      if (mine !== checking || stopped) return; // a newer check is on its way, or the view closed
      editor.setErrors(result.errors);
      clear(errorList).append(...(result.errors || []).map((e) => h("li", { "data-line": e.line || 0, "data-column": e.column || 0 },
        e.line ? h("a", { href: "#", class: "where", text: `line ${e.line}, column ${e.column}`, onclick: (ev) => { ev.preventDefault(); jumpTo(e.line, e.column); } }) : null,
        e.line ? ": " : "", e.message)));
      checkStatus.textContent = result.ok ? "✓ the script is valid" : `✗ ${result.errors.length} error${result.errors.length === 1 ? "" : "s"}`;
      checkStatus.className = result.ok ? "ok" : "error";
      graphBox.classList.toggle("stale", !result.ok);
      if (result.ok || (result.nodes || []).length) {
        const graph = { nodes: (result.nodes || []).map((n) => ({ id: n.id, attrs: {} })), edges: (result.edges || []).map((e) => ({ ...e, attrs: {} })) };
        const positions = Object.fromEntries((result.nodes || []).map((n) => [n.id, n]));
        drawGraph(graphBox, graph, { counts: false, positions });
      }
      const vars = result.vars || {};
      const key = JSON.stringify(vars);
      if (key !== JSON.stringify(lastVars)) {
        const values = existing?.vars || {};
        showVars(vars, values);
        lastVars = vars;
      }
    };
    const check = debounce(runCheck, CHECK_DELAY_MS);

    // The daemon counts columns in characters (code points), a textarea in UTF-16 units.
    const jumpTo = (line, column) => {
      const lines = editor.value.split("\n");
      let offset = 0;
      for (let i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
      const chars = [...(lines[line - 1] || "")].slice(0, Math.max(0, (column || 1) - 1));
      offset += chars.join("").length;
      editor.textarea.focus();
      editor.textarea.setSelectionRange(offset, offset);
    };

    saveButton.addEventListener("click", async () => {
      const theId = idInput.value.trim();
      if (!theId) { notice("give the task an ID", "error"); idInput.focus(); return; }
      try {
        if (kindSelect.value === "template") {
          const body = { id: theId, type: typeSelect.value, script: editor.value };
          if (editing) await api.patch(`/templates/${encodeURIComponent(theId)}`, body);
          else await api.post("/templates", body);
          notice(`template ${theId} saved`);
          location.hash = "#/tasks";
          return;
        }
        const body = { id: theId, type: typeSelect.value, dbrps: parseDbrps(dbrpInput.value),
                       vars: formVars(), status: enableBox.checked ? "enabled" : "disabled" };
        if (templateSelect.value) body["template-id"] = templateSelect.value;
        else body.script = editor.value;
        if (editing) await api.patch(`/tasks/${encodeURIComponent(theId)}`, body);
        else await api.post("/tasks", body);
        notice(`task ${theId} saved`);
        location.hash = `#/tasks/${encodeURIComponent(theId)}`;
      } catch (err) {
        notice("not saved: " + err.message, "error");
      }
    });

    // a bad DBRP or var stops the run with its message (the try panel shows it)
    main.append(tryPanel(() => ({ script: editor.value, type: typeSelect.value,
      dbrps: kindSelect.value === "task" ? parseDbrps(dbrpInput.value) : [], vars: formVars() })));
    syncKind();
    runCheck();
    return () => { stopped = true; check.cancel(); };
  };
}

function tryPanel(current) {
  const points = h("textarea", { id: "try-points", class: "code plain", rows: 6, spellcheck: "false", wrap: "off",
    "aria-label": "line protocol points" });
  points.value = EXAMPLE_POINTS;
  const db = h("input", { id: "try-db", placeholder: "database", value: "telegraf" });
  const rp = h("input", { id: "try-rp", placeholder: "retention policy", value: "autogen" });
  const precision = h("select", { id: "try-precision" },
    ["s", "ms", "u", "n", "m", "h"].map((p) => h("option", { value: p, text: p })));
  precision.value = "s";
  const run = h("button", { id: "try-run", class: "primary", text: "Run" });
  const result = h("div", { id: "try-result" });
  run.addEventListener("click", async () => {
    run.disabled = true;
    clear(result).append(h("p", { class: "muted", text: "running…" }));
    try {
      const answer = await api.post("/scripts/try", { ...current(), points: points.value,
        db: db.value, rp: rp.value, precision: precision.value });
      showTry(result, answer);
    } catch (err) {
      clear(result).append(h("p", { class: "error", text: err.message }));
    } finally {
      run.disabled = false;
    }
  });
  return h("section", { class: "try", id: "try" },
    h("h3", { text: "Try it" }),
    h("p", { class: "muted", text: "Runs the script above on these points in the daemon: nothing is stored, no alert is sent." }),
    points,
    h("div", { class: "form-row" }, h("label", { class: "field" }, "Database", db),
      h("label", { class: "field" }, "Retention policy", rp), h("label", { class: "field" }, "Precision", precision), run),
    result);
}

function seriesTable(series) {
  const cols = series.columns || [];
  return h("div", { class: "series" },
    h("div", { class: "series-name" }, series.name || "", " ",
      h("span", { class: "muted", text: Object.entries(series.tags || {}).map(([k, v]) => `${k}=${v}`).join(",") })),
    h("div", { class: "scroll" }, h("table", { class: "list compact" },
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", { text: c })))),
      h("tbody", {}, (series.values || []).map((row) => h("tr", {}, row.map((v) => h("td", { text: v === null ? "" : String(v) }))))))));
}

function showTry(result, answer) {
  clear(result);
  if ((answer.errors || []).length) {
    result.append(h("ul", { id: "try-errors", class: "errors" }, answer.errors.map((e) =>
      h("li", { "data-line": e.line || 0 }, e.line ? `line ${e.line}${e.column ? ", column " + e.column : ""}: ` : "", e.message))));
  }
  const nodes = answer.nodes || [];
  if (!nodes.length) return;
  const graphBox = h("div", { class: "graph-box small", id: "try-graph" });
  result.append(graphBox);
  const drawn = drawGraph(graphBox, { nodes: nodes.map((n) => ({ id: n.id, attrs: {} })),
                                      edges: (answer.edges || []).map((e) => ({ ...e, attrs: {} })) });
  drawn.update(Object.fromEntries(nodes.map((n) => [n.id, n])), []);
  const outputs = h("div", { id: "try-output" });
  for (const n of nodes) {
    const items = n.output || [];
    const alerts = n.alerts || [];
    outputs.append(h("details", { class: "node-output", "data-node": n.id, open: alerts.length > 0 || (items.length > 0 && !["stream", "from"].includes(n.kind)) },
      h("summary", {}, h("span", { class: "mono", text: n.id }), ` · in ${n.collected ?? 0} · out ${n.emitted ?? 0}`,
        n.errors ? h("span", { class: "error", text: ` · ${n.errors} errors` }) : null,
        n.truncated ? h("span", { class: "muted", text: " · output cut" }) : null),
      items.map(seriesTable),
      alerts.length ? h("ul", { class: "alerts" }, alerts.map((a) => h("li", { class: "alert-event", "data-level": a.level },
        h("span", { class: "level level-" + String(a.level || "").toLowerCase(), text: a.level }), " ",
        a.message || a.id || "", " ", h("span", { class: "muted", text: a.time || "" })))) : null));
  }
  result.append(outputs);
}
