"""Async debug mode: call logs, asyncio debug on the loop, creation stacks, slow-step events."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

import opto
from opto.telemetry import semconv


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="opto")
    return caplog


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "opto" and r.levelno == logging.DEBUG]


async def test_global_debug_logs_every_step_of_every_call(debug_logs, spans) -> None:
    opto.trace.set_testing(True)
    opto.trace.set_async_debug(True)
    tries = []

    @opto.trace.async_trace(retry_attempts=2, timeout=0.01)
    async def agent(query: str) -> str:
        tries.append(1)
        if len(tries) == 1:
            raise opto.RetryableError("transient")
        if len(tries) == 2:
            await asyncio.Event().wait()  # times out
        return f"Processed: {query}"

    assert await agent("hello") == "Processed: hello"
    logs = _messages(debug_logs)
    name = agent.__qualname__
    assert any(m.startswith(f"call {name} start") and "'hello'" in m for m in logs)
    assert any(f"call {name} attempt 1 failed" in m and "retrying" in m for m in logs)
    assert any(f"call {name} attempt 2 timed out" in m for m in logs)
    assert any(m == f"call {name} end outcome=ok attempts=3" for m in logs)
    assert asyncio.get_running_loop().get_debug()
    stack = spans.one(name).attributes[semconv.DEBUG_CREATION_STACK]
    assert "test_global_debug_logs_every_step_of_every_call" in stack


async def test_slow_steps_become_span_events(spans) -> None:
    """A step that blocks the loop past slow_callback_duration is an `opto.debug.slow_callback` event."""
    asyncio.get_running_loop().slow_callback_duration = 0.02

    @opto.trace.async_trace(debug=True)
    async def blocks() -> None:
        await asyncio.sleep(0)
        time.sleep(0.03)  # blocks the event loop

    @opto.trace.async_trace(debug=True)
    async def outer() -> None:
        await blocks()

    await outer()
    (event,) = [e for e in spans.one(blocks.__qualname__).events if e.name == semconv.EVENT_SLOW_CALLBACK]
    assert event.attributes[semconv.DEBUG_DURATION_S] >= 0.03
    assert "blocks" in event.attributes[semconv.DEBUG_HANDLE]
    # The enclosing traced call does not report the same blocking step again.
    assert not [e for e in spans.one(outer.__qualname__).events if e.name == semconv.EVENT_SLOW_CALLBACK]


async def test_debug_watch_forwards_exceptions_and_cancellation(spans) -> None:
    """The step-by-step driver is transparent: errors and cancellation reach the body as usual."""
    started = asyncio.Event()
    seen: list[str] = []

    @opto.trace.async_trace(debug=True)
    async def body() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    task = asyncio.create_task(body())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]
    assert spans.one(body.__qualname__).attributes[semconv.OUTCOME] == "cancelled"


async def test_debug_for_one_function_only(debug_logs, spans) -> None:
    @opto.trace.async_trace(debug=True)
    async def loud() -> None: ...

    @opto.trace.async_trace
    async def quiet() -> None: ...

    await loud()
    await quiet()
    logs = _messages(debug_logs)
    assert any(loud.__qualname__ in m for m in logs)
    assert not any(quiet.__qualname__ in m for m in logs)
    assert semconv.DEBUG_CREATION_STACK not in spans.one(quiet.__qualname__).attributes


async def test_debug_off_logs_nothing(debug_logs, spans) -> None:
    @opto.trace.async_trace
    async def plain() -> None: ...

    await plain()
    assert _messages(debug_logs) == []
    assert semconv.DEBUG_CREATION_STACK not in spans.one(plain.__qualname__).attributes


async def test_creation_stack_includes_where_the_task_was_created(spans) -> None:
    opto.trace.set_async_debug(True)

    @opto.trace.async_trace
    async def worker() -> None: ...

    async def spawn_here() -> None:
        await asyncio.create_task(worker())

    await spawn_here()
    stack = spans.one(worker.__qualname__).attributes[semconv.DEBUG_CREATION_STACK]
    assert "created at" in stack and "spawn_here" in stack
