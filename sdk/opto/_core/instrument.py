"""`opto.instrument_asyncio()`: tasks, loop health and await stacks on every loop the app runs.

A loop is instrumented when `instrument_asyncio()` runs on it, and every loop made afterwards by
the event loop policy in place (`asyncio.run`, `asyncio.Runner`, most test runners) is
instrumented as it is made. Off until switched on; `uninstrument_asyncio()` gives each loop back
its own task factory and exception handler and stops every watchdog thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from .. import telemetry
from ..telemetry import instrumentation, semconv
from .await_stack import chain, find
from .tasks import ExceptionHandler, TaskBoard, TaskFactoryType, task_factory
from .watchdog import DEFAULT_THRESHOLD_S, LoopHealth

__all__ = ["instrument_asyncio", "uninstrument_asyncio", "set_introspection", "asyncio_snapshot", "answer_stack_request"]


@dataclass(slots=True)
class _Attached:
    loop: asyncio.AbstractEventLoop
    factory: TaskFactoryType | None = None  # ours, set on the loop
    inner: TaskFactoryType | None = None  # the loop's own, given back on detach
    handler: ExceptionHandler | None = None
    health: LoopHealth | None = None


@dataclass(slots=True)
class _State:
    board: TaskBoard | None = None  # None: tasks and loop health are off
    threshold_s: float = DEFAULT_THRESHOLD_S
    introspection: bool = False  # the process allows await-stack requests without instrumenting
    policy: asyncio.AbstractEventLoopPolicy | None = None  # whose new_event_loop we wrap
    new_event_loop: Callable[[], asyncio.AbstractEventLoop] | None = None  # our wrapper, set on `policy`


MAX_LOOPS = 8  # loops described in a snapshot (the dashboard takes no more)
_state = _State()
_loops: dict[int, _Attached] = {}
_lock = threading.RLock()


def instrument_asyncio(*, threshold_s: float = DEFAULT_THRESHOLD_S, task_spans: bool = False) -> None:
    """Count every task by creation site, watch the loop's lag, report a loop blocked longer than
    `threshold_s` seconds (with the stack it was blocked in), and answer the dashboard's
    await-stack requests. `task_spans=True` also makes a span of every task. Calling it again
    with other options starts over with them."""
    if isinstance(threshold_s, bool) or not isinstance(threshold_s, (int, float)) or not 0 < threshold_s <= 60:
        raise ValueError(f"threshold_s must be a number of seconds above 0 and at most 60, got {threshold_s!r}")
    if not isinstance(task_spans, bool):
        raise TypeError(f"task_spans must be True or False, got {task_spans!r}")
    with _lock:
        uninstrument_asyncio()
        _state.board = TaskBoard(task_spans=task_spans)
        _state.threshold_s = float(threshold_s)
        _start()


def uninstrument_asyncio() -> None:
    """Switch it all off: each loop gets its own task factory and exception handler back, every
    watchdog thread stops (and is waited for), and the counts are forgotten."""
    with _lock:
        _state.board = None
        if not _state.introspection:
            _unhook_policy()
        for attached in list(_loops.values()):
            _detach(attached, keep=_state.introspection)


def set_introspection(allowed: bool) -> None:
    """Whether await-stack requests are answered when the asyncio instrumentation is off."""
    if not isinstance(allowed, bool):
        raise TypeError(f"introspection must be True or False, got {allowed!r}")
    with _lock:
        _state.introspection = allowed
        if allowed:
            _start()
        elif _state.board is None:
            _unhook_policy()
            for attached in list(_loops.values()):
                _detach(attached)


def _start() -> None:
    _hook_policy()
    try:
        _attach(asyncio.get_running_loop())
    except RuntimeError:  # called outside a loop: loops made from now on are attached as they are made
        pass


def _hook_policy() -> None:
    if _state.new_event_loop is not None:
        return
    policy = asyncio.get_event_loop_policy()
    made = policy.new_event_loop

    def new_event_loop() -> asyncio.AbstractEventLoop:
        loop = made()
        _attach(loop)
        return loop

    policy.new_event_loop = new_event_loop  # type: ignore[method-assign]
    _state.policy, _state.new_event_loop = policy, new_event_loop


def _unhook_policy() -> None:
    policy, _state.policy = _state.policy, None
    ours, _state.new_event_loop = _state.new_event_loop, None
    if policy is not None and vars(policy).get("new_event_loop") is ours:
        del policy.new_event_loop


def _attach(loop: asyncio.AbstractEventLoop) -> None:
    with _lock:
        for key in [k for k, a in _loops.items() if a.loop.is_closed()]:
            _detach(_loops[key])
        if loop.is_closed():
            return
        attached = _loops.setdefault(id(loop), _Attached(loop))
        board = _state.board
        if board is None or attached.factory is not None:
            return
        attached.inner = loop.get_task_factory()
        attached.factory = task_factory(board, attached.inner, loop)
        loop.set_task_factory(attached.factory)
        attached.handler = ExceptionHandler(board, loop.get_exception_handler())
        loop.set_exception_handler(attached.handler)
        attached.health = LoopHealth(loop, _state.threshold_s, _site_of, board.loop_closed)


def _detach(attached: _Attached, keep: bool = False) -> None:
    """Give the loop back what it had; `keep` leaves it known (for await-stack requests)."""
    loop = attached.loop
    if not keep:
        _loops.pop(id(loop), None)
    if attached.health is not None:
        attached.health.stop()
    if attached.factory is not None and loop.get_task_factory() is attached.factory:
        loop.set_task_factory(attached.inner)
    if attached.handler is not None and loop.get_exception_handler() is attached.handler:
        loop.set_exception_handler(attached.handler.inner)
    attached.factory = attached.inner = attached.handler = attached.health = None


def _site_of(task: asyncio.Task[Any]) -> str:
    board = _state.board
    note = board.noted(task) if board is not None else None
    return note[0].where.label if note is not None and note[0].where is not None else ""


def asyncio_snapshot() -> dict[str, Any] | None:
    """Tasks by creation site and each loop's health, for the dashboard; None when nothing is on."""
    board = _state.board
    if board is None and not _state.introspection:
        return None
    loops = [a.health.snapshot() for a in list(_loops.values()) if a.health is not None][:MAX_LOOPS]
    return {
        "tasks": board.snapshot() if board is not None else None, "loops": loops,
        "introspection": True, "threshold_s": _state.threshold_s,
    }


