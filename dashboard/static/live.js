// The Live page: everything comes from /ws/live pushes; ages tick locally between pushes.
import { $, h, setRows, setText, fill } from "/static/dom.js";
import { bytes, count, duration, percent, time } from "/static/format.js";
import { clipAbove, forget, lineChart, cssColor } from "/static/charts.js";
import { onLive } from "/static/socket.js";
import { getJSON, latest, report, throttle } from "/static/api.js";
import { whereButton } from "/static/where.js";
import { mountLoopHealth } from "/static/loop_health.js";

const SERIES_VARS = ["--series-2", "--series-3", "--series-4", "--series-5", "--series-6"];
let live = null;
let limits = [];
const fetchLimits = latest();
let clockOffsetNs = 0; // server now minus browser now, so ages use the server's clock

function render() {
  if (!live) return;
  const inFlight = live.in_flight.reduce((n, f) => n + f.count, 0);
  setText($("#in-flight-total"), count(inFlight));
  setText($("#calls-per-s"), count(live.throughput.calls_per_s));
  setText($("#spans-per-s"), count(live.throughput.spans_per_s));
  for (const key of ["error", "retry", "timeout", "cancelled"]) {
    const node = $(`#rate-${key}`);
    setText(node, percent(live.rates[key]));
    node.classList.toggle(key === "retry" ? "warn" : "bad", live.rates[key] > 0 && key !== "cancelled");
  }
  renderInFlight();
  renderConcurrency();
  renderProcesses();
  setText($("#ingest-frames"), count(live.ingest.frames));
  setText($("#ingest-bad"), count(live.ingest.bad_frames));
  setText($("#ingest-spans"), count(live.ingest.spans_stored));
  setText($("#ingest-refused"), count(live.ingest.spans_refused));
  setText($("#ingest-behind"), count(live.ingest.behind));
  setText($("#ingest-failed"), `${count(live.writes.failed_writes)} (${count(live.writes.failed_spans)} spans)`);
  const { parameters, ...doors } = live.refused;
  const refused = [...Object.entries(doors), ["bad parameters", Object.values(parameters).reduce((n, v) => n + v, 0)]];
  const clients = $("#ingest-refused-clients");
  setText(clients, count(refused.reduce((n, [, v]) => n + v, 0)));
  clients.title = refused.filter(([, v]) => v).map(([reason, v]) => `${reason.replace("_", " ")} ${count(v)}`).join(", ");
  renderStorage();
}

/** A banner while the database cannot take writes: what failed, where, since when, and what waits. */
function renderStorage() {
  const writes = live.writes;
  const banner = $("#storage-banner");
  banner.hidden = !writes.failing;
  if (!writes.failing) return;
  setText(banner, `Storage failing since ${time(writes.since_ns)}: ${writes.error} (${writes.path}). `
    + `${count(writes.spans_not_stored)} spans not stored yet; their senders keep them and resend.`);
}

function nowNs() {
  return Date.now() * 1e6 + clockOffsetNs;
}

const MAX_FUNCTIONS = 10; // rows in the in-flight table, so a burst of new names cannot push the page down
const MAX_PROCESSES = 4;

/** A last row saying how many more there are than fit. */
const more = (n, what, columns) => h("tr", { class: "more" }, h("td", { colspan: columns, class: "muted" }, `and ${count(n)} more ${what}`));

function renderInFlight() {
  const now = nowNs();
  const functions = [...live.in_flight].sort((a, b) => b.count - a.count);
  const rows = functions.slice(0, MAX_FUNCTIONS).map((f) => {
    const oldest = f.spans.reduce((o, s) => (o && o.start_ns <= s.start_ns ? o : s), null);
    const name = oldest ? h("a", { href: `/traces/${oldest.trace_id}?span=${oldest.span_id}` }, f.name) : f.name;
    const waiting = f.waiting || 0;
    return h("tr", { "data-name": f.name },
      h("td", { title: f.name }, name, whereNow(oldest)),
      h("td", { class: "num", "data-testid": "in-flight-count" }, count(f.count - waiting)),
      h("td", { class: `num ${waiting ? "warn" : "muted"}`, "data-testid": "waiting-count" }, count(waiting)),
      h("td", { class: "num" }, duration((now - f.oldest_start_ns) / 1e6)));
  });
  if (functions.length > MAX_FUNCTIONS) rows.push(more(functions.length - MAX_FUNCTIONS, "functions", 4));
  setRows($("#inflight-table"), rows);
}

