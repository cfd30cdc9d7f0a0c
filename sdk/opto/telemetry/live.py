"""The live exporter: streams span starts and ends to `opto-dashboard` over its websocket.

`on_start`/`on_end` run on the application's thread and only append to a bounded deque (when it
is full the oldest record is dropped and counted). A named daemon thread owns the connection: it
encodes and sends batches, keeps each frame until the dashboard acks it, resends unacked frames
after reconnecting (with jittered backoff), and never raises into the application.
"""

from __future__ import annotations

import json
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
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from .._version import __version__
from . import semconv, sources
from .wire import encode_span

__all__ = ["LiveSpanProcessor", "ingest_url", "processors", "DEFAULT_BUFFER", "DEFAULT_FLUSH_TIMEOUT_S"]

logger = logging.getLogger("opto")
DEFAULT_BUFFER = 100_000  # span records waiting for the dashboard
DEFAULT_FLUSH_TIMEOUT_S = 5.0
_BATCH = 1000  # records per frame
_WINDOW = 16  # frames sent but not yet acked
_TICK_S = 0.1  # longest a record waits before it is sent
_METRICS_EVERY_S = 1.0
_BACKOFF_MIN_S = 0.05
_BACKOFF_MAX_S = 5.0
_MAX_FRAME = 8 * 1024 * 1024  # the dashboard's limit
_STARTED, _ENDED = False, True


def ingest_url(url: str) -> str:
    """The `/ws/ingest` websocket URL of a dashboard given as `http://host:port` (or ws://)."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
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
        if not flush_timeout_s > 0:
            raise ValueError(f"flush_timeout_s must be > 0 seconds, got {flush_timeout_s!r}")
        self.url = ingest_url(url)
        self.flush_timeout_s = flush_timeout_s
        self._max = max_buffer
        self._buffer: deque[tuple[ReadableSpan, bool]] = deque(maxlen=max_buffer)
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
        self.dropped_spans = 0
        self.dropped_metrics = 0
        self._buffer.clear()
        self._hello = json.dumps({"type": "hello", "process": {
            "id": uuid.uuid4().hex, "service": self._service_name, "pid": os.getpid(), "host": socket.gethostname(),
            "sdk": f"opto/{__version__}", "started_ns": time.time_ns(),
        }})
        self._carry: tuple[ReadableSpan, bool] | None = None  # taken from the buffer, for the next frame
        self._unacked: OrderedDict[int, bytes] = OrderedDict()
        self._unacked_spans: dict[int, int] = {}
        self._seq = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._next_metrics = 0.0
        self._connects = 0
        self._failed = False  # the last connection attempt failed
        self._rejected_logged = False
        self._thread = threading.Thread(target=self._run, name="opto-live-exporter", daemon=True)
        self._thread.start()

    # -- the application's thread: append and return -------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if len(self._buffer) >= self._max:
            self.dropped_spans += 1
        self._buffer.append((span, _STARTED))

    def on_end(self, span: ReadableSpan) -> None:
        if len(self._buffer) >= self._max:
            self.dropped_spans += 1
        self._buffer.append((span, _ENDED))
        if len(self._buffer) >= _BATCH and not self._wake.is_set():
            self._wake.set()

    # -- flushing and shutdown ---------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Records not yet acked by the dashboard (buffered or sent)."""
        return len(self._buffer) + (self._carry is not None) + sum(list(self._unacked_spans.values()))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until everything buffered is acked, at most `timeout_millis`; False if time ran out."""
        deadline = time.monotonic() + timeout_millis / 1000
        self._wake.set()
        with self._idle:
            while self._buffer or self._carry or self._unacked:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive() or (self._connects == 0 and self._failed):
                    return False  # out of time, or no dashboard has ever answered: nothing to wait for
                self._wake.set()
                self._idle.wait(min(left, _TICK_S))
        return True

    def shutdown(self) -> None:
        """Flush within `flush_timeout_s`, stop the thread, and log what never reached the dashboard."""
        if self._stop.is_set():
            return
        flushed = self.force_flush(int(self.flush_timeout_s * 1000))
        lost = self.pending
        self._stop.set()
        self._wake.set()
        self._thread.join(self.flush_timeout_s)
        if self.dropped_spans or not flushed:
            logger.warning(
                "opto: the dashboard at %s did not get %d span records: %d dropped (buffer full, or "
                "refused by the dashboard), %d unsent at shutdown", self.url, self.dropped_spans + lost, self.dropped_spans, lost,
            )

    # -- the exporter thread ---------------------------------------------------------------------

    def _run(self) -> None:
        otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))
        backoff = _BACKOFF_MIN_S
        while not self._stop.is_set():
            connects = self._connects
            try:
                self._serve()
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
            self.url, open_timeout=5, close_timeout=1, compression=None, proxy=None, max_size=_MAX_FRAME,
            additional_headers=self._headers, ping_interval=None,
        ) as ws:
            self._connects += 1
            self._failed = False
            ws.send(self._hello)
            for frame in list(self._unacked.values()):
                ws.send(frame, text=True)
            while not self._stop.is_set():
                self._receive(ws, 0 if len(self._unacked) < _WINDOW else _TICK_S)
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
                    self._wake.wait(_TICK_S)
                    self._wake.clear()

    def _receive(self, ws: Any, timeout: float) -> None:
        """Take acks (and error replies) until none is waiting."""
        while self._unacked:
            try:
                reply = orjson.loads(ws.recv(timeout=timeout))
            except TimeoutError:
                return
            timeout = 0
            seq = reply.get("seq")
            if reply.get("type") == "error":
                # The dashboard refused the frame: it will refuse it again, so it is dropped, and counted.
                self.dropped_spans += self._unacked_spans.get(seq, 0)
                if not self._rejected_logged:
                    self._rejected_logged = True
                    logger.warning("opto: the dashboard refused a frame: %s", reply.get("detail"))
            self._unacked.pop(seq, None)
            self._unacked_spans.pop(seq, None)
        with self._idle:
            self._idle.notify_all()

    def _next_frame(self) -> bytes | None:
        """The next batch frame, or None when there is nothing to send."""
        now = time.monotonic()
        records: list[dict[str, Any]] = []
        resource = None
        while (self._carry or self._buffer) and len(records) < _BATCH:
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
            records.append(encode_span(span, ended))
        metrics: list[dict[str, Any]] = []
        if now >= self._next_metrics:
            self._next_metrics = now + _METRICS_EVERY_S
            try:
                metrics = _metric_summaries() + _queue_points()
            except Exception:
                logger.debug("opto: collecting metrics for the dashboard failed", exc_info=True)
        elif not records:
            return None
        self._seq += 1
        batch = {
            "type": "batch", "seq": self._seq, "spans": records, "metrics": metrics,
            "drops": {"spans": self.dropped_spans, "metrics": self.dropped_metrics},
            "resource": dict(resource.attributes) if resource is not None else {},
        }
        try:
            frame = orjson.dumps(batch)
        except TypeError:  # an int beyond 64 bits, say: the standard library copes
            frame = json.dumps(batch).encode()
        if len(frame) > _MAX_FRAME:  # a few giant spans: the dashboard would refuse the frame
            self.dropped_spans += len(records)
            self.dropped_metrics += len(metrics)
            return None
        self._unacked[self._seq] = frame
        self._unacked_spans[self._seq] = len(records)
        return frame
