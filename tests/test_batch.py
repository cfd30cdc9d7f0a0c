"""AsyncBatchProcessor: lazy batching, bounded concurrency, retries, ordering, early exit, spans."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry import trace as otel_trace

import opto
from opto.telemetry import semconv
from opto.trace import AsyncBatchProcessor, AsyncTraceContext, BatchResult, RetryPolicy, set_testing

if TYPE_CHECKING:
    from conftest import Spans, SpecPage

pytestmark = pytest.mark.usefixtures("spans")


async def agen(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        await asyncio.sleep(0)
        yield item


async def endless(closed: asyncio.Event) -> AsyncIterator[int]:
    """Counts forever; sets `closed` once the generator is closed."""
    try:
        for i in itertools.count():
            yield i
    finally:
        closed.set()


async def collect(stream: AsyncIterator[BatchResult[Any, Any]]) -> list[BatchResult[Any, Any]]:
    async with asyncio.timeout(10):
        return [r async for r in stream]


def batch_spans(spans: Spans) -> list[Any]:
    return [s for s in spans.all() if s.attributes.get(semconv.SPAN_KIND) == semconv.KIND_TASK]


async def test_spec_snippet_runs_as_written(spec_page: SpecPage, spans: Spans) -> None:
    """The page's "Async Batch Processing" block runs without a handler; each result carries its batch."""
    handled: list[BatchResult[int, Any]] = []

    async def handle_batch_result(result: BatchResult[int, Any]) -> None:
        handled.append(result)

    namespace: dict[str, Any] = {"data_stream": agen(list(range(250))), "handle_batch_result": handle_batch_result}
    await spec_page.run(spec_page.block("AsyncBatchProcessor("), namespace)
    async with asyncio.timeout(10):
        await namespace["process_batch"]()
    assert sorted(len(r.items) for r in handled) == [50, 100, 100]
    assert sorted(x for r in handled for x in r.items) == list(range(250))
    assert all(r.result == r.items and r.ok and r.attempts == 1 for r in handled)
    run = spans.one("AsyncBatchProcessor")
    assert run.attributes[semconv.SPAN_KIND] == semconv.KIND_BATCH
    assert (run.attributes[semconv.BATCH_COUNT], run.attributes[semconv.BATCH_ITEMS]) == (3, 250)
    assert run.attributes[semconv.OUTCOME] == semconv.OUTCOME_OK
    per_batch = batch_spans(spans)
    assert sorted(s.attributes[semconv.BATCH_INDEX] for s in per_batch) == [0, 1, 2]
    assert all(s.parent.span_id == run.context.span_id for s in per_batch)


@pytest.mark.parametrize("source", [range(10), iter(range(10)), "agen"], ids=["sync-iterable", "sync-iterator", "async"])
async def test_batches_of_batch_size_with_a_short_last_one(source: Any) -> None:
    """Sync and async inputs are grouped into batch_size batches; the last may be short."""
    data = agen(list(range(10))) if source == "agen" else source

    async def total(items: list[int]) -> int:
        return sum(items)

    results = await collect(AsyncBatchProcessor(batch_size=4, max_concurrent=2, ordered=True).process(data, total))
    assert [(r.index, r.items, r.result) for r in results] == [(0, [0, 1, 2, 3], 6), (1, [4, 5, 6, 7], 22), (2, [8, 9], 17)]
    assert all(r.error is None and r.attempts == 1 and r.duration_s >= 0 for r in results)


async def test_results_come_as_they_complete_unless_ordered() -> None:
    """Unordered, a later batch that finishes first comes first; ordered=True restores input order."""

    async def run(ordered: bool) -> list[int]:
        first_may_finish = asyncio.Event()

        async def handler(items: list[int]) -> int:
            if items[0] == 0:
                await first_may_finish.wait()
            else:
                first_may_finish.set()
            return items[0]

        processor = AsyncBatchProcessor(batch_size=1, max_concurrent=2, handler=handler, ordered=ordered)
        return [r.result for r in await collect(processor.process([0, 1]))]

    assert await run(ordered=False) == [1, 0]
    assert await run(ordered=True) == [0, 1]


