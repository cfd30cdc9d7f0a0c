"""`@opto.trace.async_stream`: one span per run of an async generator, current only while its body runs."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any, ParamSpec, TypeVar, overload

from .._core import DEFAULT_MAX_LENGTH, check_options, for_methods_too, label, wrap_async_generator_function

__all__ = ["async_stream"]

P = ParamSpec("P")
Y = TypeVar("Y")
S = TypeVar("S")
# The generator type as the user annotated it (AsyncIterator[Y] or AsyncGenerator[Y, S]), kept as is.
G = TypeVar("G", bound=AsyncIterator[Any])

_RETRY_WHY = (
    "items already yielded cannot be taken back, so a stream is never re-run; "
    "give retry_attempts= to the @async_trace calls inside the generator"
)
_NO_MEANING_FOR_A_STREAM = {
    "timeout": (
        "a stream has no single await to bound; wrap the consumer's loop in "
        "'async with asyncio.timeout(...)' or give timeout= to the @async_trace calls inside the generator"
    ),
    "loop": (
        "an async generator runs on the loop of whoever iterates it; iterate it there, "
        "or give loop= to the @async_trace calls inside the generator"
    ),
    "retry_attempts": _RETRY_WHY,
    "retry_delay": _RETRY_WHY,
    "retry_max_delay": _RETRY_WHY,
    "retry_on": _RETRY_WHY,
    "max_concurrent": "a stream holds no slot while its consumer runs; limit the @async_trace calls inside it",
}


def _check_options(options: dict[str, Any]) -> None:
    for option in options:
        why = _NO_MEANING_FOR_A_STREAM.get(option)
        if why is not None:
            raise TypeError(f"{option}= does not apply to @async_stream: {why}")
    raise TypeError(
        f"async_stream got unknown option(s) {', '.join(sorted(options))}; "
        "known: name, debug, capture_args, capture_result, max_repr"
    )


@overload
def async_stream(fn: Callable[P, G], /) -> Callable[P, G]: ...
@overload
def async_stream(
    *,
    name: str | None = None,
    debug: bool = False,
    capture_args: bool = True,
    capture_result: bool = True,
    max_repr: int = DEFAULT_MAX_LENGTH,
) -> Callable[[Callable[P, G]], Callable[P, G]]: ...
def async_stream(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    debug: bool = False,
    capture_args: bool = True,
    capture_result: bool = True,
    max_repr: int = DEFAULT_MAX_LENGTH,
    **unsupported: Any,
) -> Any:
    """Trace an async generator function: one span per run, from the first item asked for to the end.

    The run ends on exhaustion, `aclose()` (a consumer's `break`), error, cancellation, or garbage
    collection of an abandoned generator. `capture_result` records the last item yielded.
    `timeout`, `loop` and retries have no meaning for a stream and raise TypeError saying why.
    """
    if unsupported:
        _check_options(unsupported)
    opts = check_options(
        dict(name=name, debug=debug, capture_args=capture_args, capture_result=capture_result, max_repr=max_repr),
        "async_stream",
    )

    def decorate(func: Any) -> Any:
        if inspect.iscoroutinefunction(func):
            raise TypeError(
                f"async_stream needs an async generator function (with 'yield'), got coroutine function "
                f"{label(func)}: use @opto.trace.async_trace for it"
            )
        if not inspect.isasyncgenfunction(func):
            raise TypeError(
                f"async_stream needs an async generator function ('async def' with 'yield'), got {label(func)}: "
                "use @opto.trace for a plain function"
            )
        return wrap_async_generator_function(func, opts)

    traced = for_methods_too(decorate, "async_stream")
    return traced if fn is None else traced(fn)
