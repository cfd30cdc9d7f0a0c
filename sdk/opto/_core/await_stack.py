"""Await stacks: the chain of coroutines a task is awaiting now, read without running anything.

From the task's coroutine, each `cr_await` (`ag_await`, `gi_yieldfrom`) leads to what it awaits,
down to the future it waits for; each coroutine's frame says which line it is at. A task that is
running on its loop right now has no such chain: its thread's stack is read instead. opto's own
frames (a traced call's wrapper) are left out.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from types import AsyncGeneratorType, CoroutineType, FrameType, GeneratorType
from typing import Any

from .frames import OPTO, span_in, stack_of, where

__all__ = ["MAX_DEPTH", "MAX_TASKS", "chain", "find"]

MAX_DEPTH = 64  # links of one chain
MAX_TASKS = 10_000  # tasks looked through for a span


# What each kind of coroutine calls its frame and what it awaits. Only these built-in types are
# looked into, so no code of the app runs (an awaitable of its own ends the chain).
_KINDS: dict[type, tuple[str, str]] = {
    CoroutineType: ("cr_frame", "cr_await"), GeneratorType: ("gi_frame", "gi_yieldfrom"),
    AsyncGeneratorType: ("ag_frame", "ag_await"),
}


def _links(task: asyncio.Task[Any]) -> list[tuple[FrameType | None, Any]]:
    """(frame, the object it is) from the task's coroutine inward."""
    out: list[tuple[FrameType | None, Any]] = []
    obj: Any = task.get_coro()
    while obj is not None and len(out) < MAX_DEPTH:
        names = _KINDS.get(type(obj))
        out.append((getattr(obj, names[0]) if names else None, obj))
        obj = getattr(obj, names[1]) if names else None
    return out


def chain(task: asyncio.Task[Any], loop: asyncio.AbstractEventLoop, thread_id: int | None, span_id: int | None = None) -> dict[str, Any]:
    """Where `task` is now: its frames outermost first, what the innermost awaits, and whether it
    is running (then the frames are its thread's stack). With `span_id`, the chain starts at the
    frame that holds that span."""
    running = asyncio.current_task(loop) is task
    if running and thread_id is not None:
        frames = [w.json() for w in stack_of(sys._current_frames().get(thread_id))]
        return {"task": task.get_name(), "running": True, "frames": frames, "awaiting": None}
    links = _links(task)
    if span_id is not None:
        for i, (frame, _) in enumerate(links):
            if frame is not None and span_in(frame, span_id) is not None:
                links = links[i:]
                break
    # opto's own frames (a traced call's wrapper) say nothing about the app: left out.
    frames = [where(frame).json() for frame, _ in links if frame is not None and not frame.f_code.co_filename.startswith(OPTO)]
    last = links[-1][1] if links and links[-1][0] is None else None
    awaiting = None if last is None else f"Task {last.get_name()}" if isinstance(last, asyncio.Task) else _future_name(last)
    return {"task": task.get_name(), "running": False, "frames": frames, "awaiting": awaiting}


def _future_name(obj: Any) -> str:
    """What a chain ends at: asyncio's C futures are awaited through a `FutureIter`, which hides
    which future it is."""
    return "Future" if isinstance(obj, asyncio.Future) or type(obj).__name__ == "FutureIter" else type(obj).__name__


def find(tasks: Iterable[asyncio.Task[Any]], task_id: int | None, span_id: int | None) -> asyncio.Task[Any] | None:
    """The task whose id() is `task_id`, or the first whose await chain holds the span `span_id`."""
    for n, task in enumerate(tasks):
        if n >= MAX_TASKS:
            break
        if task_id is not None:
            if id(task) == task_id:
                return task
            continue
        for frame, _ in _links(task):
            if frame is not None and span_in(frame, span_id) is not None:
                return task
    return None
