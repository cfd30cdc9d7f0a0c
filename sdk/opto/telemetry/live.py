"""The live exporter: streams span starts and ends to `opto-dashboard` over its websocket.

`on_start`/`on_end` run on the application's thread and only append to a bounded deque (when it
is full the oldest record is dropped and counted). A named daemon thread owns the connection: it
encodes and sends batches, keeps each frame until the dashboard acks it, resends unacked frames
after reconnecting (with jittered backoff), and never raises into the application. With the
asyncio instrumentation on, it also sends its snapshot each second and answers the dashboard's
await-stack requests (docs/asyncio.md).
"""

from __future__ import annotations

import itertools
import json
import math
import logging
import os
import random
import socket
import threading
import time
import uuid
import weakref
from collections import OrderedDict, deque
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from .._version import __version__
from . import instrumentation, limits, semconv, sources
from .wire import encode_span

__all__ = ["LiveSpanProcessor", "ingest_url", "processors", "DEFAULT_BUFFER", "DEFAULT_FLUSH_TIMEOUT_S"]

logger = logging.getLogger("opto")
DEFAULT_BUFFER = 100_000  # span records waiting for the dashboard
DEFAULT_FLUSH_TIMEOUT_S = 5.0
_BATCH = 1000  # records per frame
_WINDOW = 16  # frames sent but not yet acked
_TICK_S = 0.1  # longest the exporter sleeps with nothing to send
_LINGER_S = 0.01  # woken by a record after a quiet spell, it waits this long for the rest of the burst
_METRICS_EVERY_S = 1.0
_BEHIND_EVERY_S = 0.5  # while spans are at risk, how often the dashboard is told (it acts for 1 s)
_BEHIND = b'{"type":"behind"}'
_BACKOFF_MIN_S = 0.05
_BACKOFF_MAX_S = 5.0
_FRAME_CHARS = 1024 * 1024  # records measured past this wait for the next frame (JSON escapes can make
# a char up to six bytes: still under the 8 MiB frame limit)
_STARTED, _ENDED = False, True
_dumps = orjson.dumps
Fragment = orjson.Fragment
measure = limits.measure


def ingest_url(url: str) -> str:
    """The `/ws/ingest` websocket URL of a dashboard given as `http://host:port` (or ws://)."""
    if not isinstance(url, str):
        raise TypeError(f"dashboard must be a URL such as http://127.0.0.1:8765, got {type(url).__name__}")
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    try:
        parts.port  # noqa: B018  (raises for a port past 65535 or not a number)
    except ValueError:
        scheme = None
    if scheme is None or not parts.hostname:
        raise ValueError(f"dashboard must be a URL such as http://127.0.0.1:8765, got {url!r}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws/ingest", parts.query, ""))


def _env_number(name: str, default: float, kind: type[int] | type[float]) -> Any:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be {'an int' if kind is int else 'a number'}, got {raw!r}") from None


def processors(dashboard: str | None, service_name: str) -> list[SpanProcessor]:
    """The live processor for `dashboard` (else `OPTO_DASHBOARD_URL`), or none when neither is set.

    `OPTO_DASHBOARD_BUFFER`, `OPTO_DASHBOARD_FLUSH_TIMEOUT` (seconds) and `OPTO_DASHBOARD_TOKEN`
    tune it.
    """
    url = dashboard or os.environ.get("OPTO_DASHBOARD_URL")
    if not url:
        return []
    return [LiveSpanProcessor(
        url,
        service_name=service_name,
        max_buffer=_env_number("OPTO_DASHBOARD_BUFFER", DEFAULT_BUFFER, int),
        flush_timeout_s=_env_number("OPTO_DASHBOARD_FLUSH_TIMEOUT", DEFAULT_FLUSH_TIMEOUT_S, float),
        token=os.environ.get("OPTO_DASHBOARD_TOKEN") or None,
    )]


def _queue_points() -> list[dict[str, Any]]:
    """Depth, producers and consumers of every live `AsyncQueue`, from the source the queues register.

    (Item waits and blocked puts travel on spans, as links and events.) Reading the queues costs
    nothing per item, where an OpenTelemetry MeterProvider would cost every traced call.
    """
    return sources.read(sources.QUEUES)


def _metric_summaries() -> list[dict[str, Any]]:
    """`AsyncMetrics` summaries as metric points, from the source AsyncMetrics registers."""
    return sources.read(sources.METRIC_SUMMARIES)


