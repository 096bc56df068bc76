// A task's graph: parsed from the DOT the API gives, laid out in layers (sources at the
// top, each node one layer below its deepest parent, the order inside a layer settled by
// averaging the neighbours' positions), drawn as SVG, and updated in place with the
// per-node counts and a throughput sparkline.

import { h, clear, fmtNumber, fmtNanos } from "./dom.js";

const W = 190, H_FULL = 84, H_SMALL = 40, GAP_X = 28, GAP_Y = 44, PAD = 12, SPARK = 16, SPARK_W = 80;

export function parseDot(dot) {
  const nodes = new Map(), edges = [];
  const node = (id) => {
    if (!nodes.has(id)) nodes.set(id, { id, attrs: {} });
    return nodes.get(id);
  };
  const attrs = (text) => {
    const out = {};
    for (const m of (text || "").matchAll(/([\w.]+)\s*=\s*"((?:[^"\\]|\\.)*)"/g)) out[m[1]] = m[2];
    return out;
  };
  for (const raw of String(dot || "").split("\n")) {
    const line = raw.trim();
    let m = line.match(/^"?([\w.-]+)"?\s*->\s*"?([\w.-]+)"?\s*(?:\[(.*)\])?\s*;?$/);
    if (m) {
      node(m[1]); node(m[2]);
      edges.push({ from: m[1], to: m[2], attrs: attrs(m[3]) });
      continue;
    }
    m = line.match(/^"?([\w.-]+)"?\s*\[(.*)\]\s*;?$/);
    if (m && m[1] !== "graph" && m[1] !== "node" && m[1] !== "edge") node(m[1]).attrs = attrs(m[2]);
  }
  return { nodes: [...nodes.values()], edges };
}

// The kind of a node from its DOT name: "window2" -> "window".
export function kindOf(id) { return id.replace(/\d+$/, ""); }

// The number Kapacitor gives a node in its pipeline ("from2" -> 2): ties go in script order.
const serial = (id) => Number((id.match(/\d+$/) || ["0"])[0]);

export function layout(graph, H = H_FULL) {
  const parents = new Map(graph.nodes.map((n) => [n.id, []]));
  const children = new Map(graph.nodes.map((n) => [n.id, []]));
  for (const e of graph.edges) {
    if (!parents.has(e.to) || !children.has(e.from)) continue;
    parents.get(e.to).push(e.from);
    children.get(e.from).push(e.to);
  }
  const depth = new Map();
  const visiting = new Set();
  const depthOf = (id) => {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id)) return 0; // a cycle cannot come from a pipeline; be safe anyway
    visiting.add(id);
    const d = Math.max(-1, ...parents.get(id).map(depthOf)) + 1;
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  graph.nodes.forEach((n) => depthOf(n.id));
  const layers = [];
  for (const n of graph.nodes) (layers[depth.get(n.id)] ||= []).push(n.id);
  layers.forEach((layer) => layer.sort((a, b) => serial(a) - serial(b)));
  const pos = new Map();
  const order = () => layers.forEach((layer) => layer.forEach((id, i) => pos.set(id, i)));
  order();
  const mean = (ids) => ids.length ? ids.reduce((s, id) => s + pos.get(id), 0) / ids.length : null;
  for (let sweep = 0; sweep < 4; sweep++) {
    const down = sweep % 2 === 0;
    const seq = down ? layers.slice(1) : layers.slice(0, -1).reverse();
    for (const layer of seq) {
      const key = new Map(layer.map((id) => [id, mean(down ? parents.get(id) : children.get(id)) ?? pos.get(id)]));
      layer.sort((a, b) => key.get(a) - key.get(b) || serial(a) - serial(b));
      order();
    }
  }
  const widest = Math.max(1, ...layers.map((l) => l.length));
  const width = widest * W + (widest - 1) * GAP_X + 2 * PAD;
  const at = new Map();
  layers.forEach((layer, d) => {
    const span = layer.length * W + (layer.length - 1) * GAP_X;
    const x0 = (width - span) / 2;
    layer.forEach((id, i) => at.set(id, { x: x0 + i * (W + GAP_X), y: PAD + d * (H + GAP_Y) }));
  });
  return { at, width, height: layers.length * H + (layers.length - 1) * GAP_Y + 2 * PAD };
}

function edgePath(a, b, H) {
  const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y - 4;
  const my = (y1 + y2) / 2;
  return `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`;
}

let drawn = 0;

