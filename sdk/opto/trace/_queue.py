"""`AsyncQueue`: the asyncio.Queue API plus `close()`, one sentinel for every consumer, and per-item telemetry.

Each item carries the producer's span context and its put time. `get()` records how long the
item waited and hands the producer's context to the consumer's task (`_scope.HANDOFF`), so the
traced calls the consumer starts next link to the span that enqueued it.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar, overload

from opentelemetry.metrics import CallbackOptions, Observation, UpDownCounter
from opentelemetry.trace import Link, SpanContext, get_current_span


from .. import telemetry
from .._core import HANDOFF, HandOff, Wakeup
from ..telemetry import semconv, sources

__all__ = ["AsyncQueue", "QueueClosed", "QueueStats"]

T = TypeVar("T")
_ids = itertools.count(1)


class _NoSentinel:
    def __repr__(self) -> str:
        return "AsyncQueue.NO_SENTINEL"


_NO_SENTINEL: Any = _NoSentinel()

_put_blocked = telemetry.METER.create_histogram(
    semconv.METRIC_QUEUE_PUT_BLOCKED, unit="s",
    description="Time AsyncQueue.put waited for room, for each put that had to wait (backpressure)",
    explicit_bucket_boundaries_advisory=telemetry.SECONDS_BUCKETS,
)
_producers = telemetry.METER.create_up_down_counter(
    semconv.METRIC_QUEUE_PRODUCERS, unit="{task}", description="Live tasks that have put items into an AsyncQueue"
)
_consumers = telemetry.METER.create_up_down_counter(
    semconv.METRIC_QUEUE_CONSUMERS, unit="{task}", description="Live tasks that have got items from an AsyncQueue"
)

_live: weakref.WeakSet[AsyncQueue[Any]] = weakref.WeakSet()
_live_lock = threading.Lock()  # the depth callback runs on the metric exporter's thread


def _observe_depth(options: CallbackOptions) -> Iterable[Observation]:
    with _live_lock:
        queues = list(_live)
    return [Observation(len(q._items), q._depth_attrs) for q in queues]


telemetry.METER.create_observable_gauge(
    semconv.METRIC_QUEUE_DEPTH, [_observe_depth], unit="{item}", description="Items waiting in each live AsyncQueue"
)


def _points() -> list[sources.Point]:
    """Depth, producers and consumers of every live queue, for the live exporter (`sources.QUEUES`)."""
    with _live_lock:
        queues = list(_live)
    now = time.time_ns()
    points: list[sources.Point] = []
    for queue in queues:
        stats = queue.statistics()
        attrs = {semconv.QUEUE_NAME: stats.name}
        points += [
            {"name": semconv.METRIC_QUEUE_DEPTH, "time_ns": now, "attributes": attrs, "value": stats.size},
            {"name": semconv.METRIC_QUEUE_PRODUCERS, "time_ns": now, "attributes": attrs, "value": stats.producers},
            {"name": semconv.METRIC_QUEUE_CONSUMERS, "time_ns": now, "attributes": attrs, "value": stats.consumers},
        ]
    return points


sources.register(sources.QUEUES, _points)


class QueueClosed(Exception):
    """put() on a closed queue, or get() on a closed, drained queue that has no sentinel."""


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A snapshot of an AsyncQueue."""

    name: str
    size: int
    maxsize: int
    closed: bool
    waiting_getters: int
    waiting_putters: int
    producers: int
    consumers: int


