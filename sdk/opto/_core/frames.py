"""Reading Python frames for the asyncio instrumentation: where code is, and which span it runs in.

Read-only: frames are looked at (code, line, locals), never changed. Frames of asyncio itself
and of opto are skipped when a "creation site" is wanted, so the site is the app's own line.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from types import FrameType
from typing import Any

from opentelemetry.trace import Span

from .engine import Call

__all__ = ["Where", "INTERNAL", "OPTO", "where", "stack_of", "span_in"]

# Files under these folders are asyncio's or opto's: a creation site is the first frame past them.
OPTO = os.path.dirname(os.path.dirname(__file__)) + os.sep
INTERNAL = (os.path.dirname(asyncio.__file__) + os.sep, OPTO)
_MAX_FRAMES = 50  # frames of one stack reported


@dataclass(frozen=True, slots=True)
class Where:
    """A line of code: file, line number and function."""

    file: str
    line: int
    function: str

    @property
    def label(self) -> str:
        return f"{self.file}:{self.line} {self.function}"

    def json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "function": self.function}


def where(frame: FrameType) -> Where:
    code = frame.f_code
    return Where(code.co_filename, frame.f_lineno or 0, code.co_qualname)


def stack_of(frame: FrameType | None) -> list[Where]:
    """The stack from `frame` outward, outermost first (at most _MAX_FRAMES, the innermost kept)."""
    found: list[Where] = []
    while frame is not None and len(found) < _MAX_FRAMES:
        found.append(where(frame))
        frame = frame.f_back
    found.reverse()
    return found


def span_in(frame: FrameType, span_id: int | None = None) -> Span | None:
    """A recording span that a local of `frame` holds (a span, or a traced call's), and whose id is
    `span_id` when one is given; None if there is none. Only our own types are looked into, so
    no code of the app runs (no property, no `__getattr__`)."""
    for value in frame.f_locals.values():
        span = value.span if type(value) is Call else value
        if issubclass(type(span), Span) and span.is_recording():
            if span_id is None or span.get_span_context().span_id == span_id:
                return span
    return None
