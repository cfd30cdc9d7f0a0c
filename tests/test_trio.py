"""Under trio (anyio's trio backend or trio itself), with an SDK provider installed, every decorator
and primitive runs and is traced: retries, timeouts and limits apply through anyio, run_parallel
uses a task group, AsyncBatchProcessor handles batches one at a time, and `loop=` hands the call over (tests/test_loops.py)."""

from __future__ import annotations

import contextlib

import anyio
import pytest
import trio

import opto
from opto.telemetry import semconv


def test_a_decorated_program_runs_under_trio(spans) -> None:
    @opto.trace
    async def fetch(url: str) -> str:
        await trio.sleep(0)
        return url.upper()

    @opto.trace(retry_attempts=2, timeout=5, max_concurrent=2)
    async def with_policy(x: int) -> int:
        return x * 2

    @opto.trace
    def parse(text: str) -> int:
        return len(text)

    @opto.trace
    async def lines(n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            yield i

    async def main() -> list[object]:
        results: list[object] = []
        async with anyio.create_task_group() as tg:
            async def one(i: int) -> None:
                results.append(await fetch(f"u{i}"))
            for i in range(3):
                tg.start_soon(one, i)
        async with opto.span("block"):
            results.append(await with_policy(21))
            results.append(parse("abc"))
            results.append([i async for i in lines(2)])
        return results

    results = anyio.run(main, backend="trio")
    assert sorted(map(str, results)) == sorted(["U0", "U1", "U2", "42", "3", "[0, 1]"])
    assert len(spans.named(fetch.__qualname__)) == 3
    assert all(s.attributes[semconv.OUTCOME] == "ok" for s in spans.all())
    policy = spans.one(with_policy.__qualname__)
    assert policy.attributes[semconv.TIMEOUT_S] == 5
    assert spans.one(with_policy.__qualname__).parent.span_id == spans.one("block").context.span_id
    assert len(spans.named(lines.__qualname__)) == 1


def test_trio_cancellation_reads_cancelled(spans) -> None:
    @opto.trace
    async def slow() -> None:
        await trio.sleep_forever()

    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()  # the call's first checkpoint raises trio.Cancelled
            await slow()

    trio.run(main)
    assert spans.one(slow.__qualname__).attributes[semconv.OUTCOME] == "cancelled"


def test_an_error_under_trio_reaches_the_caller_and_reads_error(spans) -> None:
    @opto.trace
    async def broken() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        trio.run(broken)
    assert spans.one(broken.__qualname__).attributes[semconv.OUTCOME] == "error"


def test_an_async_trace_context_block_runs_under_trio(spans) -> None:
    @opto.trace
    async def step(i: int) -> int:
        return i

    async def main() -> int:
        async with opto.trace.AsyncTraceContext(max_concurrent=1, timeout=5, name="batch"):
            return await step(1) + await step(2)

    assert trio.run(main) == 3
    batch = spans.one("batch")
    for call in spans.named(step.__qualname__):
        assert call.parent.span_id == batch.context.span_id


def test_retries_and_timeouts_apply_under_trio(spans) -> None:
    attempts = 0

    @opto.trace(retry_attempts=3, retry_delay=0.001)
    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise opto.RetryableError("upstream reset")
        await trio.sleep(0)
        return "ok"

    @opto.trace(timeout=0.01)
    async def stuck() -> None:
        await trio.sleep_forever()

    async def main() -> str:
        with pytest.raises(TimeoutError):
            await stuck()
        return await flaky()

    assert trio.run(main) == "ok"
    assert attempts == 3
    retried = spans.one(flaky.__qualname__)
    assert retried.attributes[semconv.OUTCOME] == "ok" and retried.attributes[semconv.ATTEMPTS] == 3
    assert [e.name for e in retried.events].count(semconv.EVENT_RETRY) == 2
    assert spans.one(stuck.__qualname__).attributes[semconv.OUTCOME] == "timeout"


def test_max_concurrent_limits_trio_tasks_and_traces_the_wait(spans) -> None:
    running = peak = 0

    @opto.trace(max_concurrent=2)
    async def limited(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await trio.sleep(0.001)
        running -= 1
        return i

    async def main() -> list[int]:
        out: list[int] = []
        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(lambda i=i: _append(out, limited(i)))
        return sorted(out)

    assert trio.run(main) == list(range(6))
    assert peak == 2
    assert spans.named(semconv.SPAN_SLOT_WAIT), "a call that waited for a slot has its wait span"


async def _append(out: list[int], call: object) -> None:
    out.append(await call)  # type: ignore[misc]


def test_run_parallel_under_trio_keeps_order_limits_and_first_error(spans) -> None:
    running = peak = 0

    @opto.trace
    async def step(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await trio.sleep(0.001 * (5 - i))
        finally:
            running -= 1
        if i == 4:
            raise ValueError("step 4 failed")
        return i * 10

    async def main() -> tuple[list[object], list[object]]:
        async with opto.trace.AsyncTraceContext(max_concurrent=2, name="fan-out") as ctx:
            mixed = await ctx.run_parallel([step(i) for i in range(5)], return_exceptions=True)
            with pytest.raises(ValueError, match="step 4 failed"):
                await ctx.run_parallel([lambda i=i: step(i) for i in range(5)])
            plain = await ctx.run_parallel([step(i) for i in range(4)])
        return mixed, plain

    mixed, plain = trio.run(main)
    assert mixed[:4] == [0, 10, 20, 30] and isinstance(mixed[4], ValueError)
    assert plain == [0, 10, 20, 30]
    assert peak == 2
    fan_out = spans.one("fan-out")
    assert all(s.parent is not None for s in spans.named(step.__qualname__))
    assert fan_out.attributes[semconv.CONCURRENCY_PEAK] == 2


def test_async_queue_under_trio_with_backpressure_join_and_close(spans) -> None:
    queue: opto.trace.AsyncQueue[int | None] = opto.trace.AsyncQueue(maxsize=2, name="jobs")
    got: list[int] = []

    @opto.trace
    async def produce() -> None:
        for i in range(6):
            await queue.put(i)
        await queue.join()  # every item handled
        queue.close()

    async def consume() -> None:
        while (item := await queue.get()) is not None:
            got.append(item)
            queue.task_done()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            nursery.start_soon(consume)
            nursery.start_soon(produce)

    trio.run(main)
    assert sorted(got) == list(range(6))
    assert queue.closed and queue.statistics().waiting_getters == 0
    assert spans.one(produce.__qualname__).attributes[semconv.OUTCOME] == "ok"


def test_async_queue_get_cancelled_under_trio_leaves_no_waiter() -> None:
    queue: opto.trace.AsyncQueue[int | None] = opto.trace.AsyncQueue(name="idle")

    async def main() -> None:
        with trio.move_on_after(0.01):
            await queue.get()
        await queue.put(1)
        assert await queue.get() == 1

    trio.run(main)
    assert queue.statistics().waiting_getters == 0


@pytest.mark.parametrize("handler_kind", ["async", "sync"])
def test_batch_processor_under_trio_handles_batches_in_turn(spans, handler_kind: str) -> None:
    async def double_async(items: list[int]) -> list[int]:
        await trio.sleep(0)
        return [x * 2 for x in items]

    def double_sync(items: list[int]) -> list[int]:
        return [x * 2 for x in items]

    handler = double_async if handler_kind == "async" else double_sync
    processor = opto.trace.AsyncBatchProcessor(batch_size=2, max_concurrent=3, handler=handler, name="doubler")

    async def numbers():  # type: ignore[no-untyped-def]
        for i in range(5):
            await trio.sleep(0)
            yield i

    async def main() -> list[object]:
        out = [r.result async for r in processor.process(range(5))]
        out += [r.result async for r in processor.process(numbers())]
        return out

    assert trio.run(main) == [[0, 2], [4, 6], [8]] * 2
    runs = spans.named("doubler")
    assert len(runs) == 2 and all(r.attributes[semconv.BATCH_COUNT] == 3 for r in runs)
    assert all(r.attributes[semconv.CONCURRENCY_PEAK] == 1 for r in runs)


def test_batch_processor_closed_early_under_trio_closes_its_input(spans) -> None:
    closed = False

    def numbers():  # type: ignore[no-untyped-def]
        nonlocal closed
        try:
            yield from range(100)
        finally:
            closed = True

    async def main() -> int:
        async with contextlib.aclosing(opto.trace.AsyncBatchProcessor(batch_size=2, name="early").process(numbers())) as results:
            async for result in results:
                return result.index
        return -1

    assert trio.run(main) == 0
    assert closed
    assert spans.one("early").attributes[semconv.STREAM_CLOSED_EARLY] is True


def test_debug_mode_under_trio_records_the_creation_stack(spans) -> None:
    @opto.trace.async_trace(debug=True)
    async def watched() -> int:
        await trio.sleep(0)
        return 1

    assert trio.run(watched) == 1
    assert "test_trio.py" in spans.one(watched.__qualname__).attributes[semconv.DEBUG_CREATION_STACK]


def test_optimize_searches_under_trio(spans) -> None:
    prompt = opto.trace.param("short", name="trio_prompt", choices=["short", "long", "exact"])

    @opto.trace.optimize(strategy="async_beam_search", beam_width=2, num_proposals=2, max_depth=2, max_concurrent=3)
    async def answer(question: str) -> str:
        await trio.sleep(0)
        return prompt.value

    async def main() -> tuple[dict[str, object], float]:
        result = await answer.optimize(["a", "b"], guide=lambda q, out: 1.0 if out == "exact" else 0.0)
        return result.best_params, result.best_score

    assert trio.run(main) == ({"trio_prompt": "exact"}, 1.0)
    assert spans.named(answer.__qualname__), "the evaluations were traced"


def test_async_metrics_and_ad_hoc_spans_under_trio(spans) -> None:
    @opto.trace
    async def monitored(x: int) -> int:
        async with opto.trace.AsyncMetrics.monitor("trio_block"):
            await trio.sleep(0)
            opto.set_attributes(seen=x)
            opto.add_event("checkpoint", step=1)
            return x

    async def main() -> int:
        with opto.span("sync block"):
            pass
        async with opto.span("async block", user="u1"):
            return await monitored(5)

    assert trio.run(main) == 5
    assert "blocks           1" in str(opto.trace.AsyncMetrics.get_summary("trio_block"))
    call = spans.one(monitored.__qualname__)
    assert call.attributes["seen"] == 5 and [e.name for e in call.events] == ["checkpoint"]
    assert call.parent.span_id == spans.one("async block").context.span_id
