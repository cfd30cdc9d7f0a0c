"""`/ws/ingest` against a real uvicorn server and SQLite file: acks, refusals, limits, access checks."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as connect_sync

from dashboard_server import Dashboard, hello_frame, span_record
from test_docs import ROOT, json_values
from opto.telemetry.limits import MAX_ITEMS, MAX_MESSAGE, MAX_VALUE
from opto_dashboard.ingest import MAX_FRAME_BYTES


def new_trace() -> str:
    return secrets.token_hex(16)


def new_span() -> str:
    return secrets.token_hex(8)


async def reply(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(30):
        return json.loads(await ws.recv())  # type: ignore[no-any-return]


async def send_batch(ws: ClientConnection, seq: int, spans: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "batch", "seq": seq, "spans": spans, **extra}))
    return await reply(ws)


async def test_batch_is_acked_once_stored_and_served_with_nesting(dashboard: Dashboard) -> None:
    """An acked batch is in the database: the trace lists its spans with parent links, by start."""
    trace, root, child = new_trace(), new_span(), new_span()
    async with connect(dashboard.ws_url + "/ws/ingest") as ws:
        await ws.send(hello_frame(service="svc"))
        ack = await send_batch(ws, 1, [span_record(trace, root, "root"), span_record(trace, child, "child", parent=root)])
    assert ack == {"type": "ack", "seq": 1, "stored": 2}
    detail = dashboard.get(f"/api/traces/{trace}")
    assert [(s["name"], s["parent_span_id"]) for s in detail["spans"]] == [("root", None), ("child", root)]
    assert detail["spans"][0]["service"] == "test"
    listed = dashboard.get("/api/traces")
    assert listed["total"] == 1
    assert listed["traces"][0]["root_name"] == "root" and listed["traces"][0]["span_count"] == 2


async def test_the_frames_docs_api_md_shows_a_client_sending_are_taken_as_it_says(dashboard: Dashboard) -> None:
    """hello, then a batch (acked once stored), then `behind` (not acked, counted), from the page itself."""
    documented = {v["type"]: v for v in json_values(ROOT / "docs" / "api.md") if isinstance(v, dict) and "type" in v}
    async with connect(dashboard.ws_url + "/ws/ingest") as ws:
        await ws.send(json.dumps(documented["hello"]))
        await ws.send(json.dumps(documented["batch"]))
        assert await reply(ws) == {"type": "ack", "seq": documented["batch"]["seq"], "stored": 0}
        await ws.send(json.dumps(documented["behind"]))
        assert await send_batch(ws, 8, []) == {"type": "ack", "seq": 8, "stored": 0}  # the behind frame had no reply
    assert dashboard.get("/api/live")["ingest"]["behind"] == 1


async def test_the_replies_docs_api_md_shows_are_the_ones_the_dashboard_sends(dashboard: Dashboard) -> None:
    """The page's `ack` with a refused span and its `invalid frame` error, made happen: the same
    fields, and the same refusal and detail text."""
    documented = [v for v in json_values(ROOT / "docs" / "api.md") if isinstance(v, dict) and v.get("type") in ("ack", "error")]
    ack = next(v for v in documented if v["type"] == "ack")
    invalid = next(v for v in documented if v["type"] == "error" and v["msg"] == "invalid frame")
    trace = new_trace()
    spans = [span_record(trace, new_span()) for _ in range(3)] + [span_record(trace, "xyz")]
    async with connect(dashboard.ws_url + "/ws/ingest") as ws:
        await ws.send(hello_frame())
        got = await send_batch(ws, ack["seq"], spans)
        assert got == {**ack, "stored": 3}
        await ws.send('{"type": "batch", "seq": "7", "spans": []}')  # a seq it cannot read: answered with none
        assert await reply(ws) == invalid


async def test_a_behind_frame_before_hello_is_refused_and_a_flood_of_them_only_counts(dashboard: Dashboard) -> None:
    """Hostile `behind` frames: before a hello, refused and not counted; 1,000 of them (with stray
    fields) after it only count, and every batch is still stored."""
    async with connect(dashboard.ws_url + "/ws/ingest") as ws:
        await ws.send('{"type": "behind"}')
        assert await reply(ws) == {"type": "error", "seq": None, "msg": "invalid frame", "detail": "send a hello frame first", "retry": False}
        await ws.send(hello_frame())
        for _ in range(1000):
            await ws.send(json.dumps({"type": "behind", "seq": "x", "extra": [1] * 100}))
        assert await send_batch(ws, 1, [span_record(new_trace(), new_span())]) == {"type": "ack", "seq": 1, "stored": 1}
    live = dashboard.get("/api/live")["ingest"]
    assert live["behind"] == 1000 and live["bad_frames"] == 1 and live["spans_stored"] == 1


BAD_FRAMES = {
    "malformed JSON": ('{"type": "batch", "seq": 1, "spans": [', "malformed JSON"),
    "not an object": ("[1, 2]", "expected a JSON object"),
    "unknown type": ('{"type": "spans"}', "type: expected 'hello' or 'batch'"),
    "seq not an int": ('{"type": "batch", "seq": "7", "spans": []}', "seq: expected a non-negative int"),
    "spans not a list": ('{"type": "batch", "seq": 7, "spans": {}}', "spans: expected a list"),
    "bad resource": ('{"type": "batch", "seq": 7, "spans": [], "resource": {"k": {}}}', "resource.k: expected a string"),
    "drops not ints": ('{"type": "batch", "seq": 7, "spans": [], "drops": {"spans": "x"}}', "drops.spans: expected a non-negative int"),
    "nested 5,000 deep": ('{"type": "batch", "seq": 7, "spans": [], "metrics": ' + "[" * 5000 + "]" * 5000 + "}", "depth limit exceeded"),
    "drop reasons not ints": ('{"type": "batch", "seq": 7, "spans": [], "drops": {"reasons": {"x": {}}}}', "drops.reasons.x: expected a non-negative int"),
}


async def test_a_hello_nested_5000_deep_is_refused_and_counted(dashboard: Dashboard) -> None:
    """Deep nesting in a hello's extra fields is refused with an error reply, not a crash; a good hello follows."""
    deep = "[" * 5000 + "]" * 5000
    process = json.loads(hello_frame())["process"]
    async with connect(dashboard.ws_url + "/ws/ingest") as ws:
        await ws.send('{"type": "hello", "process": %s, "metrics": %s, "drops": %s}' % (json.dumps(process), deep, deep))
        error = await reply(ws)
        assert error["msg"] == "invalid frame" and "depth limit exceeded" in error["detail"]
        await ws.send(hello_frame())
        assert (await send_batch(ws, 1, [span_record(new_trace(), new_span())]))["type"] == "ack"
    assert dashboard.get("/api/live")["ingest"]["bad_frames"] == 1


