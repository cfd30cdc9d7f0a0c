"""AsyncTraceContext: an ambient scope (limit, timeout, retries) for traced calls, and run_parallel."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import opto
from opto.telemetry import semconv
from opto.trace import AsyncTraceContext, ContextStats, RetryPolicy, set_testing

if TYPE_CHECKING:
    from conftest import Spans, SpecPage

pytestmark = pytest.mark.usefixtures("spans")


class Gate:
    """Counts callers inside; lets them all go once `limit` are in, recording the most seen at once.

    If a limit were not enforced, more than `limit` callers would be inside when the gate opens.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inside = 0
        self.peak = 0
        self.open = asyncio.Event()

    async def pass_through(self) -> None:
        self.inside += 1
        self.peak = max(self.peak, self.inside)
        if self.inside >= self.limit:
            self.open.set()
        try:
            await self.open.wait()
            await asyncio.sleep(0)  # let every caller that could start, start
        finally:
            self.inside -= 1


def named(spans: Spans, name: str) -> list[Any]:
    return [s for s in spans.all() if s.name.rsplit(".", 1)[-1] == name]


def flaky(failures: int) -> Any:
    """An untraced coroutine function that raises RetryableError `failures` times, then returns its call count."""
    calls = 0

    async def attempt() -> int:
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise opto.RetryableError(f"failure {calls}")
        return calls

    return attempt


async def test_spec_snippet_runs_as_written(spec_page: SpecPage, spans: Spans) -> None:
    """The page's "Async Context Management" block runs; results come back in input order."""

    @opto.trace.async_trace
    async def task1() -> str:
        return "one"

    async def task2() -> str:  # not traced: run_parallel traces it as a task
        return "two"

    @opto.trace.async_trace
    async def task3() -> str:
        return "three"

    namespace: dict[str, Any] = {"task1": task1, "task2": task2, "task3": task3}
    await spec_page.run(spec_page.block("AsyncTraceContext"), namespace)
    assert await namespace["optimized_workflow"]() == ["one", "two", "three"]
    ctx_span = spans.one("AsyncTraceContext")
    assert ctx_span.attributes[semconv.SPAN_KIND] == semconv.KIND_CONTEXT
    assert ctx_span.attributes[semconv.CONCURRENCY_LIMIT] == 20
    assert ctx_span.attributes[semconv.TIMEOUT_S] == 30.0
    assert ctx_span.attributes[semconv.TASKS_COMPLETED] == 3
    for name in ("task1", "task2", "task3"):
        (span,) = named(spans, name)
        assert span.parent.span_id == ctx_span.context.span_id
        assert span.attributes[semconv.TIMEOUT_S] == 30.0
        assert span.attributes[semconv.OUTCOME] == semconv.OUTCOME_OK
    assert named(spans, "task2")[0].attributes[semconv.SPAN_KIND] == semconv.KIND_TASK


async def test_traced_calls_in_the_block_and_in_spawned_tasks_share_the_limit() -> None:
    """Calls started in the block or in tasks spawned inside it take slots of max_concurrent."""
    gate = Gate(2)

    @opto.trace.async_trace
    async def work() -> None:
        await gate.pass_through()

    async with asyncio.timeout(10), AsyncTraceContext(max_concurrent=2) as ctx:
        await asyncio.gather(work(), work(), *(asyncio.create_task(work()) for _ in range(4)))
    assert gate.peak == 2
    stats = ctx.stats
    assert isinstance(stats, ContextStats)
    assert (stats.limit, stats.peak, stats.in_flight, stats.completed) == (2, 2, 0, 6)


async def test_run_parallel_limits_concurrency_and_keeps_input_order() -> None:
    """At most max_concurrent items run at once; results come back in input order, not finish order."""
    gate = Gate(3)
    finished: list[int] = []

    async def item(i: int) -> int:
        await gate.pass_through()
        finished.append(i)
        return i * 10

    async with asyncio.timeout(10), AsyncTraceContext(max_concurrent=3) as ctx:
        results = await ctx.run_parallel([item(i) for i in range(9)])
    assert results == [i * 10 for i in range(9)]
    assert gate.peak == 3
    assert ctx.statistics().completed == 9


async def test_run_parallel_returns_results_of_items_finishing_in_reverse_order() -> None:
    """An item that finishes last still lands in its own place."""
    events = [asyncio.Event() for _ in range(3)]

    async def item(i: int) -> int:
        await events[i].wait()
        if i:
            events[i - 1].set()
        return i

    async def opener() -> None:
        events[2].set()

    async with asyncio.timeout(10), AsyncTraceContext() as ctx:
        results = await ctx.run_parallel([item(0), item(1), item(2), opener()])
    assert results == [0, 1, 2, None]


