"""A batch span processor that counts each span from its end until its exporter confirms it, so
what never reached the collector is logged with its count at shutdown. OpenTelemetry's own drops
spans from a full queue, and after an export fails, with a log line and no count."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

__all__ = ["AccountedBatchProcessor"]

logger = logging.getLogger("opto")


class AccountedBatchProcessor(SpanProcessor):
    """`BatchSpanProcessor(exporter)`, with `ended`, `exported` and `failed` span counts and `report()`."""

    def __init__(self, exporter: SpanExporter, destination: str) -> None:
        self.destination = destination
        self._batch: SpanProcessor = BatchSpanProcessor(_Confirming(exporter, self))
        self._reset()
        if hasattr(os, "register_at_fork"):  # a forked child counts its own spans (its batch processor starts empty)
            reset = weakref.WeakMethod(self._reset)
            os.register_at_fork(after_in_child=lambda: (r := reset()) is not None and r())

    def _reset(self) -> None:
        self.ended = 0  # sampled spans handed to the batch processor
        self.exported = 0  # in exports the exporter called a success
        self.failed = 0  # in exports that failed (after the exporter's own retries) or raised
        self._lock = threading.Lock()
        self._reported = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._batch.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is not None and context.trace_flags.sampled:  # the spans the batch processor takes
            with self._lock:
                self.ended += 1
        self._batch.on_end(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._batch.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._batch.shutdown()
        self.report()

    def report(self) -> None:
        """Log, once, how many spans the collector has not confirmed: at shutdown, or when shutdown ran out of time."""
        if self._reported:
            return
        self._reported = True
        lost = self.ended - self.exported
        if lost > 0:
            logger.warning(
                "opto: the OTLP collector at %s did not get %d spans: %d in exports that failed, "
                "%d dropped from the full queue or not sent by shutdown",
                self.destination, lost, self.failed, lost - self.failed,
            )


class _Confirming(SpanExporter):
    """The exporter, counting the spans of each export by its result (it runs on one thread)."""

    def __init__(self, exporter: SpanExporter, counts: AccountedBatchProcessor) -> None:
        self._exporter = exporter
        self._counts = counts

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._exporter.export(spans)
        except BaseException:
            self._counts.failed += len(spans)
            raise
        if result is SpanExportResult.SUCCESS:
            self._counts.exported += len(spans)
        else:
            self._counts.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)