class _Tasks:
    """The live tasks in one role (producer or consumer) of one queue, counted as an up-down metric."""

    __slots__ = ("_tasks", "_counter", "_attrs")

    def __init__(self, counter: UpDownCounter, attrs: dict[str, str]) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._counter = counter
        self._attrs = attrs

    def note(self) -> None:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # a _nowait call outside any event loop
            return
        if task is None or task in self._tasks:
            return
        self._tasks.add(task)
        self._counter.add(1, self._attrs)
        task.add_done_callback(self._gone)

    def _gone(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._counter.add(-1, self._attrs)

    def __len__(self) -> int:
        return len(self._tasks)


def _wake_next(waiters: deque[Wakeup]) -> None:
    if waiters:
        waiters.popleft().set()


async def _wait(waiters: deque[Wakeup], ready: Callable[[], bool]) -> None:
    """Wait to be woken; a waiter cancelled after its wake-up passes the wake-up on."""
    waiter = Wakeup()
    waiters.append(waiter)
    try:
        await waiter.wait()
    except BaseException:
        if waiter in waiters:
            waiters.remove(waiter)
        elif ready():
            _wake_next(waiters)
        raise


class AsyncQueue(Generic[T]):
    """A FIFO queue for asyncio tasks that reports queue wait, backpressure and depth per item.

    Putting the sentinel (`None` unless `sentinel=` says otherwise) closes the queue like
    `close()`: consumers drain what is queued, then every `get()` returns the sentinel instead of
    blocking, so one sentinel stops any number of consumers. With `sentinel=AsyncQueue.NO_SENTINEL`
    every value is an item and `get()` on a closed, drained queue raises `QueueClosed`. `name`
    labels the queue's telemetry (default: a unique `queue-N`).
    """

    NO_SENTINEL: Final[Any] = _NO_SENTINEL

    # The item type includes the sentinel, which is what get() returns once the queue is closed and
    # drained: `AsyncQueue[int | None]()`, or `AsyncQueue[int](sentinel=AsyncQueue.NO_SENTINEL)`.
    @overload
    def __init__(self: AsyncQueue[T | None], maxsize: int = 0, *, name: str | None = None) -> None: ...
    @overload
    def __init__(self, maxsize: int = 0, *, name: str | None = None, sentinel: T) -> None: ...
    def __init__(self, maxsize: int = 0, *, name: str | None = None, sentinel: Any = None) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
            raise ValueError(f"maxsize must be an int >= 0 (0 means unbounded), got {maxsize!r}")
        if name is None:
            name = f"queue-{next(_ids)}"
        elif not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        self._name = name
        self._maxsize = maxsize
        self._sentinel = sentinel
        self._items: deque[tuple[T, float, SpanContext | None]] = deque()
        self._getters: deque[Wakeup] = deque()
        self._putters: deque[Wakeup] = deque()
        self._joiners: deque[Wakeup] = deque()
        self._unfinished = 0
        self._closed = False
        self._attrs = {semconv.QUEUE_NAME: name}
        self._depth_attrs: dict[str, str | int] = {semconv.QUEUE_NAME: name, semconv.QUEUE_MAXSIZE: maxsize}
        self._producers = _Tasks(_producers, self._attrs)
        self._consumers = _Tasks(_consumers, self._attrs)
        with _live_lock:
            _live.add(self)

    @property
    def name(self) -> str:
        return self._name

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @property
    def closed(self) -> bool:
        return self._closed

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self._maxsize <= len(self._items)

    def close(self) -> None:
        """Accept no more items; consumers get what is queued, then the sentinel. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for waiter in (*self._getters, *self._putters):
            waiter.set()
        self._getters.clear()
        self._putters.clear()

    async def put(self, item: T) -> None:
        """Add an item, waiting for room if the queue is full; the sentinel closes the queue instead."""
        if item is self._sentinel:
            self.close()
            return
        self._check_open()
        blocked = 0.0
        if self.full():
            t0 = time.perf_counter()
            while self.full():
                await _wait(self._putters, lambda: not self.full())
                self._check_open()
            blocked = time.perf_counter() - t0
        self._add(item, blocked)

    def put_nowait(self, item: T) -> None:
        """Add an item now, or raise asyncio.QueueFull; the sentinel closes the queue instead."""
        if item is self._sentinel:
            self.close()
            return
        self._check_open()
        if self.full():
            raise asyncio.QueueFull(f"queue {self._name!r} is full ({self._maxsize} items); await put() to wait for room")
        self._add(item, 0.0)

    async def get(self) -> T:
        """The next item, waiting for one; on a closed, drained queue, the sentinel."""
        while not self._items:
            if self._closed:
                return self._drained()
            await _wait(self._getters, lambda: bool(self._items))
        return self._take()

    def get_nowait(self) -> T:
        """The next item now, or raise asyncio.QueueEmpty; on a closed, drained queue, the sentinel."""
        if not self._items:
            if self._closed:
                return self._drained()
            raise asyncio.QueueEmpty(f"queue {self._name!r} is empty; await get() to wait for an item")
        return self._take()

    def task_done(self) -> None:
        """Mark one item got earlier as processed, for join(). Sentinels are not items."""
        if self._unfinished <= 0:
            raise ValueError(
                f"task_done() called more times than items were put into queue {self._name!r} "
                "(the sentinel is not an item: do not call task_done() for it)"
            )
        self._unfinished -= 1
        if self._unfinished == 0:
            while self._joiners:
                self._joiners.popleft().set()

    async def join(self) -> None:
        """Wait until every item put has been marked done with task_done()."""
        while self._unfinished > 0:
            await _wait(self._joiners, lambda: self._unfinished == 0)

    def statistics(self) -> QueueStats:
        return QueueStats(
            self._name, len(self._items), self._maxsize, self._closed, len(self._getters),
            len(self._putters), len(self._producers), len(self._consumers),
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<AsyncQueue {self._name!r} size={len(self._items)} maxsize={self._maxsize} {state}>"

    def _check_open(self) -> None:
        if self._closed:
            raise QueueClosed(
                f"queue {self._name!r} is closed (its sentinel was put or close() was called); "
                "put the sentinel or call close() only after every producer is done"
            )

    def _add(self, item: T, blocked: float) -> None:
        span = get_current_span()
        producer = span.get_span_context()
        self._items.append((item, time.perf_counter(), producer if producer.is_valid else None))
        self._unfinished += 1
        _wake_next(self._getters)
        self._producers.note()
        if blocked:
            _put_blocked.record(blocked, self._attrs)
            if span.is_recording():
                span.add_event(semconv.EVENT_QUEUE_BLOCKED, {semconv.QUEUE_NAME: self._name, semconv.QUEUE_BLOCKED_S: blocked})

    def _take(self) -> T:
        item, put_at, producer = self._items.popleft()
        _wake_next(self._putters)
        wait = time.perf_counter() - put_at
        self._consumers.note()
        telemetry.queue_wait.record(wait, self._attrs)
        if producer is None:
            HANDOFF.set(None)
        else:
            link = Link(producer, {semconv.QUEUE_NAME: self._name, semconv.QUEUE_WAIT_S: wait})
            HANDOFF.set(HandOff(link, get_current_span().get_span_context().span_id))
        return item

    def _drained(self) -> T:
        HANDOFF.set(None)
        if self._sentinel is _NO_SENTINEL:
            raise QueueClosed(f"queue {self._name!r} is closed and drained")
        return self._sentinel  # type: ignore[no-any-return]
