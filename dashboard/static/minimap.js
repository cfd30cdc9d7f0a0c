// The minimap over the waterfall, as Jaeger's: every span of the trace in a thin strip (a canvas:
// 10,000 spans are a few milliseconds of drawing) and the time range the waterfall is zoomed to.
// Drag across the strip to choose a range, drag the range to move it; trace.js binds the keys.
import { cssColor } from "/static/charts.js";

const MIN_SHARE = 1e-4; // the narrowest range, as a share of the trace: a zoom stops there

/**
 * The range `op` makes of `range` ([from, to] ns, null for the whole trace) within [t0, t1]:
 * "in" halves it, "out" doubles it, "left" and "right" move it by a quarter; null when it covers the trace.
 */
export function zoomStep(range, [t0, t1], op) {
  const [a, b] = range ?? [t0, t1];
  const width = b - a;
  const middle = (a + b) / 2;
  if (op === "in") return clampRange([middle - width / 4, middle + width / 4], [t0, t1]);
  if (op === "out") return clampRange([middle - width, middle + width], [t0, t1]);
  const shift = (op === "left" ? -width : width) / 4;
  return clampRange([a + shift, b + shift], [t0, t1], true);
}

/** `range` kept inside [t0, t1] and at least MIN_SHARE wide; `keepWidth` slides it back instead of cutting it. */
export function clampRange([a, b], [t0, t1], keepWidth = false) {
  const least = (t1 - t0) * MIN_SHARE;
  if (b - a < least) [a, b] = [(a + b) / 2 - least / 2, (a + b) / 2 + least / 2];
  if (keepWidth && a < t0) [a, b] = [t0, b + t0 - a];
  if (keepWidth && b > t1) [a, b] = [a - (b - t1), t1];
  a = Math.max(a, t0);
  b = Math.min(b, t1);
  return a <= t0 && b >= t1 ? null : [a, b];
}

export class Minimap {
  /** `strip` holds `canvas` and `window` (the range's box); `onRange(range)` gets each new range (null: all). */
  constructor({ strip, canvas, window, onRange }) {
    Object.assign(this, { strip, canvas, window, onRange });
    this.rows = [];
    this.t0 = 0;
    this.t1 = 1;
    this.range = null;
    this.frame = 0;
    strip.addEventListener("pointerdown", (e) => this.drag(e));
    new ResizeObserver(() => this.schedule()).observe(strip);
  }

  /** The spans to draw (the waterfall's rows, in tree order) and the trace's time span. */
  setRows(rows, t0, t1) {
    Object.assign(this, { rows, t0, t1 });
    this.schedule();
  }

  /** Show `range` (from the keys or the waterfall), without calling back. */
  setRange(range) {
    this.range = range;
    this.place();
  }

  /** Draw at the next frame, once however many changes came before it. */
  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); this.place(); });
  }

  draw() {
    const { canvas, rows, t0, t1 } = this;
    const ratio = devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    const line = Math.max(height / Math.max(rows.length, 1), 1 / ratio);
    const scale = width / (t1 - t0);
    // One path per colour, failures drawn last so they stay on top: 10,000 spans make five fills.
    const paths = new Map(["ok", "cancelled", "inflight", "timeout", "error"].map((kind) => [kind, new Path2D()]));
    rows.forEach(({ span }, i) => {
      const kind = span.state === "started" ? "inflight" : span.outcome || "ok";
      if (!paths.has(kind)) paths.set(kind, new Path2D()); // an outcome of another instrumentation's, drawn as ok
      const end = span.end_ns ?? t1;
      paths.get(kind).rect((span.start_ns - t0) * scale, (i * (height - line)) / Math.max(rows.length - 1, 1), Math.max((end - span.start_ns) * scale, 1), Math.min(line, 4));
    });
    for (const [kind, path] of paths) {
      ctx.fillStyle = cssColor(`--${kind}`) || cssColor("--ok");
      ctx.fill(path);
    }
    canvas.dataset.spans = rows.length;
  }

  /** Position the range's box (hidden while the whole trace shows). */
  place() {
    const { window, range, t0, t1 } = this;
    window.hidden = !range;
    this.strip.dataset.range = range ? `${((range[0] - t0) / (t1 - t0)).toFixed(4)},${((range[1] - t0) / (t1 - t0)).toFixed(4)}` : "";
    if (!range) return;
    window.style.left = `${((range[0] - t0) / (t1 - t0)) * 100}%`;
    window.style.width = `${((range[1] - range[0]) / (t1 - t0)) * 100}%`;
  }

  /** A drag inside the range moves it; anywhere else it draws a new one from where it began. */
  drag(down) {
    if (down.button !== 0) return;
    down.preventDefault();
    const box = this.strip.getBoundingClientRect();
    const at = (e) => this.t0 + Math.min(Math.max((e.clientX - box.left) / box.width, 0), 1) * (this.t1 - this.t0);
    const start = at(down);
    const moving = this.range && start >= this.range[0] && start <= this.range[1] ? this.range : null;
    const update = (e) => {
      const here = at(e);
      const next = moving
        ? clampRange([moving[0] + here - start, moving[1] + here - start], [this.t0, this.t1], true)
        : Math.abs(here - start) > (this.t1 - this.t0) * 0.005 ? clampRange([Math.min(start, here), Math.max(start, here)], [this.t0, this.t1]) : this.range;
      if (next === this.range) return;
      this.setRange(next);
      this.onRange(next);
    };
    this.strip.setPointerCapture(down.pointerId);
    this.strip.addEventListener("pointermove", update);
    this.strip.addEventListener("pointerup", (e) => { update(e); this.strip.removeEventListener("pointermove", update); }, { once: true });
  }
}
