// The flamegraph of one trace, as Jaeger's: the span tree as an icicle over time, each span a row
// below its parent, names in the boxes; children that overlap in time (async work side by side)
// take a lane each instead of hiding one another. A click on a box zooms to it (its time fills the
// width, it is the top row); the trail above goes back. Work is bounded whatever the trace's
// size: a box narrower than a pixel, or more than MAX_LEVELS rows below the top, is not drawn, and
// at most MAX_BOXES are, the widest first.
import { h, fill } from "/static/dom.js";
import { cut, duration } from "/static/format.js";

const ROW = 20;
const MAX_LEVELS = 500;
const MAX_BOXES = 3000;
const TRAIL = 6; // ancestors named in the trail; earlier ones are an ellipsis
const CHAR = 6.6; // px per character of the boxes' 11px text, to cut names to their box

/**
 * The row of each span of rows[first..last) (waterfall.js `layout` rows, tree order: the whole
 * trace, or one span's subtree), counted from the top: one below its parent, plus the height of
 * the lanes before its own. Children (and the trace's roots) go in lanes by start time, each into
 * the lane that freed first if it is free, else a new one; a lane is as tall as its tallest
 * subtree. O(n log n), no recursion.
 */
export function stackRows(rows, first, last, t1) {
  const n = last - first;
  const end = (k) => rows[first + k].span.end_ns ?? t1;
  const start = (k) => rows[first + k].span.start_ns;
  const up = (k) => Math.max(rows[first + k].parent - first, -1); // -1: the top of the range
  const kids = new Map(); // local index -> local indexes of its children
  for (let k = 0; k < n; k++) {
    if (!kids.has(up(k))) kids.set(up(k), []);
    kids.get(up(k)).push(k);
  }
  const height = new Int32Array(n).fill(1);
  const lane = new Int32Array(n);
  const laneTop = new Map(); // local index -> its lanes' first rows, below it
  for (let k = n - 1; k >= -1; k--) { // children before their parents, the top last
    const list = kids.get(k);
    if (!list) continue;
    list.sort((a, b) => start(a) - start(b));
    const free = []; // a min-heap of [end, lane]: the lane that frees first on top
    const tall = [];
    for (const c of list) {
      if (free.length && free[0][0] <= start(c)) lane[c] = pop(free)[1];
      else lane[c] = tall.push(0) - 1;
      push(free, [end(c), lane[c]]);
      tall[lane[c]] = Math.max(tall[lane[c]], height[c]);
    }
    const tops = new Int32Array(tall.length);
    for (let l = 1; l < tall.length; l++) tops[l] = tops[l - 1] + tall[l - 1];
    laneTop.set(k, tops);
    if (k >= 0) height[k] = 1 + tops[tall.length - 1] + tall[tall.length - 1];
  }
  const row = new Int32Array(n);
  for (let k = 0; k < n; k++) row[k] = (up(k) < 0 ? 0 : row[up(k)] + 1) + laneTop.get(up(k))[lane[k]];
  return row;
}

function push(heap, item) {
  heap.push(item);
  for (let i = heap.length - 1; i > 0;) {
    const up = (i - 1) >> 1;
    if (heap[up][0] <= heap[i][0]) break;
    [heap[up], heap[i]] = [heap[i], heap[up]];
    i = up;
  }
}

function pop(heap) {
  const top = heap[0];
  const last = heap.pop();
  if (heap.length) {
    heap[0] = last;
    for (let i = 0; ;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && heap[l][0] < heap[m][0]) m = l;
      if (r < heap.length && heap[r][0] < heap[m][0]) m = r;
      if (m === i) break;
      [heap[m], heap[i]] = [heap[i], heap[m]];
      i = m;
    }
  }
  return top;
}

export class Flamegraph {
  /** `svg` is drawn in, `trail` holds the way back, `note` says what was left out; `onPick(span)` hears a click. */
  constructor({ svg, trail, note, onPick }) {
    Object.assign(this, { svg, trail, note, onPick });
    this.rows = [];
    this.focusId = null; // span id of the box zoomed to, null for the whole trace
    svg.addEventListener("click", (e) => {
      const box = e.target.closest("[data-index]");
      if (!box) return;
      const row = this.rows[Number(box.dataset.index)];
      this.focusId = row.span.span_id;
      this.draw();
      this.onPick(row.span);
    });
  }