/** "Where is it now?" for a function's oldest call in flight (its process answers, if it allows). */
function whereNow(span) {
  return span?.process_id ? [" ", whereButton(span.process_id, { span_id: span.span_id })] : null;
}

function renderConcurrency() {
  const points = live.concurrency;
  const svg = $("#concurrency-chart");
  if (!points.length) { lineChart(svg, { series: [], x0: 0, x1: 1, formatX: () => "" }); renderMultiples([], 0, 1); return; }
  const totals = new Map();
  for (const p of points) for (const [name, n] of Object.entries(p.by_name)) totals.set(name, Math.max(totals.get(name) || 0, n));
  const names = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a)).slice(0, SERIES_VARS.length);
  // The big chart holds the total, the waiting and the limits; each busy function gets a small
  // chart of its own on its own scale, so one function's spike cannot flatten the others.
  const series = [{ name: "total", color: cssColor("--series-1"), points: points.map((p) => [p.t_ns, p.total]) }];
  if (points.some((p) => p.waiting)) {
    series.push({ name: "waiting for a slot", color: cssColor("--muted"), dotted: true, points: points.map((p) => [p.t_ns, p.waiting || 0]) });
  }
  const x0 = points[0].t_ns;
  const x1 = points[points.length - 1].t_ns;
  const formatX = (x) => time(x).replace(/\.\d+$/, "");
  const markers = [...new Set(limits.map((l) => l.limit))].map((y) => ({ y, label: `max_concurrent ${y}` }));
  // A spike tops out the scale (marked ▲) instead of flattening the usual range into the bottom.
  const clip = clipAbove(points.map((p) => p.total));
  const peak = lineChart(svg, { series, x0, x1, markers, formatX, unit: "calls", clip });
  svg.dataset.lastSample = x1; // moves with each heartbeat while nothing new arrives (tests read it)
  setText($("#concurrency-peak"), count(peak));
  renderMultiples(names.map((name, i) => ({ name, color: cssColor(SERIES_VARS[i]), points: points.map((p) => [p.t_ns, p.by_name[name] || 0]) })), x0, x1);
  fill($("#concurrency-legend"), series.map((s) => {
    const max = Math.max(0, ...s.points.map((p) => p[1]));
    return h("li", { "data-series": s.name, "data-peak": max },
      h("span", { class: "key", style: `background:${s.color}` }), s.name, h("span", { class: "muted" }, ` max ${max}`));
  }));
}

const multiples = new Map(); // function name -> its small chart, kept across renders

/** One small chart per busy function, each scaled to its own peak. */
function renderMultiples(series, x0, x1) {
  const box = $("#concurrency-multiples");
  for (const [name, node] of multiples) {
    if (series.some((s) => s.name === name)) continue;
    forget(node.querySelector("svg"));
    multiples.delete(name);
  }
  box.replaceChildren(...series.map((s) => {
    if (!multiples.has(s.name)) {
      multiples.set(s.name, h("figure", { class: "multiple", "data-series": s.name },
        h("figcaption", {}, h("span", { class: "key" }), h("span", { class: "name", title: s.name }, s.name), h("span", { class: "muted peak-text" })),
        h("svg:svg", { class: "chart small", role: "img", "aria-label": `${s.name}: calls running over time` })));
    }
    const node = multiples.get(s.name);
    const max = Math.max(0, ...s.points.map((p) => p[1]));
    node.dataset.peak = max;
    node.querySelector(".key").style.background = s.color;
    setText(node.querySelector(".peak-text"), `max ${max}`);
    lineChart(node.querySelector("svg"), { series: [s], x0, x1, formatX: () => "", tickCount: 1 });
    return node;
  }));
}

