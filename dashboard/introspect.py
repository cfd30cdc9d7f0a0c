"""Await-stack requests: the dashboard asks a connected process where a task or a call is now.

The request goes down the process's own `/ws/ingest` connection as a `stack_request` frame; the
process answers with a `stack` frame carrying the same id. A request waits at most TIMEOUT_S
(the process may be gone, or busy); at most MAX_PENDING wait at once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .records import MAX_NAME, RecordError, int_field, list_field, object_field, text_field

__all__ = ["Introspect", "Unanswered", "check_answer", "TIMEOUT_S", "MAX_PENDING"]

TIMEOUT_S = 3.0
MAX_PENDING = 64  # requests waiting for answers, over all processes
MAX_FRAMES = 64  # frames of one await stack (the SDK's MAX_DEPTH)
_PATH = 4096
_ERRORS = ("refused", "not found", "invalid", "failed")

Send = Callable[[dict[str, Any]], bool]  # puts a frame on a connection's way out; False if it cannot


class Unanswered(Exception):
    """A request that got no answer: `status` is the HTTP status to give, `msg` and `detail` the body."""

    def __init__(self, status: int, msg: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.msg, self.detail = status, msg, detail


def check_answer(frame: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A `stack` frame's request id and content, checked and copied; RecordError if malformed."""
    rid: int = int_field(frame, "id", "stack")  # type: ignore[assignment]
    if frame.get("error") is not None:
        error = text_field(frame, "error", "stack")
        if error not in _ERRORS:
            raise RecordError("stack.error", f"expected one of {', '.join(_ERRORS)}")
        return rid, {"error": error, "detail": text_field(frame, "detail", "stack", limit=1000)}
    frames = []
    for i, item in enumerate(list_field(frame.get("frames"), "stack.frames")[:MAX_FRAMES]):
        where = object_field(item, f"stack.frames[{i}]")
        frames.append({"file": text_field(where, "file", f"stack.frames[{i}]", limit=_PATH),
                       "line": int_field(where, "line", f"stack.frames[{i}]"),
                       "function": text_field(where, "function", f"stack.frames[{i}]")})
    running = frame.get("running")
    if not isinstance(running, bool):
        raise RecordError("stack.running", "expected true or false")
    awaiting = None if frame.get("awaiting") is None else text_field(frame, "awaiting", "stack", limit=MAX_NAME)
    return rid, {"task": text_field(frame, "task", "stack"), "running": running, "frames": frames, "awaiting": awaiting}


@dataclass(slots=True)
class _Waiting:
    process_id: str
    answer: asyncio.Future[dict[str, Any]]


class Introspect:
    """The connected processes (how to send to each) and the requests waiting for their answers."""

    def __init__(self) -> None:
        self.connections: dict[str, Send] = {}
        self.waiting: dict[int, _Waiting] = {}
        self.late = 0  # answers that came after their request gave up
        self._ids = itertools.count(1)

    def connected(self, process_id: str, send: Send) -> None:
        self.connections[process_id] = send

    def disconnected(self, process_id: str, send: Send) -> None:
        if self.connections.get(process_id) is send:
            del self.connections[process_id]

    async def ask(self, process_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """The process's answer to `request` (`task` or `span_id`); Unanswered when it cannot be asked
        or does not answer within TIMEOUT_S."""
        send = self.connections.get(process_id)
        if send is None:
            raise Unanswered(404, "process not connected", f"process {process_id} has no live connection to this dashboard")
        if len(self.waiting) >= MAX_PENDING:
            raise Unanswered(503, "busy", f"{MAX_PENDING} await-stack requests are waiting already; try again")
        rid = next(self._ids)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[rid] = _Waiting(process_id, answer)
        try:
            if not send({"type": "stack_request", "id": rid, **request}):
                raise Unanswered(503, "busy", f"process {process_id}'s connection is not reading; try again")
            try:
                return await asyncio.wait_for(answer, TIMEOUT_S)
            except TimeoutError:
                raise Unanswered(504, "no answer", f"process {process_id} did not answer within {TIMEOUT_S:g} s: it may be gone, or stuck") from None
        finally:
            del self.waiting[rid]

    def answered(self, process_id: str, frame: dict[str, Any]) -> None:
        """Hand a `stack` frame to the request waiting for it; RecordError if it is malformed or
        answers a request not made to this process."""
        rid, content = check_answer(frame)
        waiting = self.waiting.get(rid)
        if waiting is None:
            self.late += 1
            return
        if waiting.process_id != process_id:
            raise RecordError("stack.id", "answers a request made to another process")
        if not waiting.answer.done():
            waiting.answer.set_result(content)
