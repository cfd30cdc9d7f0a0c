"""How a failure reads on a span, the same for every primitive: its outcome and its error."""

from __future__ import annotations

import asyncio

from opentelemetry.trace import Span, Status, StatusCode

from ..telemetry import semconv
from .capture import exception_stacktrace, exception_text

__all__ = ["outcome_of", "qualified_type", "record_error"]

_EXCEPTION_EVENT = "exception"  # OpenTelemetry's event name, with its exception.* attributes


def outcome_of(exc: BaseException, timed_out: bool = False) -> str:
    """The outcome of a call that raised `exc`, for every primitive: `cancelled` for a cancellation
    (asyncio's or trio's; never an error), `timeout` when the call's own deadline expired
    (`timed_out`), else `error`."""
    if issubclass(type(exc), asyncio.CancelledError) or _trio_cancelled(exc):
        return semconv.OUTCOME_CANCELLED
    return semconv.OUTCOME_TIMEOUT if timed_out else semconv.OUTCOME_ERROR


def _trio_cancelled(exc: BaseException) -> bool:
    """trio's Cancelled, known by name: the SDK does not import trio."""
    t = type(exc)
    return type_name(t) == "Cancelled" and type_module(t).startswith("trio")


_QUALNAME = type.__dict__["__qualname__"]
_MODULE = type.__dict__["__module__"]


def type_name(t: type) -> str:
    """`t.__qualname__`, read past any metaclass, which could raise or lie."""
    return _QUALNAME.__get__(t, type)  # type: ignore[no-any-return]


def type_module(t: type) -> str:
    """`t.__module__`, read the same way."""
    module = _MODULE.__get__(t, type)
    return module if isinstance(module, str) else ""


def qualified_type(exc: BaseException) -> str:
    """`exception.type` as OpenTelemetry's exception events write it: module and name, builtins bare."""
    t = type(exc)
    name, module = type_name(t), type_module(t)
    return f"{module}.{name}" if module and module != "builtins" else name


def record_error(span: Span, exc: BaseException, *, escaped: bool = True) -> None:
    """Mark `span` failed by `exc`: `error.type`, the exception event with its stack, status ERROR.

    The event is what `Span.record_exception` writes, but the message is had with
    `exception_text`: an exception whose `__str__` raises or is huge still reaches the caller as is.
    """
    name = type_name(type(exc))
    message, failed = exception_text(exc)
    span.set_attribute(semconv.ERROR_TYPE, name)
    if failed is not None:
        span.set_attribute(semconv.CAPTURE_ERROR, f"{semconv.EXCEPTION_MESSAGE}: {failed}")
    span.add_event(_EXCEPTION_EVENT, {
        semconv.EXCEPTION_TYPE: qualified_type(exc),
        semconv.EXCEPTION_MESSAGE: message,
        semconv.EXCEPTION_STACKTRACE: exception_stacktrace(exc),
        semconv.EXCEPTION_ESCAPED: str(escaped),
    })
    span.set_status(Status(StatusCode.ERROR, f"{name}: {message}"))
