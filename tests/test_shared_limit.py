"""One AsyncTraceContext shared by many requests at once: one limit across all of them, each
request its own span, slot waits traced."""

from __future__ import annotations

import asyncio

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
