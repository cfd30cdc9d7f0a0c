"""The hand-written OpenTelemetry wrappers the overhead benches measure OpenTrace against: what a
careful user writes with the API alone, for a coroutine function and for an async generator; and
the async generator the stream benches trace."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace

__all__ = ["ITEMS", "stream", "traced", "traced_stream", "traced_stream_detaching"]

ITEMS = 10


def stream(name: str) -> Callable[..., AsyncIterator[int]]:
    """A fresh trivial async generator of ITEMS items named `name`, taking the peers' arguments."""

    async def fn(query: str, k: int = 3) -> AsyncIterator[int]:
        for i in range(ITEMS):
            yield i

    fn.__name__ = fn.__qualname__ = name
    return fn


def traced(tracer: otel_trace.Tracer, fn: Callable[..., Awaitable[Any]], name: str | None = None) -> Callable[..., Awaitable[Any]]:
    """One `start_as_current_span` around the call."""
    name = name or fn.__qualname__

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        with tracer.start_as_current_span(name):
            return await fn(*args, **kwargs)

    return wrapper


def traced_stream(tracer: otel_trace.Tracer, fn: Callable[..., AsyncIterator[Any]], name: str | None = None) -> Callable[..., AsyncIterator[Any]]:
    """The naive generator wrapper: one span around the whole iteration, left attached across each `yield`."""
    name = name or fn.__qualname__

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        with tracer.start_as_current_span(name):
            async for item in fn(*args, **kwargs):
                yield item

    return wrapper


def traced_stream_detaching(
    tracer: otel_trace.Tracer, fn: Callable[..., AsyncIterator[Any]], name: str | None = None
) -> Callable[..., AsyncIterator[Any]]:
    """The correct generator wrapper: the span is current only while the body runs, attached and
    detached around each step, so no context is left attached across a `yield`."""
    name = name or fn.__qualname__

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        span = tracer.start_span(name)
        ctx = otel_trace.set_span_in_context(span)
        inner = fn(*args, **kwargs)
        try:
            while True:
                token = otel_context.attach(ctx)
                try:
                    item = await inner.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    otel_context.detach(token)
                yield item
        finally:
            span.end()

    return wrapper
