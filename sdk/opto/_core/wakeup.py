"""A wake-up that one waiting task awaits and any task, loop or thread may set: what the SDK's
limits and queues wait on, so one limit or queue serves every event loop of the process, and
trio (through anyio) as well as asyncio."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from .loops import running_loop

__all__ = ["Wakeup"]


class Wakeup:
    """One waiter's wake-up: an asyncio future of the waiter's loop, or an anyio Event elsewhere."""

    __slots__ = ("_thread", "_loop", "_future", "_event", "_token")

    def __init__(self) -> None:
        self._thread = threading.get_ident()
        self._loop = running_loop()
        self._event: Any = None
        self._token: Any = None
        if self._loop is not None:
            self._future: asyncio.Future[None] | None = self._loop.create_future()
        else:  # trio, or another library anyio runs on
            import anyio.lowlevel

            self._future = None
            self._event = anyio.Event()
            self._token = anyio.lowlevel.current_token()

    async def wait(self) -> None:
        if self._future is not None:
            await self._future
        else:
            await self._event.wait()

    def set(self) -> None:
        """Wake the waiter, from any thread; a waiter whose loop has ended is left alone."""
        same_thread = threading.get_ident() == self._thread
        try:
            if self._future is not None:
                if same_thread:
                    _resolve(self._future)
                else:
                    self._loop.call_soon_threadsafe(_resolve, self._future)  # type: ignore[union-attr]
            elif same_thread:
                self._event.set()
            else:
                import anyio.from_thread

                anyio.from_thread.run_sync(self._event.set, token=self._token)
        except RuntimeError:
            pass  # the waiter's loop is closed or its run finished: nobody is left to wake


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
