// The trace waterfall: spans as nested rows of time bars. Only the rows on screen exist in the
// DOM (virtualised), so a 10,000-span trace opens as fast as a small one and scrolls smoothly.
import { h, names } from "/static/dom.js";
import { duration } from "/static/format.js";
import { whereButton } from "/static/where.js";

const ROW = 26;
const OVERSCAN = 12;
const INDENT = 14;
const MAX_INDENT_LEVELS = 16;

/**
 * Order spans depth-first under their parents; a span whose parent is missing is a root. Each row
 * knows its parent row, how many spans are below it (`size`) and how many of those failed (`errors`).
 */
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
  const stack = roots.slice().reverse().map((s) => [s, 0, -1]);
  while (stack.length) {
    const [span, depth, parent] = stack.pop();
    if (seen.has(span.span_id)) continue; // a malformed parent cycle must not loop forever
    seen.add(span.span_id);
    const me = rows.length;
    rows.push({ span, depth, parent, size: 0, errors: 0 });
    const kids = children.get(span.span_id);
    if (kids) for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1, me]);
  }
  for (let i = rows.length - 1; i > 0; i--) {
    const { parent } = rows[i];
    if (parent < 0) continue;
    rows[parent].size += rows[i].size + 1;
    rows[parent].errors += rows[i].errors + (failed(rows[i].span) ? 1 : 0);
  }
  return { rows, t0, t1: Math.max(t1, t0 + 1) };
}

/** An error or a timeout: what "next error" jumps to. */
export const failed = (span) => span.outcome === names.OUTCOME_ERROR || span.outcome === names.OUTCOME_TIMEOUT;

