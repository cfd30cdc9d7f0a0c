"""The one tracer and meter OpenTrace emits through.

Both come from opentelemetry-api's global providers through proxies, so spans and metrics land in
whatever provider the application sets up, even one set up after `import opto`.
"""

from __future__ import annotations

from opentelemetry import metrics, trace

from .._version import __version__
from . import semconv

__all__ = ["TRACER", "METER", "call_duration", "retries", "queue_wait"]

TRACER = trace.get_tracer("opto", __version__)
METER = metrics.get_meter("opto", __version__)

call_duration = METER.create_histogram(
    semconv.METRIC_CALL_DURATION, unit="s", description="Duration of traced calls, by function and outcome"
)
retries = METER.create_counter(semconv.METRIC_RETRIES, unit="{retry}", description="Retries of traced calls")
queue_wait = METER.create_histogram(
    semconv.METRIC_QUEUE_WAIT, unit="s", description="Time work waited for a concurrency slot or in a queue"
)