class LiveSpanProcessor(SpanProcessor):
    """Send every span's start and end to the dashboard at `url`, without ever blocking the app."""

    def __init__(
        self,
        url: str,
        *,
        service_name: str = "opto-app",
        max_buffer: int = DEFAULT_BUFFER,
        flush_timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S,
        token: str | None = None,
    ) -> None:
        if isinstance(max_buffer, bool) or not isinstance(max_buffer, int) or max_buffer < 1:
            raise ValueError(f"max_buffer must be an int >= 1, got {max_buffer!r}")
        if not 0 < flush_timeout_s < math.inf:  # NaN fails too
            raise ValueError(f"flush_timeout_s must be a finite number of seconds > 0, got {flush_timeout_s!r}")
        self.url = ingest_url(url)
        self.flush_timeout_s = flush_timeout_s
        self._max = max_buffer
        self._buffer: deque[tuple[ReadableSpan, bool]] = deque()  # at most max_buffer: see `_evict`
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._service_name = service_name
        # Imported here, on the caller's thread, not lazily on the exporter's: a fork during that
        # import would leave the child a half-initialised module (the idna codec: connecting
        # from the child would fail with "unknown encoding: idna").
        import encodings.idna  # noqa: F401

        from websockets.sync.client import connect

        self._connect = connect
        self._start()
        if hasattr(os, "register_at_fork"):  # a forked child gets its own buffer, process id and thread
            after_fork = weakref.WeakMethod(self._start)
            os.register_at_fork(after_in_child=lambda: (start := after_fork()) is not None and start())

    def _start(self) -> None:
        """Fresh state and a running exporter thread: at construction, and in a forked child."""
        self.drops = {"buffer_full": 0, "refused": 0, "invalid_frame": 0, "unencodable": 0}  # spans lost, by reason
        self.dropped_starts = 0  # start records dropped from a full buffer (their spans' ends may still come)
        self.dropped_metrics = 0
        self._buffer.clear()
        self._hello = json.dumps({"type": "hello", "process": {
            "id": uuid.uuid4().hex, "service": self._service_name[:limits.MAX_NAME], "pid": os.getpid(),
            "host": socket.gethostname()[:limits.MAX_NAME],
            "sdk": f"opto/{__version__}", "started_ns": time.time_ns(),
        }})
        self._carry: tuple[ReadableSpan, bool] | None = None  # taken from the buffer, for the next frame
        self._unacked: OrderedDict[int, bytes] = OrderedDict()
        self._unacked_ends: dict[int, bytes] = {}  # per unacked frame: 1 for each end record, 0 for a start
        self._retry_backoff = _BACKOFF_MIN_S  # after the dashboard could not store a frame
        self._seq = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._next_metrics = 0.0
        self._next_asyncio = 0.0
        self._next_behind = 0.0
        self._exiting = False  # shutdown is flushing: what is not acked by its deadline is reported
        self._connects = 0
        self._sleeping = False  # the exporter thread waits for records: the next one wakes it
        self._failed = False  # the last connection attempt failed
        self._rejected_logged = False
        self._thread = threading.Thread(target=self._run, name="opto-live-exporter", daemon=True)
        self._thread.start()

    # -- the application's thread: append and return -------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if len(self._buffer) >= self._max:
            self._evict()
        self._buffer.append((span, _STARTED))
        if self._sleeping:  # after appending: see `_sleep`
            self._sleeping = False
            self._wake.set()

    def on_end(self, span: ReadableSpan) -> None:
        if len(self._buffer) >= self._max:
            self._evict()
        self._buffer.append((span, _ENDED))
        if self._sleeping or (len(self._buffer) >= _BATCH and not self._wake.is_set()):
            self._sleeping = False
            self._wake.set()

    def _evict(self) -> None:
        """Make room in the full buffer: the oldest record goes, counted as a lost span if it was an end."""
        try:
            _, ended = self._buffer.popleft()
        except IndexError:  # the exporter thread emptied it meanwhile
            return
        if ended:
            self.drops["buffer_full"] += 1
        else:
            self.dropped_starts += 1

    @property
    def dropped_spans(self) -> int:
        """Spans the dashboard will never get: their end record was dropped (any reason)."""
        return sum(self.drops.values())

    # -- flushing and shutdown ---------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Records not yet acked by the dashboard (buffered or sent)."""
        return len(self._buffer) + (self._carry is not None) + sum(map(len, list(self._unacked_ends.values())))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until everything buffered is acked, at most `timeout_millis`; False if time ran out."""
        deadline = time.monotonic() + timeout_millis / 1000
        self._wake.set()
        with self._idle:
            while self._buffer or self._carry or self._unacked or (self._exiting and not self._next_metrics):
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive() or (self._connects == 0 and self._failed):
                    return False  # out of time, or no dashboard has ever answered: nothing to wait for
                self._wake.set()
                self._idle.wait(min(left, _TICK_S))
        return True

    def shutdown(self) -> None:
        """Flush, stop the thread and log what the dashboard never confirmed, all within `flush_timeout_s`."""
        if self._stop.is_set():
            return
        deadline = time.monotonic() + self.flush_timeout_s
        self._next_metrics = 0.0  # the last metric summaries go too: a program shorter than a second sent none
        self._exiting = True
        self.force_flush(int(self.flush_timeout_s * 1000))
        self._stop.set()
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        unsent, unacked = self._unsent_spans(), self._unacked_spans()
        self._max = 0  # a span ended after this is never sent: it takes the buffer's one place, not memory
        if self.dropped_spans or unsent or unacked:
            logger.warning(
                "opto: the dashboard at %s did not get %d spans: %d dropped (%s), %d unsent at shutdown%s",
                self.url, self.dropped_spans + unsent, self.dropped_spans,
                ", ".join(f"{reason} {n}" for reason, n in self.drops.items() if n) or "none", unsent,
                f"; {unacked} sent but not acknowledged (the dashboard may have stored them)" if unacked else "",
            )

    def _unsent_spans(self) -> int:
        """Spans whose end record is still buffered: never sent."""
        carried = self._carry is not None and self._carry[1]
        return sum(ended for _, ended in list(self._buffer)) + carried

    def _unacked_spans(self) -> int:
        """Spans whose end record was sent in a frame the dashboard has not acked."""
        return sum(e.count(1) for e in list(self._unacked_ends.values()))

    # -- the exporter thread ---------------------------------------------------------------------

    def _run(self) -> None:
        otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))
        backoff = _BACKOFF_MIN_S
        while not self._stop.is_set():
            connects = self._connects
            try:
                self._serve()
            except _NotStored as exc:  # connected, but the dashboard could not store: resend after a pause
                delay = random.uniform(self._retry_backoff / 2, self._retry_backoff)
                self._retry_backoff = min(self._retry_backoff * 2, _BACKOFF_MAX_S)
                logger.debug("opto: the dashboard at %s did not store a frame (%s); resending in %.2f s", self.url, exc, delay)
                if self._stop.wait(delay):
                    break
                continue
            except Exception as exc:  # any failure of the connection: back off and reconnect
                self._failed = True
                logger.debug("opto: dashboard connection to %s failed: %r", self.url, exc)
            if self._connects > connects:
                backoff = _BACKOFF_MIN_S
            delay = random.uniform(backoff / 2, backoff)  # jitter: restarts do not reconnect in step
            backoff = min(backoff * 2, _BACKOFF_MAX_S)
            if self._stop.wait(delay):
                break

    def _serve(self) -> None:
        with self._connect(
            self.url, open_timeout=5, close_timeout=1, compression=None, proxy=None, max_size=limits.MAX_FRAME_BYTES,
            additional_headers=self._headers, ping_interval=None,
        ) as ws:
            self._connects += 1
            self._failed = False
            ws.send(self._hello)
            for frame in list(self._unacked.values()):
                ws.send(frame, text=True)
            while not self._stop.is_set():
                self._receive(ws, 0 if len(self._unacked) < _WINDOW else _TICK_S)
                self._send_asyncio(ws)
                self._send_behind(ws)
                if len(self._unacked) >= _WINDOW:
                    continue
                with self._idle:  # a flush must not see records between the buffer and `_unacked`
                    batch = self._next_frame()
                if batch is not None:
                    ws.send(batch, text=True)
                    continue
                with self._idle:
                    if not self._buffer and not self._carry and not self._unacked:
                        self._idle.notify_all()
                if not self._buffer and self._carry is None:
                    self._sleep()

    def _sleep(self) -> None:
        """Wait for records, at most _TICK_S. The first record after a quiet spell wakes the thread
        (so a call shows live at once), which then lingers a moment to send the burst in one frame.
        `_sleeping` is set before the buffer is checked, and the app's thread appends before it
        reads `_sleeping`: a record is either seen here or wakes the thread."""
        self._sleeping = True
        if not self._buffer:
            self._wake.wait(_TICK_S)
        self._sleeping = False
        self._wake.clear()
        if self._buffer and not self._stop.is_set():
            self._stop.wait(_LINGER_S)

    def _receive(self, ws: Any, timeout: float) -> None:
        """Take acks (and error replies) until none is waiting, answering the dashboard's
        await-stack requests met on the way (`telemetry.instrumentation`); `_NotStored` when the dashboard
        could not store a frame for now (its frames stay unacked, to be resent)."""
        while True:
            try:
                reply = orjson.loads(ws.recv(timeout=timeout if self._unacked else 0))
            except TimeoutError:
                if self._unacked:
                    return
                break
            timeout = 0
            if reply.get("type") == "stack_request":  # the dashboard asks where a task is now
                ws.send(_encode_json(instrumentation.answer(reply)), text=True)
                continue
            seq = reply.get("seq")
            ends = self._unacked_ends.get(seq, b"")
            if reply.get("type") == "error":
                if reply.get("retry"):
                    raise _NotStored(str(reply.get("detail")))
                # A malformed frame: the dashboard would refuse it again, so it is dropped, and counted.
                self.drops["invalid_frame"] += ends.count(1)
                self._log_refusal(reply.get("detail"))
            else:
                self._retry_backoff = _BACKOFF_MIN_S
                refused = reply.get("refused")
                if refused:  # spans the dashboard refused one by one; the rest of the frame is stored
                    self.drops["refused"] += sum(
                        1 for r in refused if isinstance(r, dict) and isinstance(i := r.get("index"), int) and ends[i:i + 1] == b"\x01"
                    )
                    self._log_refusal(refused[0].get("reason"))
                refused_metrics = reply.get("refused_metrics")
                if type(refused_metrics) is int and refused_metrics > 0:  # metric points refused one by one
                    self.dropped_metrics += refused_metrics
            self._unacked.pop(seq, None)
            self._unacked_ends.pop(seq, None)
        with self._idle:
            self._idle.notify_all()

    def _send_asyncio(self, ws: Any) -> None:
        """Every _METRICS_EVERY_S, the asyncio instrumentation's snapshot (tasks, loop health), if it
        is on: a frame of its own, not acked (the next one replaces it)."""
        now = time.monotonic()
        if now < self._next_asyncio:
            return
        self._next_asyncio = now + _METRICS_EVERY_S
        snapshot = instrumentation.snapshot()
        if snapshot is not None:
            ws.send(_encode_json({"type": "asyncio", **snapshot}), text=True)

    def _send_behind(self, ws: Any) -> None:
        """While spans are at risk (the buffer half full, or the app exiting with records not yet
        acked), tell the dashboard every _BEHIND_EVERY_S: it then lets ingest go before page
        requests. A frame of its own, not acked."""
        if not (len(self._buffer) >= self._max // 2 or (self._exiting and (self._buffer or self._unacked))):
            return
        now = time.monotonic()
        if now >= self._next_behind:
            self._next_behind = now + _BEHIND_EVERY_S
            ws.send(_BEHIND, text=True)

    def _log_refusal(self, detail: Any) -> None:
        if not self._rejected_logged:
            self._rejected_logged = True
            logger.warning("opto: the dashboard refused spans: %s", detail)

    def _next_frame(self) -> bytes | None:
        """The next batch frame, or None when there is nothing to send. A frame holds at most
        `_BATCH` records and `MAX_FRAME_BYTES`: records past that wait for the next one."""
        now = time.monotonic()
        taken: list[tuple[ReadableSpan, bool]] = []
        records: list[dict[str, Any]] = []
        size = 0
        resource = None
        while (self._carry or self._buffer) and len(records) < _BATCH and size < _FRAME_CHARS:
            if self._carry is not None:
                (span, ended), self._carry = self._carry, None
            else:
                span, ended = self._buffer.popleft()
            span_resource = span.resource
            if resource is not None and span_resource is not resource:
                self._carry = (span, ended)  # one resource per frame: this span opens the next one
                break
            resource = span_resource
            if not ended and span.end_time is not None:
                continue  # already over: its end record follows, so the start adds nothing
            # The record cut to the shared limits (and marked) if it is over any. Its attributes are
            # encoded here, once: their size tells whether any value can be over a limit, and the
            # frame embeds the bytes as they are.
            try:
                record = encode_span(span, ended)
                try:
                    encoded = _dumps(record["attributes"])
                except TypeError:
                    encoded = _dumps(_plain(record["attributes"]))
                chars = measure(record, len(encoded))
                if chars >= 0:
                    record["attributes"] = Fragment(encoded)
                else:
                    record = limits.fit(record)
                    chars = measure(record)
            except Exception:  # never seen: counted, so that no span is lost without a reason
                logger.debug("opto: a span could not be encoded for the dashboard", exc_info=True)
                self.drops["unencodable"] += ended
                continue
            taken.append((span, ended))
            records.append(record)
            size += chars
        metrics: list[dict[str, Any]] = []
        if now >= self._next_metrics:
            self._next_metrics = now + _METRICS_EVERY_S
            try:
                metrics = (_metric_summaries() + _queue_points())[:limits.MAX_ITEMS]
            except Exception:
                logger.debug("opto: collecting metrics for the dashboard failed", exc_info=True)
        elif not records:
            return None
        self._seq += 1
        drops: dict[str, Any] = {"spans": self.dropped_spans, "metrics": self.dropped_metrics, "starts": self.dropped_starts, "reasons": self.drops}
        batch = {
            "type": "batch", "seq": self._seq, "spans": records, "metrics": metrics, "drops": drops,
            "resource": _resource_attributes(resource) if resource is not None else {},
        }
        frame = _encode_json(batch)
        while len(frame) > limits.MAX_FRAME_BYTES and metrics:
            # Metric points pushed it over (thousands of names, many keys): the later half goes, counted.
            half = len(metrics) // 2
            self.dropped_metrics += len(metrics) - half
            del metrics[half:]
            drops["metrics"] = self.dropped_metrics
            frame = _encode_json(batch)
        while len(frame) > limits.MAX_FRAME_BYTES and len(records) > 1:
            # Escapes made the records longer than measured: the later half waits for the next frame.
            half = len(records) // 2
            if self._carry is not None:
                self._buffer.appendleft(self._carry)
                self._carry = None
            self._buffer.extendleft(reversed(taken[half:]))
            del taken[half:], records[half:]
            frame = _encode_json(batch)
        if len(frame) > limits.MAX_FRAME_BYTES and records:  # one record of control characters: cut it harder
            span, ended = taken[0]
            records[0] = limits.fit(encode_span(span, ended), limit=limits.MAX_NAME)
            frame = _encode_json(batch)
            if len(frame) > limits.MAX_FRAME_BYTES:  # never seen: counted, so that no span is lost without a reason
                self.drops["unencodable"] += ended
                del taken[:], records[:]
                frame = _encode_json(batch)
        self._unacked[self._seq] = frame
        self._unacked_ends[self._seq] = bytes(ended for _, ended in taken)
        return frame


class _NotStored(Exception):
    """The dashboard answered that it could not store a frame for now (disk full, database locked)."""


def _resource_attributes(resource: Resource) -> dict[str, Any]:
    """A resource's attributes cut to the limits the dashboard keeps, as a span's are: past them,
    it would refuse every span of the process (a long deploy note, say)."""
    return {
        key[:limits.MAX_NAME]: limits.cut_value(value, limits.MAX_VALUE)[0]
        for key, value in itertools.islice(resource.attributes.items(), limits.MAX_ITEMS)
    }


def _encode_json(value: Any) -> bytes:
    try:
        return _dumps(value)
    except TypeError:  # an int beyond 64 bits, a lone surrogate: made plain, as the dashboard would take it
        return _dumps(_plain(value))


def _plain(value: Any) -> Any:
    """`value` with ints past 64 bits as floats, strings as valid UTF-8 (a lone surrogate becomes
    U+FFFD) and anything else orjson cannot encode as its `str`."""
    if isinstance(value, orjson.Fragment):  # already encoded (plain)
        return value
    if isinstance(value, dict):
        return {_plain(str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if type(value) is int and not -(2**63) <= value < 2**64:
        return float(value) if abs(value) < 2**1023 else str(value)
    if value is None or isinstance(value, (int, float)):
        return value
    return str(value)
