"""The JSON API and `/ws/live` against a real server and SQLite file, fed through `/ws/ingest`."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from dashboard_server import Dashboard, hello_frame, span_record
from opto.telemetry import semconv


class Feed:
    """One SDK-like connection that sends batches and waits for each ack."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seq = 0

    async def send(self, spans: list[dict[str, Any]], metrics: list[dict[str, Any]] | None = None) -> None:
        self.seq += 1
        await self.ws.send(json.dumps({"type": "batch", "seq": self.seq, "spans": spans, "metrics": metrics or []}))
        async with asyncio.timeout(30):
            reply = json.loads(await self.ws.recv())
        assert reply["type"] == "ack", reply


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Dashboard, Feed]]:
    with Dashboard(tmp_path / "opto.db") as d:
        async with connect(d.ws_url + "/ws/ingest") as ws:
            await ws.send(hello_frame(service="api"))
            yield d, Feed(ws)


def ids() -> tuple[str, str]:
    return secrets.token_hex(16), secrets.token_hex(8)


def call(name: str, outcome: str = "ok", duration_ms: float = 1.0, start_ns: int | None = None, **attributes: Any) -> dict[str, Any]:
    trace, span = ids()
    start = start_ns or time.time_ns()
    return span_record(trace, span, name, start_ns=start, end_ns=start + int(duration_ms * 1e6),
                       attributes={semconv.OUTCOME: outcome, **attributes},
                       status={"code": "error" if outcome == "error" else "unset", "message": ""})


