"""`@opto.trace.async_stream`: one span per run of an async generator, current only while its body runs."""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, ParamSpec, TypeVar, overload

from opentelemetry import trace as otel_trace

from ..telemetry import _current, _facade, semconv
from ..telemetry._attributes import add_attributes
from . import _debug
from ._capture import DEFAULT_MAX_LENGTH
from ._decorator import Options, _Calls, _label, _options_from
from ._outcome import failed_outcome

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


def _wrap_async_generator_function(
    fn: Callable[P, AsyncGenerator[Y, S]], opts: Options
) -> Callable[P, AsyncGenerator[Y, S]]:
    calls = _Calls(fn, opts, "stream")

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[Y, S]:
        # Runs from the first __anext__: that is when the span starts, under the consumer's span.
        inner = fn(*args, **kwargs)
        debug = opts.debug or _debug._enabled
        if debug:
            _debug.enable_loop_debug(asyncio.get_running_loop())
        t0 = time.perf_counter()
        span = calls.start(_facade.tracer(), args, kwargs, debug, asyncio.current_task())
        ctx = otel_trace.set_span_in_context(span) if span.get_span_context().is_valid else None
        items = 0
        last: Any = None
        sent: Any = None
        thrown: BaseException | None = None
        try:
            while True:
                # The span is current only while the body runs: attached and detached within one
                # step of the consumer's task, never across a yield.
                token = _current.attach(ctx) if ctx is not None else None
                try:
                    item = await (inner.asend(sent) if thrown is None else inner.athrow(thrown))
                finally:
                    if token is not None:
                        _current.detach(token)
                if not items and span.is_recording():
                    add_attributes(span, {semconv.STREAM_FIRST_ITEM_S: time.perf_counter() - t0})
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
            calls.finish(span, t0, semconv.OUTCOME_OK, 1, last, debug=debug, more={semconv.STREAM_ITEMS: items, semconv.STREAM_CLOSED_EARLY: False})
        except GeneratorExit:
            # aclose(), a consumer's break, or the loop finalizing an abandoned generator.
            more = {semconv.STREAM_ITEMS: items, semconv.STREAM_CLOSED_EARLY: True}
            token = _current.attach(ctx) if ctx is not None else None
            try:
                await inner.aclose()
            except BaseException as exc:  # the body's cleanup failed or was cancelled
                calls.finish(span, t0, failed_outcome(exc), 1, exc=exc, debug=debug, more=more)
                raise
            finally:
                if token is not None:
                    _current.detach(token)
            calls.finish(span, t0, semconv.OUTCOME_OK, 1, last, debug=debug, more=more)
            raise
        except BaseException as exc:
            calls.finish(span, t0, failed_outcome(exc), 1, exc=exc, debug=debug, more={semconv.STREAM_ITEMS: items})
            raise

    return wrapper


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
    opts = _options_from(
        dict(name=name, debug=debug, capture_args=capture_args, capture_result=capture_result, max_repr=max_repr)
    )

    def decorate(func: Any) -> Any:
        if inspect.iscoroutinefunction(func):
            raise TypeError(
                f"async_stream needs an async generator function (with 'yield'), got coroutine function "
                f"{_label(func)}: use @opto.trace.async_trace for it"
            )
        if not inspect.isasyncgenfunction(func):
            raise TypeError(
                f"async_stream needs an async generator function ('async def' with 'yield'), got {_label(func)}: "
                "use @opto.trace for a plain function"
            )
        return _wrap_async_generator_function(func, opts)

    return decorate if fn is None else decorate(fn)