@pytest.mark.parametrize("frame, detail", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
async def test_bad_frame_gets_error_naming_the_problem_and_connection_goes_on(dashboard: Dashboard, frame: str, detail: str) -> None:
    """A frame whose envelope is bad is answered with a final error naming what was wrong, counted, and the same connection still stores."""
    async with connect(dashboard.ws_url + "/ws/ingest") as ws:
        await ws.send(hello_frame())
        await ws.send(frame)
        error = await reply(ws)
        assert error["type"] == "error" and error["msg"] == "invalid frame" and error["retry"] is False
        assert detail in error["detail"]
        trace = new_trace()
        assert (await send_batch(ws, 9, [span_record(trace, new_span())]))["type"] == "ack"
    assert dashboard.get("/api/live")["ingest"]["bad_frames"] == 1
    assert dashboard.get("/api/traces")["total"] == 1


BAD_SPANS = {
    "wrong type of span id": ({"span_id": 5}, "spans[1].span_id: expected 16 lowercase hex chars"),
    "missing name": ({"name": None}, "spans[1].name: missing"),
    "ended without end_ns": ({"end_ns": None}, "spans[1].end_ns: an ended span needs end_ns"),
    "time past SQLite's integers": ({"start_ns": 2**63}, "spans[1].start_ns: expected a non-negative int below 2**63"),
    "bad attribute value": ({"attributes": {"k": {"nested": 1}}}, "spans[1].attributes.k: expected a string, number, bool or list"),
    "value over the limit": ({"attributes": {"k": "x" * (MAX_VALUE + 1)}}, f"spans[1].attributes.k: value longer than {MAX_VALUE} chars"),
    "list over the limit": ({"attributes": {"k": [1] * (MAX_ITEMS + 1)}}, f"spans[1].attributes.k: list of more than {MAX_ITEMS} items"),
    "status message over the limit": (
        {"status": {"code": "error", "message": "m" * (MAX_MESSAGE + 1)}}, f"spans[1].status.message: longer than {MAX_MESSAGE} chars",
    ),
}


@pytest.mark.parametrize("fields, reason", BAD_SPANS.values(), ids=BAD_SPANS.keys())
async def test_a_bad_span_is_refused_alone_and_the_rest_of_its_frame_is_stored(dashboard: Dashboard, fields: dict[str, object], reason: str) -> None:
    """The ack lists the refused span by index with the reason; its neighbours are stored, and it is counted."""
    trace = new_trace()
    spans = [span_record(trace, new_span(), "first"), span_record(trace, new_span(), "bad"), span_record(trace, new_span(), "third")]
    spans[1].update(fields)
    async with connect(dashboard.ws_url + "/ws/ingest") as ws:
        await ws.send(hello_frame())
        ack = await send_batch(ws, 1, spans)
    assert ack["type"] == "ack" and ack["stored"] == 2
    assert [r["index"] for r in ack["refused"]] == [1] and reason in ack["refused"][0]["reason"]
    assert sorted(s["name"] for s in dashboard.get(f"/api/traces/{trace}")["spans"]) == ["first", "third"]
    ingest = dashboard.get("/api/live")["ingest"]
    assert ingest["spans_refused"] == 1 and ingest["bad_frames"] == 0


async def test_a_metric_nested_too_deep_is_refused_alone_and_never_fails_other_clients(dashboard: Dashboard) -> None:
    """A summary nested 300 deep passes for valid JSON but could not be stored: it is refused at the door, by itself."""
    deep: dict[str, object] = {}
    for _ in range(300):
        deep = {"d": deep}
    bad = {"name": "opto.metrics.summary", "time_ns": 1, "attributes": {}, "summary": deep}
    good = {"name": "opto.metrics.summary", "time_ns": 1, "attributes": {}, "summary": {"count": 1}}
    traces = [new_trace() for _ in range(5)]
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(connect(dashboard.ws_url + "/ws/ingest")) for _ in traces]
        for ws in sockets:
            await ws.send(hello_frame())
        frames = [
            json.dumps({"type": "batch", "seq": 1, "spans": [span_record(t, new_span())], "metrics": [bad if i == 0 else good], "drops": {}})
            for i, t in enumerate(traces)
        ]
        await asyncio.gather(*(ws.send(f) for ws, f in zip(sockets, frames)))
        acks = [await reply(ws) for ws in sockets]
    assert all(a["type"] == "ack" and a["stored"] == 1 for a in acks)
    assert acks[0]["refused_metrics"] == 1 and all("refused_metrics" not in a for a in acks[1:])
    assert dashboard.get("/api/traces")["total"] == 5
    assert dashboard.get("/api/live")["ingest"]["metrics_refused"] == 1


