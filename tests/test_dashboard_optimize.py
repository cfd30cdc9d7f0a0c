"""`/api/optimize` against a real server fed by a real `@trace.optimize` search in a subprocess."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from dashboard_server import ROOT, Dashboard, hello_frame, span_record
from opto.telemetry import semconv

MARKUP = "<img src=x onerror=alert(1)>"  # a choice of the e2e workload's search


class Search:
    """`e2e/workload.py URL optimize`: a deterministic search held while its first proposal runs."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "e2e" / "workload.py"), url, "optimize"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def held(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line == "ready\n", f"the search did not start: {line!r}, {self.proc.stderr.read() if self.proc.stderr else ''}"

    def finish(self) -> None:
        _, err = self.proc.communicate("go\n", timeout=60)
        assert self.proc.returncode == 0, err


async def until(dashboard: Dashboard, path: str, ready: Any) -> dict[str, Any]:
    """Poll `path` until `ready(document)`: span starts travel on the exporter's tick."""
    async with asyncio.timeout(30):
        while not ready(doc := dashboard.get(path)):
            await asyncio.sleep(0.05)
    return doc  # type: ignore[no-any-return]


def by_id(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {c["id"]: c for d in doc["depths"] for c in d["candidates"]}


async def test_a_running_search_shows_its_running_depth_and_best_so_far(dashboard: Dashboard) -> None:
    search = Search(dashboard.url)
    try:
        search.held()
        listed = await until(dashboard, "/api/optimize", lambda d: d["searches"] and d["searches"][0]["depths"] == 1)
        one = listed["searches"][0]
        assert one["state"] == "started" and one["outcome"] is None and one["workflow"] == "optimize.<locals>.answer"
        assert one["strategy"] == "async_beam_search" and one["max_depth"] == 3
        path = f"/api/optimize/{one['trace_id']}/{one['span_id']}"
        doc = await until(dashboard, path, lambda d: [c["state"] for c in by_id(d).values()] == ["ended", "ended", "ended", "started"])
        depth = doc["depths"][1]
        assert depth["state"] == "started" and depth["beam"] is None
        running = by_id(doc)[3]
        assert running["score"] is None and running["kept"] is None and running["parent_id"] == 0
        # Best so far, from the finished candidates: start (plain, 1) 0.2, (plain, 2) 0.3, (plain, 3) 0.4.
        assert doc["search"]["best_id"] == 2 and doc["search"]["best_score"] == pytest.approx(0.4)
        assert doc["search"]["best_params"] == {"style": "'plain'", "level": "3"}
        assert [h["best_score"] for h in doc["history"]] == pytest.approx([0.2, 0.4])
    finally:
        search.finish()


async def test_a_finished_search_has_beams_scores_errors_and_history(dashboard: Dashboard) -> None:
    search = Search(dashboard.url)
    search.held()
    search.finish()
    (one,) = dashboard.get("/api/optimize")["searches"]
    assert one["state"] == "ended" and one["outcome"] == "ok" and one["depths"] == 3 and one["candidates"] == 9
    assert one["best_score"] == pytest.approx(0.8) and one["best_params"] == {"style": "'bullet'", "level": "3"}
    doc = dashboard.get(f"/api/optimize/{one['trace_id']}/{one['span_id']}")
    assert doc["search"] == one
    assert [d["depth"] for d in doc["depths"]] == [0, 1, 2, 3]
    assert [[c["id"] for c in d["candidates"]] for d in doc["depths"]] == [[0], [1, 2, 3], [4, 5, 6, 7], [8]]
    assert [d["beam"] for d in doc["depths"]] == [[0], [3, 2], [5, 4], [5, 4]]
    assert [h["best_score"] for h in doc["history"]] == pytest.approx([0.2, 0.6, 0.8, 0.8])
    # Depth 3's only candidate failed: it has no best of its own.
    assert [h["depth_best"] for h in doc["history"]][3] is None
    candidates = by_id(doc)
    assert [candidates[i]["kept"] for i in range(9)] == [True, False, True, True, True, True, False, False, False]
    failed = candidates[8]
    assert failed["outcome"] == "error" and failed["score"] is None and failed["parent_id"] == 4
    assert failed["error"] == {"type": "RuntimeError", "message": "model overloaded by </script><script>alert(2)</script>"}
    assert failed["params"] == {"style": repr(MARKUP), "level": "2"}
    assert candidates[5]["params"] == {"style": "'bullet'", "level": "3"} and candidates[5]["score"] == pytest.approx(0.8)


async def test_two_searches_in_one_trace_keep_their_own_steps(dashboard: Dashboard) -> None:
    """Searches called inside a span share its trace: each document holds only its own depths and candidates."""
    trace = "ab" * 16
    t0 = time.time_ns()
    spans = [span_record(trace, "0" * 15 + "1", "caller", start_ns=t0)]
    for n, search in enumerate(("a" * 16, "b" * 16)):
        depth, start, proposal = f"{search[:15]}2", f"{search[:15]}3", f"{search[:15]}4"
        kind = {semconv.SPAN_KIND: semconv.KIND_OPTIMIZE}
        spans += [
            span_record(trace, search, semconv.SPAN_OPTIMIZE, parent="0" * 15 + "1", start_ns=t0 + n, attributes={**kind, semconv.FUNCTION: f"wf{n}"}),
            span_record(trace, start, semconv.SPAN_OPTIMIZE_CANDIDATE, parent=search, start_ns=t0 + n, attributes={
                semconv.SPAN_KIND: semconv.KIND_OPTIMIZE_CANDIDATE, semconv.OPTIMIZE_CANDIDATE_ID: 0, semconv.OPTIMIZE_DEPTH: 0,
                semconv.OPTIMIZE_SCORE: n, semconv.OUTCOME: "ok"}),
            span_record(trace, depth, semconv.SPAN_OPTIMIZE_DEPTH, parent=search, start_ns=t0 + n, ended=False, attributes={
                semconv.SPAN_KIND: semconv.KIND_OPTIMIZE_DEPTH, semconv.OPTIMIZE_DEPTH: 1}),
            span_record(trace, proposal, semconv.SPAN_OPTIMIZE_CANDIDATE, parent=depth, start_ns=t0 + n, ended=False, attributes={
                semconv.SPAN_KIND: semconv.KIND_OPTIMIZE_CANDIDATE, semconv.OPTIMIZE_CANDIDATE_ID: 1, semconv.OPTIMIZE_DEPTH: 1,
                semconv.OPTIMIZE_PARENT_ID: 0}),
        ]
    async with connect(dashboard.ws_url + "/ws/ingest") as ws:
        await ws.send(hello_frame())
        await ws.send(json.dumps({"type": "batch", "seq": 1, "spans": spans, "metrics": []}))
        async with asyncio.timeout(30):
            await ws.recv()
    listed = dashboard.get("/api/optimize")["searches"]
    assert [(s["workflow"], s["best_score"], s["candidates"]) for s in listed] == [("wf1", 1, 2), ("wf0", 0, 2)]
    doc = dashboard.get(f"/api/optimize/{trace}/{'a' * 16}")
    assert [[c["span_id"] for c in d["candidates"]] for d in doc["depths"]] == [["a" * 15 + "3"], ["a" * 15 + "4"]]
    assert dashboard.get("/api/optimize?limit=1")["searches"][0]["workflow"] == "wf1"


@pytest.mark.parametrize("path, status", [
    ("/api/optimize/" + "ab" * 16 + "/" + "c" * 16, 404),
    ("/api/optimize/nothex/" + "c" * 16, 400),
    ("/api/optimize/" + "ab" * 16 + "/short", 400),
    ("/api/optimize?limit=0", 400),
])
def test_unknown_or_malformed_search_ids_are_refused(dashboard: Dashboard, path: str, status: int) -> None:
    response = httpx.get(dashboard.url + path, timeout=30)
    assert response.status_code == status
    assert response.json()["msg"] == ("not found" if status == 404 else "invalid parameter")


def test_pages_render_with_the_nav_link_and_hashed_scripts(dashboard: Dashboard) -> None:
    listing = httpx.get(f"{dashboard.url}/optimize", timeout=30)
    assert listing.status_code == 200
    assert '<a href="/optimize" aria-current="page">Optimization</a>' in listing.text
    assert "/static/optimize.js?v=" in listing.text
    one = httpx.get(f"{dashboard.url}/optimize/{'ab' * 16}/{'c' * 16}", timeout=30)
    assert one.status_code == 200 and "/static/optimize_search.js?v=" in one.text
    assert '"span_id": "' + "c" * 16 + '"' in one.text
    bad = httpx.get(f"{dashboard.url}/optimize/{'ab' * 16}/<script>", timeout=30)
    assert bad.status_code == 404 and "<script>" not in bad.text.split("<main", 1)[1].split("</main>")[0]
