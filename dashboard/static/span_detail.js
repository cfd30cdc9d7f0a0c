// The detail panel of a span on the Trace page: its facts, exception, arguments, result, events,
// creation stack, links and other attributes. Every value is shown as text (telemetry is untrusted).
import { $, h, fill, names } from "/static/dom.js";
import { duration, percent, retryCause, time, value } from "/static/format.js";
import { stackView } from "/static/stack.js";

function kvTable(entries) {
  return h("table", {}, h("tbody", {}, entries.map(([k, v]) => h("tr", {}, h("td", { title: k }, k), h("td", {}, v)))));
}

function section(title, ...body) {
  return [h("h3", {}, title), ...body];
}

function eventBlock(span, e) {
  const attrs = { ...e.attributes };
  const offset = `+${duration((e.time_ns - span.start_ns) / 1e6)}`;
  let cls = "event";
  let title = e.name;
  let body = [];
  if (e.name === names.EVENT_RETRY) {
    cls += " retry";
    title = `Retry after attempt ${attrs[names.ATTEMPT] ?? "?"}`;
    const message = attrs[names.EXCEPTION_MESSAGE];
    body = [h("div", {}, retryCause(attrs[names.EXCEPTION_TYPE], message)),
      h("div", { class: "muted" }, `waited ${duration((attrs[names.RETRY_DELAY_S] || 0) * 1000)} before the next attempt`)];
  } else if (e.name === "exception") {
    cls += " exception";
    title = `${attrs[names.EXCEPTION_TYPE] || "Exception"}`;
    body = [h("div", {}, attrs[names.EXCEPTION_MESSAGE] ?? "")];
    if (attrs[names.EXCEPTION_STACKTRACE]) body.push(h("pre", {}, attrs[names.EXCEPTION_STACKTRACE]));
  } else if (e.name === names.EVENT_TIMEOUT) {
    cls += " timeout";
    title = `Timed out (attempt ${attrs[names.ATTEMPT] ?? "?"})`;
    body = [h("div", { class: "muted" }, `after ${duration((attrs[names.TIMEOUT_S] || 0) * 1000)}`)];
  } else {
    const stack = attrs[names.DEBUG_CREATION_STACK];
    delete attrs[names.DEBUG_CREATION_STACK];
    body = [Object.keys(attrs).length ? kvTable(Object.entries(attrs).map(([k, v]) => [k, value(v)])) : null,
      stack ? stackView(stack) : null];
  }
  return h("div", { class: cls, "data-event": e.name }, h("div", { class: "event-head" }, h("span", {}, title), h("span", { class: "muted" }, offset)), body);
}

/** A link's item: within this trace, a click selects the span (`select(spanId)` true) instead of navigating. */
function linkItem(link, traceId, select) {
  const same = link.trace_id === traceId;
  const a = h("a", { href: `/traces/${link.trace_id}?span=${link.span_id}`, "data-link-span": link.span_id },
    same ? `span ${link.span_id}` : `trace ${link.trace_id.slice(0, 8)}… span ${link.span_id}`);
  if (same) a.addEventListener("click", (e) => { if (select(link.span_id)) e.preventDefault(); });
  return h("li", {}, a);
}

/**
 * Fill the panel with `span`. `trace` gives the page's context: `traceId`, `nowNs` (a running
 * span's "now"), `onPath` (its time on the critical path, ns, or 0) and `total` (the path's), and
 * `select(spanId)` (true when the span is in this trace and was selected).
 */
export function showDetail(span, trace) {
  const attrs = span.attributes;
  const args = [];
  const other = [];
  const shown = new Set([names.OUTCOME, names.RESULT, names.DEBUG_CREATION_STACK, names.CODE_FILE_PATH, names.CODE_LINE_NUMBER]);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith(names.ARG_PREFIX)) args.push([k.slice(names.ARG_PREFIX.length), value(v)]);
    else if (!shown.has(k)) other.push([k, value(v)]);
  }
  const outcome = span.state === "started" ? "inflight" : span.outcome;
  const file = attrs[names.CODE_FILE_PATH];
  const facts = [
    ["duration", span.state === "started" ? `running for ${duration((trace.nowNs() - span.start_ns) / 1e6)}` : duration(span.duration_ms)],
    ["started", time(span.start_ns)],
    ["span id", span.span_id],
    ["parent", span.parent_span_id || "(root)"],
    ["kind", span.kind],
    ["service", span.service || "–"],
  ];
  if (span.status.message) facts.push(["status", `${span.status.code}: ${span.status.message}`]);
  const onPath = trace.onPath;
  facts.push(["critical path", onPath ? `${duration(onPath / 1e6)} (${percent(onPath / trace.total)} of the trace's)` : "none of its time"]);
  if (file) facts.push(["code", `${file}:${attrs[names.CODE_LINE_NUMBER] ?? ""}`]);
  const exceptions = span.events.filter((e) => e.name === "exception");
  const events = span.events.filter((e) => e.name !== "exception");
  const body = $("#detail-body");
  fill(body,
    h("h2", {}, span.name),
    h("span", { class: `badge ${outcome}`, "data-testid": "detail-outcome" }, outcome === "inflight" ? "in flight" : outcome),
    section("Span", kvTable(facts)),
    exceptions.length ? section("Exception", exceptions.map((e) => eventBlock(span, e))) : null,
    args.length ? section("Arguments", kvTable(args)) : null,
    names.RESULT in attrs ? section("Result", h("pre", {}, value(attrs[names.RESULT]))) : null,
    events.length ? section(`Events (${events.length})`, events.map((e) => eventBlock(span, e))) : null,
    attrs[names.DEBUG_CREATION_STACK] ? section("Created at", stackView(attrs[names.DEBUG_CREATION_STACK])) : null,
    span.links.length ? section("Links", h("ul", { class: "links" }, span.links.map((link) => linkItem(link, trace.traceId, trace.select)))) : null,
    other.length ? section("Attributes", kvTable(other)) : null,
  );
  body.hidden = false;
  $("#detail-empty").hidden = true;
}