  /** The spans (waterfall.js `layout` rows, tree order) and the trace's time span. */
  setRows(rows, t0, t1) {
    Object.assign(this, { rows, t0, t1 });
  }

  /** Zoom to the span with this id (null: the whole trace). */
  focus(spanId) {
    this.focusId = spanId;
    this.draw();
  }

  draw() {
    const { rows } = this;
    let top = rows.findIndex((r) => r.span.span_id === this.focusId);
    if (top < 0) this.focusId = null;
    const first = Math.max(top, 0);
    const last = top < 0 ? rows.length : top + rows[top].size + 1;
    const from = top < 0 ? this.t0 : rows[top].span.start_ns;
    const to = top < 0 ? this.t1 : Math.max(rows[top].span.end_ns ?? this.t1, from + 1);
    const width = this.svg.clientWidth || 800;
    const scale = width / (to - from);
    let boxes = [];
    let narrow = 0;
    let deep = 0;
    const stacked = stackRows(rows, first, last, this.t1);
    for (let i = first; i < last; i++) {
      const { span } = rows[i];
      const level = stacked[i - first];
      if (level >= MAX_LEVELS) { deep++; continue; }
      const x0 = Math.max((span.start_ns - from) * scale, 0);
      const x1 = Math.min(((span.end_ns ?? this.t1) - from) * scale, width);
      if (x1 - x0 < 1) { narrow++; continue; }
      boxes.push({ i, level, x0, x1 });
    }
    const over = Math.max(boxes.length - MAX_BOXES, 0);
    if (over) boxes = boxes.sort((a, b) => (b.x1 - b.x0) - (a.x1 - a.x0)).slice(0, MAX_BOXES);
    const levels = boxes.reduce((m, b) => Math.max(m, b.level + 1), 1);
    this.svg.setAttribute("height", levels * ROW);
    this.svg.setAttribute("viewBox", `0 0 ${width} ${levels * ROW}`);
    fill(this.svg, boxes.map((b) => this.box(b)));
    this.svg.dataset.boxes = boxes.length;
    this.drawTrail(top);
    const n = (x) => x.toLocaleString();
    const left = [narrow && `${n(narrow)} narrower than a pixel`, deep && `${n(deep)} more than ${MAX_LEVELS} rows down`,
      over && `${n(over)} beyond the widest ${n(MAX_BOXES)}`].filter(Boolean);
    this.note.textContent = `${n(boxes.length)} span${boxes.length === 1 ? "" : "s"} drawn${left.length ? `; not drawn: ${left.join(", ")} (click a box to zoom in)` : ""}.`
      + " A box's width is its time; a click zooms to it and shows it in the detail.";
  }

  box({ i, level, x0, x1 }) {
    const { span } = this.rows[i];
    const outcome = span.state === "started" ? "inflight" : span.outcome || "ok";
    const w = x1 - x0;
    const fits = Math.floor((w - 6) / CHAR);
    const label = fits >= 3 ? cut(span.name, fits) : null;
    const took = span.state === "started" ? "running" : duration(span.duration_ms);
    return h("svg:g", { class: `fg-box ${outcome}`, "data-index": i, "data-span-id": span.span_id, transform: `translate(${x0.toFixed(1)},${level * ROW})` },
      h("svg:title", {}, `${span.name}: ${took}${span.service ? ` · ${span.service}` : ""}`),
      h("svg:rect", { width: Math.max(w - 1, 1).toFixed(1), height: ROW - 2, rx: 2 }),
      label && h("svg:text", { x: 4, y: ROW / 2 + 3 }, label));
  }

  /** The way back: the whole trace, then the zoomed box's ancestors and itself. */
  drawTrail(top) {
    const crumbs = [];
    for (let p = top; p >= 0 && crumbs.length <= TRAIL; p = this.rows[p].parent) crumbs.unshift(p);
    const more = crumbs.length > TRAIL;
    if (more) crumbs.shift();
    const button = (label, id, current) => h("button", {
      type: "button", "aria-current": current ? "true" : null, onclick: () => this.focus(id),
      title: current ? "The span zoomed to" : "Zoom out to this",
    }, label);
    fill(this.trail, button("Whole trace", null, top < 0), more ? h("span", { class: "muted" }, "…") : null,
      crumbs.map((p) => button(this.rows[p].span.name, this.rows[p].span.span_id, p === top)));
  }
}
