"""One AsyncTraceContext shared by many requests at once: one limit across all of them, each
request its own span, slot waits traced."""

from __future__ import annotations

import asyncio

import pytest

import opto
from opto.telemetry import semconv
from opto.trace import AsyncTraceContext


async def test_many_requests_share_one_context_and_its_limit(spans) -> None:
    limit = AsyncTraceContext(max_concurrent=2, name="llm-limit")  # one per service, made at start-up
    release = asyncio.Event()
    running: list[int] = []
    peak = 0

    @opto.trace.async_trace
    async def call_model(request: int) -> int:
        nonlocal peak
        running.append(request)
        peak = max(peak, len(running))
        await release.wait()
        running.remove(request)
        return request

    async def handle(request: int) -> int:
        async with limit:  # every request enters the same context, concurrently
            return await call_model(request)

    tasks = [asyncio.create_task(handle(i)) for i in range(5)]
    while limit.statistics().waiting < 3:  # two hold the slots, three wait for one
        await asyncio.sleep(0)
    assert len(running) == 2
    release.set()
    assert await asyncio.gather(*tasks) == [0, 1, 2, 3, 4]

    assert peak == 2
    stats = limit.statistics()
    assert (stats.limit, stats.peak, stats.completed, stats.in_flight) == (2, 2, 5, 0)
    contexts = spans.named("llm-limit")
    assert len(contexts) == 5  # each request's block is its own span
    waits = spans.named(semconv.SPAN_SLOT_WAIT)
    assert len(waits) == 3 and all(w.attributes[semconv.OUTCOME] == "ok" for w in waits)
    for call in spans.named(call_model.__qualname__):
        assert call.parent.span_id in {c.context.span_id for c in contexts}


async def test_a_context_exited_out_of_order_says_so() -> None:
    outer, inner = AsyncTraceContext(name="outer"), AsyncTraceContext(name="inner")
    await outer.__aenter__()
    await inner.__aenter__()
    try:
        await outer.__aexit__(None, None, None)
    except RuntimeError as exc:
        assert "not the context entered last" in str(exc)
    else:
        raise AssertionError("exiting outer before inner was accepted")
    await inner.__aexit__(None, None, None)
    await outer.__aexit__(None, None, None)


async def test_a_functions_own_limit_holds_across_unrelated_tasks(spans) -> None:
    """@async_trace(max_concurrent=N): no context needed; the slot waits are traced as a context's are."""
    release = asyncio.Event()
    running = 0
    peak = 0

    @opto.trace.async_trace(max_concurrent=2)
    async def embed(text: str) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        return len(text)

    tasks = [asyncio.create_task(embed("x" * i)) for i in range(5)]
    while running < 2:  # the tasks' first steps run together: two take the slots, three wait
        await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*tasks) == [0, 1, 2, 3, 4]
    assert peak == 2
    waited = [s for s in spans.named(embed.__qualname__) if s.attributes[semconv.QUEUE_WAIT_S] > 0]
    assert len(waited) == 3 and len(spans.named(semconv.SPAN_SLOT_WAIT)) == 3


async def test_a_limited_function_calling_itself_runs_under_its_callers_slot() -> None:
    @opto.trace.async_trace(max_concurrent=1)
    async def walk(depth: int) -> int:
        return depth if depth == 0 else await walk(depth - 1)

    assert await asyncio.wait_for(walk(3), 10) == 0


@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_a_bad_max_concurrent_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="max_concurrent must be an int >= 1"):
        opto.trace.async_trace(max_concurrent=value)  # type: ignore[arg-type]


def test_max_concurrent_needs_an_async_function() -> None:
    with pytest.raises(TypeError, match="max_concurrent= needs an async function"):
        @opto.trace(max_concurrent=2)
        def f() -> None:
            pass
    with pytest.raises(TypeError, match="does not apply to @async_stream"):
        @opto.trace(max_concurrent=2)
        async def g():  # type: ignore[no-untyped-def]
            yield 1
