"""`async_trace(loop=...)`: the body runs on the named loop, handed over thread-safely."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

import opto
from opto.telemetry import semconv


@pytest.fixture
def other_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop nobody runs yet: the SDK must start it in a daemon thread of its own."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    for thread in threading.enumerate():
        if thread.name == f"opto-loop-{id(loop):x}":
            thread.join(5)
    loop.close()


async def test_body_runs_on_the_given_loop_in_a_thread_the_sdk_owns(other_loop, spans) -> None:
    caller = asyncio.get_running_loop()

    @opto.trace.async_trace(loop=other_loop)
    async def where() -> tuple[bool, str]:
        return asyncio.get_running_loop() is other_loop, threading.current_thread().name

    on_other, thread_name = await where()
    assert on_other and thread_name == f"opto-loop-{id(other_loop):x}"
    assert asyncio.get_running_loop() is caller
    again = await where()  # the thread is started once
    assert again[1] == thread_name
    assert [t.name for t in threading.enumerate()].count(thread_name) == 1
    assert len(spans.named(where.__qualname__)) == 2


async def test_results_and_exceptions_come_back_and_spans_nest(other_loop, spans) -> None:
    @opto.trace.async_trace(loop=other_loop)
    async def remote(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x * 10

    @opto.trace.async_trace
    async def local() -> int:
        return await remote(4)

    assert await local() == 40
    with pytest.raises(ValueError, match="negative"):
        await remote(-1)
    parent = spans.one(local.__qualname__)
    first, failed = spans.named(remote.__qualname__)
    assert first.parent is not None and first.parent.span_id == parent.context.span_id
    assert first.context.trace_id == parent.context.trace_id
    assert failed.attributes[semconv.OUTCOME] == "error"


async def test_cancelling_the_caller_cancels_the_work_on_the_other_loop(other_loop, spans) -> None:
    started = threading.Event()
    cleaned_up = threading.Event()

    @opto.trace.async_trace(loop=other_loop)
    async def long_job() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up.set()

    task = asyncio.create_task(long_job())
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(cleaned_up.wait, 5)
    # The span ends in the same step of the other loop as that finally block; a callback queued
    # on that loop now runs after the step, so awaiting it is the barrier.
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(asyncio.sleep(0), other_loop))
    assert spans.one(long_job.__qualname__).attributes[semconv.OUTCOME] == "cancelled"


async def test_a_loop_already_running_elsewhere_is_used_as_is(spans) -> None:
    """A loop the application runs in its own thread gets the call; the SDK starts no thread."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner = threading.Thread(target=lambda: (loop.call_soon(ready.set), loop.run_forever()), name="app-loop")
    runner.start()
    try:
        await asyncio.to_thread(ready.wait, 5)

        @opto.trace.async_trace(loop=loop)
        async def job() -> str:
            return threading.current_thread().name

        assert await job() == "app-loop"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(runner.join, 5)
        loop.close()


async def test_closed_loop_raises_a_clear_error() -> None:
    loop = asyncio.new_event_loop()

    @opto.trace.async_trace(loop=loop)
    async def job() -> None: ...

    loop.close()
    with pytest.raises(RuntimeError, match="closed event loop"):
        await job()


def test_called_from_the_loop_itself_runs_directly(spans) -> None:
    loop = asyncio.new_event_loop()
    try:

        @opto.trace.async_trace(loop=loop)
        async def job() -> bool:
            return asyncio.get_running_loop() is loop

        assert loop.run_until_complete(job())
        assert not [t for t in threading.enumerate() if t.name == f"opto-loop-{id(loop):x}"]
    finally:
        loop.close()


def test_a_call_with_loop_is_handed_to_that_loop_from_trio(other_loop, spans) -> None:
    import trio

    @opto.trace.async_trace(loop=other_loop)
    async def on_loop(x: int) -> int:
        await asyncio.sleep(0)  # asyncio code: it runs on `other_loop`, not on trio
        return x + 1

    assert trio.run(on_loop, 1) == 2
    assert spans.one(on_loop.__qualname__).attributes[semconv.OUTCOME] == "ok"


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(3)], ids=["KeyboardInterrupt", "SystemExit"])
async def test_keyboard_interrupt_and_system_exit_come_back_to_the_caller(other_loop, exc) -> None:
    """asyncio re-raises these out of the other loop's run_forever: carried back, the caller gets
    the very exception, the loop's thread lives on, and the next call runs."""

    @opto.trace.async_trace(loop=other_loop)
    async def body(e: BaseException | None) -> str:
        if e is not None:
            raise e
        return "ran"

    async with asyncio.timeout(10):
        with pytest.raises(type(exc)) as raised:
            await body(exc)
        assert raised.value is exc and exc.__context__ is None
        assert await body(None) == "ran"
