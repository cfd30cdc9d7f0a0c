"""Async debug mode: call logs, asyncio debug on the loop, creation stacks, slow-step events.

All of it is off unless `set_async_debug(True)` or `async_trace(debug=True)` asks for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Coroutine, Generator
from types import FrameType
from typing import Any, TypeVar

from opentelemetry.trace import Span

from ..telemetry import semconv
from .loops import running_loop, running_task

__all__ = ["logger", "set_async_debug", "switch", "creation_stack", "enable_loop_debug", "watch_steps"]

T = TypeVar("T")
logger = logging.getLogger("opto")


class _Switch:
    """Whether debug mode is on for every traced call: `switch.on`, read on every call."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = False


switch = _Switch()
_STACK_LIMIT = 12
_TRIO_SLOW_STEP_S = 0.1  # asyncio's default slow_callback_duration, for loops that have none
_SDK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # sdk/opto/


def set_async_debug(enabled: bool) -> None:
    """Turn debug on (or off) for every traced call; `async_trace(debug=True)` does it for one.

    Called inside a running loop, it also puts that loop in asyncio debug mode at once, so tasks
    created from now on record where they were created.
    """
    switch.on = bool(enabled)
    if switch.on:
        try:
            enable_loop_debug(asyncio.get_running_loop())
        except RuntimeError:
            pass  # no loop yet: the first traced call enables debug on the loop it runs on


def creation_stack() -> str:
    """Where the traced coroutine was awaited from, plus where its task was created (asyncio debug)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_SDK_DIR):
        frame = frame.f_back  # skip OpenTrace's own frames: the stack starts at the user's await
    lines = traceback.format_list(traceback.extract_stack(frame, limit=_STACK_LIMIT))
    task = running_task()
    source = getattr(task, "_source_traceback", None)  # recorded by asyncio in debug mode
    if source:
        lines.append(f"task {task.get_name()} created at:\n")  # type: ignore[union-attr]
        lines.extend(traceback.format_list(source[-_STACK_LIMIT:]))
    return "".join(lines)


def enable_loop_debug(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio debug mode on a loop the SDK runs traced calls on."""
    if not loop.get_debug():
        loop.set_debug(True)


_reported = threading.local()


def _qualname(coro: Coroutine[Any, Any, Any]) -> str:
    return getattr(coro, "__qualname__", type(coro).__qualname__)


class _StepWatch:
    """Drives a coroutine step by step, recording each step that blocks the loop too long."""

    __slots__ = ("_coro", "_span", "_threshold")

    def __init__(self, coro: Coroutine[Any, Any, T], span: Span, threshold: float) -> None:
        self._coro = coro
        self._span = span
        self._threshold = threshold

    def _check(self, t0: float, step: int) -> None:
        t1 = time.perf_counter()
        dt = t1 - t0
        if dt < self._threshold or getattr(_reported, "until", 0.0) >= t0:
            return  # fast, or a traced call nested in this step already reported it
        _reported.until = t1
        frame = getattr(self._coro, "cr_frame", None)
        where = f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame else "return"
        self._span.add_event(
            semconv.EVENT_SLOW_CALLBACK,
            {semconv.DEBUG_DURATION_S: dt, semconv.DEBUG_HANDLE: f"step {step} of {_qualname(self._coro)} (until {where})"},
        )
        logger.debug("%s blocked the event loop for %.3f s in step %d", _qualname(self._coro), dt, step)

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self._coro
        value: Any = None
        error: BaseException | None = None
        step = 0
        while True:
            step += 1
            t0 = time.perf_counter()
            try:
                yielded = coro.throw(error) if error is not None else coro.send(value)
            except StopIteration as stop:
                self._check(t0, step)
                return stop.value
            except BaseException:
                self._check(t0, step)
                raise
            self._check(t0, step)
            try:
                value, error = (yield yielded), None
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                value, error = None, exc


def watch_steps(coro: Coroutine[Any, Any, T], span: Span) -> Any:
    """Await `coro`, adding an `opto.debug.slow_callback` event to `span` for each slow step."""
    loop = running_loop()
    threshold = loop.slow_callback_duration if loop is not None else _TRIO_SLOW_STEP_S
    return _StepWatch(coro, span, threshold)
