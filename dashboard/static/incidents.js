// Blocked-loop incidents on the Debug page: where each instrumented process's loop was stuck,
// for how long, in which task, with the sampled stack; from /api/loop.
import { h, setRows } from "/static/dom.js";
import { seconds, time } from "/static/format.js";
import { getJSON, report } from "/static/api.js";

const REFRESH_MS = 2000;

function row(p, i) {
  const where = `${i.file}:${i.line}`;
  return h("tr", { "data-testid": "incident" },
    h("td", {}, time(i.start_ns)),
    h("td", {}, `${p.process.service} (${p.process.pid})`),
    h("td", { class: "num" }, i.duration_s === null ? `${seconds(i.seen_after_s)}, still blocked` : seconds(i.duration_s)),
    h("td", {}, h("span", { class: "mono", title: where }, where), " in ", h("strong", {}, i.function),
      h("details", {}, h("summary", {}, "stack"), h("pre", {}, i.stack.map((f) => `${f.file}:${f.line} in ${f.function}`).join("\n")))),
    h("td", { class: "mono" }, i.task ?? "–"),
    h("td", {}, h("a", { href: `/traces/${i.trace_id}?span=${i.span_id}` }, "span")));
}

/** A card before `anchor`, refreshed every REFRESH_MS. */
export function mountIncidents(anchor) {
  const table = h("table", { class: "grid", id: "incident-table" },
    h("thead", {}, h("tr", {}, ["Time", "Process", "Blocked for", "Where", "Task", "Trace"].map((label) => h("th", { scope: "col" }, label)))),
    h("tbody", {}));
  anchor.before(h("section", { class: "card", id: "incidents", "aria-label": "Blocked event loop" },
    h("h2", { class: "card-title" }, "Blocked event loop"),
    h("div", { class: "table-wrap", style: "--rows: 6" }, table,
      h("p", { class: "empty", "data-empty-for": "incident-table" }, "No blocked loop reported (opto.configure(asyncio=True) watches for them)"))));
  async function load() {
    try {
      const data = await getJSON("/api/loop");
      const incidents = data.processes.flatMap((p) => p.loops.flatMap((l) => l.incidents.map((i) => [p, i])));
      incidents.sort((a, b) => b[1].start_ns - a[1].start_ns);
      setRows(table, incidents.map(([p, i]) => row(p, i)));
    } catch (error) {
      report(error);
    }
  }
  load();
  setInterval(load, REFRESH_MS);
}
