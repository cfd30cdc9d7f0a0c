"""A big trace's spans come in pages (`after` cursor), and answers of 1 KB or more are gzipped."""

from __future__ import annotations

import time

import httpx
import pytest

from dashboard_server import Dashboard, span_record
from test_dashboard_api import Feed, served  # noqa: F401  (the fixture)


async def test_pages_follow_each_other_in_start_order(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    trace, t0 = "a" * 32, time.time_ns()
    # Three spans share a start time: the span id orders them, so no page boundary loses one.
    starts = [t0, t0 + 1, t0 + 1, t0 + 1, *(t0 + 2 + i for i in range(8))]
    await feed.send([span_record(trace, f"{i:016x}", f"s{i}", start_ns=start, end_ns=start + 5) for i, start in enumerate(starts)])
    whole = d.get(f"/api/traces/{trace}")
    assert whole["next"] is None and len(whole["spans"]) == 12
    pages, url = [], f"/api/traces/{trace}?limit=5"
    while url:
        page = d.get(url)
        pages.append(page["spans"])
        url = page["next"] and f"/api/traces/{trace}?limit=5&after={page['next']}"
    assert [len(p) for p in pages] == [5, 5, 2]
    assert [s for p in pages for s in p] == whole["spans"]
    assert [s["span_id"] for s in whole["spans"]] == [f"{i:016x}" for i in range(12)]


@pytest.mark.parametrize("query, detail", [
    ("limit=5001", "limit: expected 1 to 5000"),
    ("after=12", "after: expected START_NS:SPAN_ID"),
    ("after=1:xyz", "after"),
    (f"after={2**63}:{'0' * 16}", "after: cannot read"),
])
async def test_bad_page_parameters_get_400(served: tuple[Dashboard, Feed], query: str, detail: str) -> None:
    d, _ = served
    response = httpx.get(f"{d.url}/api/traces/{'a' * 32}?{query}")
    assert response.status_code == 400 and response.json()["detail"].startswith(detail)


async def test_answers_of_a_kilobyte_or_more_are_gzipped(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    trace = "b" * 32
    await feed.send([span_record(trace, f"{i:016x}", "work") for i in range(20)])
    big = httpx.get(f"{d.url}/api/traces/{trace}", headers={"Accept-Encoding": "gzip"})
    assert big.headers["content-encoding"] == "gzip" and len(big.json()["spans"]) == 20
    small = httpx.get(f"{d.url}/api/suggest?field=service", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers and small.json() == {"values": ["test"]}
    static = httpx.get(f"{d.url}/static/waterfall.js", headers={"Accept-Encoding": "gzip"})
    assert static.headers["content-encoding"] == "gzip" and "class Waterfall" in static.text