async def test_nested_context_narrows_the_outer_limit_and_timeout(spans: Spans) -> None:
    """An inner context with a wider limit and longer timeout still obeys the outer ones."""
    gate = Gate(2)

    @opto.trace.async_trace
    async def work() -> None:
        await gate.pass_through()

    async with asyncio.timeout(10), AsyncTraceContext(max_concurrent=2, timeout=5.0, retry_policy="fixed") as outer:
        async with AsyncTraceContext(max_concurrent=10, timeout=60.0, name="inner") as inner:
            await inner.run_parallel([work() for _ in range(6)])
    assert gate.peak == 2
    assert outer.stats.completed == inner.stats.completed == 6
    for span in named(spans, "work"):
        assert span.attributes[semconv.TIMEOUT_S] == 5.0
    assert spans.one("inner").attributes[semconv.RETRY_MAX_ATTEMPTS] == 3  # inherited from outer


async def test_fan_out_inside_a_slot_holder_is_bounded_by_an_inner_context() -> None:
    """A traced call holding the outer slot can fan out under an inner limit without deadlock."""
    gate = Gate(2)

    async def item() -> None:
        await gate.pass_through()

    @opto.trace.async_trace
    async def parent() -> None:
        async with AsyncTraceContext(max_concurrent=2) as inner:
            await inner.run_parallel([item() for _ in range(5)])

    async with asyncio.timeout(10), AsyncTraceContext(max_concurrent=1) as outer:
        await parent()
    assert gate.peak == 2
    assert outer.stats.completed == 1


async def test_decorator_arguments_win_over_the_context() -> None:
    """A decorator's own timeout and retry policy override the context's."""
    set_testing(True)
    calls = 0

    @opto.trace.async_trace(timeout=30.0, retry_attempts=2)
    async def slow_and_flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise opto.RetryableError("again")
        await asyncio.sleep(0.05)  # longer than the context's timeout
        return "done"

    async with asyncio.timeout(10), AsyncTraceContext(timeout=0.01, retry_policy="none") as ctx:
        assert await slow_and_flaky() == "done"
    assert calls == 3
    assert ctx.stats.retried == 2


async def test_context_timeout_applies_per_attempt_and_counts_timeouts(spans: Spans) -> None:
    """An item that overruns the timeout fails with TimeoutError; its span's outcome is timeout."""
    never = asyncio.Event()

    async def stuck() -> None:
        await never.wait()

    async with asyncio.timeout(10), AsyncTraceContext(timeout=0.01) as ctx:
        with pytest.raises(TimeoutError):
            await ctx.run_parallel([stuck()])
    assert ctx.stats.timed_out == 1
    span = spans.one("test_context_timeout_applies_per_attempt_and_counts_timeouts.<locals>.stuck")
    assert span.attributes[semconv.OUTCOME] == semconv.OUTCOME_TIMEOUT


async def test_callables_are_retried_per_policy(spans: Spans) -> None:
    """A callable item is called again for each retry, per the context's retry policy."""
    set_testing(True)
    attempt = flaky(2)
    async with asyncio.timeout(10), AsyncTraceContext(retry_policy="exponential_backoff") as ctx:
        assert await ctx.run_parallel([attempt]) == [3]
    assert ctx.stats.retried == 2
    (span,) = named(spans, "attempt")
    assert span.attributes[semconv.ATTEMPTS] == 3
    assert [e.name for e in span.events] == [semconv.EVENT_RETRY, semconv.EVENT_RETRY]


async def test_bare_untraced_coroutine_is_not_retried() -> None:
    """A coroutine object cannot be re-run: run_parallel gives it one attempt whatever the policy."""
    set_testing(True)
    async with asyncio.timeout(10), AsyncTraceContext(retry_policy="fixed") as ctx:
        with pytest.raises(opto.RetryableError):
            await ctx.run_parallel([flaky(1)()])
    assert (ctx.stats.failed, ctx.stats.retried) == (1, 0)


async def test_bare_traced_coroutine_is_retried_by_its_own_function(spans: Spans) -> None:
    """A coroutine of an @async_trace function retries through that function, per the context's policy."""
    set_testing(True)
    inner = flaky(2)

    @opto.trace.async_trace
    async def traced() -> int:
        return await inner()

    async with asyncio.timeout(10), AsyncTraceContext(retry_policy="fixed") as ctx:
        assert await ctx.run_parallel([traced()]) == [3]
    (span,) = named(spans, "traced")
    assert span.attributes[semconv.ATTEMPTS] == 3
    assert ctx.stats.retried == 2


