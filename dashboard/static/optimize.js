// The Optimization page: every @trace.optimize search with its best score so far, refreshed live.
import { $, h, setRows } from "/static/dom.js";
import { count, duration, time, value } from "/static/format.js";
import { latest, report, throttle } from "/static/api.js";
import { onLive } from "/static/socket.js";
import { score, state } from "/static/optimize_parts.js";

const fetchSearches = latest();

function row(s) {
  const href = `/optimize/${s.trace_id}/${s.span_id}`;
  const [cls, text] = state(s);
  const params = value(s.best_params);
  const tr = h("tr", { tabindex: 0, "data-span-id": s.span_id },
    h("td", {}, time(s.start_ns)),
    h("td", { title: s.workflow || "" }, h("a", { href }, s.workflow || "(unnamed)")),
    h("td", {}, s.strategy || "–"),
    h("td", { class: "num" }, `${count(s.depths)} / ${count(s.max_depth)}`),
    h("td", { class: "num" }, count(s.candidates)),
    h("td", { class: "num", "data-field": "best-score" }, score(s.best_score)),
    h("td", { class: "mono", title: params }, params || "–"),
    h("td", { class: "num" }, s.state === "ended" ? duration(s.duration_ms) : "running"),
    h("td", {}, h("span", { class: `badge ${cls}` }, text)));
  tr.addEventListener("click", (e) => { if (e.target.tagName !== "A") location.href = href; });
  tr.addEventListener("keydown", (e) => { if (e.key === "Enter") location.href = href; });
  return tr;
}

async function load() {
  try {
    const data = await fetchSearches("/api/optimize?limit=100");
    if (!data) return;
    report(null);
    setRows($("#search-table"), data.searches.map(row));
  } catch (error) {
    report(error);
  }
}

const refresh = throttle(load, 1000);
onLive((message) => { if (message.type === "update" && message.new_spans) refresh(); });
load();
