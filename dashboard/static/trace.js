// The Trace page: the views of one trace (waterfall, statistics, flamegraph, graph) and the detail
// panel of the selected span; the trace comes from the store, or from a file (/traces/file).
import { $, h, fill, names, pageData, setText } from "/static/dom.js";
import { count, duration, time } from "/static/format.js";
import { ApiError, getJSON, latest, report, throttle } from "/static/api.js";
import { onLive } from "/static/socket.js";
import { showDetail as renderDetail } from "/static/span_detail.js";
import { Waterfall } from "/static/waterfall.js";
import { Minimap, clampRange, zoomStep } from "/static/minimap.js";
import { MAX_NAMES, renderComparison, renderStats, selfTimes, spanStats } from "/static/trace_stats.js";
import { criticalPath } from "/static/critical_path.js";
import { Flamegraph } from "/static/flamegraph.js";
import { MAX_NODES, drawGraph, mergeTree } from "/static/trace_graph.js";
import { BadTraceFile, MAX_FILE_BYTES, MAX_FILE_SPANS, readTraceFile } from "/static/trace_file.js";

let { trace_id: traceId } = pageData(); // null on /traces/file until a file is read
const fromFile = traceId === null;
const fetchTrace = latest();
let spans = [];
let clockOffsetNs = 0;
let rendered = false;
let critical = { segments: new Map(), bySpan: new Map(), total: 0 }; // the critical path of the spans held

const waterfall = new Waterfall({
  viewport: $("#waterfall"), spacer: $("#wf-spacer"), rows: $("#wf-rows"), axis: $("#wf-axis"),
  onSelect: (span, remember) => {
    showDetail(span);
    if (!remember) return;
    const url = new URL(location.href);
    url.searchParams.set("span", span.span_id);
    history.replaceState(null, "", url);
  },
});

const minimap = new Minimap({
  strip: $("#wf-minimap"), canvas: $("#wf-mini-canvas"), window: $("#wf-mini-window"), onRange: (range) => zoomTo(range, false),
});

/** Zoom the waterfall's time axis to `range` (null: the whole trace); `place` moves the minimap's box too. */
function zoomTo(range, place = true) {
  if (place) minimap.setRange(range);
  waterfall.zoom(range);
  const { t0 } = waterfall.model;
  $("#wf-zoom-reset").disabled = !range;
  setText($("#wf-zoom-info"), range ? `${duration((range[0] - t0) / 1e6)} – ${duration((range[1] - t0) / 1e6)}` : "");
}

/** The key's zoom (`op` of zoomStep), or a zoom to the selected span ("span"). */
function zoomKey(op) {
  const { t0, t1 } = waterfall.model;
  const span = waterfall.selectedSpan();
  if (op !== "span") zoomTo(zoomStep(waterfall.range, [t0, t1], op));
  else if (span) {
    const end = span.end_ns ?? t1;
    const margin = (end - span.start_ns) * 0.05;
    zoomTo(clampRange([span.start_ns - margin, end + margin], [t0, t1]));
  }
}

let fileNowNs = null; // a file's trace is seen as of its latest time, however old the file
const nowNs = () => fileNowNs ?? Date.now() * 1e6 + clockOffsetNs;

const FIRST_PAGE = 1000; // spans drawn before the rest of a big trace arrives, page by page (trace.html preloads this page)
let loads = 0; // a newer load (a refresh) ends an older one's paging

async function load() {
  const mine = ++loads;
  const loaded = [];
  let url = `/api/traces/${traceId}?limit=${FIRST_PAGE}`;
  while (url) {
    let data;
    try {
      data = await fetchTrace(url);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        notFound();
        return;
      }
      report(error);
      return;
    }
    if (!data || mine !== loads) return; // overtaken by a newer load
    report(null);
    for (const span of data.spans) loaded.push(span);
    url = data.next ? `/api/traces/${traceId}?after=${encodeURIComponent(data.next)}` : null;
    show(loaded, Boolean(url));
  }
}

/** No span of this trace is stored: say so plainly (it was pruned, or never sent); it still opens if spans arrive. */
function notFound() {
  setText($("#trace-title"), "Trace not found");
  setText($("#trace-summary"), "not found: the dashboard holds no span of this trace (it may have been pruned, or not sent yet)");
  $("#wf-empty").hidden = false;
  document.body.dataset.ready = "not-found";
}

