"""`/ws/live`: pushes the live figures to browsers, coalesced to a few updates a second.

The hub's tick builds one update and hands it to each browser's single-slot mailbox; a browser
that has not taken the previous update gets a fresh snapshot instead of a backlog, so no browser
ever holds up ingest or the others. Ticks come every `period`: MIN_TICK_S while an update is
cheap to build, longer as it gets costly (the hub spends at most about a tenth of a core), never
more than TICK_S; and at once for the first commit after a tick with nothing new, so work that
starts after a quiet spell shows without waiting. While nothing new arrives, a heartbeat update
every HEARTBEAT_S carries the latest concurrency samples, so the charts go on moving (a hung call
stays visible as it ages) instead of freezing at the last change.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .stats import Stats

__all__ = ["Hub", "routes", "period", "TICK_S", "MIN_TICK_S", "HEARTBEAT_S"]

logger = logging.getLogger("opto_dashboard")
MIN_TICK_S = 0.05  # at most twenty updates a second per browser
TICK_S = 0.25  # the longest period, however costly an update; and the concurrency sampling period
HEARTBEAT_S = 1.0  # with nothing new, an update this often all the same (marked `heartbeat`)
_COST_SHARE = 10  # the period is at least this many times what building the last update took


class _Browser:
    """One browser's mailbox: the latest message, and whether it replaced one never sent."""

    def __init__(self) -> None:
        self.message: dict[str, Any] | None = None
        self.lagged = False
        self.ready = asyncio.Event()

    def offer(self, message: dict[str, Any]) -> None:
        if self.message is not None:
            self.lagged = True
        self.message = message
        self.ready.set()


def period(cost_s: float) -> float:
    """The tick period after a tick that took `cost_s`: short while ticks are cheap, at most TICK_S."""
    return min(max(MIN_TICK_S, _COST_SHARE * cost_s), TICK_S)


class Hub:
    """Samples concurrency and pushes updates to every connected browser on each tick."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.browsers: set[_Browser] = set()
        self._task: asyncio.Task[None] | None = None
        self._seen_version = -1
        self._seen_spans = 0
        self._quiet = True  # the last tick had nothing new to push
        self._woken = asyncio.Event()
        self._sampled = -TICK_S  # perf_counter time of the last concurrency sample
        self._pushed = 0.0  # perf_counter time of the last update offered
        self.period = MIN_TICK_S

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="opto-dashboard-hub")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def nudge(self, _writes: object) -> None:
        """A pipeline listener: after a quiet tick, a commit ticks at once (pushes stay TICK_S apart,
        since the tick before pushed nothing)."""
        if self._quiet and self.browsers and self.stats.version != self._seen_version:
            self._woken.set()

    def tick(self) -> None:
        """Sample (every TICK_S), and if anything changed, offer every browser one update; if
        nothing did for HEARTBEAT_S, a heartbeat update with the new samples."""
        started = time.perf_counter()
        if started - self._sampled >= TICK_S:
            self._sampled = started
            self.stats.sample()
        self._quiet = not self.browsers or self.stats.version == self._seen_version
        heartbeat = self._quiet and bool(self.browsers) and started - self._pushed >= HEARTBEAT_S
        if not self._quiet or heartbeat:
            self._pushed = started
            self._seen_version = self.stats.version
            new_spans = self.stats.spans_stored - self._seen_spans
            self._seen_spans = self.stats.spans_stored
            update = {"type": "update", "live": self.stats.snapshot(), "new_spans": new_spans, "heartbeat": heartbeat}
            for browser in self.browsers:
                browser.offer(update)
        self.period = period(time.perf_counter() - started)

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.period):  # the coalescing period, cut short by `nudge`
                    await self._woken.wait()
            except TimeoutError:
                pass
            self._woken.clear()
            try:
                self.tick()
            except Exception:
                logger.exception("opto-dashboard: live hub tick failed")

    async def serve(self, ws: WebSocket) -> None:
        """Send a snapshot, then updates, until the browser goes away."""
        await ws.accept()
        browser = _Browser()
        browser.offer({"type": "snapshot", "live": self.stats.snapshot()})
        self.browsers.add(browser)
        reader = asyncio.create_task(_drain(ws))
        waiter: asyncio.Task[bool] | None = None
        try:
            while not reader.done():
                waiter = asyncio.create_task(browser.ready.wait())
                await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if browser.message is None:
                    continue
                message, browser.message = browser.message, None
                if browser.lagged:
                    browser.lagged = False
                    message = {"type": "snapshot", "live": self.stats.snapshot()}
                browser.ready.clear()
                await ws.send_text(json.dumps(message))
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.browsers.discard(browser)
            for task in (reader, waiter):
                if task is not None:
                    task.cancel()
            await asyncio.gather(*(t for t in (reader, waiter) if t is not None), return_exceptions=True)


async def _drain(ws: WebSocket) -> None:
    """Read (and ignore) what the browser sends, to notice when it closes."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _live(ws: WebSocket) -> None:
    hub: Hub = ws.app.state.hub
    await hub.serve(ws)


routes = [WebSocketRoute("/ws/live", _live)]