async def test_sync_handler_runs_in_a_worker_thread() -> None:
    """A plain-function handler runs off the event loop's thread."""
    loop_thread = threading.get_ident()

    def handler(items: list[int]) -> int:
        assert threading.get_ident() != loop_thread
        return len(items)

    results = await collect(AsyncBatchProcessor(batch_size=3, handler=handler).process(range(7)))
    assert sorted(r.result for r in results) == [1, 3, 3]


async def test_handler_given_to_process_replaces_the_constructors() -> None:
    async def one(items: list[int]) -> str:
        return "constructor"

    async def two(items: list[int]) -> str:
        return "process"

    results = await collect(AsyncBatchProcessor(batch_size=5, handler=one).process(range(3), two))
    assert [r.result for r in results] == ["process"]


async def test_at_most_max_concurrent_batches_run_at_once(spans: Spans) -> None:
    """The handler never runs on more than max_concurrent batches at once; the run span records the peak."""
    inside = peak = 0
    all_in = asyncio.Event()

    async def handler(items: list[int]) -> None:
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        if inside == 3:
            all_in.set()
        await all_in.wait()
        await asyncio.sleep(0)
        inside -= 1

    await collect(AsyncBatchProcessor(batch_size=2, max_concurrent=3, handler=handler).process(range(40)))
    assert peak == 3
    assert spans.one("AsyncBatchProcessor").attributes[semconv.CONCURRENCY_PEAK] == 3


async def test_input_is_read_lazily_so_an_endless_stream_works() -> None:
    """Items are pulled only a window ahead: an endless input is fine, and reading stays bounded."""
    pulled = 0

    def endless() -> Iterator[int]:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield i

    async def handler(items: list[int]) -> int:
        await asyncio.sleep(0)
        return items[0]

    processor = AsyncBatchProcessor(batch_size=10, max_concurrent=3, handler=handler)
    taken = 0
    async with asyncio.timeout(10):
        async for _ in processor.process(endless()):
            taken += 1
            if taken == 20:
                break
    assert pulled <= (taken + 3) * 10  # what was handed on, plus a window of max_concurrent batches


async def test_failing_batch_is_retried_then_reported_without_stopping(spans: Spans) -> None:
    """A failing batch is retried per retry_policy, then its error is in its result; others go on."""
    set_testing(True)
    tries: dict[int, int] = {}

    async def handler(items: list[int]) -> int:
        tries[items[0]] = tries.get(items[0], 0) + 1
        if items[0] == 0:
            raise opto.RetryableError("always")
        if items[0] == 1 and tries[1] == 1:
            raise opto.RetryableError("once")
        return items[0]

    processor = AsyncBatchProcessor(batch_size=1, max_concurrent=2, handler=handler, retry_policy="fixed", ordered=True)
    results = await collect(processor.process(range(3)))
    assert [(r.result, r.attempts, type(r.error).__name__) for r in results] == [
        (None, 4, "RetryableError"),
        (1, 2, "NoneType"),
        (2, 1, "NoneType"),
    ]
    run = spans.one("AsyncBatchProcessor").attributes
    assert (run[semconv.TASKS_COMPLETED], run[semconv.TASKS_FAILED], run[semconv.TASKS_RETRIED]) == (2, 1, 4)


async def test_raise_on_error_raises_and_cancels_the_rest() -> None:
    """With raise_on_error=True the first failed batch's error leaves the loop; in-flight batches are cancelled."""
    cancelled = asyncio.Event()

    async def handler(items: list[int]) -> None:
        if items[0] == 0:
            raise ValueError("bad batch")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    processor = AsyncBatchProcessor(batch_size=1, max_concurrent=2, handler=handler, raise_on_error=True)
    with pytest.raises(ValueError, match="bad batch"):
        await collect(processor.process(range(5)))
    assert cancelled.is_set()