async def test_an_int_attribute_past_64_bits_is_stored_as_a_float(dashboard: Dashboard) -> None:
    """No SQLite column or JSON encoder can take it: it is kept as a float, and the write goes through."""
    trace = new_trace()
    async with connect(dashboard.ws_url + "/ws/ingest") as ws:
        await ws.send(hello_frame())
        span = span_record(trace, new_span(), attributes={"opto.attempts": 2**70, "sizes": [1, 2**64]})
        answer = await send_batch(ws, 1, [span, span_record(trace, new_span())])
        assert answer["type"] == "ack", answer
    spans = dashboard.get(f"/api/traces/{trace}")["spans"]
    assert len(spans) == 2
    (big,) = [s for s in spans if "sizes" in s["attributes"]]
    assert big["attributes"]["opto.attempts"] == float(2**70) and big["attributes"]["sizes"] == [1, float(2**64)]


MAX_INT = 2**63 - 1
EDGE_FRAMES = {
    "a metric value of 2**63": {"metrics": [{"name": "m", "time_ns": 1, "attributes": {}, "value": 2**63}]},
    "histogram counts past 64 bits": {"metrics": [{"name": "m", "time_ns": 1, "attributes": {}, "histogram": {"count": 1, "bounds": [2**64 - 1], "counts": [2**64, 2**63]}}]},
    "a summary int past 64 bits": {"metrics": [{"name": "m", "time_ns": 1, "attributes": {}, "summary": {"x": [2**64 - 1, {"y": 2**64}]}}]},
    "two retry events at the largest time": {"events": [{"name": "opto.retry", "time_ns": MAX_INT, "attributes": {}}] * 2},
    "two queue-wait links at the largest start": {
        "start_ns": MAX_INT, "end_ns": MAX_INT,
        "links": [{"trace_id": "1" * 32, "span_id": "1" * 16, "attributes": {"opto.queue.wait_s": 1.0}}] * 2,
    },
}


