"""Run a traced call on a loop of the user's choosing (`async_trace(loop=...)`); tell whether asyncio
runs the caller at all (under trio, through anyio or not, there is no asyncio loop or task), and
sleep or time out whichever library runs it (asyncio's own primitives, else anyio's)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import sys
import threading
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Protocol, TypeVar

__all__ = ["Deadline", "deadline", "gather_in_task_group", "in_thread", "run_on_loop", "running_loop", "running_task", "sleep", "task_of"]

T = TypeVar("T")
_owned: dict[int, threading.Thread] = {}
_lock = threading.Lock()


_get_running_loop = asyncio.events._get_running_loop  # C: None when no asyncio loop runs this thread

# The running task of a loop: 3.11's `asyncio.current_task` is Python code around this lookup.
task_of: Callable[[asyncio.AbstractEventLoop], "asyncio.Task[Any] | None"] = (
    asyncio.tasks._current_tasks.get if sys.version_info < (3, 12) else asyncio.current_task  # type: ignore[attr-defined]
)


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or None when the caller runs under another library (trio)."""
    return _get_running_loop()


def running_task() -> asyncio.Task[Any] | None:
    """The running asyncio task, or None when the caller runs under another library (trio).
    Every traced call asks: two C calls, where `asyncio.current_task()` raises without a loop."""
    loop = _get_running_loop()
    return None if loop is None else task_of(loop)


async def sleep(seconds: float) -> None:
    """Sleep on whichever async library runs the caller."""
    if running_loop() is not None:
        await asyncio.sleep(seconds)
    else:
        import anyio

        await anyio.sleep(seconds)


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a worker thread, for whichever async library runs the caller."""
    if running_loop() is not None:
        return await asyncio.to_thread(fn, *args)
    import anyio.to_thread

    return await anyio.to_thread.run_sync(functools.partial(contextvars.copy_context().run, fn, *args))


async def gather_in_task_group(coros: list[Coroutine[Any, Any, Any]], *, return_exceptions: bool = False) -> list[Any]:
    """`asyncio.gather` for trio and the other libraries anyio runs on: results in input order;
    the first failure cancels the rest and is raised as itself, or, with `return_exceptions`,
    failures come back in place."""
    import anyio

    results: list[Any] = [None] * len(coros)
    failure: list[BaseException] = []

    async with anyio.create_task_group() as group:

        async def run(index: int, coro: Coroutine[Any, Any, Any]) -> None:
            try:
                results[index] = await coro
            except Exception as exc:
                if return_exceptions:
                    results[index] = exc
                elif not failure:
                    failure.append(exc)
                    group.cancel_scope.cancel()

        for index, coro in enumerate(coros):
            group.start_soon(run, index, coro)
    if failure:
        raise failure[0]
    return results


class Deadline(AbstractAsyncContextManager[Any], Protocol):
    """A time limit as `asyncio.timeout` makes it: raises TimeoutError, and tells if it expired."""

    def expired(self) -> bool: ...


def deadline(seconds: float) -> Deadline:
    """A time limit on the block it wraps, for whichever async library runs the caller."""
    if running_loop() is not None:
        return asyncio.timeout(seconds)
    return _AnyioDeadline(seconds)


class _AnyioDeadline:
    """`asyncio.timeout`'s shape over anyio's `fail_after`, for trio and the other libraries."""

    def __init__(self, seconds: float) -> None:
        import anyio

        self._manager = anyio.fail_after(seconds)
        self._scope: Any = None

    async def __aenter__(self) -> _AnyioDeadline:
        self._scope = self._manager.__enter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return self._manager.__exit__(kind, exc, tb)

    def expired(self) -> bool:
        return self._scope is not None and bool(self._scope.cancelled_caught)


def _ensure_running(loop: asyncio.AbstractEventLoop) -> None:
    """Run `loop` in a daemon thread the SDK owns, unless it is running already (started once)."""
    with _lock:
        thread = _owned.get(id(loop))
        if thread is not None and thread.is_alive():
            return
        if loop.is_running():
            return
        thread = threading.Thread(target=loop.run_forever, name=f"opto-loop-{id(loop):x}", daemon=True)
        _owned[id(loop)] = thread
        thread.start()


async def run_on_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Hand `coro` to `loop` thread-safely and await its outcome from the caller's loop.

    Cancelling the caller cancels the work on the other loop.
    """
    if loop.is_closed():
        coro.close()
        raise RuntimeError(
            "async_trace(loop=...) was given a closed event loop; pass a loop that is open "
            "(asyncio.new_event_loop()) or drop loop= to run on the caller's loop"
        )
    _ensure_running(loop)
    future = asyncio.run_coroutine_threadsafe(_carried(coro), loop)
    try:
        if running_loop() is not None:
            return await asyncio.wrap_future(future)
        return await _wait_from_other_library(future)
    except _Carry as carry:
        exc = carry.exc
    raise exc  # out of the except block, so that the exception's own __context__ stays as it was


class _Carry(Exception):
    """A KeyboardInterrupt or SystemExit raised on the other loop, carried back to the caller:
    asyncio would re-raise it out of that loop's `run_forever` and never resolve the future."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


async def _carried(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return await coro
    except (KeyboardInterrupt, SystemExit) as exc:
        raise _Carry(exc) from None


async def _wait_from_other_library(future: concurrent.futures.Future[T]) -> T:
    """The outcome of work handed to an asyncio loop, awaited from trio (a worker thread waits)."""
    import anyio.to_thread

    try:
        await anyio.to_thread.run_sync(concurrent.futures.wait, [future], abandon_on_cancel=True)
    except BaseException:
        future.cancel()
        raise
    return future.result()
