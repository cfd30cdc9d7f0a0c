// One @trace.optimize search: best score by depth, and the beams by depth as columns of candidate
// cards, updated in place as spans arrive so focus, scroll and layout stay where they are.
import { $, h, fill, pageData, setRows, setText } from "/static/dom.js";
import { count, duration, time } from "/static/format.js";
import { latest, report, throttle } from "/static/api.js";
import { ticks } from "/static/charts.js";
import { onLive } from "/static/socket.js";
import { score, state } from "/static/optimize_parts.js";

const { trace_id: traceId, span_id: spanId } = pageData();
const fetchSearch = latest();
const board = $("#board");
const columns = new Map(); // depth index -> column
const cards = new Map(); // candidate span id -> card
let shown = null; // the last document drawn, redrawn on resize

/** Make `parent`'s children `nodes`, appending when only new ones came, so a focused card stays focused. */
function sync(parent, nodes) {
  const current = parent.children;
  const prefix = current.length <= nodes.length && [...current].every((n, i) => n === nodes[i]);
  if (!prefix) parent.replaceChildren(...nodes);
  else if (current.length < nodes.length) parent.append(...nodes.slice(current.length));
}

/** kept, dropped, failed, running, or scored (its depth still deciding the beam). */
function status(c) {
  if (c.state !== "ended") return "running";
  if (c.outcome !== "ok" || c.score === null) return "failed";
  return c.kept === null ? "scored" : c.kept ? "kept" : "dropped";
}

function params(dl, values) {
  const key = JSON.stringify(values);
  if (dl.dataset.key === key) return;
  dl.dataset.key = key;
  fill(dl, Object.entries(values).map(([name, v]) => [h("dt", {}, name), h("dd", { title: v }, v)]));
}

function card(c, bestId) {
  let node = cards.get(c.span_id);
  if (!node) {
    node = h("a", { class: "cand", href: `/traces/${traceId}?span=${c.span_id}`, "data-candidate": c.id },
      h("div", { class: "cand-head" }, h("span", { class: "cand-id" }), h("span", { class: "cand-best" }, "★ best"), h("span", { class: "cand-score" })),
      h("dl", { class: "cand-params" }),
      h("p", { class: "cand-error" }),
      h("div", { class: "cand-foot" }, h("span", { class: "cand-status" }), h("span", { class: "cand-time" })));
    cards.set(c.span_id, node);
  }
  const what = status(c);
  const best = c.id === bestId;
  node.dataset.status = what;
  node.classList.toggle("best", best);
  setText(node.querySelector(".cand-id"), c.parent_id === null ? `#${c.id} start` : `#${c.id} ← #${c.parent_id}`);
  setText(node.querySelector(".cand-score"), what === "running" ? "…" : what === "failed" ? "failed" : score(c.score));
  params(node.querySelector(".cand-params"), c.params);
  const error = c.error ? `${c.error.type || "error"}: ${c.error.message || ""}` : what === "running" ? "evaluating…" : "";
  setText(node.querySelector(".cand-error"), error);
  node.querySelector(".cand-error").title = error;
  setText(node.querySelector(".cand-status"), what);
  setText(node.querySelector(".cand-time"), c.state === "ended" ? duration(c.duration_ms) : "");
  node.setAttribute("aria-label", `Candidate ${c.id}${best ? ", best so far" : ""}: ${what}, score ${score(c.score)}; open its span`);
  return node;
}

function column(depth, bestId) {
  let col = columns.get(depth.depth);
  if (!col) {
    const title = depth.depth ? `Depth ${depth.depth}` : "Start";
    col = h("section", { class: "beam-col", "data-depth": depth.depth, "aria-label": title },
      h("header", { class: "beam-head" }, h("h3", {}, title), h("span", { class: "beam-best" }), h("span", { class: "badge" })),
      h("div", { class: "beam-cards" }));
    columns.set(depth.depth, col);
  }
  const [cls, text] = state(depth);
  const badge = col.querySelector(".badge");
  badge.className = `badge ${cls}`;
  setText(badge, text);
  setText(col.querySelector(".beam-best"), depth.best_score === null ? "" : `best ${score(depth.best_score)}`);
  sync(col.querySelector(".beam-cards"), depth.candidates.map((c) => card(c, bestId)));
  return col;
}

const PAD = { left: 44, right: 18, top: 14, bottom: 24 };

