"""`CallDurations`, the in-process `opto.call.duration` for the provider opto.configure() installs,
against the SDK's own histogram aggregation fed the same values."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader

from opto.telemetry import semconv
from opto.telemetry._durations import CallDurations
from opto.telemetry._facade import SECONDS_BUCKETS

VALUES = [0.0, 0.0004, 0.001, 0.0010001, 0.05, 0.3, 2.5, 7.0, 119.0, 120.0, 500.0]
ATTRS = [{semconv.FUNCTION: "agent", semconv.OUTCOME: "ok"}, {semconv.FUNCTION: "agent", semconv.OUTCOME: "error"}]


def sdk_points(values: list[float]) -> dict[tuple[str, str], Any]:
    reader = InMemoryMetricReader()
    histogram = MeterProvider(metric_readers=[reader]).get_meter("probe").create_histogram(
        "probe", unit="s", explicit_bucket_boundaries_advisory=SECONDS_BUCKETS
    )
    for i, value in enumerate(values):
        histogram.record(value, ATTRS[i % 2])
    data = reader.get_metrics_data()
    assert data is not None
    (metric,) = data.resource_metrics[0].scope_metrics[0].metrics
    return {(p.attributes[semconv.FUNCTION], p.attributes[semconv.OUTCOME]): p for p in metric.data.data_points}


def our_points(durations: CallDurations, temporality: AggregationTemporality) -> dict[tuple[str, str], Any]:
    metric = durations.metric(temporality)
    assert metric is not None and metric.name == semconv.METRIC_CALL_DURATION
    assert metric.data.aggregation_temporality is temporality
    return {(p.attributes[semconv.FUNCTION], p.attributes[semconv.OUTCOME]): p for p in metric.data.data_points}


def shape(point: Any) -> tuple[Any, ...]:
    return point.count, round(point.sum, 9), tuple(point.bucket_counts), tuple(point.explicit_bounds), point.min, point.max


def test_buckets_counts_and_extremes_match_the_sdks() -> None:
    durations = CallDurations()
    for i, value in enumerate(VALUES):
        durations.record(value, ATTRS[i % 2])
    ours, theirs = our_points(durations, AggregationTemporality.CUMULATIVE), sdk_points(VALUES)
    assert {k: shape(p) for k, p in ours.items()} == {k: shape(p) for k, p in theirs.items()}


def test_cumulative_keeps_counting_and_delta_starts_again() -> None:
    durations = CallDurations()
    durations.record(0.2, ATTRS[0])
    assert our_points(durations, AggregationTemporality.CUMULATIVE)[("agent", "ok")].count == 1
    durations.record(0.2, ATTRS[0])
    first = our_points(durations, AggregationTemporality.CUMULATIVE)[("agent", "ok")]
    assert first.count == 2
    assert our_points(durations, AggregationTemporality.DELTA)[("agent", "ok")].count == 2
    assert durations.metric(AggregationTemporality.DELTA) is None  # nothing since
    durations.record(0.2, ATTRS[0])
    again = our_points(durations, AggregationTemporality.DELTA)[("agent", "ok")]
    assert again.count == 1 and again.start_time_unix_nano >= first.time_unix_nano


def test_a_forked_child_starts_its_own_counts() -> None:
    durations = CallDurations()
    durations.record(0.2, ATTRS[0])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: nothing of the parent's, and recording works
        durations.record(0.3, ATTRS[1])
        points = our_points(durations, AggregationTemporality.CUMULATIVE)
        os.write(write, repr(sorted((k, p.count) for k, p in points.items())).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as child:
        assert child.read() == "[(('agent', 'error'), 1)]"
    os.waitpid(pid, 0)
    assert our_points(durations, AggregationTemporality.CUMULATIVE)[("agent", "ok")].count == 1


def test_call_durations_off_skips_the_histogram_on_the_apps_own_meter_provider(metric_points, spans) -> None:
    import asyncio

    import opto

    @opto.trace
    async def timed() -> int:
        return 1

    def recorded() -> int:
        return sum(p.count for p in metric_points(semconv.METRIC_CALL_DURATION, {semconv.FUNCTION: timed.__qualname__}))

    asyncio.run(timed())
    assert recorded() == 1  # the session's MeterProvider is the app's own: the SDK's histogram
    opto.configure(call_durations=False)
    try:
        asyncio.run(timed())
        assert recorded() == 1, "no duration recorded while call_durations is off"
        assert len(spans.named(timed.__qualname__)) == 2, "the span still carries the call"
    finally:
        opto.shutdown()
    asyncio.run(timed())
    assert recorded() == 2, "shutdown() puts the histogram back"


def test_call_durations_must_be_a_bool() -> None:
    import opto
    import pytest

    with pytest.raises(TypeError, match="call_durations must be True or False"):
        opto.configure(call_durations="no")  # type: ignore[arg-type]


def test_console_must_be_a_bool() -> None:
    import opto
    import pytest

    with pytest.raises(TypeError, match="console must be True or False, got str"):
        opto.configure(console="yes")  # type: ignore[arg-type]
