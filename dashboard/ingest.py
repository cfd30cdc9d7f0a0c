"""`/ws/ingest`: the SDK's websocket door. Every frame is validated; good batches are acked once stored.

A bad frame gets an `error` reply naming what was wrong and is counted, and the connection keeps
serving; a frame over `MAX_FRAME_BYTES` closes the connection with code 1009 and a reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import orjson
from starlette.routing import WebSocketRoute
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from .batch import decode_batch
from .pipeline import Pipeline
from .records import MAX_NAME, ProcessInfo, RecordError, SpanRecord, check_attributes, int_field, list_field, object_field, text_field
from .stats import Stats

__all__ = ["routes", "MAX_FRAME_BYTES", "MAX_BATCH_SPANS", "parse_batch", "quick_batch", "FrameError"]

logger = logging.getLogger("opto_dashboard")
MAX_FRAME_BYTES = 8 * 1024 * 1024
MAX_BATCH_SPANS = 10_000
_MAX_UNACKED = 32  # batches of one connection being stored at once
_MAX_REPLIES = 256  # replies waiting for a client that does not read them
_TOO_BIG = 1009
_POLICY = 1008


class FrameError(Exception):
    """A frame refused with an error reply; the connection goes on."""

    def __init__(self, detail: str, seq: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.seq = seq


def _metric(obj: Any, path: str) -> dict[str, Any]:
    """A metric point: a `value`, an AsyncMetrics `summary`, or a `histogram`."""
    m = object_field(obj, path)
    text_field(m, "name", path, limit=MAX_NAME)
    int_field(m, "time_ns", path)
    check_attributes(m.get("attributes", {}), f"{path}.attributes")
    if "summary" in m:
        object_field(m["summary"], f"{path}.summary")
    elif "histogram" in m:
        h = object_field(m["histogram"], f"{path}.histogram")
        int_field(h, "count", f"{path}.histogram")
        for key in ("bounds", "counts"):
            values = list_field(h.get(key), f"{path}.histogram.{key}")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise RecordError(f"{path}.histogram.{key}", "expected a list of numbers")
    else:
        value = m.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecordError(f"{path}.value", f"expected a number, got {value!r}"[:80])
    return m


Parsed = tuple[int, list[SpanRecord], list[dict[str, Any]], dict[str, int]]


def parse_batch(frame: dict[str, Any]) -> Parsed:
    """A validated `batch` frame's seq, spans, metrics and drop counters."""
    seq = frame.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise FrameError(f"seq: expected a non-negative int, got {seq!r}"[:120])
    try:
        spans = list_field(frame.get("spans", []), "spans")
        if len(spans) > MAX_BATCH_SPANS:
            raise RecordError("spans", f"more than {MAX_BATCH_SPANS} spans in one batch; send smaller batches")
        records = [SpanRecord.from_json(s, f"spans[{i}]") for i, s in enumerate(spans)]
        return seq, *_rest(records, frame.get("resource", {}), frame.get("metrics", []), frame.get("drops", {}))
    except RecordError as exc:
        raise FrameError(str(exc), seq) from None


def quick_batch(data: str) -> Parsed | None:
    """`parse_batch` of a plainly valid batch frame, decoded and checked in one pass; else None."""
    batch = decode_batch(data)
    if batch is None or len(batch.spans) > MAX_BATCH_SPANS:
        return None
    try:
        return batch.seq, *_rest(batch.spans, batch.resource, batch.metrics, batch.drops)
    except RecordError:
        return None


def _rest(records: list[SpanRecord], resource: Any, metrics: Any, drops: Any) -> tuple[list[SpanRecord], list[dict[str, Any]], dict[str, int]]:
    """The frame's resource given to spans without one, its metrics and drop counters checked."""
    resource = check_attributes(resource, "resource")
    if resource:
        for r in records:
            if not r.resource:
                r.resource = resource
    checked = [_metric(m, f"metrics[{i}]") for i, m in enumerate(list_field(metrics, "metrics"))]
    drops = object_field(drops, "drops")
    for key in ("spans", "metrics"):
        int_field(drops, key, "drops", optional=True)
    return records, checked, {"spans": drops.get("spans") or 0, "metrics": drops.get("metrics") or 0}