def answer_stack_request(request: dict[str, Any]) -> dict[str, Any]:
    """Where a task (`task`: the id the snapshot gave) or the task running a span (`span_id`, 16
    hex digits) is now, if this process allows it; an `error` answer otherwise."""
    rid = request.get("id")
    if _state.board is None and not _state.introspection:
        return {"type": "stack", "id": rid, "error": "refused",
                "detail": "this process does not allow await-stack requests: opto.configure(asyncio=True) or introspection=True"}
    task_id, span = request.get("task"), request.get("span_id")
    span_id = int(span, 16) if isinstance(span, str) and len(span) == 16 else None
    if not isinstance(task_id, int) or isinstance(task_id, bool):
        task_id = None
    if task_id is None and span_id is None:
        return {"type": "stack", "id": rid, "error": "invalid", "detail": "give task (an id from the tasks snapshot) or span_id (16 hex digits)"}
    for attached in list(_loops.values()):
        loop = attached.loop
        if loop.is_closed():
            continue
        task = find(asyncio.all_tasks(loop), task_id, span_id)
        if task is not None:
            thread_id = attached.health.thread_id if attached.health is not None else None
            return {"type": "stack", "id": rid, **chain(task, loop, thread_id, span_id)}
    what = f"task {task_id}" if task_id is not None else f"span {span}"
    return {"type": "stack", "id": rid, "error": "not found", "detail": f"no pending task of this process is {what}: it may have finished"}


def _observe_lag(options: CallbackOptions) -> Iterator[Observation]:
    """Each instrumented loop's lag (p50, p99, max over the last minute), for OpenTelemetry readers."""
    for attached in list(_loops.values()):
        if attached.health is not None:
            snap = attached.health.snapshot()
            for quantile in ("p50", "p99", "max"):
                if (value := snap[f"lag_{quantile}_s"]) is not None:
                    yield Observation(value, {semconv.LOOP_QUANTILE: quantile})


def _observe_tasks(options: CallbackOptions) -> Iterator[Observation]:
    """Pending tasks by creation site (at most MAX_SITES and "(other)")."""
    board = _state.board
    if board is not None:
        for site in board.snapshot()["sites"]:
            yield Observation(site["live"], {semconv.TASK_SITE: site["site"]})


telemetry.METER.create_observable_gauge(semconv.METRIC_LOOP_LAG, [_observe_lag], unit="s", description="Event loop scheduling lag")
telemetry.METER.create_observable_gauge(semconv.METRIC_TASKS_LIVE, [_observe_tasks], unit="{task}", description="Pending asyncio tasks, by creation site")


def _switch(asyncio_on: bool | None, introspection: bool | None) -> None:
    if asyncio_on is True and _state.board is None:
        instrument_asyncio()
    elif asyncio_on is False:
        uninstrument_asyncio()
    if introspection is not None:
        set_introspection(introspection)


instrumentation.register(instrumentation.Instrumentation(_switch, asyncio_snapshot, answer_stack_request))
