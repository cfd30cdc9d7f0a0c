"""A traced function's options, checked once at decoration time by the same rules for every decorator."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .capture import DEFAULT_MAX_LENGTH, safe_repr
from .retry import RetryPolicy

__all__ = ["Options", "OPTION_NAMES", "NOT_SET", "check_options", "check_timeout", "label", "span_name", "for_methods_too", "is_async_callable"]

NOT_SET: Any = object()  # an option not given (retry_delay and the like have no None meaning)


@dataclass(frozen=True, slots=True)
class Options:
    """A traced function's settings, checked once at decoration time."""

    name: str | None = None
    loop: asyncio.AbstractEventLoop | None = None
    retry: RetryPolicy | None = None
    timeout: float | None = None
    debug: bool = False
    capture_args: bool = True
    capture_result: bool = True
    max_repr: int = DEFAULT_MAX_LENGTH
    max_concurrent: int | None = None  # calls of this function at once, across the process


_DEFAULTS: dict[str, Any] = dict(
    name=None, loop=None, retry_attempts=None, retry_delay=NOT_SET, retry_max_delay=NOT_SET,
    retry_on=NOT_SET, timeout=None, debug=False, capture_args=True, capture_result=True,
    max_repr=DEFAULT_MAX_LENGTH, max_concurrent=None,
)
OPTION_NAMES = tuple(_DEFAULTS)  # the keyword options of @opto.trace and @opto.trace.async_trace


def check_options(given: Mapping[str, Any], who: str = "@opto.trace") -> Options:
    """Check the keyword options `given` to `who` and turn them into `Options`; unknown ones raise."""
    unknown = set(given) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"{who} got unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(_DEFAULTS)}")
    o = {**_DEFAULTS, **given}
    name, loop, timeout, max_repr = o["name"], o["loop"], o["timeout"], o["max_repr"]
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"name must be a non-empty str, got {safe_repr(name, 200)}")
    if loop is not None and not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(f"loop must be an asyncio event loop, got {type(loop).__name__}")
    check_timeout(timeout)
    if isinstance(max_repr, bool) or not isinstance(max_repr, int) or max_repr < 8:
        raise ValueError(f"max_repr must be an int >= 8, got {safe_repr(max_repr, 200)}")
    limit = o["max_concurrent"]
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"max_concurrent must be an int >= 1 (or None for no limit), got {safe_repr(limit, 200)}")
    return Options(
        name, loop, _retry(o), timeout, bool(o["debug"]), bool(o["capture_args"]), bool(o["capture_result"]), max_repr,
        limit,
    )


def _retry(o: dict[str, Any]) -> RetryPolicy | None:
    attempts = o["retry_attempts"]
    tuning = {k: o[k] for k in ("retry_delay", "retry_max_delay", "retry_on") if o[k] is not NOT_SET}
    if attempts is None:
        if tuning:
            raise TypeError(f"{', '.join(tuning)} has no effect without retry_attempts=N; add retry_attempts")
        return None
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        raise TypeError(f"retry_attempts must be an int, got {safe_repr(attempts, 200)}")
    if attempts < 0:
        raise ValueError(f"retry_attempts must be >= 0 (retries after the first try), got {attempts}")
    kwargs: dict[str, Any] = {"attempts": attempts}
    if "retry_delay" in tuning:
        kwargs["delay"] = tuning["retry_delay"]
    if "retry_max_delay" in tuning:
        kwargs["max_delay"] = tuning["retry_max_delay"]
    if "retry_on" in tuning:
        retry_on = tuning["retry_on"]
        kwargs["retry_on"] = (retry_on,) if isinstance(retry_on, type) else tuple(retry_on)
    return RetryPolicy(**kwargs)


def check_timeout(timeout: float | None, what: str = "timeout") -> None:
    """Reject a duration that is not a positive number of seconds (None means none)."""
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"{what} must be a number of seconds, got {safe_repr(timeout, 200)}")
        if not timeout > 0:
            raise ValueError(f"{what} must be > 0 seconds, got {timeout!r}")


def label(func: Any) -> str:
    """How an error message names a function (or whatever was passed in its place)."""
    name = getattr(func, "__qualname__", None)
    return name if isinstance(name, str) and name else safe_repr(func, 200)


def span_name(func: Any) -> str:
    """A traced callable's span name: its `__qualname__`, a partial's function's, or an instance's class's."""
    while isinstance(func, functools.partial):
        func = func.func
    name = getattr(func, "__qualname__", None)
    return name if isinstance(name, str) and name else type(func).__qualname__


def is_async_callable(func: Any) -> bool:
    """An `async def` function (or a partial of one), or an object whose `__call__` is one."""
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(type(func), "__call__", None))


def for_methods_too(decorate: Callable[[Any], Any], decorator: str) -> Callable[[Any], Any]:
    """`decorate`, also applied above `@staticmethod` or `@classmethod` (to the function inside,
    keeping the method kind); a class is refused, since its calls are its constructor's."""

    def outer(func: Any) -> Any:
        if isinstance(func, (staticmethod, classmethod)):
            return type(func)(decorate(func.__func__))
        if inspect.isclass(func):
            raise TypeError(f"{decorator} decorates a function, got class {label(func)}: decorate its methods instead")
        return decorate(func)

    return outer