class _Connection:
    """One SDK connection: reads frames, stores batches concurrently, writes replies in order sent."""

    def __init__(self, ws: WebSocket, pipeline: Pipeline, stats: Stats) -> None:
        self.ws = ws
        self.pipeline = pipeline
        self.stats = stats
        self.process: ProcessInfo | None = None
        self.replies: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.slots = asyncio.Semaphore(_MAX_UNACKED)
        self.tasks: set[asyncio.Task[None]] = set()

    def refuse(self, detail: str, seq: int | None = None) -> None:
        self.stats.bad_frames += 1
        self.stats.version += 1
        if self.replies.qsize() >= _MAX_REPLIES:
            raise _Closing(_POLICY, f"{_MAX_REPLIES} replies unread: read the error replies")
        self.replies.put_nowait({"type": "error", "seq": seq, "msg": "invalid frame", "detail": detail})

    async def send_replies(self) -> None:
        while (reply := await self.replies.get()) is not None:
            await self.ws.send_text(json.dumps(reply))

    async def store(self, seq: int, records: list[SpanRecord], metrics: list[dict[str, Any]], drops: dict[str, int]) -> None:
        try:
            stored = await self.pipeline.submit(records, process=self.process, metrics=metrics, drops=drops)
        except Exception as exc:
            self.replies.put_nowait({"type": "error", "seq": seq, "msg": "not stored", "detail": str(exc)[:200]})
        else:
            self.replies.put_nowait({"type": "ack", "seq": seq, "stored": stored})
        finally:
            self.slots.release()

    async def handle(self, message: Message) -> None:
        self.stats.frames += 1
        data = message.get("text")
        if data is None:
            raw = message.get("bytes") or b""
            if len(raw) > MAX_FRAME_BYTES:
                raise _oversized(len(raw))
            try:
                data = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return self.refuse(f"frame is not valid UTF-8 (byte {exc.start})")
        elif len(data) > MAX_FRAME_BYTES:
            raise _oversized(len(data))
        batch = quick_batch(data) if self.process is not None else None
        if batch is None:
            batch = self.parse(data)
            if batch is None:
                return
        await self.slots.acquire()
        task = asyncio.create_task(self.store(*batch))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def parse(self, data: str) -> Parsed | None:
        """The detailed path: a hello is taken, a batch validated field by field; a bad frame refused."""
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            self.refuse(f"malformed JSON: {exc}")
            return None
        kind = frame.get("type") if isinstance(frame, dict) else None
        if not isinstance(frame, dict):
            self.refuse(f"expected a JSON object, got {type(frame).__name__}")
        elif kind == "hello":
            self.hello(frame)
        elif kind != "batch":
            self.refuse(f"type: expected 'hello' or 'batch', got {kind!r}"[:120])
        elif self.process is None:
            self.refuse("send a hello frame first", frame.get("seq") if isinstance(frame.get("seq"), int) else None)
        else:
            try:
                return parse_batch(frame)
            except FrameError as exc:
                self.refuse(exc.detail, exc.seq)
        return None

    def hello(self, frame: dict[str, Any]) -> None:
        if self.process is not None:
            return self.refuse("hello: sent twice on one connection")
        try:
            self.process = ProcessInfo.from_json(frame.get("process"), "process")
        except RecordError as exc:
            return self.refuse(str(exc))
        self.stats.connected(self.process)


class _Closing(Exception):
    """Ends the connection with a close code and a reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _oversized(size: int) -> _Closing:
    return _Closing(_TOO_BIG, f"frame of {size} bytes is over the {MAX_FRAME_BYTES}-byte limit")


async def ingest(ws: WebSocket) -> None:
    """Serve one SDK connection until it closes."""
    pipeline: Pipeline = ws.app.state.pipeline
    stats: Stats = ws.app.state.stats
    await ws.accept()
    conn = _Connection(ws, pipeline, stats)
    sender = asyncio.create_task(conn.send_replies())
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                if message.get("code") in (1007, _TOO_BIG):  # the server's websocket layer refused a frame
                    stats.bad_frames += 1
                break
            await conn.handle(message)
    except _Closing as exc:
        if exc.code == _TOO_BIG:
            stats.bad_frames += 1
        logger.warning("closing an ingest connection (%d): %s", exc.code, exc.reason)
        await ws.close(exc.code, exc.reason)
    except WebSocketDisconnect:
        pass
    finally:
        if conn.process is not None:
            stats.disconnected(conn.process.id)
        if conn.tasks:
            await asyncio.wait(conn.tasks)  # batches being stored stay stored; unacked ones are resent
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


routes = [WebSocketRoute("/ws/ingest", ingest)]
