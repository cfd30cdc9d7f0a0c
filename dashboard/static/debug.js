// The Debug page: debug events stream in as they arrive, newest first, filterable.
import { $, h, names, setRows } from "/static/dom.js";
import { seconds, time, value } from "/static/format.js";
import { latest, report, throttle } from "/static/api.js";
import { onLive } from "/static/socket.js";
import { stackView } from "/static/stack.js";
import { mountIncidents } from "/static/incidents.js";

const KEEP = 500;
const fetchEvents = latest();
const form = $("#filters");
const pause = $("#pause");
let events = [];
let lastNs = null;

const params = new URLSearchParams(location.search);
form.elements.kind.value = params.get("kind") || "";
form.elements.q.value = params.get("q") || "";

function detail(e) {
  const attrs = { ...e.attributes };
  const stack = attrs[names.DEBUG_CREATION_STACK];
  delete attrs[names.DEBUG_CREATION_STACK];
  const parts = [];
  if (names.DEBUG_DURATION_S in attrs) parts.push(h("strong", {}, `blocked ${seconds(attrs[names.DEBUG_DURATION_S])} `));
  const rest = Object.entries(attrs).filter(([k]) => k !== names.DEBUG_DURATION_S).map(([k, v]) => `${k}=${value(v)}`);
  if (rest.length) parts.push(h("span", { class: "mono" }, rest.join("  ")));
  if (stack) parts.push(h("details", {}, h("summary", {}, "where it was created"), stackView(stack)));
  return parts;
}

function render() {
  setRows($("#debug-table"), events.map((e) => h("tr", { "data-kind": e.kind },
    h("td", {}, time(e.time_ns)),
    h("td", {}, h("span", { class: `kind ${e.kind}` }, e.kind.replace("_", " "))),
    h("td", {}, e.name),
    h("td", { class: "wrap" }, detail(e)),
    h("td", {}, e.trace_id ? h("a", { href: `/traces/${e.trace_id}${e.span_id ? `?span=${e.span_id}` : ""}` }, `${e.trace_id.slice(0, 8)}…`) : "–"))));
}

async function load({ fresh = false } = {}) {
  if (fresh) { events = []; lastNs = null; }
  const query = new URLSearchParams();
  for (const key of ["kind", "q"]) if (form.elements[key].value) query.set(key, form.elements[key].value.trim());
  if (lastNs !== null) query.set("since_ns", String(lastNs));
  try {
    const data = await fetchEvents(`/api/debug?${query}`);
    if (!data) return;
    report(null);
    const known = new Set(events.map((e) => `${e.time_ns}|${e.span_id}|${e.name}|${e.kind}`));
    const incoming = data.events.filter((e) => !known.has(`${e.time_ns}|${e.span_id}|${e.name}|${e.kind}`));
    events = [...incoming, ...events].sort((a, b) => b.time_ns - a.time_ns).slice(0, KEEP);
    if (events.length) lastNs = events[0].time_ns;
    render();
  } catch (error) {
    report(error);
  }
}

function filtersChanged() {
  const url = new URL(location.href);
  for (const key of ["kind", "q"]) {
    const v = form.elements[key].value.trim();
    if (v) url.searchParams.set(key, v); else url.searchParams.delete(key);
  }
  history.replaceState(null, "", url);
  load({ fresh: true });
}
form.addEventListener("submit", (e) => e.preventDefault());
form.elements.kind.addEventListener("change", filtersChanged);
form.elements.q.addEventListener("input", throttle(filtersChanged, 300));
pause.addEventListener("change", () => { if (!pause.checked) load(); });
const refresh = throttle(() => load(), 1000);
onLive((message) => { if (message.type === "update" && message.new_spans && !pause.checked) refresh(); });
load();

mountIncidents($("#events"));
