"""`AsyncBatchProcessor`: stream items through a handler in batches, a few batches at a time.

Input is read lazily, one batch ahead of the free slots, so memory stays flat however long the
stream is. Each batch is a traced call of the handler (span kind "task", retries and timeout from
the shared `RetryPolicy` machinery) under the run's span (kind "batch"), which records the totals.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar, cast, overload

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import Span

from .. import telemetry
from .._core import (
    SCOPE, Calls, Limiter, Options, PolicyName, RetryPolicy, Scope, check_timeout, in_thread, resolve_policy, running_loop,
    safe_repr, wrap_coroutine_function,
)
from ..telemetry import semconv
from ._context import call_source, cancel_and_wait, finish_span

__all__ = ["AsyncBatchProcessor", "BatchResult"]

T = TypeVar("T")
R = TypeVar("R")
Handler: TypeAlias = "Callable[[list[T]], Awaitable[R]] | Callable[[list[T]], R]"
_END = object()


@dataclass(frozen=True, slots=True)
class BatchResult(Generic[T, R]):
    """One batch's outcome: its `items`, the handler's `result` or the final `error`, and how it went.

    `index` is the batch's position in the input (0-based); `attempts` counts handler calls
    (retries included); `duration_s` runs from the batch's start to its last attempt's end.
    """

    index: int
    items: list[T]
    result: R | None
    error: BaseException | None
    attempts: int
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class _ReadError:
    error: BaseException


class AsyncBatchProcessor(Generic[T, R]):
    """Groups a stream into batches of `batch_size` and runs `handler` on at most `max_concurrent` at once.

    `handler` (an `async def`, or a plain function, which runs in a worker thread) takes a list of
    items; without one, each batch is its own result. `max_wait` (seconds) flushes a partial
    batch when a slow async stream has not filled it in time. A failing batch is retried per
    `retry_policy`, each attempt limited to `timeout` (either, when not given, the enclosing
    AsyncTraceContext's), then reported in its result, or raised when `raise_on_error` is true. Results come as they
    complete, or in input order with `ordered=True`.
    """

    # One overload per kind of handler, so a type checker infers T and R from it: an async handler's
    # result is what it awaits to; without a handler, each batch (a list of T) is its own result.
    @overload
    def __init__(
        self,
        batch_size: int = 100,
        max_concurrent: int = 10,
        *,
        handler: Callable[[list[T]], Awaitable[R]],
        max_wait: float | None = None,
        ordered: bool = False,
        retry_policy: RetryPolicy | PolicyName | None = None,
        timeout: float | None = None,
        raise_on_error: bool = False,
        name: str | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        batch_size: int = 100,
        max_concurrent: int = 10,
        *,
        handler: Callable[[list[T]], R],
        max_wait: float | None = None,
        ordered: bool = False,
        retry_policy: RetryPolicy | PolicyName | None = None,
        timeout: float | None = None,
        raise_on_error: bool = False,
        name: str | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self: AsyncBatchProcessor[T, list[T]],
        batch_size: int = 100,
        max_concurrent: int = 10,
        *,
        handler: None = None,
        max_wait: float | None = None,
        ordered: bool = False,
        retry_policy: RetryPolicy | PolicyName | None = None,
        timeout: float | None = None,
        raise_on_error: bool = False,
        name: str | None = None,
    ) -> None: ...
    def __init__(
        self,
        batch_size: int = 100,
        max_concurrent: int = 10,
        *,
        handler: Handler[T, R] | None = None,
        max_wait: float | None = None,
        ordered: bool = False,
        retry_policy: RetryPolicy | PolicyName | None = None,
        timeout: float | None = None,
        raise_on_error: bool = False,
        name: str | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError(f"max_concurrent must be an int >= 1 (batches run at once), got {max_concurrent!r}")
        check_timeout(max_wait, "max_wait")
        check_timeout(timeout)
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        self.batch_size = batch_size
        self.max_concurrent = max_concurrent
        self.handler = _checked_handler(handler)
        self.max_wait = max_wait
        self.ordered = bool(ordered)
        self.retry_policy = resolve_policy(retry_policy)
        self.timeout = timeout
        self.raise_on_error = bool(raise_on_error)
        self.name = name or "AsyncBatchProcessor"

    def process(
        self, data: Iterable[T] | AsyncIterable[T], handler: Handler[T, R] | None = None
    ) -> AsyncGenerator[BatchResult[T, R], None]:
        """Batch `data` (a sync or async iterable) and yield each batch's `BatchResult`.

        `handler` replaces the constructor's for this run. Breaking out of the loop (or closing
        the iterator) cancels the batches in flight and closes the input.
        """
        if not isinstance(data, (Iterable, AsyncIterable)):
            raise TypeError(f"process() needs an iterable or async iterable of items, got {type(data).__name__}")
        handler = _checked_handler(handler) or self.handler
        return self._results(data, handler)

    async def _results(
        self, data: Iterable[T] | AsyncIterable[T], handler: Handler[T, R] | None
    ) -> AsyncGenerator[BatchResult[T, R], None]:
        attrs: dict[str, Any] = {
            semconv.SPAN_KIND: semconv.KIND_BATCH,
            semconv.BATCH_SIZE: self.batch_size,
            semconv.CONCURRENCY_LIMIT: self.max_concurrent,
        }
        span = telemetry.TRACER.start_span(self.name, attributes=attrs)
        run = _Run(self, handler, span)
        loop = running_loop()
        if loop is None:  # trio, or another library anyio runs on
            results = run.in_turn(data)
            try:
                async for result in results:
                    yield result
            finally:
                await results.aclose()
            return
        reader = loop.create_task(run.read(data))
        error: BaseException | None = None
        ended = False
        yielded = 0
        held: dict[int, BatchResult[T, R]] = {}  # ordered=True: results waiting for their turn
        try:
            while not (ended and yielded == run.launched):
                message = await run.done.get()
                if message is _END:
                    ended = True
                    continue
                if isinstance(message, _ReadError):
                    raise message.error
                if message.error is not None and self.raise_on_error:
                    raise message.error
                held[message.index] = message
                for result in _ready(held, yielded, self.ordered):
                    yielded += 1
                    run.window.release()  # handed on: the reader may read one more batch
                    yield result
        except BaseException as exc:
            error = exc
            raise
        finally:
            await cancel_and_wait([reader, *run.tasks])
            run.finish(error)


def _cancelled_here() -> bool:
    """Whether the running task is being cancelled, as against a CancelledError it merely met."""
    task = asyncio.current_task() if running_loop() is not None else None
    return task is None or task.cancelling() > 0


class _Run:
    """The state of one `process()` run: reader, batches in flight, results waiting to be yielded."""

    def __init__(self, proc: AsyncBatchProcessor[Any, Any], handler: Handler[Any, Any] | None, span: Span) -> None:
        self.proc = proc
        self.span = span
        self.limiter = Limiter(proc.max_concurrent)
        self.scope = (SCOPE.get() or Scope()).narrowed(self.limiter, None, None)
        self.window = asyncio.Semaphore(proc.max_concurrent)  # batches read but not yet yielded
        self.done: asyncio.Queue[Any] = asyncio.Queue()
        self.tasks: set[asyncio.Task[None]] = set()
        self.launched = 0
        self.items = 0
        opts = Options(
            name=getattr(handler, "__qualname__", None) or f"{proc.name}.batch",
            retry=proc.retry_policy, timeout=proc.timeout, capture_args=False,
        )  # fmt: skip
        self.call = _batch_call(handler)
        self.traced = wrap_coroutine_function(call_source, opts, Calls(handler or _identity, opts, semconv.KIND_TASK))

    async def read(self, data: Iterable[Any] | AsyncIterable[Any]) -> None:
        """Read the input batch by batch, each once a window slot is free, and start each batch."""
        token = otel_context.attach(otel_trace.set_span_in_context(self.span))  # the input's spans nest in the run
        source = _AsyncSource(aiter(data), self.proc) if isinstance(data, AsyncIterable) else _SyncSource(iter(data))
        size = self.proc.batch_size
        try:
            while not source.exhausted:
                await self.window.acquire()
                batch = await source.take(size)
                if not batch:
                    break
                self._launch(batch)
            self.done.put_nowait(_END)
        except Exception as exc:
            self.done.put_nowait(_ReadError(exc))
        except asyncio.CancelledError as exc:
            if _cancelled_here():
                raise
            self.done.put_nowait(_ReadError(exc))  # the input's own: something it awaited was cancelled
        finally:
            await source.close()
            otel_context.detach(token)

    def _launch(self, items: list[Any]) -> None:
        index = self.launched
        self.launched += 1
        self.items += len(items)
        task = asyncio.get_running_loop().create_task(self._batch(index, items))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def in_turn(self, data: Iterable[Any] | AsyncIterable[Any]) -> AsyncGenerator[BatchResult[Any, Any], None]:
        """The run where asyncio does not run the caller (trio): one batch at a time, in input order,
        `max_wait` not applied; the run's span is current only while a batch is read or handled."""
        source = _AsyncSource(aiter(data), None) if isinstance(data, AsyncIterable) else _SyncSource(iter(data))
        context = otel_trace.set_span_in_context(self.span)
        error: BaseException | None = None
        try:
            while not source.exhausted:
                token = otel_context.attach(context)
                try:
                    batch = await source.take(self.proc.batch_size)
                    result = await self._result(self.launched, batch) if batch else None
                finally:
                    otel_context.detach(token)
                if result is None:
                    break
                self.launched += 1
                self.items += len(batch)
                if result.error is not None and self.proc.raise_on_error:
                    raise result.error
                yield result
        except BaseException as exc:
            error = exc
            raise
        finally:
            await source.close()
            self.finish(error)

    async def _batch(self, index: int, items: list[Any]) -> None:
        self.done.put_nowait(await self._result(index, items))

    async def _result(self, index: int, items: list[Any]) -> BatchResult[Any, Any]:
        attempts = 0

        def attempt() -> Coroutine[Any, Any, Any]:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                span = otel_trace.get_current_span()  # the batch's span, current inside the call
                if span.is_recording():
                    span.set_attributes({semconv.BATCH_INDEX: index, semconv.BATCH_SIZE: len(items)})
            return self.call(items)

        token = SCOPE.set(self.scope)
        t0 = time.perf_counter()
        error: BaseException | None
        try:
            result, error = await self.traced(attempt), None
        except Exception as exc:
            result, error = None, exc
        except asyncio.CancelledError as exc:
            if _cancelled_here():
                raise
            result, error = None, exc  # the handler's own: something it awaited was cancelled
        finally:
            SCOPE.reset(token)
        return BatchResult(index, items, result, error, attempts, time.perf_counter() - t0)

    def finish(self, error: BaseException | None) -> None:
        limiter = self.limiter
        done = limiter.outcomes
        if self.span.is_recording():
            self.span.set_attributes(
                {
                    semconv.STREAM_CLOSED_EARLY: isinstance(error, GeneratorExit),
                    semconv.BATCH_COUNT: self.launched,
                    semconv.BATCH_ITEMS: self.items,
                    semconv.CONCURRENCY_PEAK: limiter.peak,
                    semconv.TASKS_COMPLETED: done[semconv.OUTCOME_OK],
                    semconv.TASKS_FAILED: done[semconv.OUTCOME_ERROR],
                    semconv.TASKS_TIMED_OUT: done[semconv.OUTCOME_TIMEOUT],
                    semconv.TASKS_CANCELLED: done[semconv.OUTCOME_CANCELLED],
                    semconv.TASKS_RETRIED: limiter.retried,
                }
            )
        finish_span(self.span, error)


