"""Every asyncio task, counted by where it was created: a task factory and the board it reports to.

The factory wraps the loop's own (the app's or uvloop's, if any): each task is made by it, then
noted with its creation site (the first frame outside asyncio and opto), its parent task and its
start. No span per task unless `task_spans` is on. The loop's exception handler is wrapped too, to
count tasks destroyed while pending and exceptions never retrieved (then it passes the report on,
unchanged).

Every task comes through the factory, so its road is kept lean (issue 18's line: 1.3x a plain
`create_task`): when the loop had no factory of its own, the task is asyncio's C task (a subclass
loses its fast paths), held in the loop's table of fresh tasks with its note. Every `_SWEEP_S`
the loop counts the outcomes of the fresh tasks that are done and lets them go; the few still
pending are then noted weakly, with a done callback (a turn of the loop per task, which only the
long-lived pay).
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic
from types import CodeType, FrameType
from typing import Any

from opentelemetry import context as otel_context

from .. import telemetry
from ..telemetry import semconv
from .frames import INTERNAL, Where, where
from .loops import task_of
from .outcome import outcome_of

__all__ = ["MAX_SITES", "OTHER", "TaskBoard", "task_factory", "ExceptionHandler"]

MAX_SITES = 200  # creation sites counted apart; tasks of any further site are counted under OTHER
OTHER = "(other)"
NO_PARENT = "(no task)"  # created from a callback or outside the loop, not from a task
# A parent is named by its own creation site, or by its name if it was created before instrumenting.
_OLDEST = 5  # live tasks listed per site (the oldest), so the dashboard can ask where they are
_PARENTS = 8  # parents listed per site, by live tasks
_RECENT = 20  # exceptions never retrieved and tasks destroyed pending, kept for the dashboard
_TEXT = 300  # characters of an exception's text kept

Task = asyncio.Task  # the C task: a subclass would lose the fast paths the C code keeps for its own type
TaskFactoryType = Callable[[asyncio.AbstractEventLoop, Any], "asyncio.Future[Any]"]

@dataclass(slots=True)
class _Site:
    where: Where | None  # None for OTHER and PASS
    code: CodeType | None = None  # held, so that its id() (the key of `TaskBoard.sites`) is never reused
    created: int = 0
    ok: int = 0
    error: int = 0
    cancelled: int = 0
    destroyed_pending: int = 0
    never_retrieved: int = 0
    never_finished: int = 0  # still pending when their loop closed


PASS = _Site(None)  # in `TaskBoard.sites`: a call in asyncio's or opto's code; the site is further out

# A task's note: its creation site, its parent (the parent's site, or its name if it was not
# counted) and when it was made (monotonic). A fresh task is held, with its note, in its loop's
# table until the next sweep; one still pending then (or made by another factory) is noted in
# `TaskBoard.live`, with its loop's id() and the task, weakly.
_Note = tuple[_Site, "_Site | str", float]
_Fresh = tuple["asyncio.Future[Any]", _Site, "_Site | str", float]
_Live = tuple[_Site, "_Site | str", float, int, "weakref.ref[asyncio.Future[Any]]"]
_SWEEP_S = 0.05  # at most this long a done task is held (while its loop runs) before it is counted
_SWEEP_AT = 1024  # fresh tasks that make the factory count them at once: what is held is bounded


@dataclass(slots=True)
class _LoopTasks:
    """A loop's fresh tasks (made since its last sweep), held with their notes, by id()."""

    loop: asyncio.AbstractEventLoop
    fresh: dict[int, _Fresh] = field(default_factory=dict)


