"""The OTLP door under hostile bodies: compression bombs and member floods, deep nesting, and more requests than decode slots."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import zlib

import httpx
import pytest
from google.rpc.status_pb2 import Status

from dashboard_server import Dashboard
from opto_dashboard.gate import Gate, GateFull
from opto_dashboard.otlp import BODY_TIMEOUT_S, MAX_BODY_BYTES, MAX_DECODES, MAX_MEMBERS, MAX_WAITING, RETRY_AFTER_S
from otlp_examples import SPEC_TRACE_EXAMPLE

JSON = {"Content-Type": "application/json"}
PROTOBUF = {"Content-Type": "application/x-protobuf"}


async def refused(client: httpx.AsyncClient, dashboard: Dashboard, body: bytes, status: int, reason: str, **headers: str) -> None:
    """`body` is answered `status` with `reason` in its google.rpc.Status, counted, and the door still stores a good request."""
    before = dashboard.app.state.stats.bad_frames
    response = await client.post("/v1/traces", content=body, headers=JSON | headers)
    assert response.status_code == status, response.text[:300]
    message = Status.FromString(response.content).message if "protobuf" in response.headers["content-type"] else response.json()["message"]
    assert reason in message
    assert dashboard.app.state.stats.bad_frames == before + 1
    assert (await client.post("/v1/traces", content=SPEC_TRACE_EXAMPLE, headers=JSON)).status_code == 200


async def test_many_gzip_members_are_refused_past_the_cap(client: httpx.AsyncClient, dashboard: Dashboard) -> None:
    """2 MiB of empty gzip members (quadratic to inflate before) is refused at the member cap."""
    empty = gzip.compress(b"")
    await refused(client, dashboard, empty * (2 * 1024 * 1024 // len(empty)), 413, f"more than {MAX_MEMBERS} compressed members",
                  **{"Content-Encoding": "gzip"})
    flood = zlib.compress(b"") * (MAX_MEMBERS + 1)
    await refused(client, dashboard, flood, 413, f"more than {MAX_MEMBERS} compressed members", **{"Content-Encoding": "deflate"})


async def test_a_body_split_over_gzip_members_up_to_the_cap_is_stored(client: httpx.AsyncClient, dashboard: Dashboard) -> None:
    body = SPEC_TRACE_EXAMPLE.encode()
    step = -(-len(body) // MAX_MEMBERS)
    members = b"".join(gzip.compress(body[i:i + step]) for i in range(0, len(body), step))
    response = await client.post("/v1/traces", content=members, headers=JSON | {"Content-Encoding": "gzip"})
    assert response.status_code == 200 and response.json() == {}
    assert dashboard.get("/api/traces")["total"] == 1


async def test_inflation_past_the_output_cap_is_refused(client: httpx.AsyncClient, dashboard: Dashboard) -> None:
    bomb = gzip.compress(b" " * (MAX_BODY_BYTES + 1))
    assert len(bomb) < 100_000
    await refused(client, dashboard, bomb, 413, "decompressed body is over", **{"Content-Encoding": "gzip"})
    # One byte short of the cap in two members, then a third member: still over.
    half = gzip.compress(b" " * (MAX_BODY_BYTES // 2))
    await refused(client, dashboard, half + half + gzip.compress(b"{}"), 413, "decompressed body is over", **{"Content-Encoding": "gzip"})


async def test_truncated_and_trailing_garbage_are_refused(client: httpx.AsyncClient, dashboard: Dashboard) -> None:
    whole = gzip.compress(SPEC_TRACE_EXAMPLE.encode())
    await refused(client, dashboard, whole[:-9], 400, "truncated", **{"Content-Encoding": "gzip"})
    await refused(client, dashboard, whole + b"garbage!", 400, "does not decompress", **{"Content-Encoding": "gzip"})


async def test_json_nested_100000_deep_is_a_counted_400(client: httpx.AsyncClient, dashboard: Dashboard) -> None:
    await refused(client, dashboard, b'{"resourceSpans":' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "nested too deeply")
    await refused(client, dashboard, b'{"x":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001, 400, "nested too deeply")


def any_value_nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {"stringValue": "x"}
    for _ in range(depth):
        value = {"arrayValue": {"values": [value]}}
    return value


async def test_attribute_values_nested_past_the_message_depth_are_a_400(client: httpx.AsyncClient, dashboard: Dashboard) -> None:
    body = json.dumps({"resourceSpans": [{"resource": {"attributes": [{"key": "k", "value": any_value_nested(300)}]}}]})
    await refused(client, dashboard, body.encode(), 400, "too deep")


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


async def test_protobuf_nested_100000_deep_is_a_counted_400(client: httpx.AsyncClient, dashboard: Dashboard) -> None:
    value = field(1, b"x")  # AnyValue.string_value
    for _ in range(100_000):
        value = field(5, field(1, value))  # AnyValue.array_value.values[0]
    body = field(1, field(1, field(1, field(1, b"k") + field(2, value))))  # request.resource_spans.resource.attributes
    await refused(client, dashboard, body, 400, "not a protobuf", **PROTOBUF)


async def test_gate_bounds_holders_and_waiters_and_refuses_at_once_past_them() -> None:
    gate = Gate(slots=1, waiting=1)
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with gate.slot():
            holding.set()
            await release.wait()

    async with asyncio.timeout(10):
        first = asyncio.create_task(hold())
        await holding.wait()
        second = asyncio.create_task(hold())
        while gate.waiting == 0:
            await asyncio.sleep(0)
        with pytest.raises(GateFull, match="1 in progress and 1 waiting"):
            async with gate.slot():
                pass
        release.set()
        await asyncio.gather(first, second)
    assert gate.waiting == 0
    async with gate.slot():  # every slot came back
        pass


async def test_requests_past_the_decode_slots_and_queue_get_503_with_retry_after(client: httpx.AsyncClient, dashboard: Dashboard) -> None:
    """Bodies that never finish hold every slot; the queue fills; the next request is refused at once, and counted."""
    host, port = dashboard.url.removeprefix("http://").split(":")
    head = f"POST /v1/traces HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{".encode()
    stuck = [socket.create_connection((host, int(port))) for _ in range(MAX_DECODES + MAX_WAITING)]
    try:
        for sock in stuck:
            sock.sendall(head)
        gate = dashboard.app.state.otlp_gate
        async with asyncio.timeout(20):
            while gate.waiting < MAX_WAITING:
                await asyncio.sleep(0.02)
        response = await client.post("/v1/traces", content=SPEC_TRACE_EXAMPLE, headers=JSON)
        assert response.status_code == 503 and response.headers["retry-after"] == str(RETRY_AFTER_S)
        assert "too many OTLP requests in progress" in response.json()["message"]
        assert dashboard.app.state.refused.otlp_busy == 1
        assert (await client.get("/api/live")).status_code == 200  # the rest of the dashboard is unaffected
    finally:
        for sock in stuck:
            sock.close()
    async with asyncio.timeout(20):
        while gate.waiting:
            await asyncio.sleep(0.02)
        while (await client.post("/v1/traces", content=SPEC_TRACE_EXAMPLE, headers=JSON)).status_code != 200:
            await asyncio.sleep(0.02)  # the stuck requests' slots come back as the server notices each close


async def test_a_body_that_does_not_arrive_in_time_is_a_counted_408_and_frees_the_slot(client: httpx.AsyncClient, dashboard: Dashboard) -> None:
    host, port = dashboard.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as slow:
        slow.sendall(f"POST /v1/traces HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{".encode())
        slow.settimeout(BODY_TIMEOUT_S + 30)
        reply = b""
        while b"within" not in reply and (chunk := slow.recv(65536)):  # headers and body may come apart
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408") and f"within {BODY_TIMEOUT_S} s".encode() in reply
    assert dashboard.app.state.stats.bad_frames == 1
    assert (await client.post("/v1/traces", content=SPEC_TRACE_EXAMPLE, headers=JSON)).status_code == 200


async def test_values_past_the_attribute_limits_are_cut_and_nan_keeps_stored_json_valid(client: httpx.AsyncClient, dashboard: Dashboard) -> None:
    """The OTLP door keeps the websocket door's value limits, cutting as OpenTelemetry's attribute
    limits do, so that one request cannot store (and serve back) a 10 MB value."""
    from opto.telemetry.limits import MAX_ITEMS, MAX_VALUE

    body = json.loads(SPEC_TRACE_EXAMPLE)
    span = body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["attributes"] = [
        {"key": "long", "value": {"stringValue": "x" * (MAX_VALUE * 10)}},
        {"key": "many", "value": {"arrayValue": {"values": [{"intValue": "1"}] * (MAX_ITEMS * 5)}}},
        {"key": "map", "value": {"kvlistValue": {"values": [{"key": "nan", "value": {"doubleValue": "NaN"}}]}}},
    ]
    response = await client.post("/v1/traces", json=body)
    assert response.status_code == 200, response.text
    (stored,) = dashboard.get(f"/api/traces/{span['traceId'].lower()}")["spans"]
    attrs = stored["attributes"]
    assert len(attrs["long"]) == MAX_VALUE and len(attrs["many"]) == MAX_ITEMS
    assert json.loads(attrs["map"]) == {"nan": None}


def test_resources_past_the_cap_of_one_request_are_rejected_and_counted() -> None:
    """Each resource is a process, a write and a live entry: 150,000 of them in one 13 MB request
    kept the server busy for seconds. Past MAX_RESOURCES, their spans are rejected, by count."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from opto_dashboard.otlp_decode import MAX_RESOURCES, parse, to_records

    request = parse(SPEC_TRACE_EXAMPLE.encode(), "json", ExportTraceServiceRequest())
    request.resource_spans.extend([request.resource_spans[0]] * (MAX_RESOURCES + 4))
    decoded = to_records(request)
    assert len(decoded.batches) == MAX_RESOURCES
    assert decoded.rejected == 5 and f"past the {MAX_RESOURCES} resources" in decoded.error
