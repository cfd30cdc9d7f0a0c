"""The OpenTelemetry set-up the benches share: a real SDK whose exporter only counts what it gets.

Every traced variant of a bench then pays the same export cost, and the count proves no span was lost.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

__all__ = ["CountingExporter", "install_tracer_provider", "install_providers"]


class CountingExporter(SpanExporter):
    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


def install_tracer_provider(max_queue_size: int = 1 << 16) -> tuple[TracerProvider, CountingExporter]:
    """A TracerProvider with a BatchSpanProcessor over a CountingExporter, set globally."""
    exporter = CountingExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=max_queue_size))
    trace.set_tracer_provider(provider)
    return provider, exporter


def install_providers(max_queue_size: int = 1 << 16) -> TracerProvider:
    """`install_tracer_provider` plus a MeterProvider, for benches whose metrics should cost what they do."""
    provider, _ = install_tracer_provider(max_queue_size)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    return provider