@dataclass(slots=True)
class TaskBoard:
    """Tasks by creation site: counts since instrumenting, and the pending ones.

    A task's outcome is counted once it is done: by its loop's next sweep (a fresh task of our
    factory), or by a done callback (a task that outlived a sweep, with task_spans, or under
    another task factory).
    """

    task_spans: bool = False
    # By (id(code), offset of the call instruction): an offset is read for free, a line number is
    # worked out from the code's line table. Several calls on one line share their line's site.
    sites: dict[int, _Site] = field(default_factory=dict)
    by_line: dict[Where, _Site] = field(default_factory=dict)
    other: _Site = field(default_factory=lambda: _Site(None))
    loops: dict[int, _LoopTasks] = field(default_factory=dict)  # by id(loop), where our factory makes the tasks
    live: dict[int, _Live] = field(default_factory=dict)  # tasks noted weakly, by id(task)
    # Done tasks counted as errors whose exception nobody has retrieved yet: asyncio reports them
    # when they are let go of, and the report is counted on their site. Weakly, by id(task).
    unretrieved: dict[int, tuple[_Site, "weakref.ref[asyncio.Future[Any]]"]] = field(default_factory=dict)
    span_starts: dict[int, tuple[Any, int]] = field(default_factory=dict)  # task_spans: (OpenTelemetry context, time_ns)
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=_RECENT))
    lock: threading.Lock = field(default_factory=threading.Lock)  # site table growth, from several loops' threads

    def site(self, frame: FrameType | None) -> _Site:
        """The creation site of a call made in `frame`: the first frame outward that is not
        asyncio's or opto's. (The factory inlines this: every task comes there.)"""
        while frame is not None:
            site = self.sites.get(id(frame.f_code) + frame.f_lasti)
            if site is None:
                site = self._new_site(frame)
            if site is not PASS:
                return site
            frame = frame.f_back
        return self.other

    def _new_site(self, frame: FrameType) -> _Site:
        """A call instruction not seen before: PASS in asyncio's or opto's code, else the site of
        its line if another call on that line made a task already, else a new one (while fewer
        than MAX_SITES)."""
        code = frame.f_code
        with self.lock:
            if code.co_filename.startswith(INTERNAL):
                site = PASS
            else:
                where_ = where(frame)
                site = self.by_line.get(where_)  # type: ignore[assignment]
                if site is None:
                    if len(self.by_line) >= MAX_SITES:
                        return self.other
                    site = self.by_line[where_] = _Site(where_, code)
            if len(self.sites) < MAX_SITES * 4:
                self.sites[id(code) + frame.f_lasti] = site
        return site

    def parent(self, loop: asyncio.AbstractEventLoop) -> _Site | str:
        """The running task of `loop`, as a new task's parent."""
        parent = task_of(loop)
        if parent is None:
            return NO_PARENT
        note = self.noted(parent)
        return note[0] if note is not None else parent.get_name()

    def noted(self, task: asyncio.Future[Any]) -> _Note | None:
        """A task's note, whichever road made it; None if it is not counted (or counted already)."""
        mine = self.loops.get(id(task.get_loop()))
        if mine is not None and (fresh := mine.fresh.get(id(task))) is not None:
            return fresh[1:]
        live = self.live.get(id(task))
        return live[:3] if live is not None and live[4]() is task else None

    def sweep(self, mine: _LoopTasks) -> None:
        """On the loop's thread (or once it is closed): count the outcomes of its fresh tasks that
        are done, and note the others weakly, with a done callback."""
        fresh = list(mine.fresh.values())
        mine.fresh.clear()
        loop_id = id(mine.loop)
        for task, site, parent, start in fresh:
            state = task._state  # one read for `done()` and `cancelled()`: every task comes here
            if state == "FINISHED" and task._exception is None:
                site.ok += 1
            elif state != "PENDING":
                self._counted(task, site)
            else:
                self.live[id(task)] = (site, parent, start, loop_id, weakref.ref(task))
                task.add_done_callback(self.done)
        # the tasks are let go of here: asyncio reports the unretrieved exceptions among them

    def _counted(self, task: asyncio.Future[Any], site: _Site) -> str:
        """Count a done task's outcome on its site; a failure nobody has looked at yet is noted
        for asyncio's report of it."""
        if task.cancelled():
            site.cancelled += 1
            return semconv.OUTCOME_CANCELLED
        # `_exception`, not `exception()`: asking would mark it retrieved, and asyncio would no
        # longer report an exception the app never looked at.
        exc = getattr(task, "_exception", None)
        if exc is None:
            site.ok += 1
            return semconv.OUTCOME_OK
        site.error += 1
        if getattr(task, "_log_traceback", False):
            gone = functools.partial(self._gone, id(task))
            self.unretrieved[id(task)] = (site, weakref.ref(task, gone))
        return outcome_of(exc)

    def _gone(self, key: int, _: object) -> None:
        """A failed task was let go of (asyncio reported it before, if nobody had looked)."""
        self.unretrieved.pop(key, None)

    def done(self, task: asyncio.Future[Any]) -> None:
        """A done callback: count its outcome, once."""
        live = self.live.pop(id(task), None)
        if live is None:
            return
        outcome = self._counted(task, live[0])
        if self.task_spans and (start := self.span_starts.pop(id(task), None)) is not None:
            self._span(task, live, start, outcome)

    def _span(self, task: asyncio.Future[Any], live: _Live, start: tuple[Any, int], outcome: str) -> None:
        span = telemetry.tracer().start_span(semconv.SPAN_TASK, context=start[0], start_time=start[1])
        if span.is_recording():
            span.set_attributes({
                semconv.SPAN_KIND: semconv.KIND_ASYNCIO_TASK, semconv.TASK_NAME: _name(task),
                semconv.TASK_SITE: _label(live[0]), semconv.TASK_PARENT_SITE: _parent(live[1]), semconv.OUTCOME: outcome,
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
        site = self.other
        if task is not None and (live := self.live.pop(id(task), None)) is not None:
            site = live[0]
            if kind == "never_retrieved":
                site.error += 1  # taken off the board here: its outcome is counted here
        elif task is not None and (failed := self.unretrieved.pop(id(task), None)) is not None:
            site = failed[0]  # its outcome was counted when it was done
        setattr(site, kind, getattr(site, kind) + 1)
        exc = context.get("exception")
        self.recent.append({
            "kind": kind, "time_ns": time.time_ns(), "site": _label(site),
            "task": task.get_name() if isinstance(task, asyncio.Task) else "",
            "exception": f"{type(exc).__name__}: {exc}"[:_TEXT] if exc is not None else None,
        })

    def loop_closed(self, loop: asyncio.AbstractEventLoop) -> None:
        """Tasks of a closed loop that were still pending never finished: counted, and forgotten."""
        mine = self.loops.pop(id(loop), None)
        if mine is not None:
            self.sweep(mine)
        for key, live in list(self.live.items()):
            task = live[4]()
            if live[3] != id(loop) or task is None:
                continue
            if task.done():
                self.done(task)
            elif self.live.pop(key, None) is not None:
                live[0].never_finished += 1

    def _pending(self) -> list[tuple[asyncio.Future[Any], _Note]]:
        """Every pending task on the board, with its note; done ones not yet counted are counted
        (the fresh ones only by their loop: a sweep on the loop's own thread, else its next one)."""
        here = asyncio._get_running_loop()
        found: list[tuple[asyncio.Future[Any], _Note]] = []
        for mine in list(self.loops.values()):
            if mine.loop is here:
                self.sweep(mine)
            found += [(fresh[0], fresh[1:]) for fresh in list(mine.fresh.values()) if not fresh[0].done()]
        for live in list(self.live.values()):
            if (task := live[4]()) is None:
                continue
            if task.done():
                self.done(task)
            else:
                found.append((task, live[:3]))
        return found

    def snapshot(self) -> dict[str, Any]:
        """Counts per site, live tasks per site (oldest age, the oldest few, by parent), and recent reports."""
        now = time.monotonic()
        by_site: dict[int, list[tuple[asyncio.Future[Any], _Note]]] = {}
        pending = self._pending()
        for task, note in pending:
            by_site.setdefault(id(note[0]), []).append((task, note))
        sites = []
        for site in [*list(self.by_line.values()), self.other]:
            alive = sorted(by_site.get(id(site), []), key=lambda item: item[1][2])
            if not site.created and site is self.other:
                continue
            parents: dict[str, int] = {}
            for _, note in alive:
                parent = _parent(note[1])
                parents[parent] = parents.get(parent, 0) + 1
            sites.append({
                "site": _label(site), **(site.where.json() if site.where is not None else {"file": "", "line": 0, "function": OTHER}),
                "created": site.created, "live": len(alive), "ok": site.ok, "error": site.error, "cancelled": site.cancelled,
                "destroyed_pending": site.destroyed_pending, "never_retrieved": site.never_retrieved,
                "never_finished": site.never_finished,
                "oldest_s": round(now - alive[0][1][2], 6) if alive else None,
                "oldest": [{"id": id(task), "name": _name(task), "age_s": round(now - note[2], 6)} for task, note in alive[:_OLDEST]],
                "parents": dict(sorted(parents.items(), key=lambda kv: -kv[1])[:_PARENTS]),
            })
        return {"sites": sites, "live": len(pending), "recent": list(self.recent)}


def _name(task: asyncio.Future[Any] | None) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else ""


def _parent(parent: _Site | str) -> str:
    return parent if isinstance(parent, str) else _label(parent)


def _label(site: _Site) -> str:
    return site.where.label if site.where is not None else OTHER


def task_factory(board: TaskBoard, inner: TaskFactoryType | None, loop: asyncio.AbstractEventLoop) -> TaskFactoryType:
    """A loop's task factory: the one it had (or asyncio's `Task`) makes the task, the board
    notes it. A function, not an object with `__call__`: asyncio calls it for every task."""
    if inner is not None or board.task_spans:
        return functools.partial(_noted_by_callback, board, inner)
    sites, other, new_site, live = board.sites, board.other, board._new_site, board.live
    mine = board.loops[id(loop)] = _LoopTasks(loop)
    fresh = mine.fresh
    sweep = functools.partial(board.sweep, mine)
    # The frame that called the factory: asyncio's `create_task` if the loop's is that one
    # (skipped at once), else the caller of the loop's own (uvloop's is not Python code).
    depth = 2 if type(loop).create_task is asyncio.BaseEventLoop.create_task else 1

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
        task = Task(coro, loop=loop, **kwargs)
        frame: FrameType | None = sys._getframe(depth)
        while True:  # `TaskBoard.site`, inlined
            if frame is None:
                site = other
                break
            site = sites.get(id(frame.f_code) + frame.f_lasti)  # type: ignore[assignment]
            if site is None:
                site = new_site(frame)
            if site is not PASS:
                break
            frame = frame.f_back
        site.created += 1
        parent: Any = task_of(loop)
        if parent is None:  # `TaskBoard.parent`, inlined
            up: _Site | str = NO_PARENT
        elif (note := fresh.get(id(parent))) is not None:
            up = note[1]
        elif (known := live.get(id(parent))) is not None and known[4]() is parent:
            up = known[0]
        else:  # a task made before instrumenting (the app's main task, often), or by an earlier board
            up = parent.get_name()
        if not fresh:
            loop.call_later(_SWEEP_S, sweep)
        elif len(fresh) >= _SWEEP_AT:
            sweep()
        fresh[id(task)] = (task, site, up, monotonic())
        return task

    return factory


def _noted_by_callback(board: TaskBoard, inner: TaskFactoryType | None, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
    """The factory's road when the loop had a factory of its own, or with task spans: its outcome
    is counted by a done callback."""
    task = inner(loop, coro, **kwargs) if inner is not None else Task(coro, loop=loop, **kwargs)
    site = board.site(sys._getframe(1))
    site.created += 1
    board.live[id(task)] = (site, board.parent(loop), monotonic(), id(loop), weakref.ref(task))
    if board.task_spans:
        board.span_starts[id(task)] = (otel_context.get_current(), time.time_ns())
    task.add_done_callback(board.done)
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
