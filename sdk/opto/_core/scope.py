"""The ambient policy scope: what an AsyncTraceContext hands to every traced call inside it.

A scope travels in a ContextVar, so tasks spawned inside inherit it. Traced calls read it once
when they start; arguments given to the decorator win over it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass

from opentelemetry.trace import Link, get_current_span

from ..telemetry import semconv
from .retry import RetryPolicy
from .wakeup import Wakeup

__all__ = ["SCOPE", "HELD", "Held", "CALL", "CallInfo", "HANDOFF", "HandOff", "Limiter", "LimiterStats", "Scope", "acquire_slots"]


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """A snapshot of a concurrency limiter."""

    limit: int | None
    in_flight: int
    peak: int
    waiting: int


class Limiter:
    """A counting semaphore that reports how full it is; a cancelled waiter never keeps a slot.

    One limiter serves the whole process: calls on any event loop or thread, and under trio, share
    its slots (a freed slot is handed to the oldest waiter, wherever it waits). `limit=None` never
    blocks but still counts slots in flight and how the work holding them ended (`outcomes`,
    `retried`), so an unlimited AsyncTraceContext has the same statistics.
    """

    __slots__ = ("limit", "in_flight", "peak", "waiting", "outcomes", "retried", "_lock", "_waiters")

    def __init__(self, limit: int | None) -> None:
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise ValueError(f"max_concurrent must be an int >= 1 (or None for no limit), got {limit!r}")
        self.limit = limit
        self.in_flight = 0
        self.peak = 0
        self.waiting = 0
        self.outcomes = dict.fromkeys(semconv.OUTCOMES, 0)
        self.retried = 0
        self._lock = threading.Lock()
        self._waiters: deque[Wakeup] = deque()

    def would_block(self) -> bool:
        """Whether `acquire()` would have to wait now."""
        return self.limit is not None and (self.in_flight >= self.limit or bool(self._waiters))

    async def acquire(self) -> float:
        """Take a slot; return the seconds spent waiting for it."""
        with self._lock:
            if self.limit is None or (self.in_flight < self.limit and not self._waiters):
                self.in_flight += 1
                if self.in_flight > self.peak:
                    self.peak = self.in_flight
                return 0.0
            waiter = Wakeup()
            self._waiters.append(waiter)
            self.waiting += 1
        t0 = time.perf_counter()
        try:
            await waiter.wait()
        except BaseException:
            with self._lock:
                handed = waiter not in self._waiters  # woken (given a slot) before the cancellation
                if not handed:
                    self._waiters.remove(waiter)
                    self.waiting -= 1
            if handed:
                self.release()  # pass the slot it was given on
            raise
        return time.perf_counter() - t0

    def release(self) -> None:
        """Give a slot back: to the oldest waiter if there is one (it keeps `in_flight` as it is)."""
        with self._lock:
            if not self._waiters:
                self.in_flight -= 1
                return
            waiter = self._waiters.popleft()
            self.waiting -= 1
        waiter.set()

    def record(self, outcome: str, retries: int) -> None:
        """Count how the work that held a slot ended (one of `semconv.OUTCOMES`) and its retries."""
        self.outcomes[outcome] += 1
        self.retried += retries

    def statistics(self) -> LimiterStats:
        return LimiterStats(self.limit, self.in_flight, self.peak, self.waiting)


@dataclass(frozen=True, slots=True)
class Scope:
    """Policy for traced calls started inside an AsyncTraceContext; nested scopes narrow it."""

    limiters: tuple[Limiter, ...] = ()
    timeout: float | None = None
    retry: RetryPolicy | None = None

    def narrowed(self, limiter: Limiter | None, timeout: float | None, retry: RetryPolicy | None) -> Scope:
        """The scope of a context nested in this one: more limiters, the shorter timeout."""
        limiters = self.limiters + (limiter,) if limiter is not None else self.limiters
        if timeout is None or (self.timeout is not None and self.timeout < timeout):
            timeout = self.timeout
        return Scope(limiters, timeout, retry if retry is not None else self.retry)


SCOPE: ContextVar[Scope | None] = ContextVar("opto_scope", default=None)


class Held:
    """The slots a traced call holds, while it runs: calls nested in it, in its task or in tasks it
    spawns, run under them; once it returns, tasks it spawned that outlive it take slots again."""

    __slots__ = ("limiters", "outer", "live")

    def __init__(self, limiters: tuple[Limiter, ...], outer: Held | None) -> None:
        self.limiters = limiters
        self.outer = outer
        self.live = True

    def holds(self, limiter: Limiter) -> bool:
        held: Held | None = self
        while held is not None:
            if held.live and limiter in held.limiters:
                return True
            held = held.outer
        return False


HELD: ContextVar[Held] = ContextVar("opto_held_limiters", default=Held((), None))  # outside any call: nothing held


@dataclass(slots=True)
class CallInfo:
    """What the traced call running now knows about itself, for AsyncMetrics."""

    name: str
    queue_wait_s: float | None = None


CALL: ContextVar[CallInfo | None] = ContextVar("opto_call", default=None)


@dataclass(frozen=True, slots=True)
class HandOff:
    """The item a task got last from an AsyncQueue: traced calls it starts next link to the producer.

    Only calls started directly under the span that was current at `get()` (`parent_span_id`)
    carry the link, so the consumer's work for the item links, not everything nested in it.
    """

    link: Link
    parent_span_id: int

    def links(self) -> list[Link] | None:
        """The links for a span starting now: the hand-off's, if it starts where the item was got."""
        if get_current_span().get_span_context().span_id != self.parent_span_id:
            return None
        return [self.link]


HANDOFF: ContextVar[HandOff | None] = ContextVar("opto_handoff", default=None)


async def acquire_slots(limiters: tuple[Limiter, ...]) -> tuple[tuple[Limiter, ...], float]:
    """Take a slot of each limiter this call chain does not hold yet.

    Returns the limiters taken (the caller releases them and marks them held in HELD meanwhile)
    and the total seconds waited. A call nested in one that holds a slot runs under that slot,
    so nesting cannot deadlock a limit of 1. If cancelled while waiting, slots taken are given back.
    """
    held = HELD.get()
    taken: list[Limiter] = []
    waited = 0.0
    try:
        for limiter in limiters:
            if not held.holds(limiter):
                waited += await limiter.acquire()
                taken.append(limiter)
    except BaseException:
        for limiter in taken:
            limiter.release()
        raise
    return tuple(taken), waited