@pytest.mark.parametrize("edge", EDGE_FRAMES.values(), ids=EDGE_FRAMES)
async def test_values_at_the_edge_of_sqlites_integer_never_fail_their_frame(dashboard: Dashboard, edge: dict[str, Any]) -> None:
    """Valid at the door, these once failed the shared write, losing every span of the frame with no
    reply and no count: now each frame is acked with all its spans stored."""
    trace = new_trace()
    metrics = edge.get("metrics", [])
    fields = {k: v for k, v in edge.items() if k != "metrics"}
    spans = [span_record(trace, new_span()) for _ in range(4)] + [span_record(trace, new_span(), **fields)]
    async with connect(dashboard.ws_url + "/ws/ingest") as ws:
        await ws.send(hello_frame())
        answer = await send_batch(ws, 1, spans, metrics=metrics)
    assert answer == {"type": "ack", "seq": 1, "stored": 5}
    assert len(dashboard.get(f"/api/traces/{trace}")["spans"]) == 5
    ingest = dashboard.get("/api/live")["ingest"]
    assert (ingest["spans_refused"], ingest["metrics_refused"]) == (0, 0)


async def test_invalid_utf8_in_a_binary_frame_is_refused(dashboard: Dashboard) -> None:
    async with connect(dashboard.ws_url + "/ws/ingest") as ws:
        await ws.send(hello_frame())
        await ws.send(b'{"type": "batch", "seq": 1, "spans": [], "x": "\xff\xfe"}')
        error = await reply(ws)
    assert error["type"] == "error" and "not valid UTF-8" in error["detail"]
    assert dashboard.get("/api/live")["ingest"]["bad_frames"] == 1


async def test_batch_before_hello_is_refused(dashboard: Dashboard) -> None:
    async with connect(dashboard.ws_url + "/ws/ingest") as ws:
        error = await send_batch(ws, 1, [span_record(new_trace(), new_span())])
    assert error == {"type": "error", "seq": 1, "msg": "invalid frame", "detail": "send a hello frame first", "retry": False}


