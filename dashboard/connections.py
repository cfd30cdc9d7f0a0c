"""uvicorn settings that bound connections, and the h11 protocol that times out unfinished request headers.

uvicorn closes a keep-alive connection that stays silent, but not one that has sent part of a
request's headers (or nothing at all): 1,100 such connections exhausted a 1,024-descriptor limit
and the API stopped answering. Here a connection with no request in progress must complete a
request's headers within `HEADER_TIMEOUT_S` of connecting or of its first byte, and at most
`MAX_IDLE` connections may be without a request in progress: a new one closes the oldest.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from .refusals import Refusals

__all__ = [
    "server_options", "guarded_protocol", "HEADER_TIMEOUT_S", "KEEP_ALIVE_S", "MAX_IDLE", "MAX_CONCURRENCY", "MAX_HEADER_BYTES", "BACKLOG",
]

HEADER_TIMEOUT_S = 10  # from a connection's (or its next request's) first byte to the end of its headers
KEEP_ALIVE_S = 5  # a silent keep-alive connection is closed after this (uvicorn's own timer)
MAX_IDLE = 256  # connections with no request in progress (half-open or keep-alive); a new one closes the oldest
MAX_CONCURRENCY = 512  # connections plus requests in progress; past it uvicorn answers 503
MAX_HEADER_BYTES = 16 * 1024  # request line and headers, buffered while incomplete (h11's default, made explicit)
BACKLOG = 128  # connections asyncio accepts in one pass (and the kernel queue): the oldest idle ones are closed between passes


def server_options(refused: Refusals) -> dict[str, Any]:
    """The `uvicorn.Config` keyword arguments for these bounds; closed connections are counted in `refused`."""
    return {
        "http": guarded_protocol(refused),
        "timeout_keep_alive": KEEP_ALIVE_S,
        "limit_concurrency": MAX_CONCURRENCY,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "backlog": BACKLOG,
    }


def guarded_protocol(refused: Refusals) -> type[H11Protocol]:
    """An h11 protocol class whose connections share one idle list and count their closing in `refused`."""
    idle: dict[H11Protocol, None] = {}  # insertion order: the oldest idle connection first

    class GuardedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._idle(deadline=True)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._in_request():
                self._busy()
            elif self._deadline is None:
                self._idle(deadline=True)  # the first byte of a next request: its headers are now due

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self._in_request() and self not in idle:
                self._idle(deadline=False)  # silent keep-alive: uvicorn's timer closes it

        def connection_lost(self, exc: Exception | None) -> None:
            self._busy()
            super().connection_lost(exc)

        def _in_request(self) -> bool:
            """A request's headers are in (its response may be under way), or the connection became a websocket or closed."""
            return (
                (self.cycle is not None and not self.cycle.response_complete)
                or self.transport.get_protocol() is not self
                or self.transport.is_closing()
            )

        def _idle(self, *, deadline: bool) -> None:
            while len(idle) >= MAX_IDLE:
                oldest = next(iter(idle))
                oldest._drop()  # type: ignore[attr-defined]
            idle[self] = None
            if deadline:
                self._deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._drop)

        def _busy(self) -> None:
            idle.pop(self, None)
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _drop(self) -> None:
            self._busy()
            refused.connections += 1
            self.transport.close()

    return GuardedH11Protocol
