"""Ad-hoc spans in the app's own code: `opto.span(name, **attributes)` as `with` or `async with`,
and `opto.set_attributes` / `opto.add_event` on the current span, values masked as arguments are.

A span ends the way a traced call does: `opto.outcome` ok, error (with the exception recorded and
status ERROR) or cancelled (an `opto.cancelled` event, not an error).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import Token
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from .. import telemetry
from ..telemetry import semconv
from .capture import attribute_value, safe_repr
from .outcome import outcome_of, record_error

__all__ = ["span", "set_attributes", "add_event"]

_MAX_NAME = 200  # characters of a span or event name


def _attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes as OpenTelemetry takes them, secrets masked; what failed in `opto.capture.error`."""
    out: dict[str, Any] = {}
    errors: list[str] = []
    for name, value in attributes.items():
        out[name] = attribute_value(name, value, errors)
    if errors:
        out[semconv.CAPTURE_ERROR] = "; ".join(errors)
    return out


def _check_name(what: str, name: object) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{what} name must be a non-empty str, got {safe_repr(name, 200)}")
    return name[:_MAX_NAME]


class span:
    """A span around a block, current inside it: `with opto.span("load", user=42) as s:`.

    `s` is the OpenTelemetry span. Each `opto.span(...)` is entered once; with no tracer provider
    it records nothing and costs little.
    """

    __slots__ = ("_name", "_attributes", "_span", "_token")

    def __init__(self, name: str, /, **attributes: Any) -> None:
        self._name = _check_name("span", name)
        self._attributes = attributes
        self._span: Span | None = None
        self._token: Token[otel_context.Context] | None = None

    def __enter__(self) -> Span:
        if self._span is not None:
            raise RuntimeError(f"opto.span({self._name!r}) was already entered: make a new opto.span(...) for each block")
        self._span = telemetry.tracer().start_span(self._name, attributes=_attributes(self._attributes))
        self._token = telemetry.attach_span(self._span)
        return self._span

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        span_ = self._span
        if span_ is None or self._token is None:
            raise RuntimeError(f"opto.span({self._name!r}) was exited without being entered")
        try:
            if span_.is_recording():
                if exc is None or issubclass(type(exc), GeneratorExit):  # a generator closed early: no error
                    span_.set_attribute(semconv.OUTCOME, semconv.OUTCOME_OK)
                elif (outcome := outcome_of(exc)) == semconv.OUTCOME_CANCELLED:
                    span_.set_attribute(semconv.OUTCOME, outcome)
                    span_.add_event(semconv.EVENT_CANCELLED)
                else:
                    span_.set_attribute(semconv.OUTCOME, outcome)
                    record_error(span_, exc)
            span_.end()
        finally:
            telemetry.detach(self._token)

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)


def set_attributes(**attributes: Any) -> None:
    """Set attributes on the current span (a traced call's or an `opto.span`'s), masked as
    arguments are; does nothing when no span is recording."""
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(_attributes(attributes))


def add_event(name: str, /, **attributes: Any) -> None:
    """Add an event to the current span, its attributes masked as arguments are; does nothing
    when no span is recording."""
    name = _check_name("event", name)
    current = trace.get_current_span()
    if current.is_recording():
        current.add_event(name, _attributes(attributes))