async def test_timeout_per_attempt_is_a_timeout_outcome(spans: Spans) -> None:
    """A batch overrunning `timeout` fails with TimeoutError; its span's outcome is timeout."""

    async def stuck(items: list[int]) -> None:
        await asyncio.Event().wait()

    results = await collect(AsyncBatchProcessor(batch_size=5, handler=stuck, timeout=0.01).process(range(3)))
    assert isinstance(results[0].error, TimeoutError)
    (span,) = batch_spans(spans)
    assert span.attributes[semconv.OUTCOME] == semconv.OUTCOME_TIMEOUT
    assert spans.one("AsyncBatchProcessor").attributes[semconv.TASKS_TIMED_OUT] == 1


async def test_max_wait_flushes_a_partial_batch_of_a_slow_stream() -> None:
    """With max_wait, a batch not filled in time goes out partial instead of waiting for the stream."""
    more = asyncio.Event()

    async def slow() -> AsyncIterator[int]:
        yield 1
        yield 2
        await more.wait()
        yield 3

    processor = AsyncBatchProcessor(batch_size=10, max_concurrent=2, max_wait=0.01)
    seen: list[list[int]] = []
    async with asyncio.timeout(10):
        async for result in processor.process(slow()):
            seen.append(result.items)
            more.set()
    assert seen == [[1, 2], [3]]


async def test_break_cancels_in_flight_batches_and_closes_the_input(spans: Spans) -> None:
    """Leaving the loop early cancels running batches (spans end cancelled) and closes the input."""
    input_closed = asyncio.Event()
    cancelled: list[int] = []

    async def handler(items: list[int]) -> int:
        if items[0] == 0:
            return 0
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(items[0])
            raise
        return items[0]

    before = asyncio.all_tasks()
    stream = AsyncBatchProcessor(batch_size=1, max_concurrent=3, handler=handler).process(endless(input_closed))
    async with asyncio.timeout(10):
        async for result in stream:
            assert result.result == 0
            break
        await stream.aclose()
    assert input_closed.is_set()
    assert sorted(cancelled) == [1, 2]
    assert asyncio.all_tasks() == before
    run = spans.one("AsyncBatchProcessor").attributes
    assert run[semconv.OUTCOME] == semconv.OUTCOME_OK and run[semconv.STREAM_CLOSED_EARLY] is True
    assert run[semconv.TASKS_CANCELLED] == 2
    outcomes = sorted(s.attributes[semconv.OUTCOME] for s in batch_spans(spans))
    assert outcomes == ["cancelled", "cancelled", "ok"]


async def test_break_without_a_reference_cleans_up_too() -> None:
    """A plain `break` (the generator is collected, then closed by the loop) still closes the input."""
    input_closed = asyncio.Event()

    async with asyncio.timeout(10):
        async for _ in AsyncBatchProcessor(batch_size=2, max_concurrent=2).process(endless(input_closed)):
            break
        await input_closed.wait()


async def test_consumer_span_is_untouched_across_yields(caplog: pytest.LogCaptureFixture) -> None:
    """The run never leaves its span current in the consumer: not at a yield, not after a break."""
    caplog.set_level(logging.ERROR, logger="opentelemetry.context")
    tracer = otel_trace.get_tracer("test")
    input_closed = asyncio.Event()
    with tracer.start_as_current_span("consumer") as consumer:
        async with asyncio.timeout(10):
            async for _ in AsyncBatchProcessor(batch_size=1, max_concurrent=2).process(endless(input_closed)):
                assert otel_trace.get_current_span() is consumer
                break
            gc.collect()
            await input_closed.wait()  # the loop has run the abandoned generator's aclose()
        assert otel_trace.get_current_span() is consumer
    assert not [r for r in caplog.records if "Failed to detach context" in r.getMessage()]


