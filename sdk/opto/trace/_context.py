"""`AsyncTraceContext`: a block whose traced calls share a concurrency limit, a timeout and retries.

The context sets an ambient `Scope` (see `_scope.py`); `@async_trace` calls read it, take its slots
and count their outcomes on its `Limiter`. `run_parallel` turns each item into such a call.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeAlias, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import Span


from .. import telemetry
from .._core import (
    SCOPE, Calls, Limiter, Options, PolicyName, RetryPolicy, Scope, check_timeout, gather_in_task_group, is_traced_call,
    outcome_of, record_error, resolve_policy, running_loop, safe_repr, wrap_coroutine_function,
)
from ..telemetry import semconv

__all__ = ["AsyncTraceContext", "ContextStats", "call_source", "cancel_and_wait", "finish_span"]

T = TypeVar("T")
Item: TypeAlias = "Awaitable[T] | Callable[[], Awaitable[T]]"
_NO_RETRY = RetryPolicy(attempts=0)


@dataclass(frozen=True, slots=True, eq=False)
class _Entry:
    """One `async with` of a context: its scope, span and the tokens that undo it."""

    context: AsyncTraceContext
    scope: Scope
    span: Span
    tokens: tuple[contextvars.Token[Any], ...]


# The entries open in this task, innermost last: one context may be entered by many tasks at once.
_ENTRIES: contextvars.ContextVar[tuple[_Entry, ...]] = contextvars.ContextVar("opto_context_entries", default=())


@dataclass(frozen=True, slots=True)
class ContextStats:
    """A snapshot of the work that held a slot of an AsyncTraceContext, counted by outcome.

    `completed` ended ok; `failed` raised; `timed_out` ran out of its timeout; `retried` counts
    retries. A traced call nested in one that holds the slot runs under that slot, uncounted.
    """

    limit: int | None
    in_flight: int
    peak: int
    waiting: int
    completed: int
    failed: int
    timed_out: int
    cancelled: int
    retried: int


class AsyncTraceContext:
    """An async context manager: one span for its block, and policy every traced call in it inherits.

    One instance may be entered by many tasks at once (say, every request of a service): they share
    its limit and its statistics, and each `async with` has its own span. Every `@async_trace` call started inside the block, in this task or any task spawned inside,
    takes a slot of `max_concurrent`, gets `timeout` seconds per attempt and is retried per
    `retry_policy` ("none", "fixed", "exponential_backoff" or a `RetryPolicy`); arguments given to
    the decorator win. A context nested in another narrows the outer limits, never widens them.
    """

    def __init__(
        self,
        max_concurrent: int | None = None,
        timeout: float | None = None,
        retry_policy: RetryPolicy | PolicyName | None = None,
        name: str | None = None,
    ) -> None:
        check_timeout(timeout)
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        self.name = name or "AsyncTraceContext"
        self.timeout = timeout
        self.retry_policy = resolve_policy(retry_policy)
        self._limiter = Limiter(max_concurrent)
        self._open: list[_Entry] = []  # entries open now, in any task
        self._wrappers: dict[tuple[object, bool], Callable[[_Source], Coroutine[Any, Any, Any]]] = {}

    @property
    def max_concurrent(self) -> int | None:
        return self._limiter.limit

    def _entry(self) -> _Entry | None:
        """This context's innermost entry open in the running task, else the last one opened anywhere."""
        mine = next((e for e in reversed(_ENTRIES.get()) if e.context is self), None)
        return mine if mine is not None or not self._open else self._open[-1]

    async def __aenter__(self) -> AsyncTraceContext:
        scope = (SCOPE.get() or Scope()).narrowed(self._limiter, self.timeout, self.retry_policy)
        attrs: dict[str, Any] = {semconv.SPAN_KIND: semconv.KIND_CONTEXT}
        if self._limiter.limit is not None:
            attrs[semconv.CONCURRENCY_LIMIT] = self._limiter.limit
        if scope.timeout is not None:
            attrs[semconv.TIMEOUT_S] = float(scope.timeout)
        if scope.retry is not None:
            attrs[semconv.RETRY_MAX_ATTEMPTS] = scope.retry.attempts
        span = telemetry.TRACER.start_span(self.name, attributes=attrs)
        tokens = (SCOPE.set(scope), otel_context.attach(otel_trace.set_span_in_context(span)))
        entry = _Entry(self, scope, span, tokens)
        _ENTRIES.set(_ENTRIES.get() + (entry,))
        self._open.append(entry)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        entries = _ENTRIES.get()
        if not entries or entries[-1].context is not self:
            raise RuntimeError(f"{self.name} is exited but it is not the context entered last in this task")
        entry = entries[-1]
        _ENTRIES.set(entries[:-1])
        self._open.remove(entry)
        scope_token, otel_token = entry.tokens
        otel_context.detach(otel_token)
        SCOPE.reset(scope_token)
        span = entry.span
        stats = self.statistics()
        if span.is_recording():
            span.set_attributes(
                {
                    semconv.CONCURRENCY_PEAK: stats.peak,
                    semconv.TASKS_COMPLETED: stats.completed,
                    semconv.TASKS_FAILED: stats.failed,
                    semconv.TASKS_TIMED_OUT: stats.timed_out,
                    semconv.TASKS_CANCELLED: stats.cancelled,
                    semconv.TASKS_RETRIED: stats.retried,
                }
            )
        finish_span(span, exc)

    def statistics(self) -> ContextStats:
        """In flight, peak and waiting now, and the outcomes so far, of work that held a slot."""
        limiter = self._limiter
        done = limiter.outcomes
        return ContextStats(
            limiter.limit, limiter.in_flight, limiter.peak, limiter.waiting,
            done[semconv.OUTCOME_OK], done[semconv.OUTCOME_ERROR], done[semconv.OUTCOME_TIMEOUT],
            done[semconv.OUTCOME_CANCELLED], limiter.retried,
        )  # fmt: skip

    @property
    def stats(self) -> ContextStats:
        """The same snapshot as `statistics()`."""
        return self.statistics()

    async def run_parallel(self, items: Iterable[Item[T]], *, return_exceptions: bool = False) -> list[Any]:
        """Run `items` concurrently under this context's policy; return their results in input order.

        Items are coroutines, other awaitables, or zero-argument callables returning one. Each takes
        a slot of the limit and gets `timeout` per attempt. A callable is called again for each
        retry; a bare coroutine cannot be re-run, so it is retried only by the `@async_trace`
        function that made it. On a failure the other items are cancelled and the error raised;
        with `return_exceptions=True` failures come back in place instead.
        """
        entry = self._entry()
        if entry is None:
            raise RuntimeError(
                "run_parallel needs the context entered: call it inside `async with AsyncTraceContext(...) as ctx:`"
            )
        coros = self._coroutines(list(items))
        if not coros:
            return []
        scope = SCOPE.get()
        context = None
        if scope is None or self._limiter not in scope.limiters:  # called from outside the block
            context = contextvars.copy_context()
            context.run(SCOPE.set, entry.scope)
        loop = running_loop()
        if loop is None:  # trio, or another library anyio runs on: a task group in place of tasks
            if context is not None:  # called from outside the block
                coros = [_in_scope(coro, entry.scope) for coro in coros]
            return await gather_in_task_group(coros, return_exceptions=return_exceptions)
        tasks = [loop.create_task(coro, context=None if context is None else context.copy()) for coro in coros]
        try:
            await asyncio.wait(tasks, return_when=asyncio.ALL_COMPLETED if return_exceptions else asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:
            await cancel_and_wait(tasks)
            raise
        if not return_exceptions:
            failed = next((t for t in tasks if t.done() and (t.cancelled() or t.exception() is not None)), None)
            if failed is not None:
                await cancel_and_wait([t for t in tasks if t is not failed])
                raise _outcome(failed)
        return [_outcome(t) for t in tasks]

    def _coroutines(self, items: list[Any]) -> list[Coroutine[Any, Any, Any]]:
        """One coroutine per item, checked before any runs (nothing is left un-awaited on a bad item)."""
        coros: list[Coroutine[Any, Any, Any]] = []
        try:
            for index, item in enumerate(items):
                if inspect.isawaitable(item):
                    coros.append(item if is_traced_call(item) else self._run_item(item, None))
                elif callable(item):
                    coros.append(self._run_callable(item))
                else:
                    raise TypeError(
                        f"run_parallel item {index} is {type(item).__name__} {safe_repr(item, 200)}; pass coroutines, "
                        "awaitables, or zero-argument callables returning one (e.g. `lambda: fetch(url)`)"
                    )
        except BaseException:
            for aw in (*items, *coros):
                if inspect.iscoroutine(aw):
                    aw.close()
            raise
        return coros

    async def _run_callable(self, item: Callable[[], Awaitable[Any]]) -> Any:
        first = _awaitable(item)
        if is_traced_call(first):
            return await first  # the @async_trace function applies the scope's timeout and retries
        return await self._run_item(first, item)

    async def _run_item(self, first: Awaitable[Any], factory: Callable[[], Awaitable[Any]] | None) -> Any:
        """Run an item that is not a traced call as one (span kind "task"); retry only with a factory."""
        source = _Source(first, factory)
        try:
            return await self._wrapper(first, factory is not None)(source)
        finally:
            source.close()  # cancelled while waiting for a slot: the coroutine never ran

    def _wrapper(self, first: Awaitable[Any], retries: bool) -> Callable[[_Source], Coroutine[Any, Any, Any]]:
        """The traced wrapper for items like `first` (same code): one span per item, kind "task"."""
        key = (getattr(first, "cr_code", None) or type(first), retries)
        wrapper = self._wrappers.get(key)
        if wrapper is None:
            opts = Options(name=_label(first), retry=None if retries else _NO_RETRY, capture_args=False)
            described = cast("Callable[..., Any]", first)  # Calls reads only a coroutine's qualname and cr_code
            wrapper = wrap_coroutine_function(call_source, opts, Calls(described, opts, semconv.KIND_TASK))
            self._wrappers[key] = wrapper
        return wrapper


class _Source:
    """Hands out an item's awaitable for each attempt: the one given first, then a new one per retry."""

    __slots__ = ("first", "factory")

    def __init__(self, first: Awaitable[Any], factory: Callable[[], Awaitable[Any]] | None) -> None:
        self.first: Awaitable[Any] | None = first
        self.factory = factory

    def __call__(self) -> Coroutine[Any, Any, Any]:
        aw = self.first
        self.first = None
        if aw is None:
            assert self.factory is not None  # items without a factory are never retried
            aw = _awaitable(self.factory)
        return aw if inspect.iscoroutine(aw) else _await(aw)

    def close(self) -> None:
        if inspect.iscoroutine(self.first):
            self.first.close()


def call_source(source: Callable[[], Coroutine[Any, Any, T]]) -> Coroutine[Any, Any, T]:
    """One attempt of work run as a traced call: the wrapper calls this, and so `source`, per attempt."""
    return source()


async def _await(aw: Awaitable[T]) -> T:
    return await aw


def _awaitable(factory: Callable[[], Awaitable[T]]) -> Awaitable[T]:
    aw = factory()
    if not inspect.isawaitable(aw):
        raise TypeError(
            f"run_parallel item {safe_repr(factory, 200)} returned {type(aw).__name__}, not an awaitable; "
            "a callable item must take no arguments and return a coroutine or awaitable"
        )
    return aw


def _label(aw: Awaitable[Any]) -> str:
    return getattr(aw, "__qualname__", None) or type(aw).__qualname__


async def _in_scope(coro: Coroutine[Any, Any, Any], scope: Scope) -> Any:
    """`coro` run with `scope` as its ambient scope (a task group's task has its own context copy)."""
    SCOPE.set(scope)
    return await coro


def _outcome(task: asyncio.Task[Any]) -> Any:
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception() or task.result()


async def cancel_and_wait(tasks: Collection[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait until every one has ended, even if the caller is cancelled meanwhile.

    Their exceptions count as retrieved (no "never retrieved" log); the caller's own cancellation,
    if any, is raised once they are all done, so no task outlives the primitive that started it.
    """
    for task in tasks:
        task.cancel()
    cancelled = False
    pending = [t for t in tasks if not t.done()]
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True
        pending = [t for t in pending if not t.done()]
    for task in tasks:
        if not task.cancelled():
            task.exception()
    if cancelled:
        raise asyncio.CancelledError


def finish_span(span: Span, exc: BaseException | None) -> None:
    """End a primitive's span with its outcome: ok (also when a consumer closed it early), cancelled,
    or error with the exception recorded."""
    if span.is_recording():
        if exc is None or isinstance(exc, GeneratorExit):
            span.set_attribute(semconv.OUTCOME, semconv.OUTCOME_OK)
        else:
            outcome = outcome_of(exc)
            span.set_attribute(semconv.OUTCOME, outcome)
            if outcome != semconv.OUTCOME_CANCELLED:
                record_error(span, exc)
    span.end()
