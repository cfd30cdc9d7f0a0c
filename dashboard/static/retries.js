// The Retries page: retries per call for each function and the latest retries with their causes.
import { $, h, setRows } from "/static/dom.js";
import { count, retryCause, seconds, time } from "/static/format.js";
import { latest, report, throttle } from "/static/api.js";
import { onLive } from "/static/socket.js";

const fetchRetries = latest();
const form = $("#filters");
form.elements.name.value = new URLSearchParams(location.search).get("name") || "";

async function load() {
  const name = form.elements.name.value.trim();
  const params = new URLSearchParams({ limit: "200" });
  if (name) params.set("name", name);
  try {
    const data = await fetchRetries(`/api/retries?${params}`);
    if (!data) return;
    report(null);
    setRows($("#function-table"), data.by_function.map((f) => h("tr", {},
      h("td", {}, f.name),
      h("td", { class: "num" }, count(f.calls)),
      h("td", { class: "num" }, count(f.retries)),
      h("td", { class: "num", title: `${count(f.retries)} retries over ${count(f.calls)} calls` }, f.retries_per_call.toFixed(2)),
      h("td", { class: "num" }, f.exhausted ? h("span", { class: "badge error" }, count(f.exhausted)) : "0"))));
    setRows($("#retry-table"), data.retries.map((r) => h("tr", {},
      h("td", {}, time(r.time_ns)),
      h("td", {}, r.name),
      h("td", { class: "num" }, r.attempt),
      h("td", { title: retryCause(r.exception_type, r.exception_message), "data-testid": "retry-cause" }, retryCause(r.exception_type, r.exception_message)),
      h("td", { class: "num" }, seconds(r.delay_s)),
      h("td", {}, h("a", { href: `/traces/${r.trace_id}?span=${r.span_id}` }, `${r.trace_id.slice(0, 8)}…`)))));
  } catch (error) {
    report(error);
  }
}

form.addEventListener("submit", (e) => e.preventDefault());
form.elements.name.addEventListener("input", throttle(() => {
  const url = new URL(location.href);
  const name = form.elements.name.value.trim();
  if (name) url.searchParams.set("name", name); else url.searchParams.delete("name");
  history.replaceState(null, "", url);
  load();
}, 300));
const refresh = throttle(load, 1000);
onLive((message) => { if (message.type === "update" && message.new_spans) refresh(); });
load();
