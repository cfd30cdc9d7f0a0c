"""Assert on spans in your own tests: `record_spans()` records every span that ends while it is open
(from opto and from any OpenTelemetry instrumentation), with helpers a test reads naturally.

It records from the process's SDK TracerProvider, the app's own or, when none is set yet, one it
installs (OpenTelemetry allows one per process). The pytest plugin (`opto.pytest_plugin`) gives it
to tests as the `opto_spans` fixture.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from .telemetry import semconv
from .trace import set_testing

__all__ = ["MAX_SPANS", "RecordedSpans", "record_spans"]

MAX_SPANS = 100_000  # spans one recording keeps; later ones are counted in `dropped`


class RecordedSpans:
    """The spans that ended while recording, oldest first, and lookups by span name or function."""

    def __init__(self) -> None:
        self._spans: list[ReadableSpan] = []
        self.dropped = 0  # spans not kept: the recording already held MAX_SPANS

    def _add(self, span: ReadableSpan) -> None:
        if len(self._spans) < MAX_SPANS:
            self._spans.append(span)
        else:
            self.dropped += 1

    def all(self) -> list[ReadableSpan]:
        """Every finished span, in the order they ended."""
        return list(self._spans)

    def named(self, name: str | Callable[..., Any]) -> list[ReadableSpan]:
        """The spans named `name`; a traced function stands for its span name (its `__qualname__`)."""
        wanted = _span_name(name)
        return [s for s in self._spans if s.name == wanted]

    def one(self, name: str | Callable[..., Any]) -> ReadableSpan:
        """The one span named `name`; AssertionError, listing what did end, if there is not exactly one."""
        found = self.named(name)
        if len(found) != 1:
            raise AssertionError(f"expected one span {_span_name(name)!r}, got {len(found)}; spans: {[s.name for s in self._spans]}")
        return found[0]

    def attributes(self, name: str | Callable[..., Any]) -> dict[str, Any]:
        """The attributes of the one span named `name`."""
        return dict(self.one(name).attributes or {})

    def outcome(self, name: str | Callable[..., Any]) -> str:
        """`ok`, `error`, `timeout` or `cancelled`: the outcome of the one call named `name`."""
        return str(self.attributes(name).get(semconv.OUTCOME))

    def retries(self, name: str | Callable[..., Any]) -> list[dict[str, Any]]:
        """The attributes of each retry of the one call named `name` (attempt, delay, exception)."""
        return [dict(e.attributes or {}) for e in self.one(name).events if e.name == semconv.EVENT_RETRY]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        """The spans whose parent is `parent`, in the order they started."""
        span_id = parent.context.span_id if parent.context is not None else None
        kids = [s for s in self._spans if s.parent is not None and s.parent.span_id == span_id]
        return sorted(kids, key=lambda s: s.start_time or 0)

    def tree(self) -> str:
        """Every trace recorded, one line per span indented under its parent: name, outcome, duration."""
        ids = {s.context.span_id for s in self._spans if s.context is not None}
        roots = sorted((s for s in self._spans if s.parent is None or s.parent.span_id not in ids), key=lambda s: s.start_time or 0)
        lines: list[str] = []

        def show(span: ReadableSpan, depth: int) -> None:
            outcome = (span.attributes or {}).get(semconv.OUTCOME)
            took = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
            lines.append(f"{'  ' * depth}{span.name}{f' [{outcome}]' if outcome else ''} {took:.1f} ms")
            for child in self.children(span):
                show(child, depth + 1)

        for root in roots:
            show(root, 0)
        if self.dropped:
            lines.append(f"({self.dropped} more spans not kept: a recording keeps {MAX_SPANS})")
        return "\n".join(lines)


def _span_name(name: str | Callable[..., Any]) -> str:
    return name if isinstance(name, str) else str(getattr(name, "__qualname__", name))


class _Recorder(SpanProcessor):
    """Hands each span that ends to the recordings open at the time."""

    def __init__(self) -> None:
        self.open: list[RecordedSpans] = []
        self.lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        for recording in self.open:
            recording._add(span)


_recorder = _Recorder()
_attached: weakref.WeakSet[Any] = weakref.WeakSet()  # providers the recorder was added to


def _attach() -> None:
    """Add the recorder to the global SDK provider, installing one if the app has none yet."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    if not hasattr(provider, "add_span_processor"):
        raise RuntimeError(
            f"opto.testing records spans through an SDK TracerProvider, but the app set {type(provider).__name__}; "
            "set an opentelemetry.sdk.trace.TracerProvider in tests"
        )
    if provider not in _attached:
        provider.add_span_processor(_recorder)
        _attached.add(provider)


@contextmanager
def record_spans() -> Iterator[RecordedSpans]:
    """Record the spans that end inside the block; retries do not sleep in it (`set_testing`)."""
    _attach()
    recording = RecordedSpans()
    with _recorder.lock:
        _recorder.open = [*_recorder.open, recording]
    try:
        with set_testing(True):
            yield recording
    finally:
        with _recorder.lock:
            _recorder.open = [r for r in _recorder.open if r is not recording]
