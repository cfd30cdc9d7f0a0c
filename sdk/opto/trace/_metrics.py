"""`AsyncMetrics`: named blocks that record duration, concurrency, queue wait, CPU and memory.

Figures are kept per name in bounded memory (exact count, mean and max; quantiles from a
fixed-size uniform sample) for `get_summary()`, and go out as OpenTelemetry metrics as well.
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from .. import telemetry
from .._core import CALL, outcome_of, safe_repr
from ..telemetry import semconv, sources

try:
    import resource
except ImportError:  # Windows: peak memory is not reported
    resource = None  # type: ignore[assignment]

__all__ = ["AsyncMetrics", "BlockMetrics", "MetricsSummary"]

SAMPLE_SIZE = 1024  # values kept per distribution; quantiles are exact up to this many blocks

_duration = telemetry.METER.create_histogram(
    semconv.METRIC_BLOCK_DURATION, unit="s", description="Duration of AsyncMetrics.monitor blocks, by name and outcome",
    explicit_bucket_boundaries_advisory=telemetry.SECONDS_BUCKETS,
)
_queue_wait = telemetry.METER.create_histogram(
    semconv.METRIC_BLOCK_QUEUE_WAIT, unit="s",
    description="Time the traced call enclosing a monitored block waited for a concurrency slot",
    explicit_bucket_boundaries_advisory=telemetry.SECONDS_BUCKETS,
)
_value = telemetry.METER.create_histogram(
    semconv.METRIC_BLOCK_VALUE, description="Values monitored blocks recorded with BlockMetrics.record()"
)


def _observe(figure: Callable[[_Series], float | int | None]) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """A callback reporting one running figure per name when metrics are collected, at no cost per block."""

    def callback(options: CallbackOptions) -> Iterable[Observation]:
        with _lock:
            values = [(name, figure(series)) for name, series in _series.items()]
        return [Observation(v, {semconv.METRICS_NAME: name}) for name, v in values if v is not None]

    return callback


def _peak_rss_bytes() -> int | None:
    if resource is None:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB, macOS bytes


class _Distribution:
    """Count, sum and max of a stream of numbers, plus a uniform sample of them (Algorithm R)."""

    __slots__ = ("count", "total", "max", "sample")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.max = -math.inf
        self.sample: list[float] = []

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if value > self.max:
            self.max = value
        if len(self.sample) < SAMPLE_SIZE:
            self.sample.append(value)
        else:
            slot = random.randrange(self.count)
            if slot < SAMPLE_SIZE:
                self.sample[slot] = value

    def copy(self) -> _Distribution:
        twin = _Distribution()
        twin.count, twin.total, twin.max, twin.sample = self.count, self.total, self.max, self.sample.copy()
        return twin

    def figures(self, *quantiles: float) -> dict[str, float | int | None]:
        """count, mean, max and the given quantiles (linear interpolation over the sample)."""
        values = sorted(self.sample)
        out: dict[str, float | int | None] = {"count": self.count}
        out["mean"] = self.total / self.count if self.count else None
        for q in quantiles:
            out[f"p{round(q * 100)}"] = _quantile(values, q) if values else None
        out["max"] = self.max if self.count else None
        return out


def _quantile(values: list[float], q: float) -> float:
    position = q * (len(values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


class _Series:
    """Everything recorded under one name."""

    __slots__ = (
        "in_flight", "max_concurrency", "errors", "cancelled", "duration", "queue_wait", "cpu_s", "peak_memory", "values",
    )

    def __init__(self) -> None:
        self.in_flight = 0
        self.max_concurrency = 0
        self.errors = 0
        self.cancelled = 0
        self.duration = _Distribution()
        self.queue_wait = _Distribution()
        self.cpu_s = 0.0
        self.peak_memory: int | None = None
        self.values: dict[str, _Distribution] = {}

    def copy(self) -> _Series:
        twin = _Series()
        twin.in_flight, twin.max_concurrency, twin.errors, twin.cancelled = (
            self.in_flight, self.max_concurrency, self.errors, self.cancelled,
        )
        twin.duration, twin.queue_wait = self.duration.copy(), self.queue_wait.copy()
        twin.cpu_s, twin.peak_memory = self.cpu_s, self.peak_memory
        twin.values = {key: d.copy() for key, d in self.values.items()}
        return twin


_lock = threading.Lock()  # summaries() may be called from an exporter thread
_series: dict[str, _Series] = {}


telemetry.METER.create_observable_up_down_counter(
    semconv.METRIC_BLOCKS_ACTIVE, [_observe(lambda series: series.in_flight)], unit="{block}",
    description="AsyncMetrics.monitor blocks in flight, by name",
)
telemetry.METER.create_observable_counter(
    semconv.METRIC_BLOCK_CPU, [_observe(lambda series: series.cpu_s)], unit="s",
    description="CPU time of the event loop's thread while monitored blocks ran, by name",
)
telemetry.METER.create_observable_gauge(
    semconv.METRIC_BLOCK_MEMORY, [_observe(lambda series: series.peak_memory)], unit="By",
    description="Peak resident memory of the process at the end of a monitored block, by name",
)


def _series_for(name: str) -> _Series:
    series = _series.get(name)
    if series is None:
        series = _series[name] = _Series()
    return series


class MetricsSummary(dict[str, Any]):
    """The figures of one monitored name: a plain, JSON-ready mapping whose `str()` is a table."""

    def __str__(self) -> str:
        s = self
        if not s["count"]:
            return f"{s['name']}: no blocks recorded yet"
        memory = s["peak_memory_bytes"]
        rows = [
            ("blocks", f"{s['count']} ({s['errors']} errors, {s['cancelled']} cancelled, {s['in_flight']} in flight)"),
            ("max concurrency", str(s["max_concurrency"])),
            ("duration", "  ".join(f"{k} {_ms(s[f'duration_{k}_s'])}" for k in ("mean", "p50", "p95", "p99", "max"))),
            ("queue wait", (
                f"mean {_ms(s['queue_wait_mean_s'])}  p95 {_ms(s['queue_wait_p95_s'])}  ({s['queue_wait_count']} blocks)"
                if s["queue_wait_count"] else "none (no enclosing call waited for a concurrency slot)"
            )),
            ("CPU time", f"{s['cpu_s']:.3f} s"),
            ("peak memory", "unknown" if memory is None else f"{memory / 2**20:.1f} MiB"),
        ]
        for key, figures in s["values"].items():
            shown = "  ".join(f"{k} {figures[k]:.4g}" for k in ("mean", "p50", "p95", "max"))
            rows.append((key, f"{shown}  ({figures['count']} values)"))
        width = max(len(label) for label, _ in rows)
        return "\n".join([s["name"], *(f"  {label:<{width}}  {text}" for label, text in rows)])


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _summary(name: str, series: _Series) -> MetricsSummary:
    duration = series.duration.figures(0.5, 0.95, 0.99)
    wait = series.queue_wait.figures(0.95)
    return MetricsSummary(
        name=name,
        count=duration["count"],
        errors=series.errors,
        cancelled=series.cancelled,
        in_flight=series.in_flight,
        duration_mean_s=duration["mean"],
        duration_p50_s=duration["p50"],
        duration_p95_s=duration["p95"],
        duration_p99_s=duration["p99"],
        duration_max_s=duration["max"],
        max_concurrency=series.max_concurrency,
        queue_wait_count=wait["count"],
        queue_wait_mean_s=wait["mean"],
        queue_wait_p95_s=wait["p95"],
        cpu_s=series.cpu_s,
        peak_memory_bytes=series.peak_memory,
        values={key: d.figures(0.5, 0.95) for key, d in series.values.items()},
    )


class BlockMetrics:
    """One monitored block: `record()` adds the block's own values; its figures are set on exit."""

    __slots__ = ("name", "concurrency", "queue_wait_s", "duration_s", "cpu_s", "outcome", "_attrs", "_t0", "_cpu0")

    def __init__(self, name: str) -> None:
        self.name = name
        self.concurrency = 0
        self.queue_wait_s: float | None = None
        self.duration_s: float | None = None
        self.cpu_s: float | None = None
        self.outcome: str | None = None
        self._attrs = {semconv.METRICS_NAME: name}
        self._t0: float | None = None
        self._cpu0 = 0.0

    def record(self, key: str, value: float) -> None:
        """Add a number of the block's own (tokens used, items found) to the `key` figures of its name."""
        if not isinstance(key, str) or not key:
            raise TypeError(f"record() key must be a non-empty str, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise TypeError(f"record() value must be a finite int or float, got {safe_repr(value, 80)}")
        with _lock:
            values = _series_for(self.name).values
            distribution = values.get(key)
            if distribution is None:
                distribution = values[key] = _Distribution()
            distribution.add(value)
        _value.record(value, {semconv.METRICS_NAME: self.name, semconv.METRICS_KEY: key})

    async def __aenter__(self) -> BlockMetrics:
        if self._t0 is not None:
            raise RuntimeError(f"this monitor({self.name!r}) block was already entered; call AsyncMetrics.monitor() for each block")
        call = CALL.get()
        self.queue_wait_s = call.queue_wait_s if call is not None else None
        with _lock:
            series = _series_for(self.name)
            series.in_flight += 1
            self.concurrency = series.in_flight
            if series.in_flight > series.max_concurrency:
                series.max_concurrency = series.in_flight
        self._cpu0 = time.thread_time()
        self._t0 = time.perf_counter()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._t0 is not None
        self.duration_s = duration = time.perf_counter() - self._t0
        self.cpu_s = cpu = time.thread_time() - self._cpu0
        self.outcome = semconv.OUTCOME_OK if exc is None else outcome_of(exc)
        memory = _peak_rss_bytes()
        wait = self.queue_wait_s
        with _lock:
            series = _series_for(self.name)
            series.in_flight = max(series.in_flight - 1, 0)  # a reset() meanwhile zeroed it
            series.duration.add(duration)
            if wait is not None:
                series.queue_wait.add(wait)
            series.cpu_s += cpu
            if memory is not None and (series.peak_memory is None or memory > series.peak_memory):
                series.peak_memory = memory
            if self.outcome == semconv.OUTCOME_ERROR:
                series.errors += 1
            elif self.outcome == semconv.OUTCOME_CANCELLED:
                series.cancelled += 1
        _duration.record(duration, {**self._attrs, semconv.OUTCOME: self.outcome})
        if wait is not None:
            _queue_wait.record(wait, self._attrs)


class AsyncMetrics:
    """Performance figures for named blocks of async code: `async with AsyncMetrics.monitor("name")`.

    Each block records its duration, how many blocks of its name were in flight, how long the
    traced call around it waited for a concurrency slot, the CPU time of the event loop's thread
    while it ran (other tasks' steps in between included), and the process's peak memory (RSS).
    """

    def __new__(cls) -> AsyncMetrics:
        raise TypeError("AsyncMetrics is not instantiated: use AsyncMetrics.monitor(name), get_summary(name), summaries()")

    @staticmethod
    def monitor(name: str) -> BlockMetrics:
        """An async context manager recording one block under `name`; it yields the block's BlockMetrics."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"AsyncMetrics.monitor() needs a non-empty str name, got {name!r}")
        return BlockMetrics(name)

    @staticmethod
    def get_summary(name: str) -> MetricsSummary:
        """The figures recorded under `name` (count 0 if none yet)."""
        with _lock:
            series = _series.get(name)
            snapshot = series.copy() if series is not None else _Series()
        return _summary(name, snapshot)

    @staticmethod
    def summaries() -> dict[str, MetricsSummary]:
        """Every name's figures; the dashboard's live exporter sends these periodically."""
        with _lock:
            snapshots = {name: series.copy() for name, series in _series.items()}
        return {name: _summary(name, series) for name, series in snapshots.items()}

    @staticmethod
    def reset(name: str | None = None) -> None:
        """Forget the figures of `name`, or of every name."""
        with _lock:
            if name is None:
                _series.clear()
            else:
                _series.pop(name, None)


def _points() -> list[sources.Point]:
    """Every summary as a metric point, for the live exporter (`sources.METRIC_SUMMARIES`)."""
    now = time.time_ns()
    return [
        {"name": semconv.METRIC_SUMMARY, "time_ns": now, "attributes": {semconv.METRICS_NAME: name}, "summary": summary}
        for name, summary in AsyncMetrics.summaries().items()
    ]


sources.register(sources.METRIC_SUMMARIES, _points)


def _finite(value: float) -> bool:
    """Whether `value` is a finite number a float can hold (an int of 400 digits is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
