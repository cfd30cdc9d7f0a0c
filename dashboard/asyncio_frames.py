"""The asyncio frames of `/ws/ingest`: an instrumented process's `asyncio` picture goes to the task
board, its `stack` answers to the requests waiting for them; and each connection, once it said
hello, can be asked for await stacks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.datastructures import State

from .introspect import Introspect, Send
from .records import ProcessInfo
from .tasks import TaskBoard

__all__ = ["KINDS", "Send", "take", "connected", "disconnected"]

KINDS = ("asyncio", "stack")


def take(state: State, process: ProcessInfo, kind: str, frame: dict[str, Any]) -> None:
    """Dispatch one frame of KINDS from `process`; RecordError if it is malformed."""
    if kind == "asyncio":
        board: TaskBoard = state.tasks
        board.take(process, frame)
    else:
        introspect: Introspect = state.introspect
        introspect.answered(process.id, frame)


def connected(state: State, process_id: str, replies: asyncio.Queue[dict[str, Any]], closed: Callable[[], bool]) -> Send:
    """Make the connection askable: requests join its replies (False when they are full or it closed)."""

    def send(frame: dict[str, Any]) -> bool:
        if closed():
            return False
        try:
            replies.put_nowait(frame)
        except asyncio.QueueFull:
            return False
        return True

    state.introspect.connected(process_id, send)
    return send


def disconnected(state: State, process_id: str, send: Send) -> None:
    state.introspect.disconnected(process_id, send)