/** One line per (name, limit): how many ran in the window, the highest peak, and how many still run. */
function renderLimits() {
  const groups = new Map();
  for (const l of limits) {
    const key = `${l.name}\u0000${l.limit}`;
    const g = groups.get(key) || { ...l, runs: 0, running: 0, peak: null };
    g.runs += 1;
    if (l.peak === null) g.running += 1;
    else g.peak = Math.max(g.peak ?? 0, l.peak);
    groups.set(key, g);
  }
  fill($("#limits"), [...groups.values()].slice(0, 4).map((g) => h("li", { "data-limit": g.limit, "data-peak": g.peak ?? "" },
    h("a", { href: `/traces/${g.trace_id}?span=${g.span_id}` }, g.name),
    " · limit ", h("strong", {}, g.limit),
    g.peak === null ? "" : [" · peak ", h("strong", {}, g.peak)],
    g.runs > 1 ? ` · ${g.runs} runs` : "",
    g.running ? " · running" : "")));
}

/** The AsyncTraceContext limits of the charted window, drawn as reference lines. */
const loadLimits = throttle(async () => {
  if (!live?.concurrency.length) return;
  try {
    const data = await fetchLimits(`/api/limits?since_ns=${live.concurrency[0].t_ns}`);
    if (!data) return;
    report(null);
    limits = data.limits;
    renderLimits();
    renderConcurrency();
  } catch (error) {
    report(error);
  }
}, 1000);

function renderProcesses() {
  const now = nowNs();
  const processes = [...live.processes].sort((a, b) => b.connected - a.connected || b.last_seen_ns - a.last_seen_ns);
  const processRows = processes.slice(0, MAX_PROCESSES).map((p) =>
    h("tr", {},
      h("td", { title: p.service || p.id }, h("span", { class: `badge ${p.connected ? "ok" : ""}`, title: p.connected ? "connected" : "disconnected" }, p.service || p.id)),
      h("td", { class: "num" }, p.pid ?? "–"),
      h("td", { title: p.host || "" }, p.host || "–"),
      h("td", { class: "num" }, p.connected ? "now" : `${duration((now - p.last_seen_ns) / 1e6)} ago`)));
  const total = live.process_counts.total;
  if (total > MAX_PROCESSES) processRows.push(more(total - MAX_PROCESSES, "processes", 4));
  setRows($("#process-table"), processRows);
  const names = new Map(live.processes.map((p) => [p.id, `${p.service || "?"} (${p.pid ?? p.id.slice(0, 8)})`]));
  setRows($("#drop-table"), Object.entries(live.drops)
    .filter(([, d]) => d.spans || d.metrics)
    .slice(0, MAX_PROCESSES)
    .map(([id, d]) => h("tr", {},
      h("td", {}, names.get(id) || id),
      h("td", { class: "num", title: dropReasons(d) }, count(d.spans)),
      h("td", { class: "num" }, count(d.metrics)))));
}

/** "buffer_full 12, refused 3": why an exporter lost its spans. */
function dropReasons(d) {
  return Object.entries(d.reasons || {}).filter(([, n]) => n).map(([reason, n]) => `${reason.replace("_", " ")} ${count(n)}`).join(", ");
}

onLive((message) => {
  if (message.type !== "snapshot" && message.type !== "update") return;
  live = message.live;
  clockOffsetNs = live.now_ns - Date.now() * 1e6;
  render();
  if (message.type === "snapshot" || message.new_spans) loadLimits();
});

// Ages move every second even when nothing new arrives.
setInterval(() => { if (live) { renderInFlight(); } }, 1000);

// ---- storage: the database's size and retention, from /api/live every 10 s ----

/** A retention in seconds, in the largest unit that reads well (7 days, 12 h, 90 s). */
const age = (s) => (s >= 86400 ? `${+(s / 86400).toFixed(1)} days` : s >= 3600 ? `${+(s / 3600).toFixed(1)} h` : duration(s * 1000));

async function loadStorage() {
  try {
    const { storage: s } = await getJSON("/api/live");
    setText($("#storage-used"), `${bytes(s.used_bytes)} in use (file ${bytes(s.file_bytes)})`);
    setText($("#storage-wal"), bytes(s.wal_bytes));
    setText($("#storage-max"), s.max_db_bytes === null ? "none" : bytes(s.max_db_bytes));
    setText($("#storage-max-spans"), `up to ${count(s.max_spans)}`);
    setText($("#storage-retention"), s.retention_s === null ? "forever" : age(s.retention_s));
  } catch (error) {
    report(error);
  }
}
loadStorage();
setInterval(loadStorage, 10_000);

mountLoopHealth($("#processes").parentElement);
