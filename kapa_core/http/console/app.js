// The console's shell: who is logged in and what they may do, the navigation, and the
// hash router that shows one view at a time (each view returns its own clean-up, which
// stops its polling when another view opens).

import * as api from "./api.js";
import { h, $, clear, notice } from "./dom.js";
import { tasksView, taskView } from "./tasks.js";
import { editorView } from "./editview.js";
import { topicsView, topicView } from "./alerts.js";
import { daemonView } from "./daemon.js";
import { session, can } from "./session.js";


const ROUTES = [
  [/^#\/tasks\/([^/]+)$/, (m) => taskView(decodeURIComponent(m[1])), "tasks", "api"],
  [/^#\/tasks$/, () => tasksView(), "tasks", "api"],
  [/^#\/editor\/(task|template)\/([^/]+)$/, (m) => editorView(m[1], decodeURIComponent(m[2])), "editor", "api"],
  [/^#\/editor$/, () => editorView(null, null), "editor", "api"],
  [/^#\/alerts\/([^/]+)$/, (m) => topicView(decodeURIComponent(m[1])), "alerts", "api"],
  [/^#\/alerts$/, () => topicsView(), "alerts", "api"],
  [/^#\/daemon$/, () => daemonView(), "daemon", null],
];

let cleanup = null;
let routing = 0;

function firstAllowed() {
  if (can("api")) return "#/tasks";
  return "#/daemon";
}

// Stop the view on show (its polling, its log stream) and empty the page. A view still
// building keeps its own detached container, so nothing it adds later reaches the page.
function stopView() {
  routing++;
  $("#notice").hidden = true;  // a message of the view left behind goes with it
  if (cleanup) { try { cleanup(); } catch (_) { /* the old view is gone anyway */ } cleanup = null; }
  return clear($("#main"));
}

async function route() {
  const main = stopView();
  const mine = routing;
  if (!session.me) return;
  const hash = location.hash || firstAllowed();
  for (const [re, make, nav, permission] of ROUTES) {
    const m = hash.match(re);
    if (!m) continue;
    for (const link of document.querySelectorAll("nav a[data-nav]")) {
      link.classList.toggle("active", link.dataset.nav === nav);
    }
    if (permission && !can(permission)) {
      main.append(h("p", { class: "denied", text: `User ${session.me.username} does not have the "${permission}" permission this page needs.` }));
      return;
    }
    const view = h("div", { class: "view" });
    main.append(view);
    try {
      const done = await make(m)(view) || null;
      if (mine !== routing) { if (done) done(); } else cleanup = done;
    } catch (err) {
      view.append(h("p", { class: "error", text: err.message }));
    }
    return;
  }
  location.hash = firstAllowed();
}

function showLogin(message) {
  session.me = null;
  const main = stopView();
  $("#nav").hidden = true;
  $("#user").textContent = "";
  const error = h("p", { class: "error", id: "login-error", text: message || "" });
  const form = h("form", { id: "login", class: "login" },
    h("h2", { text: "Log in to kapa-core" }),
    h("label", {}, "Username", h("input", { name: "username", autocomplete: "username", required: true })),
    h("label", {}, "Password", h("input", { name: "password", type: "password", autocomplete: "current-password" })),
    h("button", { type: "submit", class: "primary", text: "Log in" }), error);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    api.auth.login(form.username.value, form.password.value);
    await start();
  });
  main.append(form);
  form.username.focus();
}

async function start() {
  try {
    session.me = await api.get("/me");
  } catch (err) {
    const tried = Boolean(api.auth.header);
    api.auth.logout();
    showLogin(err.status === 401 && !tried ? "" : err.message);
    return;
  }
  const me = session.me;
  if (me.auth && !me.authenticated) {
    session.me = null;
    showLogin("");
    return;
  }
  $("#nav").hidden = false;
  for (const link of document.querySelectorAll("nav a[data-nav]")) {
    const needs = link.dataset.needs;
    link.hidden = needs ? !can(needs) : false;
  }
  $("#user").textContent = "";
  if (me.auth) {
    $("#user").append(h("span", { id: "username", text: me.username }),
      h("button", { id: "logout", class: "link", text: "Log out", onclick: () => { api.auth.logout(); location.hash = ""; showLogin(""); } }));
  }
  await route();
}

api.setUnauthorizedHandler((message) => {
  if (session.me && session.me.auth) { api.auth.logout(); showLogin(message); }
});
window.addEventListener("hashchange", () => { if (session.me) route(); });
window.addEventListener("unhandledrejection", (ev) => {
  notice(ev.reason && ev.reason.message ? ev.reason.message : String(ev.reason), "error");
  ev.preventDefault();
});
start();
