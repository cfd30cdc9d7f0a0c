// The Traces page: filters, sort and page live in the URL; the table follows them.
import { $, h, setRows, setText } from "/static/dom.js";
import { count, duration, time } from "/static/format.js";
import { latest, report, throttle } from "/static/api.js";
import { scatterChart } from "/static/charts.js";
import { onLive } from "/static/socket.js";

const PAGE = 50;
const FIELDS = ["name", "service", "attr", "outcome", "min_duration_ms", "max_duration_ms", "since", "until", "q"];
const form = $("#filters");
const table = $("#trace-table");
const fetchTraces = latest();
const picked = []; // the trace ids ticked for comparison, at most two, oldest first
let loads = 0; // the spinner shows until the newest load ends

function readUrl() {
  const params = new URLSearchParams(location.search);
  for (const field of FIELDS) form.elements[field].value = params.get(field) || "";
  if (["min_duration_ms", "max_duration_ms", "since", "until"].some((f) => params.get(f))) $("#more-filters").open = true;
  return params;
}

/** datetime-local values are local wall-clock times; the API wants ns since the epoch. */
const toNs = (local) => (local ? BigInt(new Date(local).getTime()) * 1_000_000n : null);

function apiUrl(params) {
  const api = new URLSearchParams();
  for (const key of ["name", "service", "attr", "outcome", "min_duration_ms", "max_duration_ms", "q"]) if (params.get(key)) api.set(key, params.get(key));
  const since = toNs(params.get("since"));
  const until = toNs(params.get("until"));
  if (since !== null) api.set("since_ns", since.toString());
  if (until !== null) api.set("until_ns", until.toString());
  api.set("sort", params.get("sort") || "start");
  api.set("order", params.get("order") || "desc");
  api.set("limit", PAGE);
  api.set("offset", params.get("offset") || "0");
  return `/api/traces?${api}`;
}

function row(t) {
  const outcome = t.in_flight ? "inflight" : t.outcome;
  const link = h("a", { href: `/traces/${t.trace_id}` }, t.root_name || "(no root yet)");
  const pick = h("input", { type: "checkbox", class: "pick", tabindex: -1, "aria-label": "Pick for comparison (c)", checked: picked.includes(t.trace_id) });
  pick.addEventListener("change", () => togglePick(t.trace_id));
  const tr = h("tr", { tabindex: 0, "data-trace-id": t.trace_id },
    h("td", {}, pick, time(t.start_ns)),
    h("td", { title: t.root_name }, link),
    h("td", {}, t.service || "–"),
    h("td", { class: "num" }, t.in_flight ? "running" : duration(t.duration_ms)),
    h("td", { class: "num" }, count(t.span_count)),
    h("td", { class: "num" }, t.error_count ? count(t.error_count) : "–"),
    h("td", { class: "num" }, t.retry_count ? count(t.retry_count) : "–"),
    h("td", {}, h("span", { class: `badge ${outcome}` }, t.in_flight ? "in flight" : outcome)));
  // The row in focus or under the pointer outlines its dot in the scatter plot.
  const mark = (on) => $(`#trace-scatter [data-trace-id="${t.trace_id}"]`)?.classList.toggle("current", on);
  for (const event of ["focus", "mouseenter"]) tr.addEventListener(event, () => mark(true));
  for (const event of ["blur", "mouseleave"]) tr.addEventListener(event, () => mark(false));
  tr.addEventListener("click", (e) => { if (e.target.tagName !== "A" && e.target !== pick) location.href = link.href; });
  tr.addEventListener("keydown", (e) => {
    if (e.key === "Enter") location.href = link.href;
    if (e.key === "c") togglePick(t.trace_id);
  });
  return tr;
}

/** Jaeger's search-page plot: the listed finished traces, duration over start time (the rows stay the keyboard path). */
function scatter(traces) {
  const done = traces.filter((t) => t.duration_ms !== null);
  $("#scatter").hidden = !done.length;
  if (!done.length) return;
  const starts = done.map((t) => t.start_ns / 1e6);
  scatterChart($("#trace-scatter"), {
    x0: Math.min(...starts), x1: Math.max(...starts), formatX: (ms) => time(ms * 1e6), formatY: (ms) => duration(ms), unit: "duration",
    points: done.map((t) => ({
      x: t.start_ns / 1e6, y: t.duration_ms, className: t.outcome,
      title: `${t.root_name || "(no root)"}: ${duration(t.duration_ms)}, ${count(t.span_count)} spans, ${t.outcome}, ${time(t.start_ns)}`,
      data: { "data-trace-id": t.trace_id }, onclick: () => { location.href = `/traces/${t.trace_id}`; },
    })),
  });
}

