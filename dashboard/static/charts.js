// SVG charts drawn at the element's own pixel size, so text is never stretched.
import { h } from "/static/dom.js";

const PAD = { left: 40, right: 10, top: 10, bottom: 22 };

function frame(svg) {
  const width = Math.max(svg.clientWidth, 100);
  const height = Math.max(svg.clientHeight, 60);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  return { width, height, w: width - PAD.left - PAD.right, hgt: height - PAD.top - PAD.bottom };
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

function yAxis(svg, f, top, format) {
  for (const t of ticks(top)) {
    const y = PAD.top + f.hgt - (t / top) * f.hgt;
    svg.append(h("svg:line", { class: "gridline", x1: PAD.left, x2: f.width - PAD.right, y1: y, y2: y }));
    svg.append(h("svg:text", { class: "axis-label", x: PAD.left - 6, y: y + 4, "text-anchor": "end" }, format(t)));
  }
}

/**
 * A line chart of `series` ([{name, color, points: [[x, y]]}]) over x in [x0, x1].
 * The first series gets a soft area fill; a series with `dotted: true` is drawn dotted.
 * Returns the highest y drawn.
 */
export function lineChart(svg, { series, x0, x1, formatX, formatY = String, minTop = 1, markers = [] }) {
  const f = frame(svg);
  const peak = Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[1])));
  const axis = ticks(Math.max(peak, minTop, ...markers.map((m) => m.y * 1.1)));
  const top = axis[axis.length - 1];
  yAxis(svg, f, top, formatY);
  const span = Math.max(x1 - x0, 1);
  const X = (x) => PAD.left + ((x - x0) / span) * f.w;
  const Y = (y) => PAD.top + f.hgt - (y / top) * f.hgt;
  for (let i = 0; i <= 3; i++) {
    const x = x0 + (span * i) / 3;
    svg.append(h("svg:text", { class: "axis-label", x: X(x), y: f.height - 6, "text-anchor": i === 0 ? "start" : i === 3 ? "end" : "middle" }, formatX(x)));
  }
  markers.forEach((m, i) => {
    // Labels step leftwards so that limits close in value do not print over each other.
    svg.append(h("svg:line", { class: "marker", x1: PAD.left, x2: f.width - PAD.right, y1: Y(m.y), y2: Y(m.y), "data-limit": m.y }));
    svg.append(h("svg:text", { class: "marker-label", x: f.width - PAD.right - 4 - i * 150, y: Y(m.y) - 5, "text-anchor": "end" }, m.label));
  });
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map(([x, y], j) => `${j ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join("");
    if (i === 0) {
      const last = s.points[s.points.length - 1][0];
      const first = s.points[0][0];
      svg.append(h("svg:path", { class: "area", fill: s.color, d: `${d}L${X(last).toFixed(1)},${Y(0)}L${X(first).toFixed(1)},${Y(0)}Z` }));
    }
    svg.append(h("svg:path", { class: s.dotted ? "line dotted" : "line", stroke: s.color, d, "data-series": s.name }));
  });
  return peak;
}

/** Bars for histogram buckets [{le_ms, count}], labelled by upper bound. */
export function histogram(svg, buckets, formatLe) {
  const f = frame(svg);
  const top = ticks(Math.max(1, ...buckets.map((b) => b.count))).at(-1);
  yAxis(svg, f, top, String);
  if (!buckets.length) return;
  const slot = f.w / buckets.length;
  const every = Math.ceil(buckets.length / Math.max(1, Math.floor(f.w / 56)));
  buckets.forEach((b, i) => {
    const barH = (b.count / top) * f.hgt;
    const x = PAD.left + i * slot + slot * 0.12;
    const bar = h("svg:rect", { class: "bar", x, y: PAD.top + f.hgt - barH, width: Math.max(1, slot * 0.76), height: barH, rx: 2, "data-count": b.count });
    bar.append(h("svg:title", {}, `${b.le_ms === null ? "over the last bound" : `≤ ${formatLe(b.le_ms)}`}: ${b.count}`));
    svg.append(bar);
    if (i % every === 0) {
      svg.append(h("svg:text", { class: "axis-label", x: x + slot * 0.38, y: f.height - 6, "text-anchor": "middle" }, formatLe(b.le_ms)));
    }
  });
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
