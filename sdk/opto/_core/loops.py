"""Run a traced call on a loop of the user's choosing (`async_trace(loop=...)`); tell whether asyncio
runs the caller at all (under trio, through anyio or not, there is no asyncio loop or task)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_on_loop", "running_loop", "running_task"]

T = TypeVar("T")
_owned: dict[int, threading.Thread] = {}
_lock = threading.Lock()


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or None when the caller runs under another library (trio)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def running_task() -> asyncio.Task[Any] | None:
    """The running asyncio task, or None when the caller runs under another library (trio)."""
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


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
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    return await asyncio.wrap_future(future)