function show(loaded, more) {
  $("#wf-empty").hidden = true;
  spans = loaded;
  layoutViews();
  summarise(more);
  showErrorCount();
  let chosen = false;
  if (!rendered) {
    rendered = true;
    const wanted = new URLSearchParams(location.search).get("span");
    chosen = Boolean(wanted && waterfall.selectId(wanted));
    if (!chosen && spans.length) waterfall.select(0, { scroll: false, remember: false });
    performance.mark("trace-rendered");
  } else if (waterfall.selectedSpan()) {
    showDetail(waterfall.selectedSpan());
  }
  // `?find=` selects its first match once one has arrived (a big trace comes page by page), unless `?span=` chose.
  if (pendingFind && (waterfall.matches.length || !more)) {
    pendingFind = false;
    if (chosen) showFindCount();
    else findStep(1);
  } else if (findInput.value.trim()) {
    showFindCount(waterfall.matches.indexOf(waterfall.fullIndex.get(waterfall.selectedSpan()?.span_id)) + 1); // more pages, more matches
  }
  if (!more) document.body.dataset.ready = "trace";
}

/** Lay the spans out again in every view, and their critical path. */
function layoutViews() {
  waterfall.setSpans(spans, nowNs());
  const { t0, t1 } = waterfall.model;
  const path = criticalPath(waterfall.all, t1);
  critical = { ...path, total: [...path.bySpan.values()].reduce((a, b) => a + b, 0) };
  waterfall.markCritical(criticalShown ? critical.segments : null);
  minimap.setRows(waterfall.all, t0, t1);
  flame.setRows(waterfall.all, t0, t1);
  drawView();
}

/** "1 error", "100 errors", "3 timeouts", "2 cancelled". */
const plural = (n, outcome) => `${count(n)} ${outcome}${n === 1 || outcome === names.OUTCOME_CANCELLED ? "" : "s"}`;

function summarise(more = false) {
  const root = waterfall.model.rows[0]?.span;
  setText($("#trace-title"), root ? root.name : "Trace");
  const outcomes = {};
  let running = 0;
  for (const s of spans) {
    if (s.state === "started") running++;
    else outcomes[s.outcome] = (outcomes[s.outcome] || 0) + 1;
  }
  const { t0, t1 } = waterfall.model;
  const parts = [`${spans.length.toLocaleString()} span${spans.length === 1 ? "" : "s"}`, duration((t1 - t0) / 1e6), time(t0)];
  for (const o of names.OUTCOMES) if (o !== names.OUTCOME_OK && outcomes[o]) parts.push(plural(outcomes[o], o));
  if (running) parts.push(`${count(running)} running`);
  if (more) parts.push("loading more…");
  setText($("#trace-summary"), parts.join(" · "));
}

// ---- detail panel (span_detail.js) ----

function showDetail(span) {
  renderDetail(span, { traceId, nowNs, onPath: critical.bySpan.get(span) || 0, total: critical.total, select: (id) => waterfall.selectId(id) });
}

// ---- views: waterfall, statistics, flamegraph, graph, as tabs ----

const VIEWS = { waterfall: "#wf-panel", stats: "#wf-stats", flame: "#wf-flame", graph: "#wf-graph" };
let view = "waterfall";

/** Show one of VIEWS. */
function showView(name) {
  view = name;
  for (const [v, panel] of Object.entries(VIEWS)) {
    $(panel).hidden = v !== name;
    $(`#tab-${v}`).setAttribute("aria-selected", String(v === name));
  }
  drawView();
}

function drawView() {
  if (view === "stats") drawStats();
  else if (view === "flame") flame.draw();
  else if (view === "graph") drawTraceGraph();
}

/** The waterfall again, with `span` selected (from a flamegraph box or a graph node). */
function openInWaterfall(span) {
  showView("waterfall");
  waterfall.selectId(span.span_id);
}

const flame = new Flamegraph({ svg: $("#flame-svg"), trail: $("#flame-trail"), note: $("#flame-note"), onPick: (span) => waterfall.selectId(span.span_id) });

