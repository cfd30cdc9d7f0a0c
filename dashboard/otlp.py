"""`POST /v1/traces` and `POST /v1/metrics`: the OTLP/HTTP door, for any OpenTelemetry SDK or collector.

Per the OTLP/HTTP specification: protobuf or JSON bodies, plain, gzip or deflate; the reply
(success, partial success, or a `google.rpc.Status` on error) is in the request's encoding.
Records go through the pipeline the websocket door uses, so they show in every page and API.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.code_pb2 import INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from .gate import Gate, GateFull
from .otlp_decode import Batch, DecodeError, Decoded, Encoding, decode_metrics, decode_traces, process_of
from .pipeline import Pipeline
from .records import ProcessInfo
from .refusals import Refusals
from .stats import Stats
from .store import StoreError

__all__ = ["routes", "decode_gate", "MAX_BODY_BYTES", "MAX_MEMBERS", "MAX_DECODES", "MAX_WAITING", "BODY_TIMEOUT_S", "RETRY_AFTER_S"]

MAX_BODY_BYTES = 16 * 1024 * 1024  # before and after decompression
MAX_MEMBERS = 64  # gzip members (or zlib streams) in one body; exporters send one
MAX_DECODES = 1  # requests reading, inflating or decoding at once: each may take ~15x its body in memory
MAX_WAITING = 32  # requests queued for a decode slot (none has read its body yet); more get 503
BODY_TIMEOUT_S = 10  # the whole body must arrive within this (OTLP exporters' own default timeout), as it holds the decode slot
RETRY_AFTER_S = 1
_CHUNK = 64 * 1024  # compressed bytes fed to zlib at a time: bounds its copy of the unused rest
_MEDIA_TYPES: dict[str, Encoding] = {"application/x-protobuf": "protobuf", "application/json": "json"}
_CONTENT_TYPE: dict[Encoding, str] = {"protobuf": "application/x-protobuf", "json": "application/json"}
_WBITS = {"gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}


class _Refused(Exception):
    """A request answered with an error status and a `google.rpc.Status` saying why."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class _Signal:
    """What differs between traces and metrics: decoding, storing and the success reply."""

    decode: Callable[[bytes, Encoding], Decoded]
    submit: Callable[[Pipeline, Batch, ProcessInfo], Awaitable[int]]
    reply: Callable[[Decoded], Message]
    refused: Callable[[Stats, int], None]  # counts items refused one by one, or their write for good


def _partial_message(decoded: Decoded) -> str:
    """The first rejection's reason and the warning, for a partial-success reply; empty when fully stored."""
    return "; ".join(m for m in (decoded.error, decoded.warning) if m)


def _trace_reply(decoded: Decoded) -> Message:
    if not (message := _partial_message(decoded)):
        return ExportTraceServiceResponse()
    return ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=decoded.rejected, error_message=message)
    )


def _metrics_reply(decoded: Decoded) -> Message:
    if not (message := _partial_message(decoded)):
        return ExportMetricsServiceResponse()
    return ExportMetricsServiceResponse(
        partial_success=ExportMetricsPartialSuccess(rejected_data_points=decoded.rejected, error_message=message)
    )


_TRACES = _Signal(
    decode_traces, lambda pipeline, batch, process: pipeline.submit(batch.items, process=process), _trace_reply,
    lambda stats, n: stats.refused(n, 0),
)
_METRICS = _Signal(
    decode_metrics, lambda pipeline, batch, process: pipeline.submit([], process=process, metrics=batch.items), _metrics_reply,
    lambda stats, n: stats.refused(0, n),
)


def _encoding(request: Request) -> Encoding:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    encoding = _MEDIA_TYPES.get(media_type)
    if encoding is None:
        raise _Refused(
            415, INVALID_ARGUMENT,
            f"Content-Type must be application/x-protobuf or application/json, got {media_type or 'none'!r}",
        )
    return encoding