// Draws the graph into `container`; returns { update(nodeStats, edges), svg }.
export function drawGraph(container, graph, { counts = true, positions = {} } = {}) {
  clear(container);
  if (!graph.nodes.length) {
    container.append(h("p", { class: "muted", text: "no graph" }));
    return { update() {}, svg: null };
  }
  const H = counts ? H_FULL : H_SMALL;
  const { at, width, height } = layout(graph, H);
  const arrow = `arrow-${++drawn}`;  // each graph its own marker: ids are page-wide
  const svg = h("svg:svg", { viewBox: `0 0 ${width} ${height}`, width, height,
                             class: "graph", role: "img", "aria-label": "task graph" });
  svg.append(h("svg:defs", {}, h("svg:marker", { id: arrow, viewBox: "0 0 10 10", refX: 9, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
  h("svg:path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))));
  const edgeLabels = new Map();
  for (const e of graph.edges) {
    const a = at.get(e.from), b = at.get(e.to);
    if (!a || !b) continue;
    svg.append(h("svg:path", { d: edgePath(a, b, H), class: "edge", "marker-end": `url(#${arrow})`,
                               "data-edge": `${e.from}->${e.to}` }));
    const label = h("svg:text", { x: (a.x + b.x) / 2 + W / 2 + 6, y: (a.y + H + b.y) / 2 + 4,
                                  class: "edge-label" }, e.attrs.processed ?? "");
    edgeLabels.set(`${e.from}->${e.to}`, label);
    svg.append(label);
  }
  const cells = new Map();
  for (const n of graph.nodes) {
    const p = at.get(n.id);
    const where = positions[n.id];
    const g = h("svg:g", { class: "node kind-" + kindOf(n.id), "data-node": n.id,
                           transform: `translate(${p.x},${p.y})` });
    g.append(h("svg:rect", { width: W, height: H, rx: 6, class: "box" }));
    g.append(h("svg:text", { x: 8, y: 17, class: "node-name" }, n.id));
    if (where && where.line) g.append(h("svg:text", { x: 8, y: 33, class: "node-pos" }, `line ${where.line}, column ${where.column}`));
    const cell = {};
    if (counts) {
      const row = (y, pairs) => pairs.forEach(([label, cls, x]) => {
        const t = h("svg:text", { x, y, class: "count " + cls }, label + " ");
        const v = h("svg:tspan", { class: "v" }, "–");
        t.append(v);
        g.append(t);
        cell[cls] = v;
      });
      row(36, [["in", "count-collected", 8], ["out", "count-emitted", 98]]);
      row(52, [["err", "count-errors", 8], ["card", "count-card", 98]]);
      row(68, [["exec", "count-exec", 8]]);
      cell.spark = h("svg:polyline", { class: "spark", points: "" });
      g.append(h("svg:g", { transform: `translate(${W - 8 - SPARK_W},${H - 8 - SPARK})` },
        h("svg:line", { x1: 0, y1: SPARK, x2: SPARK_W, y2: SPARK, class: "spark-base" }), cell.spark));
    }
    if (n.attrs && n.attrs.error) g.classList.add("failed");
    g.append(h("svg:title", {}, n.id));
    cells.set(n.id, { g, cell, history: [] });
    svg.append(g);
  }
  container.append(svg);

  return {
    svg,
    update(stats, edges) {
      for (const [id, { g, cell, history }] of cells) {
        const s = (stats || {})[id];
        if (!s || !counts) continue;
        cell["count-collected"].textContent = fmtNumber(s.collected ?? 0);
        cell["count-emitted"].textContent = fmtNumber(s.emitted ?? 0);
        cell["count-errors"].textContent = fmtNumber(s.errors ?? 0);
        cell["count-card"].textContent = fmtNumber(s.working_cardinality ?? 0);
        cell["count-exec"].textContent = fmtNanos(s.avg_exec_time_ns ?? 0);
        g.classList.toggle("has-errors", (s.errors ?? 0) > 0);
        history.push(s.collected ?? 0);
        if (history.length > 31) history.shift();
        const rates = history.slice(1).map((v, i) => Math.max(0, v - history[i]));
        const top = Math.max(1, ...rates);
        // newest at the right edge, one step per poll
        const x0 = SPARK_W - (rates.length - 1) * SPARK_W / 29;
        cell.spark.setAttribute("points", rates.map((r, i) =>
          `${(x0 + i * SPARK_W / 29).toFixed(1)},${(SPARK - r / top * SPARK).toFixed(1)}`).join(" "));
      }
      for (const e of edges || []) {
        const label = edgeLabels.get(`${e.from}->${e.to}`);
        if (label && e.attrs.processed !== undefined) label.textContent = e.attrs.processed;
      }
    },
  };
}