function drawTraceGraph() {
  const nodes = mergeTree(waterfall.all, selfTimes(spans), waterfall.model.t1);
  const drawn = drawGraph($("#graph-svg"), nodes, (node) => openInWaterfall(node.spans[0]));
  setText($("#graph-note"), `${spans.length.toLocaleString()} spans merged into ${nodes.length.toLocaleString()} node${nodes.length === 1 ? "" : "s"} by service and name under the same path`
    + `${drawn < nodes.length ? `, the first ${MAX_NODES.toLocaleString()} drawn` : ""}. Total is the merged spans' time, self the part no child covers; a click shows the node's first span in the waterfall.`);
}

// ---- critical path: marked on the waterfall's bars ----

let criticalShown = false;

function toggleCritical() {
  criticalShown = !criticalShown;
  $("#wf-critical").setAttribute("aria-pressed", String(criticalShown));
  waterfall.markCritical(criticalShown ? critical.segments : null);
}

// ---- statistics ----

const statsSort = { key: "total", order: "desc" };

let other = null; // the trace compared with: {id, spans} once loaded
let comparisons = 0; // a newer comparison (or its end) ends an older one's loading
const fetchOther = latest();

function drawStats() {
  $("#compare-wrap").hidden = !other;
  $("#stats-wrap").hidden = Boolean(other);
  if (other) {
    const distinct = renderComparison($("#compare-table"), spanStats(spans), spanStats(other.spans));
    setText($("#stats-note"), `${count(distinct)} span name${distinct === 1 ? "" : "s"} in either trace${distinct > MAX_NAMES ? `, the first ${count(MAX_NAMES)} shown` : ""}`
      + `: this trace's ${spans.length.toLocaleString()} spans against the other's ${other.spans.length.toLocaleString()}, the largest change in total time first.`
      + " Δ is the other trace's figure less this one's.");
    return;
  }
  const distinct = renderStats($("#stats-table"), spanStats(spans, critical.bySpan), statsSort.key, statsSort.order);
  setText($("#stats-note"), `${count(distinct)} span name${distinct === 1 ? "" : "s"} in ${spans.length.toLocaleString()} spans`
    + `${distinct > MAX_NAMES ? `, the first ${count(MAX_NAMES)} shown` : ""}. Durations count ended spans; self time is`
    + " the part of a span that none of its children covers, critical path its time on the path that sets the trace's duration."
    + " A click on a name finds its spans in the waterfall.");
}

/** Compare with trace `id` (null: stop): its spans, every page, from the same API as this trace's. */
async function compareWith(id) {
  const url = new URL(location.href);
  if (id) url.searchParams.set("compare", id);
  else url.searchParams.delete("compare");
  history.replaceState(null, "", url);
  const mine = ++comparisons;
  other = null;
  $("#compare-stop").hidden = !id;
  setText($("#compare-info"), id ? "loading…" : "");
  if (!id || !/^[0-9a-f]{32}$/.test(id)) {
    if (id) setText($("#compare-info"), "a trace id is 32 hex digits");
    drawStats();
    return;
  }
  const loaded = [];
  let next = `/api/traces/${id}?limit=${FIRST_PAGE}`;
  try {
    while (next) {
      const data = await fetchOther(next);
      if (!data || mine !== comparisons) return; // overtaken by another comparison, or stopped
      loaded.push(...data.spans);
      next = data.next ? `/api/traces/${id}?after=${encodeURIComponent(data.next)}` : null;
    }
  } catch (error) {
    if (mine !== comparisons) return;
    setText($("#compare-info"), error instanceof ApiError && error.status === 404 ? `no trace ${id} is stored` : `could not load it: ${error.message}`);
    drawStats();
    return;
  }
  other = { id, spans: loaded };
  const root = loaded.find((s) => !s.parent_span_id) || loaded[0];
  fill($("#compare-info"), "with ", h("a", { href: `/traces/${id}` }, root ? root.name : id), ` (${loaded.length.toLocaleString()} spans)`);
  drawStats();
}

