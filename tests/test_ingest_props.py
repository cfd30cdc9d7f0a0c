"""Generated frames at the real `/ws/ingest`: plausible batches with hostile spans, hellos, garbage.

Whatever arrives, the connection answers every frame (an ack, listing each refused span, or an
error saying whether to resend), the server keeps serving, and every refusal is counted: stored
+ refused spans of an acked batch == its spans.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from dashboard_server import Dashboard, hello_frame, span_record
from opto.telemetry.limits import MAX_ITEMS, MAX_MESSAGE, MAX_NAME, MAX_VALUE

SETTINGS = settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    with Dashboard(tmp_path_factory.mktemp("ingest-props") / "opto.db") as d:
        yield d


@pytest.fixture(scope="module")
def ws(dashboard: Dashboard) -> Iterator[ClientConnection]:
    with connect(dashboard.ws_url + "/ws/ingest", max_size=None) as conn:
        conn.send(hello_frame())
        yield conn


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
long_text = st.sampled_from([MAX_NAME, MAX_NAME + 1, MAX_MESSAGE + 1, MAX_VALUE + 1]).map(lambda n: "x" * n)
field_values = st.one_of(json_values, long_text, st.integers(min_value=-(2**70), max_value=2**70), st.just("\ud800"))
span_fields = st.sampled_from([
    "trace_id", "span_id", "parent_span_id", "name", "kind", "state", "start_ns", "end_ns", "status", "attributes",
    "events", "links", "resource", "scope",
])


@st.composite
def spans(draw: st.DrawFn) -> dict[str, Any]:
    """A valid span record with up to three fields replaced by something hostile."""
    record = span_record(draw(st.text("0123456789abcdef", min_size=32, max_size=32)), draw(st.text("0123456789abcdef", min_size=16, max_size=16)))
    for key in draw(st.lists(span_fields, max_size=3)):
        record[key] = draw(st.one_of(field_values, st.dictionaries(st.text(max_size=MAX_NAME + 2), field_values, max_size=3),
                                     st.lists(st.just(1), min_size=MAX_ITEMS + 1, max_size=MAX_ITEMS + 1)))
    return record


@st.composite
def frames(draw: st.DrawFn) -> tuple[str, int | None]:
    """(frame text, the number of spans if it is a batch with a list of spans)."""
    kind = draw(st.sampled_from(["batch", "batch", "batch", "hello", "json", "text", "deep"]))
    if kind == "batch":
        batch: dict[str, Any] = {"type": "batch", "seq": draw(st.one_of(st.integers(0, 2**63 - 1), json_values)), "spans": draw(st.lists(spans(), max_size=6))}
        for key in draw(st.lists(st.sampled_from(["metrics", "drops", "resource"]), max_size=2)):
            batch[key] = draw(json_values)
        return json.dumps(batch, allow_nan=True), len(batch["spans"])
    if kind == "hello":
        return json.dumps({"type": "hello", "process": draw(json_values)}), None
    if kind == "json":
        return json.dumps(draw(json_values)), None
    if kind == "deep":
        return '{"type": "batch", "seq": 1, "spans": [], "metrics": ' + "[" * 2000 + "]" * 2000 + "}", None
    return draw(st.text(max_size=100)), None


@SETTINGS
@given(frame=frames())
def test_generated_frames_are_answered_counted_and_never_stop_the_door(dashboard: Dashboard, ws: ClientConnection, frame: tuple[str, int | None]) -> None:
    text, span_count = frame
    stats = dashboard.app.state.stats
    bad_before, refused_before, stored_before = stats.bad_frames, stats.spans_refused, stats.spans_stored
    ws.send(text)
    reply = json.loads(ws.recv(timeout=30))
    if reply["type"] == "ack":
        assert span_count is not None and reply["stored"] + len(reply.get("refused", ())) == span_count
        assert stats.spans_refused - refused_before == len(reply.get("refused", ()))
        assert stats.spans_stored - stored_before == reply["stored"] and stats.bad_frames == bad_before
    else:
        assert reply["type"] == "error" and reply["retry"] is False and reply["detail"]
        assert stats.bad_frames == bad_before + 1
    ws.send(json.dumps({"type": "batch", "seq": 1, "spans": []}))  # the same connection still stores
    assert json.loads(ws.recv(timeout=30))["type"] == "ack"
