"""`POST /v1/traces` and `/v1/metrics` on a real dashboard (uvicorn, SQLite): any OpenTelemetry SDK can send."""

from __future__ import annotations

import asyncio
import copy
import gzip
import json
import sqlite3
import subprocess
import sys
import zlib
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

from dashboard_server import Dashboard
from opto_dashboard.otlp import MAX_BODY_BYTES, RETRY_AFTER_S
from opto_dashboard.otlp_decode import parse
from otlp_examples import SPEC_METRICS_EXAMPLE, SPEC_TRACE_EXAMPLE, TRACED_PROGRAM

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def example(*span_changes: dict[str, Any]) -> dict[str, Any]:
    """The specification's trace example, with one span per change dict (new span ids)."""
    obj = json.loads(SPEC_TRACE_EXAMPLE)
    base = obj["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    spans = []
    for i, change in enumerate(span_changes or ({},)):
        span = copy.deepcopy(base) | {"spanId": f"{i + 1:016x}"} | change
        spans.append(span)
    obj["resourceSpans"][0]["scopeSpans"][0]["spans"] = spans
    return obj


TRACE_ID = "5b8efff798038103d269b633813fc60c"


def test_real_exporter_spans_arrive_with_every_field_and_drive_the_views(dashboard: Dashboard) -> None:
    """The SDK's OTLPSpanExporter (protobuf) delivers spans identical to what the program finished."""
    config = json.dumps({"otlp_endpoint": dashboard.url, "service_name": "otlp-prog"})
    proc = subprocess.run([sys.executable, "-c", TRACED_PROGRAM, config], capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stderr
    sent = json.loads(proc.stdout)
    assert len(sent) == 5
    for span in sent:
        stored = {s["span_id"]: s for s in dashboard.get(f"/api/traces/{span['trace_id']}")["spans"]}[span["span_id"]]
        assert {k: stored[k] for k in span} == span
        assert stored["service"] == "otlp-prog" and stored["process_id"]
    workflow = next(t for t in dashboard.get("/api/traces")["traces"] if t["root_name"] == "workflow")
    assert (workflow["span_count"], workflow["retry_count"], workflow["error_count"], workflow["outcome"]) == (3, 1, 1, "ok")
    assert [t["root_name"] for t in dashboard.get("/api/traces?outcome=error")["traces"]] == ["consume"]
    assert {t["root_name"] for t in dashboard.get("/api/traces")["traces"]} == {"workflow", "GET /cart", "consume"}
    retries = dashboard.get("/api/retries")
    assert [(r["name"], r["attempt"]) for r in retries["retries"]] == [("agent", 1)]
    assert [(f["name"], f["calls"], f["retries"]) for f in retries["by_function"]] == [("agent", 1, 1)]
    live = dashboard.get("/api/live")
    assert live["ingest"]["spans_stored"] == 5
    assert [(p["service"], p["connected"]) for p in live["processes"]] == [("otlp-prog", False)]
    assert live["rates"]["error"] > 0 and live["rates"]["retry"] > 0
    with closing(sqlite3.connect(dashboard.app.state.store.path)) as db:  # the OTLPMetricExporter's flush at exit
        (histograms,) = db.execute("SELECT count(*) FROM metrics WHERE name = 'opto.call.duration' AND data IS NOT NULL").fetchone()
    assert histograms >= 1


async def test_json_from_the_specification_is_stored_and_answered_in_json(dashboard: Dashboard, client: httpx.AsyncClient) -> None:
    """OTLP/JSON with uppercase hex ids: 200, an empty JSON response, and the span in the API."""
    response = await client.post("/v1/traces", content=SPEC_TRACE_EXAMPLE, headers=JSON)
    assert (response.status_code, response.headers["content-type"], response.json()) == (200, "application/json", {})
    (span,) = dashboard.get(f"/api/traces/{TRACE_ID}")["spans"]
    assert (span["span_id"], span["parent_span_id"], span["kind"], span["service"]) == (
        "eee19b7ec3c1b174", "eee19b7ec3c1b173", "server", "my.service"
    )
    assert (span["duration_ms"], span["outcome"], span["attributes"]) == (1000.0, "ok", {"my.span.attr": "some value"})
    ingest = dashboard.get("/api/live")["ingest"]
    assert (ingest["frames"], ingest["bad_frames"], ingest["spans_stored"], ingest["spans_refused"]) == (1, 0, 1, 0)


async def test_opto_attributes_over_otlp_drive_retries_and_outcomes(dashboard: Dashboard, client: httpx.AsyncClient) -> None:
    """A span from any SDK that carries opto.* attributes and events shows in the same views as the SDK's."""
    attrs = {"opto.outcome": "timeout", "opto.attempts": 3}
    event = {"name": "opto.retry", "timeUnixNano": "1544712660500000000", "attributes": [
        {"key": "opto.attempt", "value": {"intValue": "1"}}, {"key": "opto.retry.delay_s", "value": {"doubleValue": 0.5}},
        {"key": "exception.type", "value": {"stringValue": "RateLimited"}},
    ]}
    body = example({
        "name": "llm_call", "parentSpanId": "",
        "attributes": [{"key": k, "value": {"intValue": v} if isinstance(v, int) else
                        {"doubleValue": v} if isinstance(v, float) else {"stringValue": v}} for k, v in attrs.items()],
        "events": [event],
    })
    assert (await client.post("/v1/traces", json=body)).status_code == 200
    (listed,) = dashboard.get("/api/traces?outcome=timeout")["traces"]
    assert (listed["root_name"], listed["retry_count"], listed["error_count"]) == ("llm_call", 2, 1)
    (retry,) = dashboard.get("/api/retries")["retries"]
    assert (retry["name"], retry["attempt"], retry["delay_s"], retry["exception_type"]) == ("llm_call", 1, 0.5, "RateLimited")
    assert dashboard.get("/api/live")["rates"]["timeout"] == 1.0


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [pytest.param("gzip", gzip.compress, id="gzip"), pytest.param("deflate", zlib.compress, id="deflate"),
     pytest.param("gzip", lambda b: gzip.compress(b[:100]) + gzip.compress(b[100:]), id="gzip-two-members")],
)
@pytest.mark.parametrize("content_type", ["protobuf", "json"])
async def test_compressed_bodies(
    dashboard: Dashboard, client: httpx.AsyncClient, encoding: str, compress: Callable[[bytes], bytes], content_type: str
) -> None:
    """gzip (also multi-member) and deflate bodies are decompressed before decoding, in both encodings."""
    if content_type == "json":
        body, headers = SPEC_TRACE_EXAMPLE.encode(), JSON
    else:
        body, headers = parse(SPEC_TRACE_EXAMPLE.encode(), "json", ExportTraceServiceRequest()).SerializeToString(), PROTOBUF
    response = await client.post("/v1/traces", content=compress(body), headers=headers | {"Content-Encoding": encoding})
    assert response.status_code == 200, response.content
    assert [s["span_id"] for s in dashboard.get(f"/api/traces/{TRACE_ID}")["spans"]] == ["eee19b7ec3c1b174"]


async def test_partial_success_in_json(dashboard: Dashboard, client: httpx.AsyncClient) -> None:
    """Invalid spans are rejected and counted in partialSuccess; the valid ones are stored."""
    response = await client.post("/v1/traces", json=example({}, {"traceId": "00" * 16}, {"name": "x" * 5000}))
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"  # int64 in proto3 JSON is a string
    assert "span.trace_id: expected a non-zero 16-byte id" in partial["errorMessage"]
    assert [s["span_id"] for s in dashboard.get(f"/api/traces/{TRACE_ID}")["spans"]] == ["0000000000000001"]
    assert dashboard.get("/api/live")["ingest"]["spans_refused"] == 2  # counted, as at the websocket door


async def test_events_at_the_largest_time_never_fail_the_request(dashboard: Dashboard, client: httpx.AsyncClient) -> None:
    """Two retry events at 2**63 - 1 ns once failed the whole write with a 400: all three spans lost."""
    events = [{"name": "opto.retry", "timeUnixNano": str(2**63 - 1)}] * 2
    response = await client.post("/v1/traces", json=example({}, {}, {"events": events}))
    assert response.status_code == 200, response.text
    assert len(dashboard.get(f"/api/traces/{TRACE_ID}")["spans"]) == 3
    assert dashboard.get("/api/live")["ingest"]["spans_refused"] == 0


async def test_partial_success_in_protobuf(client: httpx.AsyncClient) -> None:
    """A protobuf request gets its partial success as a protobuf ExportTraceServiceResponse."""
    request = parse(json.dumps(example({}, {"spanId": "00" * 8})).encode(), "json", ExportTraceServiceRequest())
    response = await client.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
    assert (response.status_code, response.headers["content-type"]) == (200, "application/x-protobuf")
    reply = ExportTraceServiceResponse.FromString(response.content)
    assert reply.partial_success.rejected_spans == 1
    assert "span.span_id" in reply.partial_success.error_message


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        pytest.param(b"\x0a\xff\xff", PROTOBUF, "not a protobuf ExportTraceServiceRequest", id="protobuf"),
        pytest.param(b"{not json", JSON, "body is not JSON", id="json"),
        pytest.param(b"\x1f\x8b garbage", JSON | {"Content-Encoding": "gzip"}, "body does not decompress", id="bad-gzip"),
        pytest.param(gzip.compress(b"{}")[:-6], JSON | {"Content-Encoding": "gzip"}, "truncated", id="truncated-gzip"),
    ],
)
async def test_undecodable_body_is_400_with_a_status_in_the_request_encoding(
    dashboard: Dashboard, client: httpx.AsyncClient, body: bytes, headers: dict[str, str], reason: str
) -> None:
    """400 with a google.rpc.Status saying why (protobuf or JSON, as the request), counted as a bad frame."""
    response = await client.post("/v1/traces", content=body, headers=headers)
    assert response.status_code == 400
    if headers is PROTOBUF:
        assert response.headers["content-type"] == "application/x-protobuf"
        message = Status.FromString(response.content).message
    else:
        assert response.headers["content-type"] == "application/json"
        message = response.json()["message"]
        assert response.json()["code"] == 3  # INVALID_ARGUMENT
    assert reason in message
    assert dashboard.get("/api/live")["ingest"]["bad_frames"] == 1


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        pytest.param({"Content-Type": "text/plain"}, "Content-Type must be application/x-protobuf or application/json", id="text"),
        pytest.param({}, "got 'none'", id="no-content-type"),
        pytest.param(JSON | {"Content-Encoding": "br"}, "Content-Encoding 'br' is not supported", id="brotli"),
    ],
)
async def test_unsupported_media_is_415(client: httpx.AsyncClient, headers: dict[str, str], reason: str) -> None:
    response = await client.post("/v1/traces", content=SPEC_TRACE_EXAMPLE.encode(), headers=headers)
    assert response.status_code == 415
    assert reason in response.json()["message"]


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    """A body past MAX_BODY_BYTES is refused, whether it arrives that large or inflates to it."""
    response = await client.post("/v1/traces", content=b" " * (MAX_BODY_BYTES + 1), headers=JSON)
    assert response.status_code == 413
    assert "over the" in response.json()["message"]
    bomb = gzip.compress(b" " * (MAX_BODY_BYTES + 1))
    response = await client.post("/v1/traces", content=bomb, headers=PROTOBUF | {"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "decompressed body is over the" in Status.FromString(response.content).message


async def test_full_ingest_queue_answers_503_with_retry_after(dashboard: Dashboard, client: httpx.AsyncClient) -> None:
    """While the pipeline holds max_pending spans, requests get 503 + Retry-After; the held one is then stored."""
    pipeline = dashboard.app.state.pipeline
    pipeline.max_pending = 1
    dashboard.get("/api/live")  # answered once the store is open
    lock = sqlite3.connect(dashboard.app.state.store.path, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the writer task waits for this write lock, so the queue stays full
    try:
        held = asyncio.create_task(client.post("/v1/traces", content=SPEC_TRACE_EXAMPLE, headers=JSON))
        async with asyncio.timeout(10):
            while not pipeline.full:
                await asyncio.sleep(0.005)  # the pipeline lives on the server's thread: nothing to await
        refused = await client.post("/v1/traces", json=example({"traceId": "ab" * 16}))
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == str(RETRY_AFTER_S)
    assert "ingest queue is full" in refused.json()["message"]
    assert (await held).status_code == 200
    assert dashboard.get("/api/traces")["total"] == 1


async def test_token_rule_applies(tmp_path: Path) -> None:
    """With --token, OTLP requests need it like every other route (OTEL_EXPORTER_OTLP_HEADERS can carry it)."""
    with Dashboard(tmp_path / "opto.db", token="s3cret") as d:
        async with httpx.AsyncClient(base_url=d.url, timeout=30) as c:
            refused = await c.post("/v1/traces", content=SPEC_TRACE_EXAMPLE, headers=JSON)
            assert refused.status_code == 403
            wrong = await c.post("/v1/traces", content=SPEC_TRACE_EXAMPLE, headers=JSON | {"Authorization": "Bearer nope"})
            assert wrong.status_code == 403
            ok = await c.post("/v1/traces", content=SPEC_TRACE_EXAMPLE, headers=JSON | {"Authorization": "Bearer s3cret"})
            assert ok.status_code == 200
        assert d.get(f"/api/traces/{TRACE_ID}", headers={"Authorization": "Bearer s3cret"})["spans"]


async def test_metrics_points_are_stored_under_the_sending_process(dashboard: Dashboard, client: httpx.AsyncClient) -> None:
    """The spec's metrics example: sum, gauge and histogram points are stored as the websocket door stores them."""
    response = await client.post("/v1/metrics", json=SPEC_METRICS_EXAMPLE)
    assert (response.status_code, response.json()) == (200, {})
    with closing(sqlite3.connect(dashboard.app.state.store.path)) as db:
        rows = db.execute("SELECT m.name, m.time_ns, m.attributes, m.value, m.data, p.service FROM metrics m "
                          "JOIN processes p ON p.id = m.process_id ORDER BY m.name").fetchall()
    t = 1544712660300000000
    assert rows == [
        ("my.counter", t, '{"my.counter.attr":"some value"}', 5.0, None, "my.service"),
        ("my.gauge", t, '{"my.gauge.attr":"some value"}', 10.0, None, "my.service"),
        ("my.histogram", t, "{}", None, '{"count":3,"sum":3.0,"min":1.0,"max":1.0,"bounds":[1.0],"counts":[1,1,1]}', "my.service"),
    ]
    assert [(p["service"], p["connected"]) for p in dashboard.get("/api/live")["processes"]] == [("my.service", False)]


def queue_metrics(t_ns: int) -> dict[str, Any]:
    """An AsyncQueue's depth gauge and item-wait histogram, as any OTLP metrics exporter would send them."""
    queue = [{"key": "opto.queue.name", "value": {"stringValue": "jobs"}}]
    return {"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "worker"}}]},
        "scopeMetrics": [{"scope": {"name": "opto"}, "metrics": [
            {"name": "opto.queue.depth", "gauge": {"dataPoints": [{"asInt": "4", "timeUnixNano": t_ns, "attributes": queue}]}},
            {"name": "opto.queue.wait", "histogram": {"aggregationTemporality": 2, "dataPoints": [{
                "timeUnixNano": t_ns, "attributes": queue, "count": "3", "sum": 0.7, "max": 0.5,
                "explicitBounds": [0.1, 1.0], "bucketCounts": ["1", "2", "0"]}]}},
            {"name": "opto.queue.wait.exp", "exponentialHistogram": {"dataPoints": [{"timeUnixNano": t_ns, "count": "1"}]}},
        ]}],
    }]}


async def test_queue_metrics_over_otlp_drive_the_queues_view(dashboard: Dashboard, client: httpx.AsyncClient) -> None:
    """opto.queue.* metrics from any SDK fill /api/queues; an exponential histogram is accepted with a warning."""
    response = await client.post("/v1/metrics", json=queue_metrics(1_700_000_000_000_000_000))
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert "rejectedDataPoints" not in partial  # zero: a warning, not a rejection
    assert partial["errorMessage"].startswith("1 exponential histogram or summary point(s) accepted but not stored")
    (queue,) = dashboard.get("/api/queues")["queues"]
    assert (queue["name"], queue["depth"]) == ("jobs", [[1_700_000_000_000_000_000, 4.0]])
    assert (queue["wait_ms"]["count"], queue["wait_ms"]["max"]) == (3, 500.0)
    assert [b["count"] for b in queue["wait_ms"]["histogram"]] == [1, 3, 3]


async def test_get_is_not_allowed(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/traces")).status_code == 405
