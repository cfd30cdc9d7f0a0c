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
from asyncio import current_task
from time import monotonic
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

from opentelemetry import context as otel_context

from .. import telemetry
from ..telemetry import semconv
from .frames import Where, caller_outside, internal_codes, where
from .outcome import outcome_of

__all__ = ["MAX_SITES", "OTHER", "TaskBoard", "Task", "TaskFactory", "ExceptionHandler"]

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
    code: CodeType | None = None  # held, so that its id() (the key of `TaskBoard.sites`) is never reused
    created: int = 0
    ok: int = 0
    error: int = 0
    cancelled: int = 0
    destroyed_pending: int = 0
    never_retrieved: int = 0
    never_finished: int = 0  # still pending when their loop closed


# A pending task, as a tuple (the cheapest thing to make per task): its creation site, its parent
# (the parent's site, or its name if it was not counted), when (monotonic), its loop's id(), and
# the task, weakly: noting a task must not keep it alive.
_Live = tuple[_Site, "_Site | str", float, int, "weakref.ref[asyncio.Future[Any]]"]


@dataclass(slots=True)
class TaskBoard:
    """Tasks by creation site: counts since instrumenting, and the pending ones.

    A task's outcome is counted when it is done and either a done callback ran (with task_spans,
    or under another task factory) or it was let go of (`Task.__del__`): a done callback
    costs every task a turn of the loop, so plain tasks do without; `snapshot()` counts done
    tasks still held.
    """

    task_spans: bool = False
    # By (id(code), offset of the call instruction): an offset is read for free, a line number is
    # worked out from the code's line table. Several calls on one line share their line's site.
    sites: dict[tuple[int, int], _Site] = field(default_factory=dict)
    by_line: dict[Where, _Site] = field(default_factory=dict)
    other: _Site = field(default_factory=lambda: _Site(None))
    live: dict[int, _Live] = field(default_factory=dict)  # by id(task)
    span_starts: dict[int, tuple[Any, int]] = field(default_factory=dict)  # task_spans: (OpenTelemetry context, time_ns)
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=_RECENT))
    lock: threading.Lock = field(default_factory=threading.Lock)  # site table growth, from several loops' threads

    def created(self, task: asyncio.Future[Any], loop: asyncio.AbstractEventLoop, frame: FrameType | None) -> None:
        """Note a new task; `frame` is the factory's caller. (Every task comes here: kept lean.)"""
        while frame is not None:  # `caller_outside`, inlined for the codes it has met already
            code = internal_codes.get(id(frame.f_code))
            if code is None:
                frame = caller_outside(frame)
                break
            if not code[1]:
                break
            frame = frame.f_back
        if frame is None:
            site = self.other
        else:
            site = self.sites.get((id(frame.f_code), frame.f_lasti))  # type: ignore[assignment]
            if site is None:
                site = self._new_site(frame)
        site.created += 1
        parent = current_task(loop)
        if parent is None:
            self.live[id(task)] = (site, NO_PARENT, monotonic(), id(loop), weakref.ref(task))
        else:
            known = self.live.get(id(parent))
            mother = self.live.get(id(parent))
            self.live[id(task)] = (site, mother[0] if mother is not None else parent.get_name(), monotonic(), id(loop), weakref.ref(task))

    def _new_site(self, frame: FrameType) -> _Site:
        """The site of a call instruction not seen before: the site of its line if another call on
        that line made a task already, else a new one (while fewer than MAX_SITES)."""
        where_ = where(frame)
        with self.lock:
            site = self.by_line.get(where_)
            if site is None:
                if len(self.by_line) >= MAX_SITES:
                    return self.other
                site = self.by_line[where_] = _Site(where_, frame.f_code)
            if len(self.sites) < MAX_SITES * 4:
                self.sites[(id(frame.f_code), frame.f_lasti)] = site
        return site

    def done(self, task: asyncio.Future[Any]) -> None:
        """Count a done task's outcome, once (a done callback, a task let go of, or a snapshot)."""
        live = self.live.pop(id(task), None)
        if live is None:
            return
        site = live[0]
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
        if self.task_spans and (start := self.span_starts.pop(id(task), None)) is not None:
            self._span(task, live, start, outcome)

    def _span(self, task: asyncio.Future[Any], live: _Live, start: tuple[Any, int], outcome: str) -> None:
        span = telemetry.tracer().start_span(semconv.SPAN_TASK, context=start[0], start_time=start[1])
        if span.is_recording():
            span.set_attributes({
                semconv.SPAN_KIND: semconv.KIND_ASYNCIO_TASK, semconv.TASK_NAME: _name(live),
                semconv.TASK_SITE: _label(live[0]), semconv.TASK_PARENT_SITE: _parent(live), semconv.OUTCOME: outcome,
            })
        span.end()

    def reported(self, context: dict[str, Any]) -> None:
        """A loop's exception report: counted when it is about a task destroyed pending or an
        exception never retrieved."""
        message = str(context.get("message", ""))
        task = context.get("task") or context.get("future")
        if message.startswith("Task was destroyed but it is pending"):
            kind = "destroyed_pending"
        elif message.endswith("exception was never retrieved"):
            kind = "never_retrieved"
        else:
            return
        live = self.live.pop(id(task), None) if task is not None else None
        site = live[0] if live is not None else self.other
        setattr(site, kind, getattr(site, kind) + 1)
        if live is not None and kind == "never_retrieved":
            site.error += 1  # popped here: its outcome is counted here
        exc = context.get("exception")
        self.recent.append({
            "kind": kind, "time_ns": time.time_ns(), "site": _label(site),
            "task": task.get_name() if isinstance(task, asyncio.Task) else "",
            "exception": f"{type(exc).__name__}: {exc}"[:_TEXT] if exc is not None else None,
        })

    def loop_closed(self, loop_id: int) -> None:
        """Tasks of a closed loop that were still pending never finished: counted, and forgotten."""
        for key, live in list(self.live.items()):
            if live[3] != loop_id:
                continue
            task = live[4]()
            if task is not None and task.done():
                self.done(task)
            elif self.live.pop(key, None) is not None:
                live[0].never_finished += 1

    def snapshot(self) -> dict[str, Any]:
        """Counts per site, live tasks per site (oldest age, the oldest few, by parent), and recent reports."""
        now = time.monotonic()
        by_site: dict[int, list[tuple[int, _Live]]] = {}
        for key, live in list(self.live.items()):
            task = live[4]()
            if task is not None and task.done():
                self.done(task)
            else:
                by_site.setdefault(id(live[0]), []).append((key, live))
        sites = []
        for site in [*list(self.by_line.values()), self.other]:
            alive = sorted(by_site.get(id(site), []), key=lambda item: item[1][2])
            if not site.created and site is self.other:
                continue
            parents: dict[str, int] = {}
            for _, live in alive:
                parent = _parent(live)
                parents[parent] = parents.get(parent, 0) + 1
            sites.append({
                "site": _label(site), **(site.where.json() if site.where is not None else {"file": "", "line": 0, "function": OTHER}),
                "created": site.created, "live": len(alive), "ok": site.ok, "error": site.error, "cancelled": site.cancelled,
                "destroyed_pending": site.destroyed_pending, "never_retrieved": site.never_retrieved,
                "never_finished": site.never_finished,
                "oldest_s": round(now - alive[0][1][2], 6) if alive else None,
                "oldest": [{"id": key, "name": _name(live), "age_s": round(now - live[2], 6)} for key, live in alive[:_OLDEST]],
                "parents": dict(sorted(parents.items(), key=lambda kv: -kv[1])[:_PARENTS]),
            })
        return {"sites": sites, "live": len(self.live), "recent": list(self.recent)}