class _SyncSource:
    """Batches from a sync iterator; closing closes a generator given as input."""

    def __init__(self, it: Iterator[Any]) -> None:
        self.it = it
        self.exhausted = False

    async def take(self, size: int) -> list[Any]:
        batch = list(itertools.islice(self.it, size))
        self.exhausted = len(batch) < size
        return batch

    async def close(self) -> None:
        close = getattr(self.it, "close", None)
        if close is not None:
            close()


class _AsyncSource:
    """Batches from an async iterator; with `max_wait`, a partial batch is flushed when the stream is slow.

    To wait with a deadline without cancelling the stream mid-item, the next item is read in its
    own task, which a timed-out wait leaves running for the next batch.
    """

    def __init__(self, it: AsyncIterator[Any], proc: AsyncBatchProcessor[Any, Any] | None) -> None:
        self.it = it
        self.max_wait = proc.max_wait if proc is not None else None
        self.exhausted = False
        self.next: asyncio.Task[Any] | None = None

    async def take(self, size: int) -> list[Any]:
        batch: list[Any] = []
        if self.max_wait is None:
            anext_ = self.it.__anext__
            try:
                while len(batch) < size:
                    batch.append(await anext_())
            except StopAsyncIteration:
                self.exhausted = True
            return batch
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while len(batch) < size:
            if self.next is None:
                self.next = loop.create_task(_next_or_end(self.it))
            wait = None if deadline is None else deadline - loop.time()
            done, _ = await asyncio.wait((self.next,), timeout=wait)
            if not done:
                break  # max_wait passed since this batch's first item: flush what there is
            item, self.next = self.next.result(), None
            if item is _END:
                self.exhausted = True
                break
            batch.append(item)
            if deadline is None:
                deadline = loop.time() + self.max_wait
        return batch

    async def close(self) -> None:
        if self.next is not None:
            await cancel_and_wait([self.next])
        aclose = getattr(self.it, "aclose", None)
        if aclose is not None:
            await aclose()