/** The text find-in-trace looks in: name, ids, service, attribute keys and values, lower-cased. */
function haystack(span) {
  const parts = [span.name, span.span_id, span.service || ""];
  for (const [k, v] of Object.entries(span.attributes)) parts.push(k, typeof v === "string" ? v : JSON.stringify(v));
  return parts.join("\n").toLowerCase();
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
    this.all = []; // every row, collapsed or not; `model.rows` are the ones shown
    this.collapsed = new Set(); // span ids whose subtrees are hidden (kept across refreshes)
    this.query = ""; // find-in-trace text; matching rows are marked
    this.matches = [];
    this.selected = -1;
    this.range = null; // [from, to] ns the time axis is zoomed to (the minimap's), null for the whole trace
    this.critical = null; // span -> its pieces of the critical path ([from, to] ns), while they are marked
    this.frame = 0;
    viewport.addEventListener("scroll", () => this.schedule(), { passive: true });
    viewport.addEventListener("keydown", (e) => this.key(e));
    rows.addEventListener("click", (e) => {
      const row = e.target.closest(".wf-row");
      if (!row) return;
      if (e.target.closest(".wf-toggle")) this.toggle(Number(row.dataset.index));
      else this.select(Number(row.dataset.index), { scroll: false });
    });
    new ResizeObserver(() => this.schedule()).observe(viewport);
  }

  /** Replace the spans; keep the selected span (by id), the collapsed subtrees and the scroll position. */
  setSpans(spans, nowNs) {
    const full = layout(spans, nowNs);
    this.all = full.rows;
    this.fullIndex = new Map(this.all.map((r, i) => [r.span.span_id, i]));
    this.errorRows = this.all.flatMap((r, i) => (failed(r.span) ? [i] : []));
    this.texts = null; // built on the first find
    this.find(this.query);
    this.show(full);
  }

  /** Lay out the rows not hidden inside a collapsed subtree. */
  show({ t0, t1 } = this.model) {
    const selectedId = this.selectedSpan()?.span_id;
    const rows = [];
    for (let i = 0; i < this.all.length; i += this.collapsed.has(this.all[i].span.span_id) ? this.all[i].size + 1 : 1) rows.push(this.all[i]);
    this.model = { rows, t0, t1 };
    this.index = new Map(this.model.rows.map((r, i) => [r.span.span_id, i]));
    this.spacer.style.height = `${this.model.rows.length * ROW}px`;
    this.viewport.style.setProperty("--wf-rows", this.model.rows.length);
    // A selection hidden by a collapse moves to the collapsed row that holds it.
    let at = selectedId ? this.fullIndex.get(selectedId) ?? -1 : -1;
    while (at >= 0 && !this.index.has(this.all[at].span.span_id)) at = this.all[at].parent;
    this.selected = at >= 0 ? this.index.get(this.all[at].span.span_id) : -1;
    this.renderAxis();
    this.render();
  }

  selectedSpan() {
    return this.model.rows[this.selected]?.span;
  }

  /** Select the span with this id (from a link or the URL), opening collapsed parents; false if the trace lacks it. */
  selectId(spanId) {
    if (!this.fullIndex?.has(spanId)) return false;
    let hidden = false;
    for (let p = this.all[this.fullIndex.get(spanId)].parent; p >= 0; p = this.all[p].parent) hidden = this.collapsed.delete(this.all[p].span.span_id) || hidden;
    if (hidden) this.show();
    this.select(this.index.get(spanId), { scroll: true, center: true });
    return true;
  }

  /** Collapse or expand the subtree under shown row `i`. */
  toggle(i, open = null) {
    const row = this.model.rows[i];
    if (!row?.size) return;
    const id = row.span.span_id;
    if (open ?? this.collapsed.has(id)) this.collapsed.delete(id);
    else this.collapsed.add(id);
    this.reshow();
  }

  /** Collapse every subtree below the roots' children (`open`: expand everything). */
  collapseAll(open = false) {
    this.collapsed = new Set(open ? [] : this.all.filter((r) => r.size && r.depth >= 1).map((r) => r.span.span_id));
    this.reshow();
  }

  /** Show the rows after a collapse; the detail follows a selection that moved to its collapsed row. */
  reshow() {
    const before = this.selectedSpan();
    this.show();
    if (this.selectedSpan() && this.selectedSpan() !== before) this.onSelect(this.selectedSpan(), true);
  }

  /** Mark the spans whose name, ids, service or attributes contain `text`; returns how many. */
  find(text) {
    this.query = text.trim().toLowerCase();
    if (!this.query) this.matches = [];
    else {
      this.texts ??= this.all.map((r) => haystack(r.span));
      this.matches = this.texts.flatMap((t, i) => (t.includes(this.query) ? [i] : []));
    }
    this.matched = new Set(this.matches.map((i) => this.all[i].span.span_id));
    this.render();
    return this.matches.length;
  }

  /**
   * Select the next (`step` 1) or previous (-1) of `targets` (indexes into all rows, in order) from
   * the selected span, wrapping around; returns its 1-based position among them, or 0 if none.
   */
  jump(targets, step) {
    if (!targets.length) return 0;
    const here = this.fullIndex.get(this.selectedSpan()?.span_id) ?? (step > 0 ? -1 : this.all.length);
    let k = step > 0 ? targets.findIndex((i) => i > here) : targets.findLastIndex((i) => i < here);
    if (k < 0) k = step > 0 ? 0 : targets.length - 1;
    this.selectId(this.all[targets[k]].span.span_id);
    return k + 1;
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
    const row = this.model.rows[this.selected];
    if ((e.key === "ArrowLeft" || e.key === "ArrowRight") && row) {
      e.preventDefault();
      const open = !this.collapsed.has(row.span.span_id);
      if (e.key === "ArrowLeft" && row.size && open) this.toggle(this.selected, false);
      else if (e.key === "ArrowLeft" && row.parent >= 0) this.selectId(this.all[row.parent].span.span_id);
      else if (e.key === "ArrowRight" && row.size && !open) this.toggle(this.selected, true);
      else if (e.key === "ArrowRight" && row.size) this.select(this.selected + 1);
      return;
    }
    if (e.key === " " && row) { e.preventDefault(); this.toggle(this.selected); return; }
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

  /** Mark the critical path's pieces on the bars (`segments`: critical_path.js's, null: unmark). */
  markCritical(segments) {
    this.critical = segments;
    this.render();
  }

  /** Zoom the time axis to `range` ([from, to] ns), or back to the whole trace (null). */
  zoom(range) {
    this.range = range;
    this.renderAxis();
    this.render();
  }

  /** The time the track shows: the zoomed range, or the whole trace. */
  shown() {
    return this.range ?? [this.model.t0, this.model.t1];
  }

  /** Times from the trace's start, at the quarters of what the track shows. */
  renderAxis() {
    const [from, to] = this.shown();
    this.axis.replaceChildren(...[0, 0.25, 0.5, 0.75].map((f) => {
      const at = from - this.model.t0 + (to - from) * f;
      return h("span", { style: `left:${f * 100}%` }, at ? duration(at / 1e6) : "0");
    }));
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
    const { span, depth, size, errors } = this.model.rows[i];
    const [t0, t1] = this.shown();
    const pct = (ns) => `${(((ns - t0) / (t1 - t0)) * 100).toFixed(3)}%`;
    const outcome = span.state === "started" ? "inflight" : span.outcome || "ok";
    const end = span.end_ns ?? this.model.t1;
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
    for (const [from, to] of this.critical?.get(span) ?? []) {
      track.append(h("div", { class: "wf-crit", style: `left:${pct(from)};width:${pct(t0 + to - from)}`, title: `on the critical path: ${duration((to - from) / 1e6)}` }));
    }
    const labelAt = Math.min(end, t1); // a bar running past a zoomed range is labelled at its edge
    const endFrac = (labelAt - t0) / (t1 - t0);
    const label = span.state === "started" ? "running" : duration(span.duration_ms);
    // The duration goes after the bar, or inside its end when the bar reaches the right edge.
    if (end >= t0 && span.start_ns <= t1) track.append(h("span", { class: endFrac < 0.86 ? "wf-dur" : "wf-dur inside", style: `left:${pct(labelAt)}` }, label));
    const indent = Math.min(depth, MAX_INDENT_LEVELS) * INDENT;
    const closed = size > 0 && this.collapsed.has(span.span_id);
    const toggle = size
      ? h("span", { class: "wf-toggle", "aria-hidden": "true", title: closed ? `Expand: ${size} spans below` : "Collapse (←)" }, closed ? "▸" : "▾")
      : h("span", { class: "wf-toggle none" });
    const hiddenNote = closed ? h("span", { class: "wf-hidden", "data-testid": "hidden-count" }, `+${size.toLocaleString()}${errors ? ` · ${errors.toLocaleString()} failed` : ""}`) : null;
    const name = h("div", { class: "wf-name", style: `padding-left:${4 + indent}px`, title: span.name },
      toggle, h("span", { class: `dot swatch ${outcome}` }),
      h("span", { class: "label" }, span.name), hiddenNote, whereNow(span));
    return h("div", {
      class: this.matched?.has(span.span_id) ? "wf-row match" : "wf-row", id: `wf-row-${i}`, role: "treeitem", "aria-level": depth + 1,
      "aria-expanded": size ? String(!closed) : null, "data-errors-below": closed && errors ? errors : null,
      "aria-selected": i === this.selected ? "true" : "false", "data-index": i, "data-depth": depth,
      "data-span-id": span.span_id, "data-outcome": outcome,
    }, name, track);
  }
}

/** "Where is it now?" on a running span: its process answers with the await chain, if it allows. */
function whereNow(span) {
  return span.state === "started" && span.process_id ? whereButton(span.process_id, { span_id: span.span_id }) : null;
}
