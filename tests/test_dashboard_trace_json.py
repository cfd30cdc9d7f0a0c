"""`/api/traces/{id}` splices stored JSON instead of re-encoding it; the result must not differ."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from dashboard_server import Dashboard, hello_frame, span_record
from opto_dashboard.store import SPAN_COLUMNS, SPAN_TABLES, Store, row_to_record


async def test_trace_json_equals_the_records_own_encoding(tmp_path: Path) -> None:
    """Awkward names, messages, events, links, a span in flight and one with no parent all come back
    exactly as `SpanRecord.to_json()` would encode them."""
    trace = secrets.token_hex(16)
    root, child, running = (secrets.token_hex(8) for _ in range(3))
    records = [
        span_record(trace, root, 'quote " back\\slash\nnewline ü 🚀', status={"code": "error", "message": "</script>\t\"x\""},
                    attributes={"opto.outcome": "error", "n": 1.5, "big": 2**60, "list": ["a", 1, True], "empty": ""}),
        span_record(trace, child, "child", parent=root,
                    events=[{"name": "opto.retry", "time_ns": 5, "attributes": {"opto.retry.delay_s": 0.25}}],
                    links=[{"trace_id": secrets.token_hex(16), "span_id": secrets.token_hex(8), "attributes": {"opto.queue.wait_s": 0.1}}]),
        span_record(trace, running, "running", parent=secrets.token_hex(8), ended=False),
    ]
    db = tmp_path / "opto.db"
    with Dashboard(db) as d:
        async with connect(d.ws_url + "/ws/ingest") as ws:
            await ws.send(hello_frame(service="json"))
            await ws.send(json.dumps({"type": "batch", "seq": 1, "spans": records}))
            assert json.loads(await ws.recv())["type"] == "ack"
        async with httpx.AsyncClient() as client:
            got = (await client.get(f"{d.url}/api/traces/{trace}")).json()
    store = Store(db)
    await store.open()
    try:
        rows = await store.fetch(
            f"SELECT {SPAN_COLUMNS} FROM {SPAN_TABLES} WHERE t.trace_id = ? ORDER BY s.start_ns, s.span_id", (bytes.fromhex(trace),))
    finally:
        await store.close()
    want = json.loads(json.dumps({"trace_id": trace, "spans": [row_to_record(r).to_json() for r in rows], "next": None}))
    assert len(want["spans"]) == 3
    assert got == want
