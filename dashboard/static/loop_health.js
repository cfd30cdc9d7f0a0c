// The event loop's health per process on the Live page: scheduling lag (p50, p99, max over the last
// minute) and blocked-loop incidents, from /api/loop (instrumented processes only).
import { h, setRows } from "/static/dom.js";
import { count, seconds } from "/static/format.js";
import { getJSON, report } from "/static/api.js";

const REFRESH_MS = 2000;
const MAX_ROWS = 8;

function rows(data) {
  const out = [];
  for (const p of data.processes) {
    for (const loop of p.loops) {
      out.push(h("tr", { "data-process": p.process.id },
        h("td", {}, `${p.process.service} (${p.process.pid})`),
        h("td", { class: "num", "data-testid": "lag-p50" }, seconds(loop.lag_p50_s)),
        h("td", { class: "num", "data-testid": "lag-p99" }, seconds(loop.lag_p99_s)),
        h("td", { class: "num" }, seconds(loop.lag_max_s)),
        h("td", { class: `num ${loop.blocked ? "bad" : "muted"}`, title: `blocked longer than ${seconds(loop.threshold_s)}` },
          loop.blocked ? h("a", { href: "/debug" }, count(loop.blocked)) : "0")));
    }
  }
  return out.slice(0, MAX_ROWS);
}

/** A card after `anchor` (a row of cards), refreshed every REFRESH_MS. */
export function mountLoopHealth(anchor) {
  const table = h("table", { class: "grid", id: "loop-table" },
    h("thead", {}, h("tr", {}, ["Process", "Lag p50", "Lag p99", "Lag max", "Blocked"].map((label, i) => h("th", { scope: "col", class: i ? "num" : null }, label)))),
    h("tbody", {}));
  const card = h("section", { class: "card", id: "loop-health", "aria-label": "Event loop" },
    h("h2", { class: "card-title" }, "Event loop"),
    h("div", { class: "table-wrap", style: "--rows: 5" }, table,
      h("p", { class: "empty", "data-empty-for": "loop-table" }, "No instrumented process (opto.configure(asyncio=True))")));
  anchor.after(h("div", { class: "cols three" }, card));
  async function load() {
    try {
      setRows(table, rows(await getJSON("/api/loop")));
    } catch (error) {
      report(error);
    }
  }
  load();
  setInterval(load, REFRESH_MS);
}
