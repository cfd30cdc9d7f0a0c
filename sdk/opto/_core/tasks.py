"""Every asyncio task, counted by where it was created: a task factory and the board it reports to.

The factory wraps the loop's own (the app's or uvloop's, if any): each task is made by it, then
noted with its creation site (the first frame outside asyncio and opto), its parent task and its
start. No span per task unless `task_spans` is on. The loop's exception handler is wrapped too, to
count tasks destroyed while pending and exceptions never retrieved (then it passes the report on,
unchanged).

Every task comes through the factory, so its road is kept lean (issue 18's line: 1.3x a plain
`create_task`): when the loop had no factory of its own, the task is our `Task`, which carries
its note in a slot and counts its outcome when it is let go of; asyncio's own table of tasks is
the list of them (no table of ours, no weak reference, no done callback).
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from time import monotonic
from types import CodeType, FrameType
from typing import Any

from opentelemetry import context as otel_context

from .. import telemetry
from ..telemetry import semconv
from .frames import INTERNAL, Where, where
from .outcome import outcome_of

__all__ = ["MAX_SITES", "OTHER", "TaskBoard", "Task", "task_factory", "ExceptionHandler"]

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
# counted) and when it was made (monotonic). Our `Task` holds it in a slot; a task another factory
# made is noted in `TaskBoard.live`, with its loop's id() and the task, weakly.
_Note = tuple[_Site, "_Site | str", float]
_Live = tuple[_Site, "_Site | str", float, int, "weakref.ref[asyncio.Future[Any]]"]

# The running task of a loop: 3.11's `asyncio.current_task` is Python code around this lookup.
running: Callable[[asyncio.AbstractEventLoop], "asyncio.Task[Any] | None"] = (
    asyncio.tasks._current_tasks.get if sys.version_info < (3, 12) else asyncio.current_task  # type: ignore[attr-defined]
)

if sys.version_info < (3, 12):
    _HELD: Any = asyncio.tasks._all_tasks  # type: ignore[attr-defined]
elif sys.version_info < (3, 14):
    _HELD = asyncio.tasks._scheduled_tasks  # type: ignore[attr-defined]
else:  # 3.14 keeps native tasks in a list per thread, and lists the pending ones only
    _HELD = None


def _held_tasks(loops: Iterable[asyncio.AbstractEventLoop]) -> list[asyncio.Future[Any]]:
    """The tasks not yet let go of, done ones too (asyncio's own weak table, as `asyncio.all_tasks`
    reads it, from any thread); on 3.14, the pending tasks of `loops`."""
    if _HELD is None:
        return [task for loop in loops for task in asyncio.all_tasks(loop)]
    for _ in range(1000):  # the table may change size while it is copied (another thread): again
        try:
            return list(_HELD)
        except RuntimeError:
            pass
    return []


class Task(asyncio.Task[Any]):
    """The task the factory makes when the loop had no factory of its own. It carries its note
    (`_Note`; None once its outcome is counted) and counts its outcome when it is let go of,
    which costs nothing while it runs (a done callback would cost a turn of the loop per task).
    Each board makes its own subclass, so a task of an earlier board is told apart by its type.
    Named `Task` because asyncio's reports and reprs show the class's name."""

    __slots__ = ("note",)
    note: _Note | None

    def __del__(self) -> None:
        try:
            _asyncio_task_del(self)  # first: a report of it (never retrieved, destroyed pending) counts it
        finally:
            note = getattr(self, "note", None)
            if note is not None:  # `_count`, inlined: every task comes here
                if self.cancelled():
                    note[0].cancelled += 1
                elif self._exception is not None:  # see `_count`
                    note[0].error += 1
                else:
                    note[0].ok += 1


_asyncio_task_del = asyncio.Task.__del__


def _count(task: asyncio.Future[Any], site: _Site) -> str:
    """Count a done task's outcome on its site."""
    if task.cancelled():
        site.cancelled += 1
        return semconv.OUTCOME_CANCELLED
    # `_exception`, not `exception()`: asking would mark it retrieved, and asyncio would no
    # longer report an exception the app never looked at.
    exc = getattr(task, "_exception", None)
    if exc is not None:
        site.error += 1
        return outcome_of(exc)
    site.ok += 1
    return semconv.OUTCOME_OK