async def test_traces_filters_sort_and_paging(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    t0 = time.time_ns()
    await feed.send([
        call("fetch", duration_ms=5, start_ns=t0),
        call("fetch", "error", duration_ms=50, start_ns=t0 + 1),
        call("parse", "timeout", duration_ms=500, start_ns=t0 + 2, note="needle in attributes"),
    ])

    def names(doc: dict[str, Any]) -> list[str]:
        return [t["root_name"] for t in doc["traces"]]

    assert names(d.get("/api/traces")) == ["parse", "fetch", "fetch"]
    assert names(d.get("/api/traces?order=asc")) == ["fetch", "fetch", "parse"]
    assert names(d.get("/api/traces?name=parse")) == ["parse"]
    assert [t["outcome"] for t in d.get("/api/traces?outcome=error")["traces"]] == ["error"]
    assert [t["duration_ms"] for t in d.get("/api/traces?min_duration_ms=40&sort=duration")["traces"]] == [500, 50]
    assert names(d.get("/api/traces?q=needle")) == ["parse"]
    assert names(d.get(f"/api/traces?since_ns={t0 + 1}&until_ns={t0 + 1}")) == ["fetch"]
    page = d.get("/api/traces?limit=1&offset=1")
    assert page["total"] == 3 and len(page["traces"]) == 1
    assert d.get("/api/traces?outcome=error")["traces"][0]["error_count"] == 1


@pytest.mark.parametrize("query, detail", [
    ("limit=0", "limit: expected 1 to 500"),
    ("limit=x", "limit: cannot read 'x'"),
    ("outcome=maybe", "outcome: expected one of ok, error, timeout, cancelled"),
    ("sort=name", "sort: expected one of start, duration"),
    ("since_ns=-1", "since_ns: cannot read '-1'"),
])
async def test_invalid_parameters_get_400_naming_them(served: tuple[Dashboard, Feed], query: str, detail: str) -> None:
    d, _ = served
    response = httpx.get(f"{d.url}/api/traces?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["msg"] == "invalid parameter" and body["detail"].startswith(detail)


async def test_unknown_trace_is_404_and_malformed_id_400(served: tuple[Dashboard, Feed]) -> None:
    d, _ = served
    assert httpx.get(f"{d.url}/api/traces/{'0' * 32}").status_code == 404
    bad = httpx.get(f"{d.url}/api/traces/nope")
    assert bad.status_code == 400 and "32 lowercase hex" in bad.json()["detail"]


async def test_retries_and_debug_events(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    retried = call("flaky", attempts=3)
    retried["attributes"][semconv.ATTEMPTS] = 3
    retried["attributes"][semconv.RETRY_EXHAUSTED] = True
    retried["events"] = [
        {"name": semconv.EVENT_RETRY, "time_ns": retried["start_ns"] + i, "attributes": {
            semconv.ATTEMPT: i, semconv.RETRY_DELAY_S: 0.5 * i, semconv.EXCEPTION_TYPE: "ConnectionError",
            semconv.EXCEPTION_MESSAGE: "reset"}}
        for i in (1, 2)
    ]
    slow = call("blocking", **{semconv.DEBUG_CREATION_STACK: "file.py:1"})
    slow["events"] = [{"name": semconv.EVENT_SLOW_CALLBACK, "time_ns": slow["start_ns"], "attributes": {semconv.DEBUG_DURATION_S: 0.2}}]
    await feed.send([retried, call("flaky"), slow])
    retries = d.get("/api/retries")
    assert [(r["attempt"], r["delay_s"], r["exception_type"]) for r in retries["retries"]] == [(2, 1.0, "ConnectionError"), (1, 0.5, "ConnectionError")]
    assert retries["by_function"] == [{"name": "flaky", "calls": 2, "retries": 2, "retries_per_call": 1.0, "exhausted": 1}]
    assert sorted(t["retry_count"] for t in d.get("/api/traces?name=flaky")["traces"]) == [0, 2]
    debug = d.get("/api/debug")["events"]
    assert sorted(e["kind"] for e in debug) == ["creation_stack", "slow_callback"]
    assert [e["name"] for e in d.get("/api/debug?kind=slow_callback")["events"]] == ["blocking"]


async def test_metric_summaries_and_queue_figures(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    now = time.time_ns()
    queue = {semconv.QUEUE_NAME: "jobs"}
    await feed.send([], [
        {"name": semconv.METRIC_SUMMARY, "time_ns": now, "attributes": {semconv.METRICS_NAME: "agent"}, "summary": {"count": 1}},
        {"name": semconv.METRIC_SUMMARY, "time_ns": now + 1, "attributes": {semconv.METRICS_NAME: "agent"}, "summary": {"count": 2}},
        {"name": semconv.METRIC_QUEUE_DEPTH, "time_ns": now, "attributes": queue, "value": 3},
        {"name": semconv.METRIC_QUEUE_DEPTH, "time_ns": now + 1, "attributes": queue, "value": 1},
        {"name": semconv.METRIC_QUEUE_CONSUMERS, "time_ns": now, "attributes": queue, "value": 2},
        {"name": semconv.METRIC_QUEUE_WAIT, "time_ns": now, "attributes": queue,
         "histogram": {"count": 4, "sum": 0.1, "min": 0.001, "max": 0.05, "bounds": [0.01, 0.1], "counts": [3, 1, 0]}},
    ])
    metrics = d.get("/api/metrics")
    assert metrics["summaries"] == [{"name": "agent", "time_ns": now + 1, "summary": {"count": 2}}]
    assert [s for _, s in metrics["history"]["agent"]] == [{"count": 1}, {"count": 2}]
    (jobs,) = d.get("/api/queues")["queues"]
    assert jobs["name"] == "jobs" and jobs["depth"] == [[now, 3], [now + 1, 1]] and jobs["consumers"] == 2
    # Known from a histogram point only (as OTLP sends it): percentiles come from the bucket bounds.
    assert jobs["wait_ms"]["count"] == 4 and jobs["wait_ms"]["p50"] == 10 and jobs["wait_ms"]["max"] == 50
    assert jobs["wait_ms"]["histogram"] == [{"le_ms": 10, "count": 3}, {"le_ms": 100, "count": 4}, {"le_ms": None, "count": 4}]


async def test_queue_waits_come_from_consumer_links_and_producer_events(served: tuple[Dashboard, Feed]) -> None:
    """The SDK's AsyncQueue puts each item's wait on the consumer span's link, and blocked puts on
    the producer span's events: the queue view reads them from the spans."""
    d, feed = served
    producer = call("producer")
    producer["events"] = [
        {"name": semconv.EVENT_QUEUE_BLOCKED, "time_ns": producer["start_ns"] + i, "attributes": {semconv.QUEUE_NAME: "work", semconv.QUEUE_BLOCKED_S: s}}
        for i, s in enumerate((0.002, 0.004))
    ]
    consumers = []
    for wait_s in (0.001, 0.003, 0.020):
        consumer = call("consume")
        consumer["links"] = [{"trace_id": producer["trace_id"], "span_id": producer["span_id"],
                              "attributes": {semconv.QUEUE_NAME: "work", semconv.QUEUE_WAIT_S: wait_s}}]
        consumers.append(consumer)
    await feed.send([producer, *consumers])
    (work,) = d.get("/api/queues")["queues"]
    assert work["name"] == "work"
    assert (work["wait_ms"]["count"], work["wait_ms"]["p50"], work["wait_ms"]["max"]) == (3, 3.0, 20.0)
    assert work["wait_ms"]["histogram"][:3] == [{"le_ms": 1, "count": 1}, {"le_ms": 5, "count": 2}, {"le_ms": 10, "count": 2}]
    assert (work["put_blocked_ms"]["count"], work["put_blocked_ms"]["max"]) == (2, 4.0)


async def test_live_rates_and_throughput(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    await feed.send([call("a"), call("a", "error"), call("a", "timeout"), call("a", "cancelled")])
    live = d.get("/api/live")
    assert live["rates"] == {"error": 0.25, "retry": 0.0, "timeout": 0.25, "cancelled": 0.25}
    assert live["throughput"]["calls_per_s"] > 0 and live["ingest"]["spans_stored"] == 4
    assert [p["connected"] for p in live["processes"]] == [True]


async def test_live_socket_keeps_a_hung_call_moving_with_nothing_new_arriving(served: tuple[Dashboard, Feed]) -> None:
    """One call started and never ended, then silence: heartbeats keep bringing new concurrency
    samples that count it, so the Live page's chart does not freeze at the last change."""
    d, feed = served
    trace, span = ids()
    await feed.send([span_record(trace, span, "hung", ended=False)])
    async with connect(d.ws_url + "/ws/live") as browser:
        async with asyncio.timeout(30):
            first = json.loads(await browser.recv())
            while not (message := json.loads(await browser.recv())).get("heartbeat"):
                pass
    seen = {s["t_ns"] for s in first["live"]["concurrency"]}
    newer = [s for s in message["live"]["concurrency"] if s["t_ns"] not in seen]
    assert newer and newer[-1]["by_name"] == {"hung": 1} and message["new_spans"] == 0


async def test_live_socket_sends_snapshot_then_pushed_updates(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    async with connect(d.ws_url + "/ws/live") as browser:
        async with asyncio.timeout(30):
            first = json.loads(await browser.recv())
            assert first["type"] == "snapshot" and first["live"]["ingest"]["spans_stored"] == 0
            await feed.send([call("pushed")])
            while (update := json.loads(await browser.recv()))["live"]["ingest"]["spans_stored"] < 1:
                pass  # an update about the feed's connection may come first
    assert update["type"] == "update" and update["new_spans"] == 1
    assert update["live"]["ingest"]["spans_stored"] == 1
