"""`@opto.trace` and `@opto.trace.async_trace`: which engine road a function takes, and its options."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, overload

from .._core import (
    DEFAULT_MAX_LENGTH,
    NOT_SET,
    check_options,
    for_methods_too,
    is_async_callable,
    label,
    safe_repr,
    wrap_coroutine_function,
    wrap_function,
)
from ._stream import async_stream

__all__ = ["trace", "async_trace"]

P = ParamSpec("P")
R = TypeVar("R")


@overload
def async_trace(fn: Callable[P, Coroutine[Any, Any, R]], /) -> Callable[P, Coroutine[Any, Any, R]]: ...
@overload
def async_trace(
    *,
    name: str | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    retry_attempts: int | None = None,
    retry_delay: float = ...,
    retry_max_delay: float = ...,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = ...,
    timeout: float | None = None,
    debug: bool = False,
    capture_args: bool = True,
    capture_result: bool = True,
    max_repr: int = DEFAULT_MAX_LENGTH,
    max_concurrent: int | None = None,
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]: ...
def async_trace(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    retry_attempts: int | None = None,
    retry_delay: float = NOT_SET,
    retry_max_delay: float = NOT_SET,
    retry_on: Any = NOT_SET,
    timeout: float | None = None,
    debug: bool = False,
    capture_args: bool = True,
    capture_result: bool = True,
    max_repr: int = DEFAULT_MAX_LENGTH,
    max_concurrent: int | None = None,
) -> Any:
    """Trace an `async def` function: one span per call, with optional retries, timeout and loop.

    `retry_attempts` counts retries after the first try; `retry_delay` is the base of an
    exponential backoff (x2 per retry, with jitter, capped by `retry_max_delay`); `retry_on`
    lists exception types to retry (default `RetryableError`; this decorator's own timeouts are
    always retried while attempts remain). `timeout` is per attempt. `loop` runs the body on
    that event loop. `debug` logs every step and records slow steps and creation stacks.
    `capture_args`/`capture_result` record a truncated, secret-masked `repr` (`max_repr` chars).
    `max_concurrent` limits the calls of this function running at once across the process; a
    call that waits for a slot records an `opto.slot.wait` child span.
    """
    opts = check_options(dict(
        name=name, loop=loop, retry_attempts=retry_attempts, retry_delay=retry_delay, retry_max_delay=retry_max_delay,
        retry_on=retry_on, timeout=timeout, debug=debug, capture_args=capture_args, capture_result=capture_result,
        max_repr=max_repr, max_concurrent=max_concurrent,
    ), "async_trace")

    def decorate(func: Any) -> Any:
        if inspect.isasyncgenfunction(func):
            raise TypeError(
                f"async_trace cannot wrap async generator function {label(func)}: "
                "use @opto.trace.async_stream for async generators"
            )
        if not is_async_callable(func):
            raise TypeError(
                f"async_trace needs an 'async def' function, got {label(func)}: "
                "use @opto.trace for a plain function"
            )
        return wrap_coroutine_function(func, opts)

    traced = for_methods_too(decorate, "async_trace")
    return traced if fn is None else traced(fn)


@overload
def trace(fn: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def trace(
    *,
    name: str | None = None,
    retry_attempts: int | None = None,
    retry_delay: float = ...,
    retry_max_delay: float = ...,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = ...,
    debug: bool = False,
    capture_args: bool = True,
    capture_result: bool = True,
    max_repr: int = DEFAULT_MAX_LENGTH,
    timeout: float | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    max_concurrent: int | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
def trace(fn: Any = None, /, **options: Any) -> Any:
    """Trace a function: one span per call. `async def` functions get `async_trace`,
    async generator functions `async_stream`; `timeout` and `loop` apply to those only."""

    def decorate(func: Any) -> Any:
        if is_async_callable(func):
            return async_trace(func, **options)
        if inspect.isasyncgenfunction(func):
            return async_stream(func, **options)
        if not callable(func):
            raise TypeError(f"@opto.trace decorates a function, got {type(func).__name__} {safe_repr(func, 200)}")
        if inspect.isgeneratorfunction(func):
            raise TypeError(
                f"@opto.trace cannot trace generator function {label(func)}: its call only makes the generator, "
                "so the span would end before the body runs; make it an 'async def' generator "
                "(traced with @opto.trace.async_stream), or trace the function that consumes it"
            )
        if options.get("max_concurrent") is not None:
            raise TypeError(
                f"max_concurrent= needs an async function: a sync call cannot wait for a slot without "
                f"blocking its thread; make {label(func)} 'async def'"
            )
        for option in ("timeout", "loop"):
            if options.get(option) is not None:
                raise TypeError(
                    f"{option}= needs an async function: a running sync call cannot be interrupted "
                    f"or moved to another loop; make {label(func)} 'async def' and use @opto.trace.async_trace"
                )
        return wrap_function(func, check_options(options))

    traced = for_methods_too(decorate, "@opto.trace")
    return traced if fn is None else traced(fn)
