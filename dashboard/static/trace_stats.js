// Trace statistics, as Jaeger's: per span name, how many, how many failed, their durations and
// their self time (the part of a span no child covers), computed from the spans the page holds;
// and two traces' statistics side by side (Jaeger's trace comparison).
import { h, setRows } from "/static/dom.js";
import { count, duration } from "/static/format.js";
import { failed } from "/static/waterfall.js";

export const MAX_NAMES = 500; // rows drawn: a trace of many distinct names shows the first 500 in the chosen order

/** Each ended span's self time in ns: its duration less the union of its children's time inside it (a child still running covers the rest of it). */
export function selfTimes(spans) {
  const children = new Map();
  for (const s of spans) {
    if (s.parent_span_id) {
      if (!children.has(s.parent_span_id)) children.set(s.parent_span_id, []);
      children.get(s.parent_span_id).push(s);
    }
  }
  const self = new Map();
  for (const s of spans) {
    if (s.end_ns === null) continue;
    let covered = 0;
    let reach = s.start_ns; // the union so far ends here
    const kids = (children.get(s.span_id) || []).filter((k) => k !== s).sort((a, b) => a.start_ns - b.start_ns);
    for (const k of kids) {
      const from = Math.max(k.start_ns, reach);
      const to = Math.min(k.end_ns ?? s.end_ns, s.end_ns);
      if (to > from) { covered += to - from; reach = to; }
    }
    self.set(s, Math.max(s.end_ns - s.start_ns - covered, 0));
  }
  return self;
}

/**
 * One row per span name: count, errors, running, and total/avg/min/max of duration and self time
 * (ms, ended spans only); `critical` (span -> ns on the critical path, critical_path.js) adds its total.
 */
export function spanStats(spans, critical = new Map()) {
  const self = selfTimes(spans);
  const byName = new Map();
  for (const s of spans) {
    let r = byName.get(s.name);
    if (!r) byName.set(s.name, (r = { name: s.name, count: 0, errors: 0, running: 0, ended: 0, total: 0, min: Infinity, max: 0, self: 0, critical: 0 }));
    r.count++;
    r.critical += (critical.get(s) || 0) / 1e6;
    if (failed(s)) r.errors++;
    if (s.end_ns === null) { r.running++; continue; }
    const ms = (s.end_ns - s.start_ns) / 1e6;
    r.ended++;
    r.total += ms;
    r.min = Math.min(r.min, ms);
    r.max = Math.max(r.max, ms);
    r.self += self.get(s) / 1e6;
  }
  return [...byName.values()].map((r) => ({
    ...r, avg: r.ended ? r.total / r.ended : null, min: r.ended ? r.min : null, max: r.ended ? r.max : null,
    selfAvg: r.ended ? r.self / r.ended : null,
  }));
}

/** Fill `table` with `stats` sorted by `key` (a column's data-key) in `order`; returns how many names there are. */
export function renderStats(table, stats, key, order) {
  const sign = order === "asc" ? 1 : -1;
  const sorted = stats.slice().sort((a, b) => key === "name"
    ? sign * a.name.localeCompare(b.name)
    : sign * ((a[key] ?? -Infinity) - (b[key] ?? -Infinity)) || a.name.localeCompare(b.name));
  setRows(table, sorted.slice(0, MAX_NAMES).map((r) => h("tr", { "data-name": r.name },
    h("td", { title: r.name }, r.name),
    h("td", { class: "num" }, count(r.count), r.running ? h("span", { class: "muted" }, ` (${count(r.running)} running)`) : null),
    h("td", { class: r.errors ? "num bad" : "num" }, r.errors ? count(r.errors) : "–"),
    ...[r.total, r.avg, r.min, r.max, r.self, r.selfAvg].map((ms) => h("td", { class: "num" }, r.ended ? duration(ms) : "–")),
    h("td", { class: "num" }, r.critical ? duration(r.critical) : "–"))));
  for (const th of table.tHead.rows[0].cells) {
    const button = th.querySelector("button.sort");
    if (button?.dataset.key === key) th.setAttribute("aria-sort", order === "asc" ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
  return sorted.length;
}

/** A signed difference: "+3", "−12.0 ms", "0"; `format` shows the size. */
function delta(a, b, format) {
  if (a === null || b === null) return "–";
  const d = b - a;
  return d === 0 ? "0" : `${d > 0 ? "+" : "−"}${format(Math.abs(d))}`;
}

/**
 * Fill `table` with one row per span name of either trace: counts, errors, average and total
 * durations of this trace (`mine`) and the other (`theirs`), and what changed, the largest change
 * in total time first. Returns how many names there are.
 */
export function renderComparison(table, mine, theirs) {
  const rows = new Map();
  for (const r of mine) rows.set(r.name, { name: r.name, a: r, b: null });
  for (const r of theirs) rows.set(r.name, { ...(rows.get(r.name) || { name: r.name, a: null }), b: r });
  const total = (r) => (r ? r.total : 0);
  const sorted = [...rows.values()].sort((x, y) => Math.abs(total(y.b) - total(y.a)) - Math.abs(total(x.b) - total(x.a)) || x.name.localeCompare(y.name));
  const cell = (r, key, format) => h("td", { class: "num" }, r && r[key] !== null ? format(r[key]) : "–");
  setRows(table, sorted.slice(0, MAX_NAMES).map(({ name, a, b }) => h("tr", { "data-name": name, class: !a || !b ? "only" : null },
    h("td", { title: name }, name, !a ? h("span", { class: "muted" }, " (other only)") : !b ? h("span", { class: "muted" }, " (this only)") : null),
    cell(a, "count", count), cell(b, "count", count), h("td", { class: "num" }, delta(a?.count ?? 0, b?.count ?? 0, count)),
    cell(a, "errors", count), cell(b, "errors", count),
    cell(a, "avg", duration), cell(b, "avg", duration), h("td", { class: "num" }, delta(a?.avg ?? null, b?.avg ?? null, duration)),
    cell(a, "total", duration), cell(b, "total", duration), h("td", { class: "num" }, delta(total(a), total(b), duration)))));
  return sorted.length;
}
