"""`Gate`: at most `slots` holders at once and a bounded queue behind them; past that, refuse at once.

The OTLP door holds a slot from reading a body to handing its records on, so the memory of decoding
is bounded by `slots` bodies, while a short burst of exporters waits (holding no body yet) instead of
being refused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["Gate", "GateFull"]


class GateFull(Exception):
    """Every slot is taken and the queue is full: the caller should say so and not wait."""


class Gate:
    def __init__(self, slots: int, waiting: int) -> None:
        if slots < 1 or waiting < 0:
            raise ValueError(f"a gate needs slots >= 1 and waiting >= 0, got {slots} and {waiting}")
        self._semaphore = asyncio.Semaphore(slots)
        self.slots = slots
        self.max_waiting = waiting
        self.waiting = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for the block; GateFull at once if `max_waiting` callers already wait for one."""
        if self._semaphore.locked() and self.waiting >= self.max_waiting:
            raise GateFull(f"{self.slots} in progress and {self.waiting} waiting")
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self._semaphore.release()