async def test_callable_of_traced_function_is_retried_once_not_twice() -> None:
    """`lambda: traced()` is retried by the traced function alone: attempts do not multiply."""
    set_testing(True)
    inner = flaky(100)

    @opto.trace.async_trace
    async def traced() -> int:
        return await inner()

    async with asyncio.timeout(10), AsyncTraceContext(retry_policy=RetryPolicy(attempts=3)) as ctx:
        with pytest.raises(opto.RetryableError, match="failure 4"):
            await ctx.run_parallel([lambda: traced()])
    assert ctx.stats.retried == 3


async def test_failure_cancels_the_other_items_and_raises(spans: Spans) -> None:
    """Like TaskGroup: the first failure cancels the rest, whose spans end cancelled; no task is left."""
    never = asyncio.Event()
    started = asyncio.Event()

    async def waits() -> None:
        started.set()
        await never.wait()

    async def fails() -> None:
        await started.wait()
        raise ValueError("boom")

    before = asyncio.all_tasks()
    async with asyncio.timeout(10), AsyncTraceContext(max_concurrent=5) as ctx:
        with pytest.raises(ValueError, match="boom"):
            await ctx.run_parallel([waits(), waits(), fails()])
    assert asyncio.all_tasks() == before
    stats = ctx.stats
    assert (stats.failed, stats.cancelled, stats.in_flight) == (1, 2, 0)
    outcomes = sorted(s.attributes[semconv.OUTCOME] for s in spans.all() if s.attributes[semconv.SPAN_KIND] == "task")
    assert outcomes == ["cancelled", "cancelled", "error"]


async def test_return_exceptions_puts_failures_in_place() -> None:
    """With return_exceptions=True every item runs and failures come back where they were."""

    async def ok(i: int) -> int:
        return i

    async def bad() -> int:
        raise KeyError("k")

    async with asyncio.timeout(10), AsyncTraceContext() as ctx:
        results = await ctx.run_parallel([ok(0), bad(), lambda: ok(2)], return_exceptions=True)
    assert results[0] == 0 and results[2] == 2
    assert isinstance(results[1], KeyError)


async def test_other_awaitables_are_accepted() -> None:
    """Futures (any awaitable) are items too."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()
    loop.call_soon(future.set_result, "f")
    async with asyncio.timeout(10), AsyncTraceContext() as ctx:
        assert await ctx.run_parallel([future, lambda: asyncio.sleep(0, "s")]) == ["f", "s"]


async def test_cancelling_run_parallel_cancels_items_and_frees_slots(spans: Spans) -> None:
    """Cancelling the caller cancels every item, frees every slot and ends every span."""
    never = asyncio.Event()
    gate = Gate(2)

    async def waits() -> None:
        await gate.pass_through()
        await never.wait()

    before = asyncio.all_tasks()
    async with AsyncTraceContext(max_concurrent=2) as ctx:
        runner = asyncio.create_task(ctx.run_parallel([waits() for _ in range(4)]))
        async with asyncio.timeout(10):
            await gate.open.wait()
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        assert ctx.stats.in_flight == 0
    assert asyncio.all_tasks() == before
    assert ctx.stats.cancelled == 2  # the two that held a slot; the others never started
    assert all(s.attributes[semconv.OUTCOME] == semconv.OUTCOME_CANCELLED for s in named(spans, "waits"))


async def test_cancelled_block_ends_the_context_span_cancelled(spans: Spans) -> None:
    """A cancelled block ends the context span with outcome cancelled and leaves no scope behind."""
    entered = asyncio.Event()

    async def block() -> None:
        async with AsyncTraceContext(name="cancelled-block"):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(block())
    async with asyncio.timeout(10):
        await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert spans.one("cancelled-block").attributes[semconv.OUTCOME] == semconv.OUTCOME_CANCELLED


async def test_error_in_block_is_recorded_on_the_context_span(spans: Spans) -> None:
    """An exception leaving the block marks the context span error, with the exception recorded."""
    with pytest.raises(RuntimeError):
        async with AsyncTraceContext(name="failing-block"):
            raise RuntimeError("nope")
    span = spans.one("failing-block")
    assert span.attributes[semconv.OUTCOME] == semconv.OUTCOME_ERROR
    assert span.events[0].name == "exception"


async def test_queue_wait_is_recorded_on_spans_and_as_a_metric(spans: Spans, metric_reader: InMemoryMetricReader) -> None:
    """Each item's wait for a slot goes on its span (opto.queue.wait_s) and into the histogram."""
    gate = Gate(1)

    async def queued() -> None:
        await gate.pass_through()

    async with asyncio.timeout(10), AsyncTraceContext(max_concurrent=1) as ctx:
        await ctx.run_parallel([queued() for _ in range(3)])
    waits = [s.attributes[semconv.QUEUE_WAIT_S] for s in named(spans, "queued")]
    assert len(waits) == 3 and max(waits) > 0
    points = [
        p
        for rm in metric_reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == semconv.METRIC_QUEUE_WAIT
        for p in m.data.data_points
        if str(p.attributes.get(semconv.FUNCTION, "")).endswith("queued")
    ]
    assert sum(p.count for p in points) == 3