async def test_cancelling_the_consumer_cancels_everything(spans: Spans) -> None:
    """A consumer task cancelled mid-run leaves no batch or reader task behind; the run span ends cancelled."""
    started = asyncio.Event()

    async def handler(items: list[int]) -> None:
        started.set()
        await asyncio.Event().wait()

    async def consume() -> None:
        async for _ in AsyncBatchProcessor(batch_size=1, max_concurrent=2, handler=handler).process(range(100)):
            pass

    before = asyncio.all_tasks()
    task = asyncio.create_task(consume())
    async with asyncio.timeout(10):
        await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert asyncio.all_tasks() == before
    assert spans.one("AsyncBatchProcessor").attributes[semconv.OUTCOME] == semconv.OUTCOME_CANCELLED


async def test_an_input_error_is_raised_to_the_consumer(spans: Spans) -> None:
    """An exception from the input stream leaves the loop; the run span records it."""

    def broken() -> Iterator[int]:
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        await collect(AsyncBatchProcessor(batch_size=1).process(broken()))
    assert spans.one("AsyncBatchProcessor").attributes[semconv.OUTCOME] == semconv.OUTCOME_ERROR


async def test_batches_inherit_an_enclosing_context(spans: Spans) -> None:
    """Inside an AsyncTraceContext, batches take its slots and use its retry policy."""
    set_testing(True)
    failed_once: set[int] = set()

    async def handler(items: list[int]) -> int:
        if items[0] not in failed_once:
            failed_once.add(items[0])
            raise opto.RetryableError("first try fails")
        return items[0]

    async with AsyncTraceContext(max_concurrent=1, retry_policy=RetryPolicy(attempts=1)) as ctx:
        results = await collect(AsyncBatchProcessor(batch_size=1, max_concurrent=4, handler=handler).process(range(3)))
    assert sorted(r.result for r in results) == [0, 1, 2]
    assert all(r.attempts == 2 for r in results)
    assert (ctx.stats.peak, ctx.stats.completed, ctx.stats.retried) == (1, 3, 3)
    assert spans.one("AsyncBatchProcessor").parent.span_id == spans.one("AsyncTraceContext").context.span_id


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be an int >= 1"),
        ({"max_concurrent": None}, ValueError, "max_concurrent must be an int >= 1"),
        ({"max_wait": 0}, ValueError, "max_wait must be > 0"),
        ({"handler": "sum"}, TypeError, "handler must be a function"),
        ({"retry_policy": "sometimes"}, ValueError, "expected 'none', 'fixed'"),
    ],
    ids=["zero-batch", "no-limit", "zero-wait", "str-handler", "unknown-policy"],
)
def test_bad_arguments_name_the_fix(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        AsyncBatchProcessor(**kwargs)


def test_process_rejects_a_non_iterable_at_once() -> None:
    with pytest.raises(TypeError, match="iterable or async iterable"):
        AsyncBatchProcessor().process(42)  # type: ignore[arg-type]


async def test_a_cancelled_error_the_handler_met_fails_its_batch_only(spans: Spans) -> None:
    """A handler awaiting a future someone else cancelled: its batch fails, the run goes on."""

    async def handler(items: list[int]) -> int:
        if items[0] == 2:
            future = asyncio.get_running_loop().create_future()
            future.cancel()
            await future
        return sum(items)

    async with asyncio.timeout(10):
        results = await collect(AsyncBatchProcessor(batch_size=2, max_concurrent=2).process(range(6), handler))
    by_index = {r.index: r for r in results}
    assert [by_index[i].ok for i in range(3)] == [True, False, True]
    assert isinstance(by_index[1].error, asyncio.CancelledError)
    assert [by_index[0].result, by_index[2].result] == [1, 9]


async def test_a_cancelled_error_the_input_met_reaches_the_consumer() -> None:
    """The input's own CancelledError ends the run as an input error would, instead of a hang."""

    async def source() -> AsyncIterator[int]:
        yield 1
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future

    async def handler(items: list[int]) -> int:
        return sum(items)

    async with asyncio.timeout(10):
        with pytest.raises(asyncio.CancelledError):
            await collect(AsyncBatchProcessor(batch_size=1).process(source(), handler))
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
