// The Tasks page: each instrumented process's asyncio tasks by creation site and by parent, the
// oldest live ones (with "Where is it now?"), and tasks lost without an answer; from /api/tasks.
import { $, h, fill } from "/static/dom.js";
import { count, seconds, time } from "/static/format.js";
import { latest, report } from "/static/api.js";
import { whereButton } from "/static/where.js";

const fetchTasks = latest();
const REFRESH_MS = 2000;
const KIND = { never_retrieved: "exception never retrieved", destroyed_pending: "destroyed while pending" };

const base = (file) => file.split(/[\\/]/).pop();
const num = (n, cls = "") => h("td", { class: `num ${n ? cls : "muted"}` }, count(n));

function siteCell(s) {
  return h("td", { title: s.site }, h("strong", {}, s.function), s.file ? h("span", { class: "muted mono" }, ` ${base(s.file)}:${s.line}`) : "");
}

function siteRows(process, sites) {
  return [...sites].sort((a, b) => b.live - a.live || b.created - a.created).map((s) => h("tr", { "data-site": s.site },
    siteCell(s), num(s.live), num(s.created), num(s.ok), num(s.error, "bad"), num(s.cancelled),
    h("td", { class: "num" }, seconds(s.oldest_s)),
    num(s.never_finished, "warn"), num(s.destroyed_pending, "bad"), num(s.never_retrieved, "bad"),
    h("td", {}, s.oldest.map((t) => h("div", { class: "oldest-task", "data-task": t.name },
      h("span", { class: "mono" }, t.name), ` ${seconds(t.age_s)} `, whereButton(process.id, { task: t.id }))))));
}

function parentRows(sites) {
  const parents = new Map();
  for (const s of sites) {
    for (const [parent, n] of Object.entries(s.parents)) {
      const p = parents.get(parent) || { live: 0, sites: new Set() };
      p.live += n;
      p.sites.add(s.function);
      parents.set(parent, p);
    }
  }
  return [...parents.entries()].sort((a, b) => b[1].live - a[1].live).map(([parent, p]) =>
    h("tr", {}, h("td", { class: "mono", title: parent }, parent), num(p.live), h("td", {}, [...p.sites].join(", "))));
}

function table(caption, headers, rows, empty) {
  return h("div", { class: "table-wrap" },
    h("table", { class: "grid", "aria-label": caption },
      h("thead", {}, h("tr", {}, headers.map(([label, isNum]) => h("th", { scope: "col", class: isNum ? "num" : null }, label)))),
      h("tbody", {}, rows)),
    rows.length ? null : h("p", { class: "empty" }, empty));
}

function processCard(p) {
  const who = `${p.process.service} (pid ${p.process.pid})`;
  return h("section", { class: "card", "aria-label": `Tasks of ${who}`, "data-process": p.process.id },
    h("h2", { class: "card-title" }, who, h("span", { class: "muted" }, ` · ${count(p.live)} live · updated ${time(p.received_ns)}`)),
    h("h3", {}, "By creation site"),
    table("Tasks by creation site", [["Created at"], ["Live", 1], ["Created", 1], ["OK", 1], ["Errors", 1], ["Cancelled", 1],
      ["Oldest", 1], ["Never finished", 1], ["Destroyed pending", 1], ["Never retrieved", 1], ["Oldest live tasks"]],
    siteRows(p.process, p.sites), "No task created since instrumenting"),
    h("h3", {}, "Live tasks by parent"),
    table("Live tasks by parent", [["Parent (its creation site, or its name)"], ["Live children", 1], ["Created at"]], parentRows(p.sites), "No live task"),
    h("h3", {}, "Lost without an answer"),
    table("Tasks lost", [["Time"], ["What"], ["Created at"], ["Task"], ["Exception"]], p.recent.map((r) => h("tr", { "data-kind": r.kind },
      h("td", {}, time(r.time_ns)), h("td", {}, KIND[r.kind] || r.kind), h("td", { class: "mono" }, r.site),
      h("td", { class: "mono" }, r.task), h("td", { class: "mono" }, r.exception ?? "–"))), "None"));
}

async function load() {
  try {
    const data = await fetchTasks("/api/tasks");
    if (!data) return;
    report(null);
    $("#tasks-empty").hidden = data.processes.length > 0;
    fill($("#processes"), data.processes.map(processCard));
    document.body.dataset.ready = "tasks";
  } catch (error) {
    report(error);
  }
}

load();
setInterval(load, REFRESH_MS);
