"""AsyncMetrics: per-name block figures in bounded memory, a readable summary, and OpenTelemetry metrics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

import opto
from opto.telemetry import semconv
from opto.trace import AsyncMetrics, _metrics
from opto._core.scope import SCOPE, Limiter, Scope

if TYPE_CHECKING:
    from conftest import MetricPoints, SpecPage


@pytest.fixture(autouse=True)
def _fresh_metrics() -> Iterator[None]:
    AsyncMetrics.reset()
    yield
    AsyncMetrics.reset()


async def test_a_block_records_duration_and_its_figures() -> None:
    async with AsyncMetrics.monitor("step") as block:
        await asyncio.sleep(0)
    assert block.outcome == semconv.OUTCOME_OK and block.concurrency == 1
    assert block.duration_s is not None and block.duration_s > 0
    summary = AsyncMetrics.get_summary("step")
    assert summary["count"] == 1 and summary["errors"] == 0 and summary["in_flight"] == 0
    assert summary["duration_max_s"] == summary["duration_p50_s"] == block.duration_s
    assert summary["max_concurrency"] == 1


async def test_concurrency_counts_blocks_of_one_name_in_flight(metric_points: MetricPoints) -> None:
    release = asyncio.Event()
    entered: list[int] = []

    async def work() -> None:
        async with AsyncMetrics.monitor("fan") as block:
            entered.append(block.concurrency)
            await release.wait()

    tasks = [asyncio.create_task(work()) for _ in range(4)]
    async with asyncio.timeout(5):
        while len(entered) < 4:
            await asyncio.sleep(0)
    assert AsyncMetrics.get_summary("fan")["in_flight"] == 4
    (active,) = metric_points(semconv.METRIC_BLOCKS_ACTIVE, {semconv.METRICS_NAME: "fan"})
    assert active.value == 4
    release.set()
    await asyncio.gather(*tasks)
    assert sorted(entered) == [1, 2, 3, 4]
    summary = AsyncMetrics.get_summary("fan")
    assert summary["max_concurrency"] == 4 and summary["in_flight"] == 0 and summary["count"] == 4


async def test_queue_wait_is_the_enclosing_calls_wait_for_a_slot() -> None:
    """Inside a scope with one slot, the second traced call waits for it; its block reports that wait."""
    first_in = asyncio.Event()
    release = asyncio.Event()
    blocks = []

    @opto.trace.async_trace
    async def agent(first: bool) -> None:
        async with AsyncMetrics.monitor("slotted") as block:
            blocks.append(block)
            if first:
                first_in.set()
                await release.wait()

    token = SCOPE.set(Scope(limiters=(Limiter(1),)))
    try:
        first = asyncio.create_task(agent(True))
        await first_in.wait()
        second = asyncio.create_task(agent(False))
        for _ in range(5):
            await asyncio.sleep(0)  # the second call is now queued for the slot
        release.set()
        async with asyncio.timeout(5):
            await asyncio.gather(first, second)
    finally:
        SCOPE.reset(token)
    assert blocks[0].queue_wait_s == 0.0 and blocks[1].queue_wait_s > 0
    summary = AsyncMetrics.get_summary("slotted")
    assert summary["queue_wait_count"] == 2
    assert summary["queue_wait_mean_s"] == pytest.approx(blocks[1].queue_wait_s / 2)


async def test_no_slot_no_queue_wait() -> None:
    async with AsyncMetrics.monitor("free") as block:
        pass
    assert block.queue_wait_s is None
    summary = AsyncMetrics.get_summary("free")
    assert summary["queue_wait_count"] == 0 and summary["queue_wait_mean_s"] is None


async def test_errors_and_cancellations_are_counted_apart_and_propagate() -> None:
    with pytest.raises(KeyError):
        async with AsyncMetrics.monitor("risky"):
            raise KeyError("x")
    started = asyncio.Event()

    async def stuck() -> None:
        async with AsyncMetrics.monitor("risky"):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(stuck())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    summary = AsyncMetrics.get_summary("risky")
    assert (summary["count"], summary["errors"], summary["cancelled"], summary["in_flight"]) == (2, 1, 1, 0)


async def test_cpu_time_and_peak_memory_are_recorded() -> None:
    async with AsyncMetrics.monitor("busy") as block:
        start = time.thread_time()
        while time.thread_time() - start < 0.02:
            sum(range(1000))
    assert block.cpu_s is not None and block.cpu_s >= 0.02
    summary = AsyncMetrics.get_summary("busy")
    assert summary["cpu_s"] == block.cpu_s
    assert isinstance(summary["peak_memory_bytes"], int) and summary["peak_memory_bytes"] > 2**20


async def test_blocks_record_their_own_values() -> None:
    for tokens in range(1, 101):
        async with AsyncMetrics.monitor("llm") as block:
            block.record("tokens", tokens)
    figures = AsyncMetrics.get_summary("llm")["values"]["tokens"]
    assert figures == {"count": 100, "mean": 50.5, "p50": 50.5, "p95": pytest.approx(95.05), "max": 100}


@pytest.mark.parametrize(("key", "value"), [("", 1), (3, 1), ("k", "1"), ("k", True), ("k", float("nan")), ("k", 10**400)],
                         ids=["empty-key", "int-key", "str-value", "bool-value", "nan", "int-past-a-float"])
async def test_record_refuses_bad_keys_and_values(key: Any, value: Any) -> None:
    async with AsyncMetrics.monitor("strict") as block:
        with pytest.raises(TypeError, match=r"record\(\)"):
            block.record(key, value)


async def test_memory_stays_bounded_however_many_blocks() -> None:
    """Count, mean and max stay exact; the kept sample never grows past its fixed size."""
    for i in range(3 * _metrics.SAMPLE_SIZE):
        async with AsyncMetrics.monitor("many") as block:
            block.record("i", i)
    series = _metrics._series["many"]
    assert len(series.duration.sample) == _metrics.SAMPLE_SIZE
    assert len(series.values["i"].sample) == _metrics.SAMPLE_SIZE
    figures = AsyncMetrics.get_summary("many")["values"]["i"]
    assert figures["count"] == 3 * _metrics.SAMPLE_SIZE and figures["max"] == 3 * _metrics.SAMPLE_SIZE - 1
    assert figures["mean"] == pytest.approx((3 * _metrics.SAMPLE_SIZE - 1) / 2)
    assert 0 <= figures["p50"] <= figures["p95"] <= figures["max"]


async def test_summary_is_a_json_ready_mapping_printed_as_a_table() -> None:
    async with AsyncMetrics.monitor("agent_performance") as block:
        block.record("tokens", 42)
    summary = AsyncMetrics.get_summary("agent_performance")
    assert json.loads(json.dumps(summary))["count"] == 1
    table = str(summary).splitlines()
    assert table[0] == "agent_performance"
    labels = [line.split("  ")[1].strip() for line in table[1:]]
    assert labels == ["blocks", "max concurrency", "duration", "queue wait", "CPU time", "peak memory", "tokens"]
    assert str(AsyncMetrics.get_summary("unseen")) == "unseen: no blocks recorded yet"
    assert AsyncMetrics.get_summary("unseen")["count"] == 0


async def test_summaries_and_reset() -> None:
    for name in ("a", "b"):
        async with AsyncMetrics.monitor(name):
            pass
    summaries = await asyncio.to_thread(AsyncMetrics.summaries)  # the live exporter reads from its thread
    assert set(summaries) == {"a", "b"} and summaries["a"]["count"] == 1
    AsyncMetrics.reset("a")
    assert set(AsyncMetrics.summaries()) == {"b"}
    AsyncMetrics.reset()
    assert AsyncMetrics.summaries() == {}


async def test_the_figures_go_out_as_opentelemetry_metrics(metric_points: MetricPoints) -> None:
    @opto.trace.async_trace
    async def agent() -> None:
        async with AsyncMetrics.monitor("otel") as block:
            block.record("tokens", 7)

    token = SCOPE.set(Scope(limiters=(Limiter(2),)))
    try:
        await agent()
    finally:
        SCOPE.reset(token)
    (duration,) = metric_points(semconv.METRIC_BLOCK_DURATION, {semconv.METRICS_NAME: "otel"})
    assert duration.count == 1 and duration.attributes[semconv.OUTCOME] == semconv.OUTCOME_OK
    (active,) = metric_points(semconv.METRIC_BLOCKS_ACTIVE, {semconv.METRICS_NAME: "otel"})
    assert active.value == 0
    (wait,) = metric_points(semconv.METRIC_BLOCK_QUEUE_WAIT, {semconv.METRICS_NAME: "otel"})
    assert wait.count == 1
    (cpu,) = metric_points(semconv.METRIC_BLOCK_CPU, {semconv.METRICS_NAME: "otel"})
    assert cpu.value >= 0
    (memory,) = metric_points(semconv.METRIC_BLOCK_MEMORY, {semconv.METRICS_NAME: "otel"})
    assert memory.value > 0
    (value,) = metric_points(semconv.METRIC_BLOCK_VALUE, {semconv.METRICS_NAME: "otel"})
    assert value.attributes[semconv.METRICS_KEY] == "tokens" and value.sum == 7


def test_misuse_is_refused_with_the_fix() -> None:
    with pytest.raises(TypeError, match="non-empty str name"):
        AsyncMetrics.monitor("")
    with pytest.raises(TypeError, match=r"AsyncMetrics.monitor\(name\)"):
        AsyncMetrics()


async def test_a_block_object_is_entered_once() -> None:
    block = AsyncMetrics.monitor("once")
    async with block:
        pass
    with pytest.raises(RuntimeError, match=r"call AsyncMetrics.monitor\(\) for each block"):
        async with block:
            pass


async def test_the_spec_metrics_snippet_runs_as_written(spec_page: SpecPage, capsys: pytest.CaptureFixture[str]) -> None:
    """The snippet prints the (still empty) summary; calling its agent then records a block."""

    async def process_query(query: str) -> str:
        await asyncio.sleep(0)
        return query.upper()

    namespace: dict[str, Any] = {"opto": opto, "process_query": process_query}
    await spec_page.run(spec_page.block("AsyncMetrics.monitor"), namespace)
    assert "agent_performance: no blocks recorded yet" in capsys.readouterr().out
    assert await namespace["monitored_agent"]("hi") == "HI"
    summary = AsyncMetrics.get_summary("agent_performance")
    assert summary["count"] == 1
    print(summary)
    assert "duration" in capsys.readouterr().out
