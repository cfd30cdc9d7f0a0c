"""How a failure reads on a span, the same for every primitive: its outcome and its error."""

from __future__ import annotations

import asyncio

from opentelemetry.trace import Span, Status, StatusCode

from ..telemetry import semconv

__all__ = ["failed_outcome", "record_error"]


def failed_outcome(exc: BaseException) -> str:
    """`cancelled` for a cancellation, which is never an error; `error` for anything else."""
    return semconv.OUTCOME_CANCELLED if isinstance(exc, asyncio.CancelledError) else semconv.OUTCOME_ERROR


def record_error(span: Span, exc: BaseException, *, escaped: bool = True) -> None:
    """Mark `span` failed by `exc`: `error.type`, the exception event with its stack, status ERROR."""
    span.set_attribute(semconv.ERROR_TYPE, type(exc).__qualname__)
    span.record_exception(exc, escaped=escaped)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__qualname__}: {exc}"))