async def test_refused_frames_do_not_disturb_another_connection(dashboard: Dashboard) -> None:
    """Invalid UTF-8 text and oversized frames close the sender's connection (1007, 1009) and are
    counted, while a second connection keeps storing."""
    async with connect(dashboard.ws_url + "/ws/ingest") as good, connect(dashboard.ws_url + "/ws/ingest") as bad_text, \
            connect(dashboard.ws_url + "/ws/ingest", max_size=None) as huge:
        await good.send(hello_frame())
        await huge.send(hello_frame())
        await bad_text.send(b'{"type": "hello", "x": "\xff"}', text=True)
        await huge.send("x" * (MAX_FRAME_BYTES + 1))
        for ws, code in ((bad_text, 1007), (huge, 1009)):
            with pytest.raises(ConnectionClosed) as closed:
                await reply(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == code
        assert "over the" in closed.value.rcvd.reason  # type: ignore[union-attr]
        assert (await send_batch(good, 1, [span_record(new_trace(), new_span())]))["type"] == "ack"
    assert dashboard.get("/api/live")["ingest"]["bad_frames"] == 2


async def test_ended_span_without_start_and_orphan_child_are_stored(dashboard: Dashboard) -> None:
    """A child whose parent never came is stored and the trace shown (rooted at it) until the parent arrives."""
    trace, parent, child = new_trace(), new_span(), new_span()
    async with connect(dashboard.ws_url + "/ws/ingest") as ws:
        await ws.send(hello_frame())
        await send_batch(ws, 1, [span_record(trace, child, "child", parent=parent)])
        assert dashboard.get("/api/traces")["traces"][0]["root_name"] == "child"
        await send_batch(ws, 2, [span_record(trace, parent, "parent")])
    assert dashboard.get("/api/traces")["traces"][0]["root_name"] == "parent"


async def test_started_record_is_in_flight_until_its_end_replaces_it(dashboard: Dashboard) -> None:
    trace, span = new_trace(), new_span()
    started = span_record(trace, span, "slow", ended=False)
    async with connect(dashboard.ws_url + "/ws/ingest") as ws:
        await ws.send(hello_frame())
        await send_batch(ws, 1, [started])
        live = dashboard.get("/api/live")
        assert [(g["name"], g["count"]) for g in live["in_flight"]] == [("slow", 1)]
        assert dashboard.get(f"/api/traces/{trace}")["spans"][0]["duration_ms"] is None
        await send_batch(ws, 2, [span_record(trace, span, "slow", start_ns=started["start_ns"])])
        await send_batch(ws, 3, [started])  # a late or resent start does not undo the end
    assert dashboard.get("/api/live")["in_flight"] == []
    spans = dashboard.get(f"/api/traces/{trace}")["spans"]
    assert [(s["state"], s["outcome"]) for s in spans] == [("ended", "ok")]


async def test_in_flight_spans_of_a_disconnected_process_leave_the_live_view(dashboard: Dashboard) -> None:
    async with connect(dashboard.ws_url + "/ws/ingest") as ws:
        await ws.send(hello_frame())
        await send_batch(ws, 1, [span_record(new_trace(), new_span(), "stuck", ended=False)])
        assert dashboard.get("/api/live")["in_flight"][0]["name"] == "stuck"
    async with asyncio.timeout(30):
        while dashboard.get("/api/live")["in_flight"]:  # the server notices the close on its own time
            await asyncio.sleep(0.05)


async def test_cross_origin_websocket_is_refused(dashboard: Dashboard) -> None:
    for path in ("/ws/ingest", "/ws/live"):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(dashboard.ws_url + path, origin="http://evil.example"):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 403
    same = dashboard.url.removeprefix("http://")
    async with connect(dashboard.ws_url + "/ws/live", origin=f"http://{same}") as ws:  # type: ignore[arg-type]
        assert (await reply(ws))["type"] == "snapshot"


async def test_token_is_required_on_ingest_api_and_pages(tmp_path: Path) -> None:
    with Dashboard(tmp_path / "opto.db", token="s3cret") as d:
        with pytest.raises(InvalidStatus):
            async with connect(d.ws_url + "/ws/ingest"):
                pass
        with pytest.raises(InvalidStatus):
            async with connect(d.ws_url + "/ws/ingest", additional_headers={"Authorization": "Bearer wrong"}):
                pass
        async with connect(d.ws_url + "/ws/ingest", additional_headers={"Authorization": "Bearer s3cret"}) as ws:
            await ws.send(hello_frame())
            assert (await send_batch(ws, 1, [span_record(new_trace(), new_span())]))["type"] == "ack"
        async with httpx.AsyncClient(base_url=d.url) as client:
            for path in ("/", "/api/live", "/api/traces"):
                refused = await client.get(path)
                assert refused.status_code == 403 and "token" in refused.json()["detail"]
            page = await client.get("/?token=s3cret")
            assert page.status_code == 200
            assert (await client.get("/api/traces")).json()["total"] == 1  # the cookie set by ?token= works


async def test_data_survives_a_restart(tmp_path: Path) -> None:
    trace = new_trace()
    with Dashboard(tmp_path / "opto.db") as d:
        async with connect(d.ws_url + "/ws/ingest") as ws:
            await ws.send(hello_frame(service="kept"))
            await send_batch(ws, 1, [span_record(trace, new_span(), "kept"), span_record(trace, new_span(), "open", ended=False)])
    with Dashboard(tmp_path / "opto.db") as d:
        assert d.get("/api/traces")["traces"][0]["trace_id"] == trace
        assert len(d.get(f"/api/traces/{trace}")["spans"]) == 2
        assert [p["service"] for p in d.get("/api/live")["processes"]] == ["kept"]


def test_a_client_that_never_reads_its_error_replies_is_closed(dashboard: Dashboard, monkeypatch: pytest.MonkeyPatch) -> None:
    """Error replies do not pile up without bound: past the limit the connection closes with 1008.

    A raw socket floods bad frames and reads nothing until the server says it is closing, so the
    replies can only pile up, whatever the timing; then the close frame is read."""
    from opto_dashboard import ingest

    monkeypatch.setattr(ingest, "_MAX_REPLIES", 3)
    closing = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "replies unread" in record.getMessage():
                closing.set()

    watch = Watch()
    logging.getLogger("opto_dashboard").addHandler(watch)
    try:
        with socket.create_connection(dashboard.sock.getsockname(), timeout=30) as sock:
            sock.sendall(
                b"GET /ws/ingest HTTP/1.1\r\nHost: " + dashboard.url.split("//")[1].encode()
                + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                + b"Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) + b"\r\n\r\n"
            )
            stream = sock.makefile("rb")
            assert stream.readline().startswith(b"HTTP/1.1 101")
            while stream.readline() != b"\r\n":
                pass
            bad = bytes([0x81, 0x88, 0, 0, 0, 0]) + b"not json"  # a masked text frame (zero mask)
            for _ in range(20_000):  # 2,000,000 frames at most: the limit is 3 unread replies
                if closing.is_set():
                    break
                sock.sendall(bad * 100)
            assert closing.is_set(), "the server kept serving a client that reads none of its replies"
            opcode, payload = 0, b""
            while opcode != 0x8:  # the error replies the server got to send, then its close frame
                opcode, size = stream.read(2)
                opcode &= 0x0F
                size &= 0x7F
                if size >= 126:
                    size = int.from_bytes(stream.read(2 if size == 126 else 8), "big")
                payload = stream.read(size)
    finally:
        logging.getLogger("opto_dashboard").removeHandler(watch)
    assert int.from_bytes(payload[:2], "big") == 1008 and b"replies unread" in payload[2:]


def test_a_client_that_never_reads_its_acks_is_pushed_back_not_buffered(dashboard: Dashboard) -> None:
    """Valid batches whose acks go unread: once the replies waiting reach their bound, the server
    stops reading the socket, so the client's sends block for good instead of the server's memory growing."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the acks back up at once
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.settimeout(30)
        sock.connect(dashboard.sock.getsockname())
        sock.sendall(
            b"GET /ws/ingest HTTP/1.1\r\nHost: " + dashboard.url.split("//")[1].encode()
            + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            + b"Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) + b"\r\n\r\n"
        )
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101")

        def frame(text: str) -> bytes:
            data = text.encode()
            return bytes([0x81, 0x80 | len(data), 0, 0, 0, 0]) + data  # masked text frame (zero mask), short

        sock.sendall(_frame16(hello_frame()))
        sock.setblocking(False)
        sent = 0
        pending = b""
        blocked_since = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not pending:
                pending = frame(json.dumps({"type": "batch", "seq": sent, "spans": []}))
                sent += 1
            try:
                pending = pending[sock.send(pending):]  # a partial send keeps the rest for the next
                blocked_since = None
            except BlockingIOError:  # the server is not reading: wait, polling, for 3 s of it
                blocked_since = blocked_since or time.monotonic()
                if time.monotonic() - blocked_since > 3:
                    break
                time.sleep(0.01)
        assert blocked_since is not None, "the server kept reading from a client that reads none of its acks"
        assert dashboard.get("/api/live")["ingest"]["frames"] < sent  # the rest waits in the client's socket
        with connect_sync(dashboard.ws_url + "/ws/ingest") as other:  # another client is served meanwhile
            other.send(hello_frame())
            other.send(json.dumps({"type": "batch", "seq": 1, "spans": [span_record(new_trace(), new_span())]}))
            assert json.loads(other.recv(timeout=30))["type"] == "ack"
    assert dashboard.get("/api/live")["ingest"]["bad_frames"] == 0  # and the stuck one ends when its client goes


def _frame16(text: str) -> bytes:
    """A masked text frame (zero mask) with a 16-bit length."""
    data = text.encode()
    return bytes([0x81, 0x80 | 126]) + len(data).to_bytes(2, "big") + bytes(4) + data