@dataclass(slots=True)
class TaskBoard:
    """Tasks by creation site: counts since instrumenting, and the pending ones.

    A task's outcome is counted once it is done: when it is let go of (our `Task`), by a done
    callback (with task_spans, or under another task factory), or by `snapshot()` for done
    tasks still held.
    """

    task_spans: bool = False
    # By (id(code), offset of the call instruction): an offset is read for free, a line number is
    # worked out from the code's line table. Several calls on one line share their line's site.
    sites: dict[int, _Site] = field(default_factory=dict)
    by_line: dict[Where, _Site] = field(default_factory=dict)
    other: _Site = field(default_factory=lambda: _Site(None))
    live: dict[int, _Live] = field(default_factory=dict)  # tasks another factory made, by id(task)
    span_starts: dict[int, tuple[Any, int]] = field(default_factory=dict)  # task_spans: (OpenTelemetry context, time_ns)
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=_RECENT))
    lock: threading.Lock = field(default_factory=threading.Lock)  # site table growth, from several loops' threads
    task_class: type[Task] = field(init=False)

    def __post_init__(self) -> None:
        self.task_class = type("Task", (Task,), {"__slots__": (), "__module__": Task.__module__})

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
        parent = running(loop)
        if parent is None:
            return NO_PARENT
        if type(parent) is self.task_class and (note := parent.note) is not None:
            return note[0]
        live = self.live.get(id(parent))
        return live[0] if live is not None else parent.get_name()

    def noted(self, task: asyncio.Future[Any]) -> _Note | None:
        """A task's note, whichever road made it; None if it is not counted (or counted already)."""
        if type(task) is self.task_class:
            return task.note
        live = self.live.get(id(task))
        return live[:3] if live is not None else None

    def done(self, task: asyncio.Future[Any]) -> None:
        """A done callback (tasks another factory made, or with task_spans): count its outcome, once."""
        live = self.live.pop(id(task), None)
        if live is None:
            return
        outcome = _count(task, live[0])
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

    def _forget(self, task: asyncio.Future[Any]) -> _Site | None:
        """Take a task off the board, uncounted: its site, or None if it was not on it."""
        if type(task) is self.task_class:
            note, task.note = task.note, None
            return note[0] if note is not None else None
        live = self.live.pop(id(task), None)
        return live[0] if live is not None else None

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
        counted = self._forget(task) if task is not None else None
        site = counted if counted is not None else self.other
        setattr(site, kind, getattr(site, kind) + 1)
        if counted is not None and kind == "never_retrieved":
            site.error += 1  # taken off the board here: its outcome is counted here
        exc = context.get("exception")
        self.recent.append({
            "kind": kind, "time_ns": time.time_ns(), "site": _label(site),
            "task": task.get_name() if isinstance(task, asyncio.Task) else "",
            "exception": f"{type(exc).__name__}: {exc}"[:_TEXT] if exc is not None else None,
        })

    def loop_closed(self, loop: asyncio.AbstractEventLoop) -> None:
        """Tasks of a closed loop that were still pending never finished: counted, and forgotten."""
        for task, note in self._tasks([loop]):
            if task.get_loop() is not loop:
                continue
            if task.done():
                self._settle(task, note)
            elif (site := self._forget(task)) is not None:
                site.never_finished += 1

    def _tasks(self, loops: Iterable[asyncio.AbstractEventLoop]) -> list[tuple[asyncio.Future[Any], _Note]]:
        """Every task on the board not yet counted, with its note."""
        ours = self.task_class
        found: list[tuple[asyncio.Future[Any], _Note]] = [
            (task, note) for task in _held_tasks(loops) if type(task) is ours and (note := task.note) is not None
        ]
        for live in list(self.live.values()):
            if (other := live[4]()) is not None:
                found.append((other, (live[0], live[1], live[2])))
        return found

    def _settle(self, task: asyncio.Future[Any], note: _Note) -> None:
        """Count a done task that is still held (our `Task`) or whose callback has not run yet."""
        if type(task) is self.task_class:
            if self._forget(task) is not None:
                _count(task, note[0])
        else:
            self.done(task)

    def snapshot(self, loops: Iterable[asyncio.AbstractEventLoop]) -> dict[str, Any]:
        """Counts per site, live tasks per site (oldest age, the oldest few, by parent), and recent
        reports. `loops` are the instrumented loops (where asyncio lists pending tasks only)."""
        now = time.monotonic()
        by_site: dict[int, list[tuple[asyncio.Future[Any], _Note]]] = {}
        live_count = 0
        for task, note in self._tasks(loops):
            if task.done():
                self._settle(task, note)
            else:
                live_count += 1
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
        return {"sites": sites, "live": live_count, "recent": list(self.recent)}


def _name(task: asyncio.Future[Any] | None) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else ""


def _parent(parent: _Site | str) -> str:
    return parent if isinstance(parent, str) else _label(parent)


def _label(site: _Site) -> str:
    return site.where.label if site.where is not None else OTHER


def task_factory(board: TaskBoard, inner: TaskFactoryType | None, loop: asyncio.AbstractEventLoop) -> TaskFactoryType:
    """A loop's task factory: the one it had (or the board's `Task`) makes the task, the board
    notes it. A function, not an object with `__call__`: asyncio calls it for every task."""
    if inner is not None or board.task_spans:
        return functools.partial(_noted_by_callback, board, inner)
    ours, sites, other, new_site = board.task_class, board.sites, board.other, board._new_site
    # The frame that called the factory: asyncio's `create_task` if the loop's is that one
    # (skipped at once), else the caller of the loop's own (uvloop's is not Python code).
    depth = 2 if type(loop).create_task is asyncio.BaseEventLoop.create_task else 1

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
        task = ours(coro, loop=loop, **kwargs)
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
        parent = running(loop)
        if parent is None:
            task.note = (site, NO_PARENT, monotonic())
        elif type(parent) is ours and (note := parent.note) is not None:
            task.note = (site, note[0], monotonic())
        else:  # a task made before instrumenting (the app's main task, often), or by an earlier board
            task.note = (site, parent.get_name(), monotonic())
        return task

    return factory


def _noted_by_callback(board: TaskBoard, inner: TaskFactoryType | None, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
    """The factory's road when the loop had a factory of its own, or with task spans: its outcome
    is counted by a done callback."""
    task = inner(loop, coro, **kwargs) if inner is not None else asyncio.Task(coro, loop=loop, **kwargs)
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
