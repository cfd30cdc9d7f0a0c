"""`/ws/ingest`: the SDK's websocket door. Every frame is validated; good batches are acked once stored.

A span that breaks the contract is refused alone: the ack lists it by index with the reason, and
the rest of its frame is stored. A frame whose envelope is bad gets an `error` reply naming what
was wrong (`retry: false`); one the store could not take for now (disk full, database locked)
gets `retry: true`, and the SDK sends it again. Refusals are counted and the connection keeps
serving; a frame over `MAX_FRAME_BYTES` closes the connection with code 1009 and a reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.routing import WebSocketRoute
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from opto.telemetry.limits import MAX_BATCH_SPANS, MAX_DEPTH, MAX_FRAME_BYTES, depth_within

from . import asyncio_frames
from .batch import decode_batch
from .pipeline import Pipeline
from .priority import BIG_FRAME_BYTES
from .records import MAX_INT, MAX_NAME, ProcessInfo, RecordError, SpanRecord, check_attributes, fit_ints, int_field, list_field, object_field, text_field
from .stats import Stats
from .store import StoreError

__all__ = ["routes", "MAX_FRAME_BYTES", "MAX_BATCH_SPANS", "Parsed", "parse_batch", "quick_batch", "FrameError"]

logger = logging.getLogger("opto_dashboard")
_MAX_UNACKED = 32  # batches of one connection being stored at once
_MAX_REPLIES = 256  # replies waiting for a client that does not read them: then reading stops
_MAX_REASONS = 16  # drop reasons an SDK may report
_TOO_BIG = 1009
_POLICY = 1008


class FrameError(Exception):
    """A frame refused whole with an error reply (its envelope is malformed); the connection goes on."""

    def __init__(self, detail: str, seq: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.seq = seq


def _metric(obj: Any, path: str) -> dict[str, Any]:
    """A metric point: a `value`, an AsyncMetrics `summary`, or a `histogram`."""
    m = object_field(obj, path)
    text_field(m, "name", path, limit=MAX_NAME)
    int_field(m, "time_ns", path)
    m["attributes"] = check_attributes(m.get("attributes", {}), f"{path}.attributes")
    if "summary" in m:
        if not depth_within(object_field(m["summary"], f"{path}.summary")):
            raise RecordError(f"{path}.summary", f"nested more than {MAX_DEPTH} deep")
        m["summary"] = fit_ints(m["summary"])
    elif "histogram" in m:
        h = object_field(m["histogram"], f"{path}.histogram")
        int_field(h, "count", f"{path}.histogram")
        for key in ("bounds", "counts"):
            values = list_field(h.get(key), f"{path}.histogram.{key}")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise RecordError(f"{path}.histogram.{key}", "expected a list of numbers")
        if not depth_within(h):
            raise RecordError(f"{path}.histogram", f"nested more than {MAX_DEPTH} deep")
        m["histogram"] = fit_ints(h)
    else:
        value = m.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecordError(f"{path}.value", f"expected a number, got {value!r}"[:80])
        m["value"] = fit_ints(value)
    return m


@dataclass(slots=True)
class Parsed:
    """A batch frame's valid spans and metric points, and what was refused of it one by one."""

    seq: int
    spans: list[SpanRecord]
    metrics: list[dict[str, Any]]
    drops: dict[str, Any]
    refused: list[dict[str, Any]] = field(default_factory=list)  # {"index", "reason"} of each refused span
    refused_metrics: int = 0


def parse_batch(frame: dict[str, Any]) -> Parsed:
    """A `batch` frame, each span checked alone: a span that breaks the contract is refused by itself."""
    seq = frame.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_INT:
        raise FrameError(f"seq: expected a non-negative int, got {seq!r}"[:120])
    try:
        spans = frame.get("spans", [])
        if not isinstance(spans, list) or len(spans) > MAX_BATCH_SPANS:
            raise RecordError("spans", f"expected a list of at most {MAX_BATCH_SPANS} spans; send smaller batches")
        records: list[SpanRecord] = []
        refused: list[dict[str, Any]] = []
        for i, span in enumerate(spans):
            try:
                records.append(SpanRecord.from_json(span, f"spans[{i}]"))
            except RecordError as exc:
                refused.append({"index": i, "reason": str(exc)[:200]})
        parsed = _finish(seq, records, frame.get("resource", {}), frame.get("metrics", []), frame.get("drops", {}))
    except RecordError as exc:
        raise FrameError(str(exc), seq) from None
    parsed.refused = refused
    return parsed


def quick_batch(data: str) -> Parsed | None:
    """`parse_batch` of a plainly valid batch frame, decoded and checked in one pass; else None."""
    try:
        batch = decode_batch(data)
    except RecursionError:  # nested past the decoder's depth: the detailed path names the field
        return None
    if batch is None or len(batch.spans) > MAX_BATCH_SPANS:
        return None
    try:
        parsed = _finish(batch.seq, batch.spans, batch.resource, batch.metrics, batch.drops)
    except RecordError:
        return None
    return parsed if not parsed.refused_metrics else None


def _finish(seq: int, records: list[SpanRecord], resource: Any, metrics: Any, drops: Any) -> Parsed:
    """The frame's resource given to spans without one; its metric points checked one by one, and
    its drop counters."""
    resource = check_attributes(resource, "resource")
    if resource:
        for r in records:
            if not r.resource:
                r.resource = resource
    points = []
    refused = 0
    for i, m in enumerate(list_field(metrics, "metrics")):
        try:
            points.append(_metric(m, f"metrics[{i}]"))
        except RecordError:
            refused += 1
    return Parsed(seq, records, points, _drops(drops), refused_metrics=refused)


