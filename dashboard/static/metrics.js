// The Metrics page: each AsyncMetrics summary as figure tiles, each with a sparkline of its history.
import { $, h, fill } from "/static/dom.js";
import { bytes, count, seconds, time, value } from "/static/format.js";
import { latest, report, throttle } from "/static/api.js";
import { sparkline } from "/static/charts.js";
import { onLive } from "/static/socket.js";

const fetchMetrics = latest();
const list = $("#metrics");

/** A figure by the unit its key names: `_s` seconds, `_bytes` bytes, else a count. */
function figure(key, v) {
  if (v === null || v === undefined) return "–";
  if (key.endsWith("_s")) return seconds(v);
  if (key.endsWith("_bytes")) return bytes(v);
  return typeof v === "number" ? count(v) : value(v);
}

const label = (key) => key.replace(/_bytes$|_s$/, "").replaceAll("_", " ");

// What a figure cannot tell by itself.
const NOTES = {
  cpu_s: "the event loop thread's CPU time while each block was open, summed: blocks open at the same time each count the loop's CPU, so the sum can pass the CPU used",
};

function tile(key, v, history) {
  const spark = h("svg:svg", { class: "spark", preserveAspectRatio: "none", "aria-hidden": "true" });
  sparkline(spark, history.map(([, s]) => s[key]).filter((x) => typeof x === "number"));
  return h("div", { class: "figure", "data-figure": key },
    h("div", { class: "stat-label" }, label(key)),
    h("div", { class: "figure-value" }, figure(key, v)),
    NOTES[key] ? h("p", { class: "figure-note", "data-testid": `note-${key}` }, NOTES[key]) : null,
    spark);
}

function render(summary, history) {
  const figures = Object.entries(summary.summary).filter(([k, v]) => k !== "name" && (typeof v === "number" || v === null));
  const recorded = summary.summary.values && typeof summary.summary.values === "object" ? Object.entries(summary.summary.values) : [];
  return h("section", { class: "card", "aria-label": `Metrics ${summary.name}`, "data-metric": summary.name },
    h("div", { class: "card-head" },
      h("h2", { class: "card-title" }, summary.name),
      h("span", { class: "muted" }, `updated ${time(summary.time_ns)} · ${count(history.length)} snapshots`)),
    h("div", { class: "figures" }, figures.map(([k, v]) => tile(k, v, history))),
    recorded.length ? [h("h3", { class: "sub" }, "Recorded values"),
      h("table", { class: "grid" }, h("tbody", {}, recorded.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, value(v))))))] : null);
}

async function load() {
  try {
    const data = await fetchMetrics("/api/metrics");
    if (!data) return;
    report(null);
    // History arrives newest first; sparklines read left to right.
    fill(list, data.summaries.map((s) => render(s, [...(data.history[s.name] || [])].sort((a, b) => a[0] - b[0]))));
    $("#metrics-empty").hidden = data.summaries.length > 0;
  } catch (error) {
    report(error);
  }
}

const refresh = throttle(load, 1000);
onLive((message) => { if (message.type === "update" && !message.heartbeat) refresh(); });
load();