$("#compare-form").addEventListener("submit", (e) => {
  e.preventDefault();
  compareWith($("#compare-id").value.trim().toLowerCase());
});
// The candidates offered: the latest traces holding a span named as this trace's root (the Traces list's query).
$("#compare-id").addEventListener("focus", async () => {
  const root = waterfall.model.rows[0]?.span;
  if (!root) return;
  try {
    const data = await getJSON(`/api/traces?${new URLSearchParams({ name: root.name.slice(0, 200), limit: 20 })}`);
    fill($("#compare-options"), data.traces.filter((t) => t.trace_id !== traceId).map((t) =>
      h("option", { value: t.trace_id }, `${t.root_name} · ${t.in_flight ? "running" : duration(t.duration_ms)} · ${time(t.start_ns)}`)));
  } catch (error) {
    report(error);
  }
});
$("#compare-stop").addEventListener("click", () => { $("#compare-id").value = ""; compareWith(null); });

for (const name of Object.keys(VIEWS)) $(`#tab-${name}`).addEventListener("click", () => showView(name));
$("#wf-critical").addEventListener("click", toggleCritical);
for (const button of $("#stats-table").querySelectorAll("button.sort")) {
  button.addEventListener("click", () => {
    const same = statsSort.key === button.dataset.key;
    statsSort.order = same ? (statsSort.order === "desc" ? "asc" : "desc") : button.dataset.key === "name" ? "asc" : "desc";
    statsSort.key = button.dataset.key;
    drawStats();
  });
}
$("#stats-table").tBodies[0].addEventListener("click", (e) => {
  const row = e.target.closest("tr");
  if (!row) return;
  showView("waterfall");
  findInput.value = row.dataset.name;
  findInput.dispatchEvent(new Event("input"));
  findStep(1);
});

// ---- find in trace, next error, collapse: buttons and keys ----

const findInput = $("#wf-find");

function findStep(step) {
  showFindCount(waterfall.jump(waterfall.matches, step));
}

/** "3 of 99" (at: the selected match's place, 0 for none), "99 matches" or "no match". */
function showFindCount(at = 0) {
  const total = waterfall.matches.length;
  const many = at ? `${count(at)} of ${count(total)}` : `${count(total)} match${total === 1 ? "" : "es"}`;
  setText($("#wf-find-count"), findInput.value.trim() ? (total ? many : "no match") : "");
}

function errorStep(step) {
  const at = waterfall.jump(waterfall.errorRows, step);
  showErrorCount(at);
}

function showErrorCount(at = 0) {
  const total = waterfall.errorRows?.length || 0;
  setText($("#wf-error-count"), total ? `${at ? `${count(at)} of ` : ""}${count(total)} failed` : "no errors");
  $("#wf-error-prev").disabled = $("#wf-error-next").disabled = !total;
}

// The search text is kept in the URL (`?find=`), so a link opens the trace with it applied.
findInput.addEventListener("input", () => {
  waterfall.find(findInput.value);
  showFindCount();
  const url = new URL(location.href);
  if (findInput.value.trim()) url.searchParams.set("find", findInput.value);
  else url.searchParams.delete("find");
  history.replaceState(null, "", url);
});
// `?find=` (or Jaeger's `?uiFind=`) applies the search when the trace opens; show() selects the first match.
findInput.value = (new URLSearchParams(location.search).get("find") ?? new URLSearchParams(location.search).get("uiFind") ?? "").slice(0, 200);
waterfall.find(findInput.value);
let pendingFind = Boolean(findInput.value.trim());
$("#wf-find-form").addEventListener("submit", (e) => e.preventDefault());
findInput.addEventListener("keydown", (e) => {
  if (e.key === "Enter") { e.preventDefault(); findStep(e.shiftKey ? -1 : 1); }
  if (e.key === "Escape") { findInput.blur(); $("#waterfall").focus(); }
});
$("#wf-find-next").addEventListener("click", () => findStep(1));
$("#wf-find-prev").addEventListener("click", () => findStep(-1));
$("#wf-error-next").addEventListener("click", () => errorStep(1));
$("#wf-error-prev").addEventListener("click", () => errorStep(-1));
$("#wf-collapse-all").addEventListener("click", () => waterfall.collapseAll());
// The spans the page holds (every page of a big trace), saved as one file, as Jaeger's "Download JSON".
$("#wf-download").addEventListener("click", () => {
  const url = URL.createObjectURL(new Blob([JSON.stringify({ trace_id: traceId, spans }, null, 1)], { type: "application/json" }));
  h("a", { href: url, download: `trace-${traceId}.json` }).click();
  setTimeout(() => URL.revokeObjectURL(url));
});
$("#wf-expand-all").addEventListener("click", () => waterfall.collapseAll(true));
$("#wf-zoom-reset").addEventListener("click", () => zoomTo(null));

