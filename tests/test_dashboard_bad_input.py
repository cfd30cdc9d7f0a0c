"""No input makes an endpoint answer 500 (issue 14): query parameters are parsed strictly (400
naming them), and stored points of an unexpected shape are skipped and counted while the page
still renders."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import httpx
import pytest

from dashboard_server import Dashboard
from opto.telemetry import semconv
from test_dashboard_api import Feed, call, served  # noqa: F401  (the fixture)

BIG = str(2**63)


@pytest.mark.parametrize("path, detail", [
    ("/api/traces?min_duration_ms=nan", "min_duration_ms: expected milliseconds from 0"),
    ("/api/traces?min_duration_ms=inf", "min_duration_ms: expected milliseconds from 0"),
    ("/api/traces?min_duration_ms=-inf", "min_duration_ms: expected milliseconds from 0"),
    ("/api/traces?min_duration_ms=1e300", "min_duration_ms: expected milliseconds from 0"),
    (f"/api/traces?since_ns={BIG}", "since_ns: cannot read"),
    (f"/api/traces?until_ns={BIG}", "until_ns: cannot read"),
    (f"/api/traces?offset={BIG}", "offset: cannot read"),
    ("/api/traces?offset=" + "9" * 5000, "offset: cannot read"),
    (f"/api/debug?since_ns={BIG}", "since_ns: cannot read"),
    (f"/api/limits?since_ns={BIG}", "since_ns: cannot read"),
    ("/api/traces?q=" + "x" * 50_000, "q: expected at most 200 characters"),
    ("/api/traces?name=" + "x" * 50_000, "name: expected at most 200 characters"),
    ("/api/debug?q=" + "x" * 50_000, "q: expected at most 200 characters"),
    ("/api/retries?name=" + "x" * 50_000, "name: expected at most 200 characters"),
])
async def test_out_of_range_parameters_get_400_naming_them(served: tuple[Dashboard, Feed], path: str, detail: str) -> None:
    d, _ = served
    response = httpx.get(f"{d.url}{path}", timeout=30)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["msg"] == "invalid parameter" and body["detail"].startswith(detail)
    assert d.get("/api/traces")["total"] == 0  # still serving


async def test_largest_values_in_range_are_read(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    await feed.send([call("a")])
    biggest = str(2**63 - 1)
    assert d.get(f"/api/traces?offset={biggest}")["traces"] == []
    assert d.get(f"/api/traces?since_ns={biggest}")["traces"] == []
    assert len(d.get(f"/api/traces?until_ns={biggest}&min_duration_ms=0")["traces"]) == 1
    assert d.get("/api/limits?q=" + "x" * 50_000)["limits"] == []  # not a parameter of /api/limits: ignored
    assert d.get(f"/api/debug?since_ns={biggest}")["events"] == []
    for ms in ("9223372036854.775", "9223372036854.7758", "9223372036854.776"):  # these round up to 2**63 ns
        assert d.get(f"/api/traces?min_duration_ms={ms}")["traces"] == []
        assert len(d.get(f"/api/traces?max_duration_ms={ms}")["traces"]) == 1


def insert_metrics(d: Dashboard, rows: list[tuple[Any, ...]]) -> None:
    """Rows already in the database (written by an earlier version, or another tool)."""
    db = sqlite3.connect(d.app.state.store.path, timeout=30)
    try:
        with db:
            db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)", rows)
    finally:
        db.close()


def queue(name: Any) -> str:
    return '{"' + semconv.QUEUE_NAME + '": ' + (f'"{name}"' if isinstance(name, str) else str(name)) + "}"


async def test_queue_points_of_unexpected_shape_are_skipped_and_counted(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    now = time.time_ns()
    good_wait = '{"count": 2, "bounds": [0.01], "counts": [1, 1], "max": 0.02}'
    insert_metrics(d, [
        ("p", semconv.METRIC_QUEUE_DEPTH, now, queue("jobs"), 3, None),
        ("p", semconv.METRIC_QUEUE_DEPTH, now + 1, queue("jobs"), float("inf"), None),  # an inf gauge
        ("p", semconv.METRIC_QUEUE_DEPTH, now + 2, queue(7), 1, None),  # a queue named by a number
        ("p", semconv.METRIC_QUEUE_WAIT, now, queue("jobs"), None, good_wait),
        ("q", semconv.METRIC_QUEUE_WAIT, now, queue("jobs"), None, '{"count": 2, "bounds": [0.01], "counts": [1, 1], "max": "high"}'),
        ("r", semconv.METRIC_QUEUE_WAIT, now, queue("jobs"), None, '{"count": 2, "bounds": [0.01], "counts": [2]}'),
        ("s", semconv.METRIC_QUEUE_WAIT, now, queue("jobs"), None, "[1, 2"),  # not JSON
        ("t", semconv.METRIC_QUEUE_CONSUMERS, now, queue("jobs"), None, good_wait),  # a histogram where a count belongs
        ("u", semconv.METRIC_QUEUE_PUT_BLOCKED, now, queue("jobs"), 5, None),  # a count where a histogram belongs
    ])
    doc = d.get("/api/queues")
    (jobs,) = doc["queues"]
    assert jobs["depth"] == [[now, 3]]
    # The string max is read as no max: the point still counts, its percentiles from its bounds.
    assert jobs["wait_ms"]["count"] == 4 and jobs["wait_ms"]["max"] == 20
    assert doc["skipped"] == 6


async def test_histogram_without_bounds_over_otlp(served: tuple[Dashboard, Feed]) -> None:
    """A valid OTLP histogram with no explicit bounds: every value in the one overflow bucket."""
    d, _ = served
    attrs = [{"key": semconv.QUEUE_NAME, "value": {"stringValue": "jobs"}}]
    body = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": semconv.METRIC_QUEUE_WAIT, "histogram": {"aggregationTemporality": 2, "dataPoints": [
            {"timeUnixNano": time.time_ns(), "attributes": attrs, "count": "3", "sum": 0.3, "bucketCounts": ["3"]}]}},
        {"name": semconv.METRIC_QUEUE_PUT_BLOCKED, "histogram": {"aggregationTemporality": 2, "dataPoints": [
            {"timeUnixNano": time.time_ns(), "attributes": attrs, "count": "2", "max": 0.5, "bucketCounts": ["2"]}]}},
    ]}]}]}
    assert httpx.post(f"{d.url}/v1/metrics", json=body, timeout=30).status_code == 200
    (jobs,) = d.get("/api/queues")["queues"]
    assert (jobs["wait_ms"]["count"], jobs["wait_ms"]["p50"], jobs["wait_ms"]["max"]) == (3, None, None)
    assert (jobs["put_blocked_ms"]["count"], jobs["put_blocked_ms"]["p95"]) == (2, 500)


async def test_mixed_type_queue_names_from_a_client(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    now = time.time_ns()
    await feed.send([], [
        {"name": semconv.METRIC_QUEUE_DEPTH, "time_ns": now, "attributes": {semconv.QUEUE_NAME: "jobs"}, "value": 1},
        {"name": semconv.METRIC_QUEUE_DEPTH, "time_ns": now, "attributes": {semconv.QUEUE_NAME: 5}, "value": 2},
        {"name": semconv.METRIC_QUEUE_WAIT, "time_ns": now, "attributes": {semconv.QUEUE_NAME: "jobs"},
         "histogram": {"count": 1, "bounds": [1], "counts": [1, 0], "max": "slow"}},
    ])
    doc = d.get("/api/queues")
    assert [q["name"] for q in doc["queues"]] == ["jobs"] and doc["skipped"] == 1
    assert doc["queues"][0]["wait_ms"]["count"] == 1


async def test_numeric_metric_name_and_bad_summaries_are_skipped(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    now = time.time_ns()
    await feed.send([], [
        {"name": semconv.METRIC_SUMMARY, "time_ns": now, "attributes": {semconv.METRICS_NAME: 42}, "summary": {"count": 1}},
        {"name": semconv.METRIC_SUMMARY, "time_ns": now, "attributes": {semconv.METRICS_NAME: "agent"}, "summary": {"count": 2}},
    ])
    insert_metrics(d, [("p", semconv.METRIC_SUMMARY, now + 1, '{"' + semconv.METRICS_NAME + '": "agent"}', None, '{"mean": 1e999}'),
                       ("p", semconv.METRIC_SUMMARY, now + 2, '{"' + semconv.METRICS_NAME + '": "agent"}', None, "[]")])
    doc = d.get("/api/metrics")
    assert doc["summaries"] == [{"name": "agent", "time_ns": now + 1, "summary": {"mean": None}}]
    assert doc["skipped"] == 2


def optimize_span(trace_id: str, span_id: str, name: str, parent: str | None, **attributes: Any) -> dict[str, Any]:
    record = call(name, **attributes)
    return {**record, "trace_id": trace_id, "span_id": span_id, "parent_span_id": parent}


async def test_string_score_or_depth_on_optimize(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    trace, search = "e" * 32, "1" * 16
    kind = {semconv.SPAN_KIND: semconv.KIND_OPTIMIZE_CANDIDATE}
    await feed.send([
        optimize_span(trace, search, semconv.SPAN_OPTIMIZE, None, **{semconv.SPAN_KIND: semconv.KIND_OPTIMIZE}),
        optimize_span(trace, "2" * 16, semconv.SPAN_OPTIMIZE_CANDIDATE, search, **kind,
                      **{semconv.OPTIMIZE_CANDIDATE_ID: 0, semconv.OPTIMIZE_DEPTH: 0, semconv.OPTIMIZE_SCORE: 0.5}),
        optimize_span(trace, "3" * 16, semconv.SPAN_OPTIMIZE_CANDIDATE, search, **kind,
                      **{semconv.OPTIMIZE_CANDIDATE_ID: 1, semconv.OPTIMIZE_DEPTH: 0, semconv.OPTIMIZE_SCORE: "high"}),
        optimize_span(trace, "4" * 16, semconv.SPAN_OPTIMIZE_CANDIDATE, search, **kind,
                      **{semconv.OPTIMIZE_CANDIDATE_ID: 2, semconv.OPTIMIZE_DEPTH: "one", semconv.OPTIMIZE_SCORE: 0.9}),
        optimize_span(trace, "5" * 16, semconv.SPAN_OPTIMIZE_DEPTH, search,
                      **{semconv.SPAN_KIND: semconv.KIND_OPTIMIZE_DEPTH, semconv.OPTIMIZE_DEPTH: "2"}),
    ])
    listed = d.get("/api/optimize")
    assert listed["skipped"] == 3 and listed["searches"][0]["best_score"] == 0.5
    one = d.get(f"/api/optimize/{trace}/{search}")
    assert [(c["id"], c["score"]) for c in one["depths"][0]["candidates"]] == [(0, 0.5), (1, None)]
    assert one["skipped"] == 3
