// SVG charts drawn at the element's own pixel size, so text is never stretched. A chart drawn
// before it is laid out (a card not yet in the page) is drawn again once it has a size, and on
// every resize after, by one ResizeObserver.
import { h } from "/static/dom.js";

const PAD = { left: 40, right: 10, top: 10, bottom: 22 };
const CHAR_PX = 6.6; // width of a character of an 11 px label, to size the gutter beside the plot

const redraws = new WeakMap();
const sizes = new WeakMap();
const observer = new ResizeObserver((entries) => {
  for (const { target, contentRect } of entries) {
    const size = `${Math.round(contentRect.width)}x${Math.round(contentRect.height)}`;
    if (sizes.get(target) === size) continue;
    sizes.set(target, size);
    redraws.get(target)?.();
  }
});

/** Draw again with `draw` whenever the chart's size changes. */
function keep(svg, draw) {
  if (!redraws.has(svg)) observer.observe(svg);
  redraws.set(svg, draw);
}

/** Stop redrawing a chart that left the page. */
export function forget(svg) {
  observer.unobserve(svg);
  redraws.delete(svg);
}

function frame(svg, pad = PAD) {
  const width = Math.max(svg.clientWidth, 100);
  const height = Math.max(svg.clientHeight, 60);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  return { width, height, pad, w: width - pad.left - pad.right, hgt: height - pad.top - pad.bottom };
}