def _name(live: _Live) -> str:
    task = live[4]()
    return task.get_name() if isinstance(task, asyncio.Task) else ""


def _parent(live: _Live) -> str:
    parent = live[1]
    return parent if isinstance(parent, str) else _label(parent)


def _label(site: _Site) -> str:
    return site.where.label if site.where is not None else OTHER


_asyncio_task_del = asyncio.Task.__del__


class Task(asyncio.Task[Any]):
    """The task the factory makes when the loop had no factory of its own: its outcome is counted
    when it is let go of, which costs nothing while it runs (a done callback would cost a turn of
    the loop per task). Named `Task` because asyncio's reports and reprs show the class's name."""

    __slots__ = ("board",)
    board: TaskBoard

    def __del__(self) -> None:
        try:
            _asyncio_task_del(self)  # first: a report of it (never retrieved, destroyed pending) finds it counted live
        finally:
            # `TaskBoard.done` inlined (every task comes here), without task spans (they take the
            # done-callback road).
            board = getattr(self, "board", None)
            live = board.live.pop(id(self), None) if board is not None else None
            if live is not None:
                if self.cancelled():
                    live[0].cancelled += 1
                elif getattr(self, "_exception", None) is not None:  # see `TaskBoard.done`
                    live[0].error += 1
                else:
                    live[0].ok += 1


class TaskFactory:
    """A loop's task factory: the one it had (or our `Task`) makes the task, the board notes it."""

    def __init__(self, board: TaskBoard, inner: TaskFactoryType | None) -> None:
        self.board = board
        self.inner = inner

    def __call__(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any], **kwargs: Any) -> asyncio.Future[Any]:
        board = self.board
        if self.inner is None and not board.task_spans:
            task = Task(coro, loop=loop, **kwargs)
            board.created(task, loop, sys._getframe(1))
            task.board = board
        else:
            other = self.inner(loop, coro, **kwargs) if self.inner is not None else asyncio.Task(coro, loop=loop, **kwargs)
            board.created(other, loop, sys._getframe(1))
            if board.task_spans:
                board.span_starts[id(other)] = (otel_context.get_current(), time.time_ns())
            other.add_done_callback(board.done)
            return other
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
