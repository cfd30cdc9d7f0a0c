// The trace waterfall: spans as nested rows of time bars. Only the rows on screen exist in the
// DOM (virtualised), so a 10,000-span trace opens as fast as a small one and scrolls smoothly.
import { h, names } from "/static/dom.js";
import { duration } from "/static/format.js";
import { whereButton } from "/static/where.js";

const ROW = 26;
const OVERSCAN = 12;
const INDENT = 14;
const MAX_INDENT_LEVELS = 16;

/** Order spans depth-first under their parents; a span whose parent is missing is a root. */
export function layout(spans, nowNs) {
  const ids = new Set(spans.map((s) => s.span_id));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    const parent = s.parent_span_id;
    if (parent && parent !== s.span_id && ids.has(parent)) {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(s);
    } else roots.push(s);
  }
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const s of spans) {
    t0 = Math.min(t0, s.start_ns - queueWaitNs(s));
    t1 = Math.max(t1, s.end_ns ?? nowNs, s.start_ns);
    for (const e of s.events) if (e.name === names.EVENT_RETRY) t1 = Math.max(t1, e.time_ns + (e.attributes[names.RETRY_DELAY_S] || 0) * 1e9);
  }
  const rows = [];
  const seen = new Set();
  const stack = roots.slice().reverse().map((s) => [s, 0]);
  while (stack.length) {
    const [span, depth] = stack.pop();
    if (seen.has(span.span_id)) continue; // a malformed parent cycle must not loop forever
    seen.add(span.span_id);
    rows.push({ span, depth });
    const kids = children.get(span.span_id);
    if (kids) for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1]);
  }
  return { rows, t0, t1: Math.max(t1, t0 + 1) };
}

/** A duration in seconds as nanoseconds; 0 when absent. */
const ns = (v) => (typeof v === "number" && v > 0 ? v * 1e9 : 0);

/** How long the call waited inside its span for a concurrency slot, before its work began. */
const slotWaitNs = (span) => ns(span.attributes[names.QUEUE_WAIT_S]);

/** How long the item this span handles waited in an AsyncQueue before the span began (link attribute). */
function queueWaitNs(span) {
  let wait = 0;
  for (const link of span.links) wait = Math.max(wait, ns(link.attributes?.[names.QUEUE_WAIT_S]));
  return wait;
}

export class Waterfall {
  constructor({ viewport, spacer, rows, axis, onSelect }) {
    Object.assign(this, { viewport, spacer, rowsNode: rows, axis, onSelect });
    this.model = { rows: [], t0: 0, t1: 1 };
    this.selected = -1;
    this.frame = 0;
    viewport.addEventListener("scroll", () => this.schedule(), { passive: true });
    viewport.addEventListener("keydown", (e) => this.key(e));
    rows.addEventListener("click", (e) => {
      const row = e.target.closest(".wf-row");
      if (row) this.select(Number(row.dataset.index), { scroll: false });
    });
    new ResizeObserver(() => this.schedule()).observe(viewport);
  }

  /** Replace the spans; keep the selected span (by id) and the scroll position. */
  setSpans(spans, nowNs) {
    const selectedId = this.selectedSpan()?.span_id;
    this.model = layout(spans, nowNs);
    this.index = new Map(this.model.rows.map((r, i) => [r.span.span_id, i]));
    this.spacer.style.height = `${this.model.rows.length * ROW}px`;
    this.viewport.style.setProperty("--wf-rows", this.model.rows.length);
    this.selected = selectedId && this.index.has(selectedId) ? this.index.get(selectedId) : -1;
    this.renderAxis();
    this.render();
  }

  selectedSpan() {
    return this.model.rows[this.selected]?.span;
  }

  /** Select the span with this id (from a link or the URL); false if the trace lacks it. */
  selectId(spanId) {
    if (!this.index?.has(spanId)) return false;
    this.select(this.index.get(spanId), { scroll: true, center: true });
    return true;
  }

  /** Select row `i`; `remember` tells the listener it was the person's choice, worth a URL. */
  select(i, { scroll = true, center = false, remember = true } = {}) {
    if (i < 0 || i >= this.model.rows.length) return;
    this.selected = i;
    if (scroll) {
      const top = i * ROW;
      const view = this.viewport;
      if (center) view.scrollTop = top - view.clientHeight / 2 + ROW / 2;
      else if (top < view.scrollTop) view.scrollTop = top;
      else if (top + ROW > view.scrollTop + view.clientHeight) view.scrollTop = top + ROW - view.clientHeight;
    }
    this.render();
    this.onSelect(this.model.rows[i].span, remember);
  }

