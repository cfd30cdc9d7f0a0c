// The Metrics page: each AsyncMetrics summary's latest figures, with a sparkline of their history.
import { $, h, setRows } from "/static/dom.js";
import { time, value } from "/static/format.js";
import { latest, report, throttle } from "/static/api.js";
import { sparkline } from "/static/charts.js";
import { onLive } from "/static/socket.js";

const fetchMetrics = latest();
const list = $("#metrics");
const cards = new Map();

function card(name) {
  if (!cards.has(name)) {
    const id = `metric-${cards.size}`;
    const node = h("section", { class: "card", "aria-label": `Metrics ${name}`, "data-metric": name },
      h("h2", { class: "card-title" }, name),
      h("p", { class: "muted updated" }),
      h("table", { class: "grid metric-table", id },
        h("thead", {}, h("tr", {}, h("th", {}, "Figure"), h("th", { class: "num" }, "Latest"), h("th", { class: "num" }, "History"))),
        h("tbody")));
    cards.set(name, node);
  }
  return cards.get(name);
}

function render(summary, history) {
  const node = card(summary.name);
  node.querySelector(".updated").textContent = `updated ${time(summary.time_ns)}`;
  const rows = Object.entries(summary.summary).map(([key, v]) => {
    const spark = h("svg:svg", { class: "spark", "aria-hidden": "true" });
    const values = history.map(([, s]) => s[key]).filter((x) => typeof x === "number");
    if (typeof v === "number") sparkline(spark, values);
    return h("tr", {}, h("td", {}, key), h("td", { class: "num" }, value(v)), h("td", { class: "num" }, spark));
  });
  setRows(node.querySelector("table"), rows);
  return node;
}

async function load() {
  try {
    const data = await fetchMetrics("/api/metrics");
    if (!data) return;
    report(null);
    const nodes = data.summaries.map((s) => render(s, data.history[s.name] || []));
    list.replaceChildren(...nodes);
    $("#metrics-empty").hidden = nodes.length > 0;
  } catch (error) {
    report(error);
  }
}

const refresh = throttle(load, 1000);
onLive((message) => { if (message.type === "update") refresh(); });
load();
