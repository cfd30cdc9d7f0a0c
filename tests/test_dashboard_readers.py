"""Reads on a pool of WAL reader connections: concurrent with each other, time-limited, and
stopped when their caller goes away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from websockets.asyncio.client import connect

from dashboard_server import Dashboard, hello_frame
from opto_dashboard.readers import READERS
from opto_dashboard.store import QueryTimeout, Store
from test_dashboard_api import Feed, call, served  # noqa: F401  (the fixture)

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(tmp_path / "opto.db", query_timeout_s=0.2)
    await s.open()
    yield s
    await s.close()


async def test_a_query_past_its_time_limit_is_stopped(store: Store) -> None:
    async with asyncio.timeout(30):
        with pytest.raises(QueryTimeout, match="more than 0.2 s"):
            await store.fetch(ENDLESS)
        assert await store.fetch("SELECT 1") == [(1,)]


async def test_a_slow_query_does_not_hold_up_the_others(tmp_path: Path) -> None:
    slow_store = Store(tmp_path / "opto.db", query_timeout_s=3600)
    await slow_store.open()
    try:
        slow = asyncio.ensure_future(slow_store.fetch(ENDLESS))
        async with asyncio.timeout(30):
            answers = await asyncio.gather(*(slow_store.fetch("SELECT count(*) FROM spans") for _ in range(10)))
        assert answers == [[(0,)]] * 10 and not slow.done()
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
    finally:
        await slow_store.close()


async def test_a_cancelled_query_is_interrupted_and_its_connection_reused(tmp_path: Path) -> None:
    """Cancel endless queries on every connection: each stops, so all connections serve again."""
    s = Store(tmp_path / "opto.db", query_timeout_s=3600)
    await s.open()
    try:
        async with asyncio.timeout(30):
            endless = [asyncio.ensure_future(s.fetch(ENDLESS)) for _ in range(READERS)]
            await asyncio.sleep(0)  # let them start (one cancelled before it starts is also fine)
            for task in endless:
                task.cancel()
            results = await asyncio.gather(*endless, return_exceptions=True)
            assert all(isinstance(r, asyncio.CancelledError) for r in results)
            assert await asyncio.gather(*(s.fetch("SELECT 2") for _ in range(READERS))) == [[(2,)]] * READERS
    finally:
        await s.close()


async def test_a_request_whose_query_times_out_answers_503_and_the_server_serves_on(tmp_path: Path) -> None:
    with Dashboard(tmp_path / "opto.db", query_timeout_s=1e-9) as d:
        async with connect(d.ws_url + "/ws/ingest") as ws:
            await ws.send(hello_frame())
            await Feed(ws).send([call("work") for _ in range(500)])  # enough rows to outlast the first clock check
        response = httpx.get(f"{d.url}/api/traces", timeout=30)
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["msg"] == "query timed out" and "narrow the filters" in body["detail"]
        assert response.headers["retry-after"] == "5"
        assert httpx.get(f"{d.url}/api/live", timeout=30).status_code == 200