/** Every candidate's score as a dot over its depth, and the best so far as a line through the depths. */
function chart(doc) {
  const svg = $("#score-chart");
  const width = Math.max(svg.clientWidth, 100);
  const height = Math.max(svg.clientHeight, 60);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const w = width - PAD.left - PAD.right;
  const hgt = height - PAD.top - PAD.bottom;
  const candidates = doc.depths.flatMap((d) => d.candidates);
  const scores = candidates.map((c) => c.score).filter((s) => s !== null);
  const lo = Math.min(0, ...scores);
  const axis = ticks(Math.max(lo, ...scores) - lo || 1).map((t) => t + lo);
  const top = axis.at(-1);
  const last = Math.max(doc.search.max_depth || 0, doc.depths.at(-1)?.depth || 0, 1);
  const X = (d) => PAD.left + (d / last) * w;
  const Y = (s) => PAD.top + hgt - ((s - lo) / (top - lo)) * hgt;
  for (const t of axis) {
    svg.append(h("svg:line", { class: "gridline", x1: PAD.left, x2: width - PAD.right, y1: Y(t), y2: Y(t) }));
    svg.append(h("svg:text", { class: "axis-label", x: PAD.left - 6, y: Y(t) + 4, "text-anchor": "end" }, score(Number(t.toPrecision(12)))));
  }
  for (let d = 0; d <= last; d++) {
    const anchor = d === 0 ? "start" : d === last ? "end" : "middle";
    svg.append(h("svg:text", { class: "axis-label", x: X(d), y: height - 6, "text-anchor": anchor }, d ? `depth ${d}` : "start"));
  }
  for (const depth of doc.depths) {
    depth.candidates.forEach((c, i) => {
      const x = X(depth.depth) + (i - (depth.candidates.length - 1) / 2) * Math.min(7, 60 / depth.candidates.length);
      const what = status(c);
      if (what === "running") return;
      const dot = what === "failed"
        ? h("svg:path", { class: "opt-failed", d: `M${x - 3.5},${Y(lo) - 3.5}l7,7m0,-7l-7,7` })
        : h("svg:circle", { class: `opt-dot ${what}`, cx: x, cy: Y(c.score), r: 3.5 });
      dot.append(h("svg:title", {}, `#${c.id}: ${what === "failed" ? "failed" : score(c.score)}`));
      svg.append(dot);
    });
  }
  const points = doc.history.filter((p) => p.best_score !== null).map((p) => [X(p.depth), Y(p.best_score)]);
  if (points.length) {
    svg.append(h("svg:path", { class: "opt-best", d: points.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join("") }));
    for (const [x, y] of points) svg.append(h("svg:circle", { class: "opt-best-point", cx: x, cy: y, r: 4 }));
  }
}

function best(doc) {
  const s = doc.search;
  const found = doc.depths.flatMap((d) => d.candidates).find((c) => c.id === s.best_id);
  setText($("#best-id"), found ? `#${found.id} · ${score(found.score)}` : "–");
  setText($("#best-where"), found ? (found.depth ? ` found at depth ${found.depth}` : " the starting values") : "");
  params($("#best-params"), found ? found.params : {});
  $("#best-empty").hidden = Boolean(found);
  setRows($("#depth-table"), doc.depths.map((d) => h("tr", {},
    h("td", {}, d.depth ? `Depth ${d.depth}` : "Start"),
    h("td", { class: "num" }, count(d.candidates.length)),
    h("td", { class: "num" }, count(d.candidates.filter((c) => status(c) === "failed").length)),
    h("td", { class: "num" }, score(d.best_score)),
    h("td", { class: "mono" }, d.beam ? d.beam.map((id) => `#${id}`).join(" ") : "deciding…"))));
}

function render(doc) {
  const s = doc.search;
  const [, text] = state(s);
  setText($("#search-title"), s.workflow || "Search");
  document.title = `${s.workflow || "Search"} · Optimization · OpenTrace`;
  setText($("#search-summary"), `${s.strategy || "search"} · started ${time(s.start_ns)} · ${text}`);
  setText($("#best-score"), score(s.best_score));
  setText($("#depth"), `${count(s.depths)} / ${count(s.max_depth)}`);
  setText($("#candidate-count"), count(s.candidates));
  const failed = doc.depths.flatMap((d) => d.candidates).filter((c) => status(c) === "failed").length;
  setText($("#failed-count"), count(failed));
  $("#failed-count").classList.toggle("bad", failed > 0);
  setText($("#beam-shape"), `${s.beam_width ?? "–"} × ${s.num_proposals ?? "–"}`);
  setText($("#duration"), s.state === "ended" ? duration(s.duration_ms) : "running");
  sync(board, doc.depths.map((d) => column(d, s.best_id)));
  best(doc);
  chart(doc);
}

async function load() {
  try {
    const doc = await fetchSearch(`/api/optimize/${traceId}/${spanId}`);
    if (!doc) return; // overtaken by a newer request
    report(null);
    shown = doc;
    render(doc);
    document.body.dataset.ready = "";
  } catch (error) {
    report(error);
  }
}

const refresh = throttle(load, 1000);
onLive((message) => { if (message.type === "update" && message.new_spans && shown?.search.state !== "ended") refresh(); });
addEventListener("resize", throttle(() => { if (shown) chart(shown); }, 250));
load();
