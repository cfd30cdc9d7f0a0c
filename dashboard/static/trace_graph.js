// The trace graph, as Jaeger's: the span tree with the spans of one (service, name) under the
// same path merged into one node that counts them, sums their time and self time, and counts
// their failures. 10,000 calls of "step" under one parent are one node; at most MAX_NODES are drawn.
import { h, fill } from "/static/dom.js";
import { count, cut, duration } from "/static/format.js";
import { failed } from "/static/waterfall.js";

export const MAX_NODES = 1000;
const ROW = 58;
const INDENT = 26;
const MAX_INDENT_LEVELS = 24;
const BOX_W = 320;
const BOX_H = 46;

/**
 * Merge `rows` (waterfall.js `layout` rows, tree order) into nodes, in the merged tree's
 * depth-first order: `{ name, service, depth, parent, count, errors, total, self, spans }`, times
 * in ns, `spans` the merged spans in tree order. `self` maps a span to its self time; a span still
 * running lasts until `t1`.
 */
export function mergeTree(rows, self, t1) {
  const nodes = [];
  const nodeOf = new Int32Array(rows.length);
  const byKey = new Map();
  const children = [];
  rows.forEach(({ span, parent }, i) => {
    const up = parent < 0 ? -1 : nodeOf[parent];
    const key = `${up}\u0000${span.service ?? ""}\u0000${span.name}`;
    let n = byKey.get(key);
    if (n === undefined) {
      n = nodes.length;
      byKey.set(key, n);
      nodes.push({ name: span.name, service: span.service ?? null, parent: up, count: 0, errors: 0, total: 0, self: 0, spans: [] });
      children.push([]);
      if (up >= 0) children[up].push(n);
    }
    const node = nodes[n];
    node.count++;
    if (failed(span)) node.errors++;
    node.total += Math.max((span.end_ns ?? t1) - span.start_ns, 0);
    node.self += self.get(span) ?? 0;
    node.spans.push(span);
    nodeOf[i] = n;
  });
  // Depth-first from the roots, iteratively (a 10,000-deep chain is 10,000 nodes deep).
  const order = [];
  const newIndex = new Int32Array(nodes.length);
  const stack = nodes.flatMap((n, i) => (n.parent < 0 ? [[i, 0]] : [])).reverse();
  while (stack.length) {
    const [n, depth] = stack.pop();
    newIndex[n] = order.length;
    order.push({ ...nodes[n], depth });
    for (let k = children[n].length - 1; k >= 0; k--) stack.push([children[n][k], depth + 1]);
  }
  for (const node of order) node.parent = node.parent < 0 ? -1 : newIndex[node.parent];
  return order;
}

/** Draw `nodes` into `svg` as an outline tree; `onPick(node)` hears a click on a node. Returns how many were drawn. */
export function drawGraph(svg, nodes, onPick) {
  const shown = nodes.slice(0, MAX_NODES);
  const x = (node) => Math.min(node.depth, MAX_INDENT_LEVELS) * INDENT;
  const width = shown.reduce((m, n) => Math.max(m, x(n) + BOX_W + 2), BOX_W + 2);
  svg.setAttribute("width", width);
  svg.setAttribute("height", shown.length * ROW);
  svg.setAttribute("viewBox", `0 0 ${width} ${shown.length * ROW}`);
  const edges = shown.map((node, i) => {
    if (node.parent < 0) return null;
    const px = x(shown[node.parent]) + 12;
    const py = node.parent * ROW + BOX_H;
    return h("svg:path", { class: "tg-edge", d: `M${px},${py} V${i * ROW + BOX_H / 2} H${x(node)}` });
  });
  const boxes = shown.map((node, i) => {
    const failedOnes = node.errors ? ` · ${count(node.errors)} failed` : "";
    return h("svg:g", {
      class: node.errors ? "tg-node bad" : "tg-node", "data-node": i, tabindex: 0, role: "button",
      transform: `translate(${x(node)},${i * ROW})`, onclick: () => onPick(node),
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); onPick(node); } },
    },
    h("svg:title", {}, `${node.name}${node.service ? ` (${node.service})` : ""}: ${count(node.count)} span${node.count === 1 ? "" : "s"}; a click shows the first in the waterfall`),
    h("svg:rect", { width: BOX_W, height: BOX_H, rx: 5 }),
    h("svg:text", { x: 8, y: 17, class: "tg-name" }, cut(node.name, 34), h("svg:tspan", { class: "tg-count" }, ` ×${count(node.count)}`)),
    h("svg:text", { x: 8, y: 35, class: "tg-figures" },
      `${node.service ? `${cut(node.service, 14)} · ` : ""}total ${duration(node.total / 1e6)} · self ${duration(node.self / 1e6)}${failedOnes}`));
  });
  fill(svg, edges, boxes);
  return shown.length;
}

