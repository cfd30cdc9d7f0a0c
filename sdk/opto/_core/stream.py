"""The engine's road for async generators: one span per run, current only while the body runs."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any, ParamSpec, TypeVar

from opentelemetry import trace as otel_trace

from .. import telemetry
from ..telemetry import add_attributes, semconv
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

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[Y, S]:
        # Runs from the first __anext__: that is when the span starts, under the consumer's span.
        inner = fn(*args, **kwargs)
        call = calls.begin(args, kwargs, running_task(), current=False)
        if call.debug and (loop := running_loop()) is not None:
            _debug.enable_loop_debug(loop)
        span = call.span
        ctx = otel_trace.set_span_in_context(span) if span.get_span_context().is_valid else None
        items = 0
        last: Any = None
        sent: Any = None
        thrown: BaseException | None = None
        try:
            while True:
                # The span is current only while the body runs: attached and detached within one
                # step of the consumer's task, never across a yield.
                token = telemetry.attach(ctx) if ctx is not None else None
                try:
                    item = await (inner.asend(sent) if thrown is None else inner.athrow(thrown))
                finally:
                    if token is not None:
                        telemetry.detach(token)
                if not items and span.is_recording():
                    add_attributes(span, {semconv.STREAM_FIRST_ITEM_S: time.perf_counter() - call.t0})
                items += 1
                if opts.capture_result:
                    last = item
                try:
                    sent, thrown = (yield item), None
                except GeneratorExit:
                    raise
                except BaseException as exc:  # athrow(): forwarded into the body
                    sent, thrown = None, exc
        except StopAsyncIteration:
            call.end(semconv.OUTCOME_OK, last, {semconv.STREAM_ITEMS: items, semconv.STREAM_CLOSED_EARLY: False})
        except GeneratorExit:
            # aclose(), a consumer's break, or the loop finalizing an abandoned generator.
            more = {semconv.STREAM_ITEMS: items, semconv.STREAM_CLOSED_EARLY: True}
            token = telemetry.attach(ctx) if ctx is not None else None
            try:
                await inner.aclose()
            except BaseException as exc:  # the body's cleanup failed or was cancelled
                call.end(outcome_of(exc), exc, more)
                raise
            finally:
                if token is not None:
                    telemetry.detach(token)
            call.end(semconv.OUTCOME_OK, last, more)
            raise
        except BaseException as exc:
            call.end(outcome_of(exc), exc, {semconv.STREAM_ITEMS: items})
            raise

    return wrapper