async def _read(request: Request) -> bytes:
    """The raw body, refused with 413 as soon as it passes the limit."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise _Refused(413, RESOURCE_EXHAUSTED, f"body of {length} bytes is over the {MAX_BODY_BYTES}-byte limit")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _Refused(413, RESOURCE_EXHAUSTED, f"body is over the {MAX_BODY_BYTES}-byte limit")
            chunks.append(chunk)
    except ClientDisconnect:
        raise _Refused(400, INVALID_ARGUMENT, f"the client left after {size} bytes of its body") from None
    return b"".join(chunks)


def _wbits(request: Request) -> int | None:
    """zlib's window bits for the body's Content-Encoding; None for an uncompressed body."""
    coding = request.headers.get("content-encoding", "identity").strip().lower()
    if coding in ("", "identity"):
        return None
    if coding not in _WBITS:
        raise _Refused(415, INVALID_ARGUMENT, f"Content-Encoding {coding!r} is not supported; send gzip, deflate or none")
    return _WBITS[coding]


def _inflate(body: bytes, wbits: int) -> bytes:
    """Decompress every gzip member (or zlib stream), refusing output or members past the limits.

    Linear time: the body is fed in chunks from an offset, so zlib's `unused_data` (a copy of
    what follows a member's end) is at most one chunk, not the rest of the body once per member.
    """
    out = bytearray()
    view = memoryview(body)
    offset = members = 0
    while offset < len(body):
        members += 1
        if members > MAX_MEMBERS:
            raise _Refused(413, RESOURCE_EXHAUSTED, f"body has more than {MAX_MEMBERS} compressed members")
        inflater = zlib.decompressobj(wbits)
        while not inflater.eof:
            if offset >= len(body):
                raise _Refused(400, INVALID_ARGUMENT, "body does not decompress: compressed stream is truncated")
            chunk = view[offset:offset + _CHUNK]
            offset += len(chunk)
            try:
                out += inflater.decompress(chunk, MAX_BODY_BYTES + 1 - len(out))
            except zlib.error as exc:
                raise _Refused(400, INVALID_ARGUMENT, f"body does not decompress: {exc}") from None
            if len(out) > MAX_BODY_BYTES:
                raise _Refused(413, RESOURCE_EXHAUSTED, f"decompressed body is over the {MAX_BODY_BYTES}-byte limit")
        offset -= len(inflater.unused_data)
    return bytes(out)


def _decode(signal: _Signal, body: bytes, wbits: int | None, encoding: Encoding) -> Decoded:
    """Decompress and decode; runs on a worker thread so a large request does not stall the event loop."""
    if wbits is not None:
        body = _inflate(body, wbits)
    try:
        return signal.decode(body, encoding)
    except DecodeError as exc:
        raise _Refused(400, INVALID_ARGUMENT, str(exc)) from None


async def _store(pipeline: Pipeline, stats: Stats, signal: _Signal, decoded: Decoded) -> None:
    """Submit each resource's batch as one process's write; the process counts as connected meanwhile."""
    now = time.time_ns()
    work = [(batch, process_of(batch.resource, now)) for batch in decoded.batches if batch.items]
    for _, process in work:
        stats.connected(process)
    try:
        results = await asyncio.gather(*(signal.submit(pipeline, batch, process) for batch, process in work), return_exceptions=True)
    finally:
        for _, process in work:
            stats.disconnected(process.id)
    failed = [(batch, r) for (batch, _), r in zip(work, results) if isinstance(r, BaseException)]
    if not failed:
        return
    first = failed[0][1]
    if not all(isinstance(error, StoreError) and not error.transient for _, error in failed):
        # transient (disk full, database locked): 503, and the sender resends the request
        raise _Refused(503, UNAVAILABLE, f"not stored: {first}"[:300])
    lost = sum(len(batch.items) for batch, _ in failed)  # refused for good: counted, and named in the reply
    signal.refused(stats, lost)
    if len(failed) == len(work):
        raise _Refused(400, INVALID_ARGUMENT, f"not stored: {first}"[:300])
    decoded.reject(lost, f"not stored: {first}"[:300])


def _response(message: Message, encoding: Encoding, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if encoding == "protobuf":
        content = message.SerializeToString()
    else:
        content = json.dumps(json_format.MessageToDict(message)).encode()
    return Response(content, status_code=status, headers=headers, media_type=_CONTENT_TYPE[encoding])


def decode_gate() -> Gate:
    """The app's bound on OTLP requests in progress (`app.state.otlp_gate`)."""
    return Gate(MAX_DECODES, MAX_WAITING)


async def _decoded(request: Request, signal: _Signal, encoding: Encoding, wbits: int | None) -> Decoded:
    """The request's body read and decoded while holding one of the app's decode slots."""
    gate: Gate = request.app.state.otlp_gate
    try:
        async with gate.slot():
            try:
                async with asyncio.timeout(BODY_TIMEOUT_S):
                    body = await _read(request)
            except TimeoutError:
                raise _Refused(408, INVALID_ARGUMENT, f"the body did not arrive within {BODY_TIMEOUT_S} s") from None
            return await asyncio.to_thread(_decode, signal, body, wbits, encoding)
    except GateFull as exc:
        raise _Refused(503, UNAVAILABLE, f"too many OTLP requests in progress ({exc}); retry later") from None


async def _export(request: Request, signal: _Signal) -> Response:
    pipeline: Pipeline = request.app.state.pipeline
    stats: Stats = request.app.state.stats
    stats.frames += 1
    encoding: Encoding = "json"  # for a refusal before the body's encoding is known
    try:
        encoding = _encoding(request)
        wbits = _wbits(request)
        if pipeline.full:
            raise _Refused(503, UNAVAILABLE, f"ingest queue is full ({pipeline.pending} spans waiting); retry later")
        decoded = await _decoded(request, signal, encoding, wbits)
        if decoded.rejected:
            signal.refused(stats, decoded.rejected)
        await _store(pipeline, stats, signal, decoded)
    except _Refused as exc:
        headers = None
        if exc.status == 503:
            headers = {"Retry-After": str(RETRY_AFTER_S)}
            refused: Refusals = request.app.state.refused
            refused.otlp_busy += 1
        else:
            stats.bad_frames += 1
            stats.version += 1
        return _response(Status(code=exc.code, message=exc.message), encoding, exc.status, headers)
    return _response(signal.reply(decoded), encoding)


async def traces(request: Request) -> Response:
    return await _export(request, _TRACES)


async def metrics(request: Request) -> Response:
    return await _export(request, _METRICS)


routes = [Route("/v1/traces", traces, methods=["POST"]), Route("/v1/metrics", metrics, methods=["POST"])]
