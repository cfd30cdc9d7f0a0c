"""The engine's road for async generators: one span per run, current only while the body runs."""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from ..telemetry import attach, recording, undo, with_span
from ..telemetry import current as current_context
from ..telemetry.semconv import OUTCOME_OK, STREAM_CLOSED_EARLY, STREAM_FIRST_ITEM_S, STREAM_ITEMS
from . import debug as _debug
from .engine import Calls
from .loops import running_loop, running_task
from .options import Options
from .outcome import outcome_of

__all__ = ["wrap_async_generator_function"]

P = ParamSpec("P")
Y = TypeVar("Y")
S = TypeVar("S")


def wrap_async_generator_function(fn: Callable[P, AsyncGenerator[Y, S]], opts: Options) -> Callable[P, AsyncGenerator[Y, S]]:
    """The traced wrapper of an async generator function; the run ends as its `Call` does."""
    calls = Calls(fn, opts, "stream")
    debug = opts.debug
    switch = _debug.switch
    keep = opts.capture_result

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[Y, S]:
        # Runs from the first __anext__: that is when the span starts, under the consumer's span.
        inner = fn(*args, **kwargs)
        now = recording()
        if now is None or debug or switch.on:
            call = calls.begin(args, kwargs, running_task(), current=False)
            if call.debug and (loop := running_loop()) is not None:
                _debug.enable_loop_debug(loop)
            span = call.span
            ctx = with_span(current_context(), span) if span.get_span_context().is_valid else None
        else:  # a configured provider's span, made current per step as start_as_current_span would
            parent = current_context()
            call = calls.open(now, parent, args, kwargs, running_task(), current=False)
            ctx = with_span(parent, call.span)
        asend = inner.asend
        items = 0
        first: float | None = None
        last: Any = None
        step = _first_step(inner)
        try:
            while True:
                # The body's context is current only while the body runs: attached and detached
                # within one step of the consumer's task, never across a yield. What the body made
                # current (a span it holds open across its yields) is kept for its next step.
                token = attach(ctx) if ctx is not None else None
                try:
                    item = await step
                finally:
                    if token is not None:
                        ctx = current_context()
                        undo(token)  # attached in this same step of this task: cannot fail
                if not items:
                    first = time.perf_counter() - call.t0
                items += 1
                if keep:
                    last = item
                try:
                    step = asend((yield item))
                except GeneratorExit:
                    raise
                except BaseException as exc:  # athrow(): forwarded into the body
                    step = inner.athrow(exc)
        except StopAsyncIteration:
            call.end(OUTCOME_OK, last, _facts(items, first, False))
        except GeneratorExit:
            # aclose(), a consumer's break, or the loop finalizing an abandoned generator.
            facts = _facts(items, first, True)
            token = attach(ctx) if ctx is not None else None
            try:
                await inner.aclose()
            except BaseException as exc:  # the body's cleanup failed or was cancelled
                call.end(outcome_of(exc), exc, facts)
                raise
            finally:
                if token is not None:
                    undo(token)
            call.end(OUTCOME_OK, last, facts)
            raise
        except BaseException as exc:
            call.end(outcome_of(exc), exc, _facts(items, first, None))
            raise

    return wrapper


def _first_step(inner: AsyncGenerator[Any, Any]) -> Awaitable[Any]:
    """The body's first step, made without the event loop's first-iteration hook: the loop then
    knows only the wrapper, and at its shutdown closes the wrapper, which closes the body, instead
    of closing both at once ("aclose(): asynchronous generator is already running")."""
    firstiter, finalizer = sys.get_asyncgen_hooks()
    if firstiter is None:
        return inner.asend(None)
    sys.set_asyncgen_hooks(None, finalizer)
    try:
        return inner.asend(None)
    finally:
        sys.set_asyncgen_hooks(firstiter, finalizer)


def _facts(items: int, first: float | None, closed_early: bool | None) -> dict[str, Any]:
    """What a run's span says about its items: how many, how soon the first, whether it was cut short."""
    facts: dict[str, Any] = {STREAM_ITEMS: items}
    if first is not None:
        facts[STREAM_FIRST_ITEM_S] = first
    if closed_early is not None:
        facts[STREAM_CLOSED_EARLY] = closed_early
    return facts