  key(e) {
    const page = Math.max(1, Math.floor(this.viewport.clientHeight / ROW) - 1);
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page, j: 1, k: -1 };
    const last = this.model.rows.length - 1;
    let next = null;
    if (e.key in moves) next = Math.min(last, Math.max(0, (this.selected < 0 ? -1 : this.selected) + moves[e.key]));
    else if (e.key === "Home") next = 0;
    else if (e.key === "End") next = last;
    if (next === null || last < 0) return;
    e.preventDefault();
    this.select(next);
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  renderAxis() {
    const { t0, t1 } = this.model;
    this.axis.replaceChildren(...[0, 0.25, 0.5, 0.75].map((f) =>
      h("span", { style: `left:${f * 100}%` }, f ? duration(((t1 - t0) * f) / 1e6) : "0")));
  }

  render() {
    const total = this.model.rows.length;
    const first = Math.max(0, Math.floor(this.viewport.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(total, Math.ceil((this.viewport.scrollTop + this.viewport.clientHeight) / ROW) + OVERSCAN);
    const nodes = [];
    for (let i = first; i < last; i++) nodes.push(this.row(i));
    this.rowsNode.style.transform = `translateY(${first * ROW}px)`;
    this.rowsNode.replaceChildren(...nodes);
    if (this.selected >= first && this.selected < last) this.viewport.setAttribute("aria-activedescendant", `wf-row-${this.selected}`);
    else this.viewport.removeAttribute("aria-activedescendant");
  }

  row(i) {
    const { span, depth } = this.model.rows[i];
    const { t0, t1 } = this.model;
    const pct = (ns) => `${(((ns - t0) / (t1 - t0)) * 100).toFixed(3)}%`;
    const outcome = span.state === "started" ? "inflight" : span.outcome || "ok";
    const end = span.end_ns ?? t1;
    const track = h("div", { class: "wf-track" });
    // Waiting is shaded before the work it delayed: for a queued item before the span, for a slot inside it.
    const queued = queueWaitNs(span);
    const slot = Math.min(slotWaitNs(span), Math.max(end - span.start_ns, 0));
    const shade = (from, wait, what) => track.append(h("div", {
      class: "wf-wait", style: `left:${pct(from)};width:${pct(t0 + wait)}`, title: `${what} ${duration(wait / 1e6)}`, "data-wait-ms": wait / 1e6,
    }));
    if (queued) shade(span.start_ns - queued, queued, "waited in the queue");
    if (slot) shade(span.start_ns, slot, "waited for a slot");
    const workStart = span.start_ns + slot;
    track.append(h("div", { class: `wf-bar ${outcome}`, "data-outcome": outcome, style: `left:${pct(workStart)};width:${pct(t0 + Math.max(end - workStart, 0))}` }));
    for (const e of span.events) {
      if (e.name !== names.EVENT_RETRY) continue;
      const delay = (e.attributes[names.RETRY_DELAY_S] || 0) * 1e9;
      const why = `retry after attempt ${e.attributes[names.ATTEMPT] ?? "?"}: ${e.attributes[names.EXCEPTION_TYPE] || "error"}, waited ${duration(delay / 1e6)}`;
      if (delay) track.append(h("div", { class: "wf-gap", style: `left:${pct(e.time_ns)};width:${pct(t0 + delay)}`, title: why }));
      track.append(h("div", { class: "wf-retry", style: `left:${pct(e.time_ns)}`, title: why, "data-attempt": e.attributes[names.ATTEMPT] ?? "" }));
    }
    const endFrac = (end - t0) / (t1 - t0);
    const label = span.state === "started" ? "running" : duration(span.duration_ms);
    // The duration goes after the bar, or inside its end when the bar reaches the right edge.
    track.append(h("span", { class: endFrac < 0.86 ? "wf-dur" : "wf-dur inside", style: `left:${pct(end)}` }, label));
    const indent = Math.min(depth, MAX_INDENT_LEVELS) * INDENT;
    const name = h("div", { class: "wf-name", style: `padding-left:${10 + indent}px`, title: span.name },
      h("span", { class: `dot swatch ${outcome}` }),
      h("span", { class: "label" }, span.name), whereNow(span));
    return h("div", {
      class: "wf-row", id: `wf-row-${i}`, role: "treeitem", "aria-level": depth + 1,
      "aria-selected": i === this.selected ? "true" : "false", "data-index": i, "data-depth": depth,
      "data-span-id": span.span_id, "data-outcome": outcome,
    }, name, track);
  }
}

/** "Where is it now?" on a running span: its process answers with the await chain, if it allows. */
function whereNow(span) {
  return span.state === "started" && span.process_id ? whereButton(span.process_id, { span_id: span.span_id }) : null;
}