/** Round numbers for an axis from 0 to at least `max`. */
export function ticks(max, count = 4) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  // Whole steps once the axis passes 1: counts are never fractional.
  const step = Math.max(max > 1 ? 1 : 0, [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw);
  const out = [];
  for (let v = 0; v <= max + step * 0.999; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function yAxis(svg, f, top, format, unit = "", count = 4) {
  const { pad } = f;
  for (const t of ticks(top, count)) {
    const y = pad.top + f.hgt - (t / top) * f.hgt;
    svg.append(h("svg:line", { class: "gridline", x1: pad.left, x2: f.width - pad.right, y1: y, y2: y }));
    svg.append(h("svg:text", { class: "axis-label", x: pad.left - 6, y: y + 4, "text-anchor": "end" }, format(t)));
  }
  if (unit) svg.append(h("svg:text", { class: "axis-unit", x: 2, y: 10 }, unit));
}

/**
 * A line chart of `series` ([{name, color, points: [[x, y]]}]) over x in [x0, x1].
 * The first series gets a soft area fill; a series with `dotted: true` is drawn dotted.
 * `markers` ([{y, label}]) are dashed lines labelled in a gutter right of the plot, never on the data.
 * `clip` (see clipAbove) tops the scale there: what passes it is drawn at the top with a ▲ whose
 * title gives its value, and a note above the plot says so. Returns the highest y.
 */
export function lineChart(svg, options) {
  keep(svg, () => lineChart(svg, options));
  const { series, x0, x1, formatX, formatY = String, minTop = 1, markers = [], unit = "", tickCount = 4, clip = null } = options;
  const gutter = markers.length ? Math.ceil(Math.max(...markers.map((m) => m.label.length)) * CHAR_PX) + 12 : PAD.right;
  const pad = { ...PAD, right: gutter, top: unit ? 18 : PAD.top };
  const f = frame(svg, pad);
  const peak = Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[1])));
  const axis = ticks(Math.max(clip === null ? peak : Math.min(peak, clip), minTop, ...markers.map((m) => m.y * 1.1)), tickCount);
  const top = axis[axis.length - 1];
  yAxis(svg, f, top, formatY, unit, tickCount);
  const span = Math.max(x1 - x0, 1);
  const X = (x) => pad.left + ((x - x0) / span) * f.w;
  const Y = (y) => pad.top + f.hgt - (Math.min(y, top) / top) * f.hgt;
  svg.dataset.clip = peak > top ? top : "";
  if (peak > top) {
    svg.append(h("svg:text", { class: "axis-unit clip-note", x: f.width - pad.right, y: 10, "text-anchor": "end" },
      `▲ above ${formatY(top)}, peak ${formatY(peak)}`));
  }
  for (let i = 0; i <= 3; i++) {
    const x = x0 + (span * i) / 3;
    svg.append(h("svg:text", { class: "axis-label", x: X(x), y: f.height - 6, "text-anchor": i === 0 ? "start" : i === 3 ? "end" : "middle" }, formatX(x)));
  }
  // Labels sit in the gutter at their line's height, pushed apart when limits are close in value.
  let lastY = Infinity;
  for (const m of [...markers].sort((a, b) => a.y - b.y)) {
    const y = Math.min(Y(m.y) + 4, lastY - 13);
    lastY = y;
    svg.append(h("svg:line", { class: "marker", x1: pad.left, x2: f.width - pad.right, y1: Y(m.y), y2: Y(m.y), "data-limit": m.y }));
    svg.append(h("svg:text", { class: "marker-label", x: f.width - pad.right + 6, y, "text-anchor": "start" }, m.label));
  }
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map(([x, y], j) => `${j ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join("");
    if (i === 0) {
      const last = s.points[s.points.length - 1][0];
      const first = s.points[0][0];
      svg.append(h("svg:path", { class: "area", fill: s.color, d: `${d}L${X(last).toFixed(1)},${Y(0)}L${X(first).toFixed(1)},${Y(0)}Z` }));
    }
    svg.append(h("svg:path", { class: s.dotted ? "line dotted" : "line", stroke: s.color, d, "data-series": s.name }));
    // One ▲ a run of points above the scale, at the run's highest.
    let run = null;
    for (const [x, y] of [...s.points, [x1, -Infinity]]) {
      if (y > top) { if (!run || y > run[1]) run = [x, y]; continue; }
      if (!run) continue;
      const cx = X(run[0]);
      const mark = h("svg:path", { class: "clipped", fill: s.color, d: `M${(cx - 4).toFixed(1)},${pad.top + 3}L${cx.toFixed(1)},${pad.top - 4}L${(cx + 4).toFixed(1)},${pad.top + 3}Z`, "data-value": run[1] });
      mark.append(h("svg:title", {}, `${s.name}: ${formatY(run[1])} at ${formatX(run[0])}`));
      svg.append(mark);
      run = null;
    }
  });
  return peak;
}

/**
 * The top for a scale of `values` that keeps their usual range readable: 1.5 times their 90th
 * percentile when rare spikes pass twice that, else null (nothing to clip).
 */
export function clipAbove(values) {
  if (!values.length) return null;
  const sorted = values.slice().sort((a, b) => a - b);
  const usual = Math.max(1.5 * sorted[Math.floor(0.9 * (sorted.length - 1))], 1);
  return sorted[sorted.length - 1] > 2 * usual ? usual : null;
}

/** Bars for histogram buckets [{le_ms, count}], labelled by upper bound; `unit` names what the bars count. */
export function histogram(svg, buckets, formatLe, unit) {
  keep(svg, () => histogram(svg, buckets, formatLe, unit));
  const f = frame(svg, { ...PAD, top: 18 });
  const top = ticks(Math.max(1, ...buckets.map((b) => b.count))).at(-1);
  yAxis(svg, f, top, String, unit);
  if (!buckets.length) return;
  const slot = f.w / buckets.length;
  const every = Math.ceil(buckets.length / Math.max(1, Math.floor(f.w / 56)));
  buckets.forEach((b, i) => {
    const barH = (b.count / top) * f.hgt;
    const x = f.pad.left + i * slot + slot * 0.12;
    const bar = h("svg:rect", { class: "bar", x, y: f.pad.top + f.hgt - barH, width: Math.max(1, slot * 0.76), height: barH, rx: 2, "data-count": b.count });
    bar.append(h("svg:title", {}, `${b.le_ms === null ? "over the last bound" : `≤ ${formatLe(b.le_ms)}`}: ${b.count}`));
    svg.append(bar);
    if (i % every === 0) {
      svg.append(h("svg:text", { class: "axis-label", x: x + slot * 0.38, y: f.height - 6, "text-anchor": "middle" }, formatLe(b.le_ms)));
    }
  });
}

/**
 * Dots at (x, y) for `points` ([{x, y, title, className, onclick, data}]) over x in [x0, x1] and y from 0:
 * each dot's <title> names it; time labels under the plot, y labels left of it, never on a dot.
 */
export function scatterChart(svg, options) {
  keep(svg, () => scatterChart(svg, options));
  const { points, x0, x1, formatX, formatY = String, unit = "" } = options;
  const f = frame(svg, { ...PAD, top: unit ? 18 : PAD.top });
  const axis = ticks(Math.max(0, ...points.map((p) => p.y)));
  const top = axis[axis.length - 1];
  yAxis(svg, f, top, formatY, unit);
  const R = 4; // a dot's radius: the x range is inset by it so no dot reaches the y labels
  const span = Math.max(x1 - x0, 1);
  const X = (x) => f.pad.left + R + ((x - x0) / span) * (f.w - 2 * R);
  const labels = Math.max(2, Math.min(4, Math.floor(f.w / 110)));
  for (let i = 0; i < labels; i++) {
    const x = x0 + (span * i) / (labels - 1);
    const anchor = i === 0 ? "start" : i === labels - 1 ? "end" : "middle";
    svg.append(h("svg:text", { class: "axis-label", x: X(x), y: f.height - 6, "text-anchor": anchor }, formatX(x)));
  }
  for (const p of points) {
    const dot = h("svg:circle", { class: `dot ${p.className || ""}`, cx: X(p.x).toFixed(1), cy: (f.pad.top + f.hgt - (p.y / top) * f.hgt).toFixed(1), r: R, onclick: p.onclick, ...p.data });
    dot.append(h("svg:title", {}, p.title));
    svg.append(dot);
  }
}

/** A tiny line without axes. */
export function sparkline(svg, values) {
  const width = 120;
  const height = 24;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  if (values.length < 2) return;
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const span = hi - lo || 1;
  const d = values.map((v, i) => `${i ? "L" : "M"}${((i / (values.length - 1)) * width).toFixed(1)},${(height - 2 - ((v - lo) / span) * (height - 4)).toFixed(1)}`).join("");
  svg.append(h("svg:path", { class: "line", d }));
}

/** The computed colour of CSS variable `name`, so charts follow the theme. */
export const cssColor = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