/** Tick or untick a trace for comparison; a third tick drops the first. */
function togglePick(traceId) {
  const at = picked.indexOf(traceId);
  if (at >= 0) picked.splice(at, 1);
  else if (picked.push(traceId) > 2) picked.shift();
  for (const box of table.querySelectorAll("input.pick")) box.checked = picked.includes(box.closest("tr").dataset.traceId);
  const button = $("#compare");
  button.disabled = picked.length < 2;
  setText(button, picked.length < 2 ? `Compare ${picked.length} of 2` : "Compare");
}
$("#compare").addEventListener("click", () => { location.href = `/traces/${picked[0]}?compare=${picked[1]}`; });

async function load() {
  const params = new URLSearchParams(location.search);
  const sort = params.get("sort") || "start";
  const order = params.get("order") || "desc";
  for (const th of table.tHead.rows[0].cells) {
    const button = th.querySelector("button.sort");
    if (!button) continue;
    if (button.dataset.sort === sort) th.setAttribute("aria-sort", order === "asc" ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
  const mine = ++loads;
  $("#loading").hidden = false;
  try {
    const data = await fetchTraces(apiUrl(params));
    if (!data) return; // overtaken by a newer request
    report(null);
    setRows(table, data.traces.map(row));
    scatter(data.traces);
    const filtered = FIELDS.some((f) => params.get(f));
    setText($("[data-empty-for='trace-table']"), filtered || Number(params.get("offset") || 0)
      ? "No traces match these filters."
      : "No traces yet: point a program at this dashboard with opto.configure(dashboard=URL), or run make demo.");
    const offset = Number(params.get("offset") || 0);
    const total = `${count(data.total)}${data.more ? "+" : ""}`;
    setText($("#page-info"), data.total ? `${count(offset + 1)}–${count(offset + data.traces.length)} of ${total}` : "0 traces");
    $("#prev").disabled = offset === 0;
    $("#next").disabled = offset + data.traces.length >= data.total;
  } catch (error) {
    report(error);
  } finally {
    if (mine === loads) $("#loading").hidden = true;
  }
}

/** Fill a filter's datalist with the names (services, attributes) seen that start with what is typed. */
function suggestions(input) {
  const list = document.getElementById(input.getAttribute("list"));
  const fetchValues = latest();
  const update = async () => {
    try {
      const data = await fetchValues(`/api/suggest?${new URLSearchParams({ field: input.dataset.suggest, prefix: input.value.slice(0, 200) })}`);
      if (data) list.replaceChildren(...data.values.map((value) => h("option", { value })));
    } catch (error) {
      report(error);
    }
  };
  input.addEventListener("input", throttle(update, 250));
  input.addEventListener("focus", update, { once: true });
}

/** Change the URL (one history entry per user action) and reload the table. */
function navigate(changes, { resetPage = true } = {}) {
  const params = new URLSearchParams(location.search);
  for (const [key, value] of Object.entries(changes)) {
    if (value === "" || value === null) params.delete(key);
    else params.set(key, value);
  }
  if (resetPage && !("offset" in changes)) params.delete("offset");
  history.pushState(null, "", `${location.pathname}${params.size ? "?" + params : ""}`);
  load();
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  navigate(Object.fromEntries(FIELDS.map((f) => [f, form.elements[f].value.trim()])));
});
form.addEventListener("reset", () => setTimeout(() => navigate(Object.fromEntries(FIELDS.map((f) => [f, ""])))));
form.elements.outcome.addEventListener("change", () => form.requestSubmit());

for (const button of table.querySelectorAll("button.sort")) {
  button.addEventListener("click", () => {
    const params = new URLSearchParams(location.search);
    const same = (params.get("sort") || "start") === button.dataset.sort;
    const order = same && (params.get("order") || "desc") === "desc" ? "asc" : "desc";
    navigate({ sort: button.dataset.sort, order });
  });
}

function page(delta) {
  const offset = Math.max(0, Number(new URLSearchParams(location.search).get("offset") || 0) + delta * PAGE);
  navigate({ offset: offset || "" }, { resetPage: false });
}
$("#prev").addEventListener("click", () => page(-1));
$("#next").addEventListener("click", () => page(1));

// Live by default: the table follows new spans unless the URL says `live=0` (the box unticked).
const toggle = $("#live-toggle");
const liveInUrl = () => new URLSearchParams(location.search).get("live") !== "0";
toggle.checked = liveInUrl();
toggle.addEventListener("change", () => navigate({ live: toggle.checked ? "" : "0" }, { resetPage: false }));
const refresh = throttle(load, 1000);
onLive((message) => { if (toggle.checked && message.type === "update" && message.new_spans) refresh(); });

for (const input of form.querySelectorAll("[data-suggest]")) suggestions(input);

// The second skip link lands on the first trace row (or the table when it has none).
$("#skip-to-rows").addEventListener("click", (e) => {
  e.preventDefault();
  (table.tBodies[0].rows[0] || table).focus();
});
table.tabIndex = -1;

addEventListener("popstate", () => { readUrl(); toggle.checked = liveInUrl(); load(); });
readUrl();
load();
