"""`opto.call.duration` kept in process for the MeterProvider `opto.configure()` installs.

The SDK's `Histogram.record` (attribute cleaning and hashing, view matching, exemplars) costs
about as much as the rest of a traced call. For the provider configure() sets up, traced calls
add to a plain histogram per (function, outcome) instead, and the metric exporter configure()
builds adds those points to each export, with the same name, unit, buckets and temporality as
the SDK would have sent. An app that sets its own MeterProvider keeps the SDK's instrument.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import replace
from time import time_ns
from typing import Any

from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from .._version import __version__
from . import semconv
from ._facade import SECONDS_BUCKETS

__all__ = ["CallDurations", "DurationsExporter"]

_SCOPE = InstrumentationScope("opto", __version__)


class _Point:
    __slots__ = ("count", "sum", "min", "max", "buckets")

    def __init__(self) -> None:
        self.count = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")
        self.buckets = [0] * (len(SECONDS_BUCKETS) + 1)


class CallDurations:
    """Call durations by function and outcome: explicit buckets (`SECONDS_BUCKETS`), count, sum, min, max."""

    def __init__(self) -> None:
        self._start()
        os.register_at_fork(after_in_child=self._start)  # a lock held at fork time, the parent's counts: not the child's

    def _start(self) -> None:
        self._lock = threading.Lock()  # traced calls may run on several threads
        self._points: dict[tuple[str, str], _Point] = {}
        self._start_ns = time_ns()

    def record(self, amount: float, attributes: Mapping[str, Any]) -> None:
        """Add one call's duration in seconds; `attributes` names its function and outcome (as for the SDK's `record`)."""
        key = (attributes[semconv.FUNCTION], attributes[semconv.OUTCOME])
        bucket = bisect_left(SECONDS_BUCKETS, amount)  # bucket i holds (bound[i-1], bound[i]], as OpenTelemetry's
        with self._lock:
            point = self._points.get(key)
            if point is None:
                point = self._points[key] = _Point()
            point.count += 1
            point.sum += amount
            if amount < point.min:
                point.min = amount
            if amount > point.max:
                point.max = amount
            point.buckets[bucket] += 1

    def metric(self, temporality: AggregationTemporality) -> Metric | None:
        """The histogram as of now: since the start (cumulative), or since the last call (delta)."""
        now = time_ns()
        with self._lock:
            points, start = self._points, self._start_ns
            if temporality is AggregationTemporality.DELTA:
                self._points, self._start_ns = {}, now
            else:
                points = {key: _copy(p) for key, p in points.items()}
        if not points:
            return None
        data_points = [
            HistogramDataPoint(
                attributes={semconv.FUNCTION: function, semconv.OUTCOME: outcome},
                start_time_unix_nano=start, time_unix_nano=now, count=p.count, sum=p.sum,
                bucket_counts=p.buckets, explicit_bounds=SECONDS_BUCKETS, min=p.min, max=p.max,
            )
            for (function, outcome), p in points.items()
        ]
        return Metric(
            name=semconv.METRIC_CALL_DURATION, description="Duration of traced calls, by function and outcome",
            unit="s", data=Histogram(data_points=data_points, aggregation_temporality=temporality),
        )


def _copy(point: _Point) -> _Point:
    twin = _Point()
    twin.count, twin.sum, twin.min, twin.max, twin.buckets = point.count, point.sum, point.min, point.max, point.buckets.copy()
    return twin


class DurationsExporter(MetricExporter):
    """Wraps a metric exporter: each export also carries the in-process call durations."""

    def __init__(self, inner: MetricExporter, durations: CallDurations, resource: Resource) -> None:
        super().__init__(inner._preferred_temporality, inner._preferred_aggregation)
        self._inner = inner
        self._durations = durations
        self._resource = resource

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        temporality = (self._preferred_temporality or {}).get(HistogramInstrument, AggregationTemporality.CUMULATIVE)
        metric = self._durations.metric(temporality)
        if metric is not None:
            metrics_data = _with(metrics_data, metric, self._resource)
        return self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def _with(data: MetricsData, metric: Metric, resource: Resource) -> MetricsData:
    """`data` with `metric` added to the first resource's `opto` scope (made if missing)."""
    resources = list(data.resource_metrics) or [ResourceMetrics(resource=resource, scope_metrics=[], schema_url="")]
    first = resources[0]
    scopes = list(first.scope_metrics)
    for i, scope in enumerate(scopes):
        if scope.scope.name == _SCOPE.name:
            others = [m for m in scope.metrics if m.name != metric.name]
            scopes[i] = replace(scope, metrics=[*others, metric])
            break
    else:
        scopes.append(ScopeMetrics(scope=_SCOPE, metrics=[metric], schema_url=""))
    resources[0] = replace(first, scope_metrics=scopes)
    return replace(data, resource_metrics=resources)