def _drops(value: Any) -> dict[str, Any]:
    """An SDK's cumulative drop counters: spans and metric points lost, and spans by reason."""
    drops = object_field(value, "drops")
    out: dict[str, Any] = {key: int_field(drops, key, "drops", optional=True) or 0 for key in ("spans", "metrics", "starts")}
    reasons = object_field(drops.get("reasons", {}), "drops.reasons")
    if len(reasons) > _MAX_REASONS:
        raise RecordError("drops.reasons", f"more than {_MAX_REASONS} reasons")
    for key in reasons:
        text_field({"name": key}, "name", "drops.reasons", limit=64)
        int_field(reasons, key, "drops.reasons")
    out["reasons"] = reasons
    return out


class _Connection:
    """One SDK connection: reads frames, stores batches concurrently, writes replies in order sent."""

    def __init__(self, ws: WebSocket, pipeline: Pipeline, stats: Stats) -> None:
        self.ws = ws
        self.pipeline = pipeline
        self.stats = stats
        self.process: ProcessInfo | None = None
        # Bounded: a client that reads no replies fills it, its stores then wait to reply and hold
        # their slots, and the connection stops reading frames, which pushes back on the client.
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_MAX_REPLIES)
        self.slots = asyncio.Semaphore(_MAX_UNACKED)
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        self.askable: asyncio_frames.Send | None = None  # how await-stack requests reach this process

    def refuse(self, detail: str, seq: int | None = None) -> None:
        self.stats.bad_frames += 1
        self.stats.version += 1
        try:
            self.replies.put_nowait({"type": "error", "seq": seq, "msg": "invalid frame", "detail": detail, "retry": False})
        except asyncio.QueueFull:
            raise _Closing(_POLICY, f"{_MAX_REPLIES} replies unread: read the replies") from None

    async def send_replies(self) -> None:
        try:
            while True:
                await self.ws.send_text(json.dumps(await self.replies.get()))
        finally:  # the client is gone (or the connection ends): stores waiting to reply go on
            self.close()

    def close(self) -> None:
        """No more replies: empty the queue, which lets every store waiting to reply finish."""
        self.closed = True
        while not self.replies.empty():
            self.replies.get_nowait()

    async def reply(self, message: dict[str, Any]) -> None:
        if not self.closed:
            await self.replies.put(message)

    async def store(self, batch: Parsed) -> None:
        try:
            if batch.refused or batch.refused_metrics:
                self.stats.refused(len(batch.refused), batch.refused_metrics)
            try:
                stored = await self.pipeline.submit(batch.spans, process=self.process, metrics=batch.metrics, drops=batch.drops)
            except StoreError as exc:
                if not exc.transient:
                    self.stats.refused(len(batch.spans), len(batch.metrics))
                await self.reply({"type": "error", "seq": batch.seq, "msg": "not stored", "detail": str(exc)[:300], "retry": exc.transient})
                return
            except Exception as exc:  # a fault of ours: the frame is still answered and counted, and the server goes on
                logger.exception("batch %s not stored", batch.seq)
                self.stats.refused(len(batch.spans), len(batch.metrics))
                await self.reply({"type": "error", "seq": batch.seq, "msg": "not stored", "detail": f"{type(exc).__name__}: {exc}"[:300], "retry": False})
                return
            ack: dict[str, Any] = {"type": "ack", "seq": batch.seq, "stored": stored}
            if batch.refused:
                ack["refused"] = batch.refused
            if batch.refused_metrics:
                ack["refused_metrics"] = batch.refused_metrics
            await self.reply(ack)
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
        if len(data) >= BIG_FRAME_BYTES:  # a big frame is decoded after the HTTP requests in flight
            await self.pipeline.requests.turn()
        batch = quick_batch(data) if self.process is not None else None
        if batch is None:
            batch = self.parse(data)
            if batch is None:
                return
        await self.slots.acquire()
        task = asyncio.create_task(self.store(batch))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def parse(self, data: str) -> Parsed | None:
        """The detailed path: a hello is taken, a batch validated field by field; a bad frame refused."""
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            self.refuse(f"malformed JSON: {exc}"[:300])
            return None
        kind = frame.get("type") if isinstance(frame, dict) else None
        if not isinstance(frame, dict):
            self.refuse(f"expected a JSON object, got {type(frame).__name__}")
        elif kind == "hello":
            self.hello(frame)
        elif kind == "behind" and self.process is not None:  # the SDK is about to lose spans
            self.stats.behind()
            self.pipeline.requests.behind()
        elif kind in asyncio_frames.KINDS and self.process is not None:
            try:
                asyncio_frames.take(self.ws.app.state, self.process, kind, frame)
            except RecordError as exc:
                self.refuse(str(exc)[:300])
        elif kind not in ("batch", "behind", *asyncio_frames.KINDS):
            self.refuse(f"type: expected 'hello' or 'batch' (or 'behind', 'asyncio', 'stack'), got {kind!r}"[:120])
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
        self.askable = asyncio_frames.connected(self.ws.app.state, self.process.id, self.replies, lambda: self.closed)


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
            if conn.askable is not None:
                asyncio_frames.disconnected(ws.app.state, conn.process.id, conn.askable)
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        conn.close()
        if conn.tasks:
            await asyncio.wait(conn.tasks)  # batches being stored stay stored; unacked ones are resent


routes = [WebSocketRoute("/ws/ingest", ingest)]
