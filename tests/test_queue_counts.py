"""A queue's producers and consumers are those of processes still live: an exited process's count expires with it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from dashboard_server import Dashboard, hello_frame
from opto.telemetry import semconv
from opto_dashboard import stats


async def report(ws: ClientConnection, consumers: int) -> None:
    """One process's consumer count for the queue "jobs", acked."""
    metric = {"name": semconv.METRIC_QUEUE_CONSUMERS, "time_ns": time.time_ns(), "attributes": {semconv.QUEUE_NAME: "jobs"}, "value": consumers}
    await ws.send(json.dumps({"type": "batch", "seq": 1, "spans": [], "metrics": [metric]}))
    async with asyncio.timeout(30):
        assert json.loads(await ws.recv())["type"] == "ack"


async def test_an_exited_processs_consumers_expire_after_the_idle_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes with 2 consumers each show 4; once one has exited and its idle window passed, 2."""
    with Dashboard(tmp_path / "opto.db") as d:
        async with connect(d.ws_url + "/ws/ingest") as alive:
            await alive.send(hello_frame(service="alive"))
            await report(alive, 2)
            exited = uuid.uuid4().hex
            async with connect(d.ws_url + "/ws/ingest") as gone:
                await gone.send(hello_frame(exited, service="gone"))
                await report(gone, 2)
                assert d.get("/api/queues")["queues"][0]["consumers"] == 4
            async with asyncio.timeout(30):  # the server sees the close on its own time
                while any(p["id"] == exited and p["connected"] for p in d.get("/api/live")["processes"]):
                    await asyncio.sleep(0.01)
            assert d.get("/api/queues")["queues"][0]["consumers"] == 4  # gone, but within its idle window
            monkeypatch.setattr(stats, "PROCESS_IDLE_S", 0.0)  # the window has passed
            assert d.get("/api/queues")["queues"][0]["consumers"] == 2
