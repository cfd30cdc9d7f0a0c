"""Requests before ingest: while an HTTP GET is being answered, ingest frames wait to be decoded
and turned into rows.

Those steps run on the event loop (about 25 ms of it a 1,000-span frame), and a request waited
behind the queued ones at each of its turns (reading, each query, the answer), 12 to 68 ms at a
time (docs/benchmarks.md, Scale, Session 7). A frame now waits for the requests in flight, but only for the first `MAX_WAIT_S` of the newest
one: a request that takes longer (a slow client reading a big answer) no longer holds ingest, and
a frame that waits at several steps waits until the same moment. Once ingest has been held back
`MAX_WAIT_S`, the next `MAX_WAIT_S` is its own, so requests that keep coming (many pages, or a
client that never stops asking) take at most half of ingest's time: answering requests slows
ingest down but never stops it; between two requests frames go on.

Losing a span is worse than a slow page: an SDK about to lose spans (its buffer half full, or the
app exiting with spans not yet stored) says so (`behind()`), and for the next `BEHIND_S` ingest goes
first: its steps never wait, and each request waits up to `MAX_WAIT_S` before it is answered, which
leaves the CPU to ingest and the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["BEHIND_S", "BIG_FRAME_BYTES", "BIG_WRITE_SPANS", "MAX_WAIT_S", "RequestsFirst", "RequestsFirstMiddleware"]

MAX_WAIT_S = 0.25  # how long a request holds ingest back, from its start
BEHIND_S = 1.0  # how long ingest goes first after an SDK said it is behind (it says so every 0.5 s)
# Only big steps wait: a frame this big (about 100 spans) before it is decoded, a write of this
# many spans before its rows are made. Small ones (hello frames, await-stack answers, the live
# exporter's span starts) cost little and go on at once, so the Live page is not held back.
BIG_FRAME_BYTES = 64 * 1024
BIG_WRITE_SPANS = 100


class RequestsFirst:
    """HTTP requests in flight (`answering()`), and ingest's `turn()` after them."""

    def __init__(self) -> None:
        self.in_flight = 0
        self._until = 0.0  # the loop's time when the newest request in flight stops holding ingest
        self._free_until = 0.0  # after ingest was held back MAX_WAIT_S: its steps pass until then
        self._behind_until = 0.0  # an SDK is about to lose spans: ingest goes first until then
        self._idle = asyncio.Event()
        self._idle.set()
        self._one = asyncio.Lock()

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        self.in_flight += 1
        self._until = asyncio.get_running_loop().time() + MAX_WAIT_S
        self._idle.clear()
        try:
            yield
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()

    def behind(self) -> None:
        """An SDK is about to lose spans: ingest goes first for the next `BEHIND_S`."""
        self._behind_until = asyncio.get_running_loop().time() + BEHIND_S

    async def admit(self) -> None:
        """Before a request is answered: while ingest is behind, wait up to `MAX_WAIT_S`."""
        left = self._behind_until - asyncio.get_running_loop().time()
        if left > 0:
            await asyncio.sleep(min(left, MAX_WAIT_S))

    async def turn(self) -> None:
        """Return once no request is in flight, or once the newest is `MAX_WAIT_S` old, or at once
        in ingest's own time. Steps that waited pass one at a time, each on a later turn of the
        event loop, so a request that arrives meanwhile waits for one step at most, not for every
        frame that waited."""
        async with self._one:
            loop = asyncio.get_running_loop()
            if not self.in_flight or loop.time() < max(self._free_until, self._behind_until):
                return
            try:
                async with asyncio.timeout_at(self._until):
                    await self._idle.wait()
            except TimeoutError:  # held back as long as a request may: the next MAX_WAIT_S is ingest's
                self._free_until = loop.time() + MAX_WAIT_S


class RequestsFirstMiddleware:
    """Counts each GET or HEAD request (the pages and their data) from its start to the end of its
    answer; not websockets, nor OTLP's POSTs, which are ingest themselves."""

    def __init__(self, app: ASGIApp, requests: RequestsFirst) -> None:
        self.app = app
        self.requests = requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        await self.requests.admit()
        with self.requests.answering():
            await self.app(scope, receive, send)
