"""The websocket door's one-pass batch decoding agrees with the field-by-field validator.

`quick_batch` must accept exactly what `parse_batch` accepts, with the same records; whatever it
declines goes to `parse_batch`, which names the bad field (tests/test_dashboard_ingest.py).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from dashboard_server import span_record
from opto_dashboard.ingest import MAX_BATCH_SPANS, FrameError, parse_batch, quick_batch
from opto_dashboard.records import MAX_ITEMS, MAX_MESSAGE, MAX_NAME, MAX_VALUE

T, S, P = "a" * 32, "b" * 16, "c" * 16


def frame(*spans: dict[str, Any], **fields: Any) -> str:
    return json.dumps({"type": "batch", "seq": 1, "spans": list(spans), "metrics": [], "drops": {}, **fields})


GOOD = {
    "plain": frame(span_record(T, S), span_record(T, P, "child", parent=S)),
    "started": frame(span_record(T, S, ended=False)),
    "defaults": frame({"trace_id": T, "span_id": S, "name": "n", "state": "ended", "start_ns": 1, "end_ns": 2}),
    "list attributes": frame(span_record(T, S, attributes={"tags": ["a", 1, 2.5, True], "opto.attempts": 3})),
    "events and links": frame(span_record(
        T, S, events=[{"name": "opto.retry", "time_ns": 5, "attributes": {"opto.attempt": 1}}],
        links=[{"trace_id": "d" * 32, "span_id": "e" * 16, "attributes": {"opto.queue.wait_s": 0.5}}],
    )),
    "error status and scope extras": frame(span_record(T, S, status={"code": "error", "message": "boom"}, scope={"name": "x", "version": "1", "other": 2})),
    "frame resource": frame({k: v for k, v in span_record(T, S).items() if k != "resource"}, resource={"service.name": "svc"}),
    "metrics and drops": frame(span_record(T, S), metrics=[{"name": "m", "time_ns": 1, "value": 2.5}], drops={"spans": 3}),
    "unknown fields": frame(span_record(T, S, extra={"ignored": True}), other=1),
}

BAD = {
    "id not hex": frame(span_record(T, "B" * 16)),
    "id too short": frame(span_record(T, "b" * 15)),
    "id with a trailing newline": frame(span_record(T, "b" * 16 + "\n")),
    "trace id with a trailing newline": frame(span_record("a" * 32 + "\n", S)),
    "parent not hex": frame(span_record(T, S, parent="x" * 16)),
    "span id an int": frame(span_record(T, S, span_id=5)),
    "missing name": frame({k: v for k, v in span_record(T, S).items() if k != "name"}),
    "name too long": frame(span_record(T, S, "n" * (MAX_NAME + 1))),
    "ended without end_ns": frame(span_record(T, S, end_ns=None)),
    "started with end_ns": frame(span_record(T, S, ended=False, end_ns=5)),
    "negative start": frame(span_record(T, S, start_ns=-1)),
    "bool start": frame(span_record(T, S, start_ns=True)),
    "float start": frame(span_record(T, S, start_ns=1.0)),
    "start past SQLite's integers": frame(span_record(T, S, start_ns=2**63)),
    "unknown kind": frame(span_record(T, S, kind="weird")),
    "unknown status": frame(span_record(T, S, status={"code": "bad"})),
    "nested attribute": frame(span_record(T, S, attributes={"k": {"nested": 1}})),
    "list of lists attribute": frame(span_record(T, S, attributes={"k": [[1]]})),
    "too many attributes": frame(span_record(T, S, attributes={f"k{i}": i for i in range(MAX_ITEMS + 1)})),
    "value too long": frame(span_record(T, S, attributes={"k": "v" * (MAX_VALUE + 1)})),
    "list too long": frame(span_record(T, S, attributes={"k": [True] * (MAX_ITEMS + 1)})),
    "string in a list too long": frame(span_record(T, S, attributes={"k": ["v" * (MAX_VALUE + 1)]})),
    "status message too long": frame(span_record(T, S, status={"code": "error", "message": "m" * (MAX_MESSAGE + 1)})),
    "summary nested too deep": frame(span_record(T, S), metrics=[{"name": "m", "time_ns": 1, "summary": json.loads("[" * 40 + "]" * 40)}]),
    "bad event": frame(span_record(T, S, events=[{"name": "e"}])),
    "bad link": frame(span_record(T, S, links=[{"trace_id": T, "span_id": "no"}])),
    "null attributes": frame(span_record(T, S, attributes=None)),
    "bad metric": frame(span_record(T, S), metrics=[{"name": "m", "time_ns": 1, "value": "x"}]),
    "bad drops": frame(span_record(T, S), drops={"spans": -1}),
    "seq a string": frame(span_record(T, S), seq="7"),
    "too many spans": frame(*[span_record(T, f"{i:016x}") for i in range(MAX_BATCH_SPANS + 1)]),
}


@pytest.mark.parametrize("data", GOOD.values(), ids=GOOD.keys())
def test_quick_path_gives_the_detailed_paths_records(data: str) -> None:
    quick, detailed = quick_batch(data), parse_batch(orjson.loads(data))
    assert quick is not None and not detailed.refused and not detailed.refused_metrics
    assert (quick.seq, quick.metrics, quick.drops) == (detailed.seq, detailed.metrics, detailed.drops)
    assert [r.to_json() for r in quick.spans] == [r.to_json() for r in detailed.spans]


@pytest.mark.parametrize("data", BAD.values(), ids=BAD.keys())
def test_quick_path_declines_what_the_detailed_path_refuses(data: str) -> None:
    """Whatever the quick path declines, the detailed path refuses: the whole frame, or a span or point of it."""
    assert quick_batch(data) is None
    try:
        parsed = parse_batch(orjson.loads(data))
    except FrameError:
        return
    assert parsed.refused or parsed.refused_metrics


@pytest.mark.parametrize("data", ['{"type": "hello", "process": {}}', "[1]", '{"type": "batch", "seq": 1, "spans": ['])
def test_quick_path_declines_other_frames(data: str) -> None:
    assert quick_batch(data) is None