def _ready(held: dict[int, BatchResult[T, R]], yielded: int, ordered: bool) -> Iterator[BatchResult[T, R]]:
    """The held results that may go out now: any (unordered), or the next ones in input order."""
    if not ordered:
        yield from [held.pop(i) for i in list(held)]
        return
    while yielded in held:
        yield held.pop(yielded)
        yielded += 1


async def _next_or_end(it: AsyncIterator[Any]) -> Any:
    try:
        return await it.__anext__()
    except StopAsyncIteration:
        return _END


async def _identity(items: list[T]) -> list[T]:
    return items


def _batch_call(handler: Handler[Any, Any] | None) -> Callable[[list[Any]], Coroutine[Any, Any, Any]]:
    """How one attempt calls the handler: directly when async, in a worker thread when plain."""
    if handler is None:
        return _identity
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(getattr(handler, "__call__", None)):
        return cast("Callable[[list[Any]], Coroutine[Any, Any, Any]]", handler)
    return lambda items: in_thread(handler, items)


def _checked_handler(handler: Any) -> Any:
    if handler is not None and not callable(handler):
        raise TypeError(f"handler must be a function taking a list of items, got {type(handler).__name__} {safe_repr(handler, 200)}")
    if inspect.isasyncgenfunction(handler):
        raise TypeError("handler must return one result per batch, not be an async generator; use `async def` with `return`")
    return handler
