"""A traced call that must wait for a concurrency slot records the wait as a child span."""

from __future__ import annotations

import asyncio

import pytest

import opto
from opto.telemetry import semconv
from opto.trace import AsyncTraceContext


async def test_waiting_call_gets_a_slot_wait_child(spans) -> None:
    """Only the call that waited has an `opto.slot.wait` child, ended before its body ran."""
    release = asyncio.Event()
    body_started: list[str] = []

    @opto.trace.async_trace
    async def work(label: str) -> None:
        body_started.append(label)
        await release.wait()

    async with AsyncTraceContext(max_concurrent=1):
        first = asyncio.create_task(work("first"))
        second = asyncio.create_task(work("second"))
        await asyncio.sleep(0)  # both started: the second now waits for the slot
        assert body_started == ["first"]
        release.set()
        await asyncio.gather(first, second)

    (wait,) = spans.named(semconv.SPAN_SLOT_WAIT)
    calls = {s.attributes[f"{semconv.ARG_PREFIX}label"]: s for s in spans.named(work.__qualname__)}
    waiter = calls["'second'"]
    assert wait.parent is not None and wait.parent.span_id == waiter.context.span_id
    assert wait.attributes[semconv.SPAN_KIND] == semconv.KIND_SLOT_WAIT
    assert wait.attributes[semconv.FUNCTION] == work.__qualname__
    assert wait.attributes[semconv.OUTCOME] == "ok"
    assert wait.attributes[semconv.QUEUE_WAIT_S] == waiter.attributes[semconv.QUEUE_WAIT_S] > 0
    assert wait.end_time <= waiter.end_time


async def test_cancelled_while_waiting_ends_the_wait_span_and_frees_nothing(spans) -> None:
    release = asyncio.Event()

    @opto.trace.async_trace
    async def hold() -> None:
        await release.wait()

    async with AsyncTraceContext(max_concurrent=1) as ctx:
        holder = asyncio.create_task(hold())
        waiter = asyncio.create_task(hold())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert ctx.stats.in_flight == 1  # the cancelled waiter took no slot
        release.set()
        await holder
    (wait,) = spans.named(semconv.SPAN_SLOT_WAIT)
    assert wait.attributes[semconv.OUTCOME] == "cancelled"
