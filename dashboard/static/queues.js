// The Queues page: one card per AsyncQueue, refreshed as new telemetry arrives.
import { $, h, setText } from "/static/dom.js";
import { count, duration, time } from "/static/format.js";
import { latest, report, throttle } from "/static/api.js";
import { histogram, lineChart, cssColor } from "/static/charts.js";
import { onLive } from "/static/socket.js";

const fetchQueues = latest();
const cards = new Map();
const list = $("#queues");

function card(name) {
  if (!cards.has(name)) {
    const node = $("#queue-card").content.firstElementChild.cloneNode(true);
    node.dataset.queue = name;
    node.setAttribute("aria-label", `Queue ${name}`);
    node.querySelector(".queue-name").textContent = name;
    cards.set(name, node);
  }
  return cards.get(name);
}

/**
 * Per-bucket counts from the API's cumulative `le` histogram (last bound null: +Inf), without
 * the empty buckets at either end so the bars that matter get the width.
 */
export function buckets(cumulative) {
  const out = cumulative.map((b, i) => ({ le_ms: b.le_ms, count: b.count - (i ? cumulative[i - 1].count : 0) }));
  const first = out.findIndex((b) => b.count > 0);
  if (first < 0) return [];
  let last = out.length - 1;
  while (out[last].count === 0) last--;
  return out.slice(Math.max(0, first - 1), last + 1);
}

const bound = (ms) => (ms === null ? "more" : duration(ms));

function render(queue) {
  const node = card(queue.name);
  const field = (f) => node.querySelector(`[data-field="${f}"]`);
  setText(field("producers"), count(queue.producers));
  setText(field("consumers"), count(queue.consumers));
  setText(field("depth"), queue.depth.length ? count(queue.depth.at(-1)[1]) : "–");
  setText(field("wait-p50"), duration(queue.wait_ms.p50));
  setText(field("wait-p95"), duration(queue.wait_ms.p95));
  setText(field("put-p95"), duration(queue.put_blocked_ms.p95));
  const depth = queue.depth;
  lineChart(node.querySelector('[data-chart="depth"]'), {
    series: [{ name: "depth", color: cssColor("--series-1"), points: depth }],
    x0: depth[0]?.[0] ?? 0, x1: depth.at(-1)?.[0] ?? 1,
    formatX: (x) => (depth.length ? time(x).replace(/\.\d+$/, "") : ""), unit: "items queued",
  });
  histogram(node.querySelector('[data-chart="wait"]'), buckets(queue.wait_ms.histogram), bound, "items");
  histogram(node.querySelector('[data-chart="put"]'), buckets(queue.put_blocked_ms.histogram), bound, "puts");
  return node;
}

async function load() {
  try {
    const data = await fetchQueues("/api/queues");
    if (!data) return;
    report(null);
    const nodes = data.queues.map(render);
    list.replaceChildren(...nodes);
    $("#queues-empty").hidden = nodes.length > 0;
  } catch (error) {
    report(error);
  }
}

const refresh = throttle(load, 1000);
onLive((message) => { if (message.type === "update" && message.new_spans) refresh(); });
load();
