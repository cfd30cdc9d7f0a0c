"""Every asyncio task, counted by where it was created: a task factory and the board it reports to.

The factory wraps the loop's own (the app's or uvloop's, if any): each task is made by it, then
noted with its creation site (the first frame outside asyncio and opto), its parent task and its
start; a done callback counts its outcome. No span per task unless `task_spans` is on. The
loop's exception handler is wrapped too, to count tasks destroyed while pending and exceptions
never retrieved (then it passes the report on, unchanged).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

from opentelemetry import context as otel_context

from .. import telemetry
from ..telemetry import semconv
from .frames import Where, caller_outside, where
from .outcome import outcome_of

__all__ = ["MAX_SITES", "OTHER", "TaskBoard", "TaskFactory", "ExceptionHandler"]

MAX_SITES = 200  # creation sites counted apart; tasks of any further site are counted under OTHER
OTHER = "(other)"
NO_PARENT = "(no task)"  # created from a callback or outside the loop, not from a task
# A parent is named by its own creation site, or by its name if it was created before instrumenting.
_OLDEST = 5  # live tasks listed per site (the oldest), so the dashboard can ask where they are
_PARENTS = 8  # parents listed per site, by live tasks
_RECENT = 20  # exceptions never retrieved and tasks destroyed pending, kept for the dashboard
_TEXT = 300  # characters of an exception's text kept

TaskFactoryType = Callable[[asyncio.AbstractEventLoop, Any], "asyncio.Future[Any]"]


@dataclass(slots=True)
class _Site:
    where: Where | None  # None for OTHER
    created: int = 0
    ok: int = 0
    error: int = 0
    cancelled: int = 0
    destroyed_pending: int = 0
    never_retrieved: int = 0
    never_finished: int = 0  # still pending when their loop closed


@dataclass(slots=True)
class _Live:
    site: _Site
    parent: str
    start: float  # time.monotonic()
    loop: int  # id() of the loop
    task: weakref.ref[asyncio.Future[Any]]  # weak: noting a task must not keep it alive
    context: Any = None  # the OpenTelemetry context at creation, with task_spans only
    start_ns: int = 0


@dataclass(slots=True)
class TaskBoard:
    """Tasks by creation site: counts since instrumenting, and the live ones (ids of tasks still pending)."""

    task_spans: bool = False
    sites: dict[tuple[CodeType, int], _Site] = field(default_factory=dict)
    other: _Site = field(default_factory=lambda: _Site(None))
    live: dict[int, _Live] = field(default_factory=dict)
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=_RECENT))
    lock: threading.Lock = field(default_factory=threading.Lock)  # site table growth, from several loops' threads

    def created(self, task: asyncio.Future[Any], loop: asyncio.AbstractEventLoop, frame: FrameType | None) -> None:
        frame = caller_outside(frame)
        site = self._site(frame) if frame is not None else self.other
        site.created += 1
        parent = asyncio.current_task(loop)
        known = self.live.get(id(parent)) if parent is not None else None
        parent_label = _label(known.site) if known is not None else parent.get_name() if parent is not None else NO_PARENT
        live = _Live(site, parent_label, time.monotonic(), id(loop), weakref.ref(task))
        if self.task_spans:
            live.context = otel_context.get_current()
            live.start_ns = time.time_ns()
        self.live[id(task)] = live
        task.add_done_callback(self._done)

    def _site(self, frame: FrameType) -> _Site:
        key = (frame.f_code, frame.f_lineno or 0)
        site = self.sites.get(key)
        if site is None:
            with self.lock:
                site = self.sites.get(key)
                if site is None:
                    if len(self.sites) >= MAX_SITES:
                        return self.other
                    site = self.sites[key] = _Site(where(frame))
        return site

    def _done(self, task: asyncio.Future[Any]) -> None:
        live = self.live.pop(id(task), None)
        if live is None:
            return
        site = live.site
        if task.cancelled():
            site.cancelled += 1
            outcome = semconv.OUTCOME_CANCELLED
        # `_exception`, not `exception()`: asking would mark it retrieved, and asyncio would no
        # longer report an exception the app never looked at.
        elif (exc := getattr(task, "_exception", None)) is not None:
            site.error += 1
            outcome = outcome_of(exc)
        else:
            site.ok += 1
            outcome = semconv.OUTCOME_OK
        if live.context is not None:
            self._span(task, live, outcome)

    def _span(self, task: asyncio.Future[Any], live: _Live, outcome: str) -> None:
        span = telemetry.tracer().start_span(semconv.SPAN_TASK, context=live.context, start_time=live.start_ns)
        if span.is_recording():
            span.set_attributes({
                semconv.SPAN_KIND: semconv.KIND_ASYNCIO_TASK, semconv.TASK_NAME: _name(live),
                semconv.TASK_SITE: _label(live.site), semconv.TASK_PARENT_SITE: live.parent, semconv.OUTCOME: outcome,
            })
        span.end()

    def reported(self, context: dict[str, Any]) -> None:
        """A loop's exception report: counted when it is about a task destroyed pending or an
        exception never retrieved."""
        message = str(context.get("message", ""))
        task = context.get("task") or context.get("future")
        if message.startswith("Task was destroyed but it is pending"):
            kind = "destroyed_pending"
        elif message.startswith("Task exception was never retrieved"):
            kind = "never_retrieved"
        else:
            return
        live = self.live.pop(id(task), None) if task is not None else None
        site = live.site if live is not None else self.other
        setattr(site, kind, getattr(site, kind) + 1)
        exc = context.get("exception")
        self.recent.append({
            "kind": kind, "time_ns": time.time_ns(), "site": _label(site),
            "task": task.get_name() if isinstance(task, asyncio.Task) else "",
            "exception": f"{type(exc).__name__}: {exc}"[:_TEXT] if exc is not None else None,
        })

    def loop_closed(self, loop_id: int) -> None:
        """Tasks of a closed loop that were still pending never finished: counted, and forgotten."""
        for key, live in list(self.live.items()):
            if live.loop == loop_id and self.live.pop(key, None) is not None:
                live.site.never_finished += 1

    def snapshot(self) -> dict[str, Any]:
        """Counts per site, live tasks per site (oldest age, the oldest few, by parent), and recent reports."""
        now = time.monotonic()
        by_site: dict[int, list[tuple[int, _Live]]] = {}
        for key, live in list(self.live.items()):
            by_site.setdefault(id(live.site), []).append((key, live))
        sites = []
        for site in [*list(self.sites.values()), self.other]:
            alive = sorted(by_site.get(id(site), []), key=lambda item: item[1].start)
            if not site.created and site is self.other:
                continue
            parents: dict[str, int] = {}
            for _, live in alive:
                parents[live.parent] = parents.get(live.parent, 0) + 1
            sites.append({
                "site": _label(site), **(site.where.json() if site.where is not None else {"file": "", "line": 0, "function": OTHER}),
                "created": site.created, "live": len(alive), "ok": site.ok, "error": site.error, "cancelled": site.cancelled,
                "destroyed_pending": site.destroyed_pending, "never_retrieved": site.never_retrieved,
                "never_finished": site.never_finished,
                "oldest_s": round(now - alive[0][1].start, 6) if alive else None,
                "oldest": [{"id": key, "name": _name(live), "age_s": round(now - live.start, 6)} for key, live in alive[:_OLDEST]],
                "parents": dict(sorted(parents.items(), key=lambda kv: -kv[1])[:_PARENTS]),
            })
        return {"sites": sites, "live": len(self.live), "recent": list(self.recent)}


def _name(live: _Live) -> str:
    task = live.task()
    return task.get_name() if isinstance(task, asyncio.Task) else ""


def _label(site: _Site) -> str:
    return site.where.label if site.where is not None else OTHER


class TaskFactory:
    """A loop's task factory: the one it had (or plain `asyncio.Task`) makes the task, the board notes it."""

    def __init__(self, board: TaskBoard, inner: TaskFactoryType | None) -> None:
        self.board = board
        self.inner = inner

    def __call__(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any], **kwargs: Any) -> asyncio.Future[Any]:
        task = self.inner(loop, coro, **kwargs) if self.inner is not None else asyncio.Task(coro, loop=loop, **kwargs)
        self.board.created(task, loop, sys._getframe(1))
        return task


class ExceptionHandler:
    """A loop's exception handler: tells the board, then hands the report to the handler the loop had."""

    def __init__(self, board: TaskBoard, inner: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None) -> None:
        self.board = board
        self.inner = inner

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        try:
            self.board.reported(context)
        finally:
            if self.inner is not None:
                self.inner(loop, context)
            else:
                loop.default_exception_handler(context)
