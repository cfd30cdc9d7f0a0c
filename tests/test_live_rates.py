"""Live's call rates count the calls the SDK traced, not every span: a third-party HTTP 503 is stored but is not an error of ours."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path

from websockets.asyncio.client import connect

from dashboard_server import Dashboard, hello_frame, span_record
from opto.telemetry import semconv


async def test_third_party_error_spans_are_not_counted_as_failed_calls(tmp_path: Path) -> None:
    """Two traced calls (one failed) and two HTTP client spans with an error status: the error rate is 1 in 2, not 3 in 4."""
    now = time.time_ns()

    def record(name: str, attributes: dict[str, object], status: str) -> dict[str, object]:
        return span_record(secrets.token_hex(16), secrets.token_hex(8), name, start_ns=now, end_ns=now + 1_000_000,
                           kind="client", attributes=attributes, status={"code": status, "message": ""})

    spans = [
        record("agent", {semconv.OUTCOME: semconv.OUTCOME_OK}, "unset"),
        record("agent", {semconv.OUTCOME: semconv.OUTCOME_ERROR}, "error"),
        *(record("GET", {"http.response.status_code": 503}, "error") for _ in range(2)),
    ]
    with Dashboard(tmp_path / "opto.db") as d:
        async with connect(d.ws_url + "/ws/ingest") as ws:
            await ws.send(hello_frame(service="rates"))
            await ws.send(json.dumps({"type": "batch", "seq": 1, "spans": spans, "metrics": []}))
            async with asyncio.timeout(30):
                assert json.loads(await ws.recv())["type"] == "ack"
        live = d.get("/api/live")
    assert live["ingest"]["spans_stored"] == 4
    assert live["rates"]["error"] == 0.5
    assert live["throughput"]["calls_per_s"] <= 2  # 2 calls in at least a second; the 4 spans would make it 4