// Page-wide keys, except while typing in a field.
const KEYS = {
  "/": () => findInput.focus(), n: () => findStep(1), N: () => findStep(-1), e: () => errorStep(1), E: () => errorStep(-1),
  "[": () => waterfall.collapseAll(), "]": () => waterfall.collapseAll(true),
  w: () => zoomKey("in"), s: () => zoomKey("out"), a: () => zoomKey("left"), d: () => zoomKey("right"), z: () => zoomKey("span"),
  0: () => zoomTo(null), c: toggleCritical,
  t: () => showView(view === "stats" ? "waterfall" : "stats"), f: () => showView(view === "flame" ? "waterfall" : "flame"),
  g: () => showView(view === "graph" ? "waterfall" : "graph"),
};
const VIEW_KEYS = new Set(["t", "f", "g"]);
addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.target.closest("input, select, textarea") || !(e.key in KEYS)) return;
  e.preventDefault();
  if (!VIEW_KEYS.has(e.key) && view !== "waterfall") showView("waterfall"); // the waterfall's keys bring it back
  KEYS[e.key]();
});

// ---- a trace from a file (/traces/file): chosen, or dropped anywhere on the page ----

/** Read `file` and show its trace; a bad file is said on the page and leaves the page as it was. */
async function openFile(file) {
  setText($("#file-error"), "");
  setText($("#file-info"), `reading ${file.name}…`);
  let read;
  try {
    read = await readTraceFile(file);
  } catch (error) {
    setText($("#file-info"), "");
    setText($("#file-error"), error instanceof BadTraceFile ? error.message : `${file.name} could not be read: ${error.message}`);
    return;
  }
  traceId = read.traceId;
  fileNowNs = 0;
  for (const s of read.spans) {
    fileNowNs = Math.max(fileNowNs, s.start_ns, s.end_ns ?? 0);
    for (const e of s.events) fileNowNs = Math.max(fileNowNs, e.time_ns);
  }
  rendered = false;
  waterfall.collapsed.clear();
  zoomTo(null);
  flame.focusId = null;
  setText($("#file-trace-id"), `${file.name} · trace ${traceId}`);
  setText($("#file-info"), read.note);
  $("#trace-layout").hidden = false;
  show(read.spans, false);
  $("#waterfall").focus(); // the page's keys work at once
}

function openFiles() {
  setText($("#file-limit"), `up to ${MAX_FILE_BYTES / 1024 / 1024} MB and ${MAX_FILE_SPANS.toLocaleString()} spans`);
  $("#file-input").addEventListener("change", (e) => { if (e.target.files[0]) openFile(e.target.files[0]); });
  const zone = $("#trace-file");
  addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("dropping"); });
  addEventListener("dragleave", (e) => { if (!e.relatedTarget) zone.classList.remove("dropping"); });
  addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dropping");
    if (e.dataTransfer.files[0]) openFile(e.dataTransfer.files[0]);
  });
}

// A trace still running is refreshed as its spans arrive.
const refresh = throttle(load, 1000);
onLive((message) => {
  if (message.type === "snapshot" || message.type === "update") clockOffsetNs = message.live.now_ns - Date.now() * 1e6;
  if (fromFile) return;
  if (message.type === "update" && message.new_spans && (!rendered || spans.some((s) => s.state === "started"))) refresh();
});
// Bars of spans still running grow with the clock between refreshes.
setInterval(() => {
  if (fromFile || !spans.some((s) => s.state === "started")) return;
  layoutViews();
  summarise();
}, 1000);
addEventListener("popstate", () => {
  const wanted = new URLSearchParams(location.search).get("span");
  if (wanted) waterfall.selectId(wanted);
});
if (fromFile) openFiles();
else load();
// `?compare=<trace id>` opens the statistics beside that trace's.
const comparing = new URLSearchParams(location.search).get("compare");
if (comparing && /^[0-9a-fA-F]{32}$/.test(comparing)) {
  $("#compare-id").value = comparing.toLowerCase();
  showView("stats");
  compareWith(comparing.toLowerCase());
}
