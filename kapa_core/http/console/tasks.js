// Tasks: the list (status, dbrps, throughput; enable, disable, delete) and one task's
// page (its graph with live per-node counts, its error, its script).

import * as api from "./api.js";
import { h, clear, fmtNumber, confirmDialog, notice, poll, syncRows } from "./dom.js";
import { parseDot, drawGraph } from "./graph.js";
import { ScriptEditor } from "./editor.js";

const POLL_MS = 1000;

const dbrpText = (dbrps) => (dbrps || []).map((d) => `"${d.db}"."${d.rp}"`).join(", ");

// Asks first: disabling stops the task and drops its state (windows, alert levels);
// enabling starts it on the points that arrive from then on. False when not confirmed.
async function setStatus(id, status) {
  const question = status === "enabled"
    ? `Enable task "${id}"? It starts processing the points that arrive from now on.`
    : `Disable task "${id}"? It stops, and its windows and alert state are dropped.`;
  if (!await confirmDialog(question)) return false;
  await api.patch(`/tasks/${encodeURIComponent(id)}`, { status });
  notice(`task ${id} ${status}`);
  return true;
}

async function deleteTask(id) {
  if (!await confirmDialog(`Delete task "${id}"? Its definition and state are removed.`)) return false;
  await api.del(`/tasks/${encodeURIComponent(id)}`);
  notice(`task ${id} deleted`);
  return true;
}

function actions(task, refresh) {
  const enabled = task.status === "enabled";
  return h("td", { class: "actions" },
    h("button", { "data-action": enabled ? "disable" : "enable", text: enabled ? "Disable" : "Enable",
      onclick: async () => { if (await setStatus(task.id, enabled ? "disabled" : "enabled")) refresh(); } }),
    h("a", { class: "button", href: `#/editor/task/${encodeURIComponent(task.id)}`, "data-action": "edit", text: "Edit" }),
    h("button", { "data-action": "delete", class: "danger", text: "Delete",
      onclick: async () => { if (await deleteTask(task.id)) refresh(); } }));
}

export function tasksView() {
  return async (main) => {
    const body = h("tbody");
    const templates = h("tbody");
    main.append(
      h("div", { class: "bar" }, h("h2", { text: "Tasks" }),
        h("a", { class: "button primary", href: "#/editor", id: "new-task", text: "New task" })),
      h("div", { class: "scroll" }, h("table", { id: "task-list", class: "list" },
        h("thead", {}, h("tr", {}, ["ID", "Type", "Status", "Executing", "DBRPs", "Throughput", ""].map((t) => h("th", { text: t })))),
        body)),
      h("h2", { text: "Templates" }),
      h("div", { class: "scroll" }, h("table", { id: "template-list", class: "list" },
        h("thead", {}, h("tr", {}, ["ID", "Type", "Vars", ""].map((t) => h("th", { text: t })))), templates)));
    const refresh = async () => {
      const [{ tasks }, { templates: tpl }] = await Promise.all([
        api.get("/tasks"),
        api.get("/templates?fields=type&fields=vars"),
      ]);
      syncRows(body, tasks.map((t) => h("tr", { "data-key": t.id, "data-task": t.id, class: t.error ? "failed" : "" },
        h("td", {}, h("a", { href: `#/tasks/${encodeURIComponent(t.id)}`, text: t.id }),
          t.error ? h("div", { class: "error small", text: t.error }) : null),
        h("td", { class: "type", text: t.type }),
        h("td", { class: "status " + t.status, text: t.status }),
        h("td", { class: "executing", text: t.executing ? "yes" : "no" }),
        h("td", { class: "dbrps", text: dbrpText(t.dbrps) }),
        h("td", { class: "throughput num", text: fmtNumber(t.stats?.["task-stats"]?.throughput ?? 0) + " pts/s" }),
        actions(t, refresh))));
      if (!tasks.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "muted", text: "No tasks yet: create one with New task." })));
      syncRows(templates, tpl.map((t) => h("tr", { "data-key": t.id, "data-template": t.id },
        h("td", { text: t.id }), h("td", { text: t.type }),
        h("td", { text: Object.keys(t.vars || {}).join(", ") }),
        h("td", { class: "actions" },
          h("a", { class: "button", href: `#/editor/template/${encodeURIComponent(t.id)}`, text: "Edit" }),
          h("button", { class: "danger", text: "Delete", onclick: async () => {
            if (!await confirmDialog(`Delete template "${t.id}"?`)) return;
            await api.del(`/templates/${encodeURIComponent(t.id)}`);
            refresh();
          } })))));
      if (!tpl.length) templates.append(h("tr", {}, h("td", { colspan: 4, class: "muted", text: "No templates." })));
    };
    return poll(refresh, 2000);
  };
}

export function taskView(id) {
  return async (main) => {
    const path = `/tasks/${encodeURIComponent(id)}`;
    let task = await api.get(path);
    const status = h("span", { id: "task-status", class: "status" });
    const error = h("p", { id: "task-error", class: "error", hidden: true });
    const graphBox = h("div", { id: "task-graph", class: "graph-box" });
    const throughput = h("span", { id: "task-throughput", class: "muted" });
    const buttons = h("span", { class: "actions" });
    const script = new ScriptEditor("task-script", { value: task.script });
    script.readOnly = true;
    main.append(
      h("div", { class: "bar" }, h("h2", {}, "Task ", h("span", { id: "task-title", text: id })), status, throughput, buttons),
      error,
      h("p", { class: "muted", text: `${task.type} · ${dbrpText(task.dbrps)}${task["template-id"] ? " · template " + task["template-id"] : ""}` }),
      graphBox,
      h("details", { class: "script" }, h("summary", { text: "TICKscript" }), script.el));
    let drawn = null, shape = "";
    const render = () => {
      status.textContent = task.status + (task.executing ? " · executing" : "");
      status.className = "status " + task.status;
      throughput.textContent = fmtNumber(task.stats?.["task-stats"]?.throughput ?? 0) + " points/s";
      error.hidden = !task.error;
      error.textContent = task.error ? "Error: " + task.error : "";
      const graph = parseDot(task.dot);
      const key = graph.nodes.map((n) => n.id).join() + "|" + graph.edges.map((e) => e.from + ">" + e.to).join();
      if (key !== shape) { drawn = drawGraph(graphBox, graph); shape = key; }
      drawn.update(task.stats?.["node-stats"], graph.edges);
      const enabled = task.status === "enabled";
      if (buttons.dataset.status === task.status) return;  // unchanged: keep the buttons
      buttons.dataset.status = task.status;
      clear(buttons).append(
        h("button", { "data-action": enabled ? "disable" : "enable", text: enabled ? "Disable" : "Enable",
          onclick: async () => {
            if (!await setStatus(id, enabled ? "disabled" : "enabled")) return;
            task = await api.get(path);
            render();
          } }),
        h("a", { class: "button", href: `#/editor/task/${encodeURIComponent(id)}`, text: "Edit" }),
        h("button", { "data-action": "delete", class: "danger", text: "Delete",
          onclick: async () => { if (await deleteTask(id)) location.hash = "#/tasks"; } }));
    };
    render();
    let stop = null;
    stop = poll(async () => {
      try {
        task = await api.get(path);
      } catch (err) {
        if (err.status !== 404) throw err;
        stop();  // deleted meanwhile: say so once, stop asking
        error.hidden = false;
        error.textContent = `Task ${id} no longer exists.`;
        return;
      }
      render();
    }, POLL_MS);
    return () => stop();
  };
}