async def test_stats_without_a_limit_still_count() -> None:
    """A context with no max_concurrent counts in-flight work and outcomes all the same."""

    @opto.trace.async_trace
    async def work() -> None:
        await asyncio.sleep(0)

    async with AsyncTraceContext() as ctx:
        await asyncio.gather(work(), work(), work())
    assert (ctx.stats.limit, ctx.stats.peak, ctx.stats.completed) == (None, 3, 3)


async def test_run_parallel_from_a_task_outside_the_block_uses_the_context() -> None:
    """A run_parallel called where the scope is not current still applies the context's limit."""
    gate = Gate(1)

    async def work() -> None:
        await gate.pass_through()

    async with asyncio.timeout(10), AsyncTraceContext(max_concurrent=1) as ctx:
        outside = asyncio.Event()

        async def elsewhere() -> list[Any]:
            await outside.wait()
            return await ctx.run_parallel([work(), work()])

        task = asyncio.get_running_loop().create_task(elsewhere(), context=contextvars.Context())
        outside.set()
        await task
    assert gate.peak == 1 and ctx.stats.completed == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_concurrent": 0}, ValueError, "max_concurrent must be an int >= 1"),
        ({"timeout": -1}, ValueError, "timeout must be > 0"),
        ({"timeout": "5"}, TypeError, "timeout must be a number"),
        ({"retry_policy": "linear"}, ValueError, "expected 'none', 'fixed', 'exponential_backoff'"),
        ({"retry_policy": 3}, TypeError, "retry_policy must be a RetryPolicy"),
        ({"name": ""}, TypeError, "name must be a non-empty str"),
    ],
    ids=["zero-limit", "negative-timeout", "str-timeout", "unknown-policy", "int-policy", "empty-name"],
)
def test_bad_arguments_name_the_fix(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    """Misconfiguration raises at construction, saying what is expected."""
    with pytest.raises(error, match=message):
        AsyncTraceContext(**kwargs)


async def test_bad_item_raises_before_anything_runs_and_closes_the_coroutines() -> None:
    """A non-awaitable item is a TypeError naming what to pass; coroutines given are closed, not leaked."""

    async def fine() -> None:
        pass

    coro = fine()
    async with AsyncTraceContext() as ctx:
        with pytest.raises(TypeError, match="zero-argument callables"):
            await ctx.run_parallel([coro, 42])
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


async def test_callable_returning_a_non_awaitable_fails_that_item() -> None:
    """A callable item must return an awaitable; otherwise that item fails with a TypeError."""
    async with AsyncTraceContext() as ctx:
        results = await ctx.run_parallel([lambda: 1], return_exceptions=True)
    assert isinstance(results[0], TypeError) and "return a coroutine or awaitable" in str(results[0])


async def test_run_parallel_outside_the_block_is_an_error_and_a_context_reenters() -> None:
    """run_parallel needs the block entered; one context may be entered again inside itself."""
    ctx = AsyncTraceContext()

    async def fine() -> None:
        pass

    coro = fine()
    with pytest.raises(RuntimeError, match="inside `async with"):
        await ctx.run_parallel([coro])
    coro.close()
    async with ctx:
        async with ctx:
            assert await ctx.run_parallel([fine]) == [None]
    async with ctx:  # after exit it can be entered again
        pass


async def test_a_task_that_outlives_the_slot_holder_that_spawned_it_takes_a_slot() -> None:
    """Calls nested in a slot holder run under its slot only while it holds it: follow-up work it
    spawns and does not await must not run past the limit once it has returned."""
    running = peak = 0
    follow_ups: list[asyncio.Task[None]] = []

    @opto.trace.async_trace
    async def fetch() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        running -= 1

    @opto.trace.async_trace
    async def handle() -> None:
        follow_ups.append(asyncio.create_task(fetch()))

    async with asyncio.timeout(10), AsyncTraceContext(max_concurrent=1) as ctx:
        await asyncio.gather(*(handle() for _ in range(5)))
        await asyncio.gather(*follow_ups)
    assert peak == 1
    assert (ctx.stats.peak, ctx.stats.completed) == (1, 10)
