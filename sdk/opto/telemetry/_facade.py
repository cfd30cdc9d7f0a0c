"""The one tracer and meter OpenTrace emits through.

Both come from opentelemetry-api's global providers through proxies, so spans and metrics land in
whatever provider the application sets up, even one set up after `import opto`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol

import opentelemetry.trace as _trace_api
from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as _metrics_api
from opentelemetry.trace import Tracer

from .._version import __version__
from . import semconv

__all__ = ["TRACER", "METER", "SECONDS_BUCKETS", "call_duration", "retries", "queue_wait", "inactive", "tracer", "recording", "DurationRecorder", "record_in_process", "set_call_durations"]

TRACER = trace.get_tracer("opto", __version__)
METER = metrics.get_meter("opto", __version__)
# Histogram bucket bounds for values in seconds (the SDK's default bounds suit milliseconds).
SECONDS_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

call_duration = METER.create_histogram(
    semconv.METRIC_CALL_DURATION, unit="s", description="Duration of traced calls, by function and outcome",
    explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
)
retries = METER.create_counter(semconv.METRIC_RETRIES, unit="{retry}", description="Retries of traced calls")
queue_wait = METER.create_histogram(
    semconv.METRIC_QUEUE_WAIT, unit="s", description="Time work waited for a concurrency slot or in a queue",
    explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
)

_PEEKABLE = hasattr(_trace_api, "_TRACER_PROVIDER") and hasattr(_metrics_api, "_METER_PROVIDER")
_ENV_PROVIDER = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ or "OTEL_PYTHON_METER_PROVIDER" in os.environ


def inactive() -> bool:
    """True while the app has set neither a tracer nor a meter provider, so telemetry can be skipped.

    Reads the API's globals directly: `get_tracer_provider()` checks the environment on every
    call, which would cost more than the whole untraced fast path.
    """
    return (
        _PEEKABLE
        and not _ENV_PROVIDER
        and _trace_api._TRACER_PROVIDER is None
        and _metrics_api._METER_PROVIDER is None
    )


_tracer_of: tuple[object, Tracer] = (None, TRACER)


def tracer() -> Tracer:
    """The tracer of the provider set now: the SDK's own once there is one, so the hot path skips
    the proxy's per-call indirection; TRACER (the proxy) until then."""
    global _tracer_of
    provider = _trace_api._TRACER_PROVIDER if _PEEKABLE else None
    if provider is not _tracer_of[0]:
        _tracer_of = (provider, provider.get_tracer("opto", __version__) if provider is not None else TRACER)
    return _tracer_of[1]


class DurationRecorder(Protocol):
    """Where a traced call's duration goes: the SDK's histogram, or `_durations.CallDurations`."""

    def record(self, amount: float, attributes: Mapping[str, Any]) -> None: ...


_in_process: tuple[object, DurationRecorder | None] = (object(), None)
_live_of: tuple[object, object, tuple[Tracer, DurationRecorder | None] | None] = (object(), object(), None)


_durations_on = True


def set_call_durations(enabled: bool) -> None:
    """Record `opto.call.duration` for every traced call (the default), or for none."""
    global _durations_on, _live_of
    _durations_on = enabled
    _live_of = (object(), object(), None)


def record_in_process(meter_provider: object, durations: DurationRecorder) -> None:
    """Send call durations to `durations` instead of the SDK's histogram while `meter_provider` is set."""
    global _in_process, _live_of
    _in_process = (meter_provider, durations)
    _live_of = (object(), object(), None)


def recording() -> tuple[Tracer, DurationRecorder | None] | None:
    """What a traced call records to now, asked once per call: None while `inactive()`; else
    `tracer()` and where call durations go, None while no meter provider would record them."""
    global _live_of
    if not _PEEKABLE or _ENV_PROVIDER:
        return tracer(), call_duration if _durations_on else None
    tracer_provider = _trace_api._TRACER_PROVIDER
    meter_provider = _metrics_api._METER_PROVIDER
    cached = _live_of
    if tracer_provider is not cached[0] or meter_provider is not cached[1]:
        durations: DurationRecorder | None = None
        if meter_provider is not None and _durations_on:
            durations = _in_process[1] if meter_provider is _in_process[0] else call_duration
        now = None if inactive() else (tracer(), durations)
        cached = _live_of = (tracer_provider, meter_provider, now)
    return cached[2]
