"""The shared limits: whatever a span holds, `fit` makes a record the dashboard accepts, marked where cut."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from opto.telemetry import semconv
from opto.telemetry.limits import MAX_FRAME_BYTES, MAX_ITEMS, MAX_MESSAGE, MAX_NAME, MAX_VALUE, depth_within, fit, measure
from opto_dashboard.records import SpanRecord

# Sizes around every limit; strings are made by repetition so that megabytes cost nothing to generate.
_SIZES = st.sampled_from([0, 1, MAX_NAME, MAX_NAME + 1, MAX_MESSAGE + 1, MAX_VALUE, MAX_VALUE + 1, 300_000, 1_000_000])
_CHARS = st.sampled_from(["x", "é", "😀", "\u0001", '"'])


@st.composite
def text(draw: st.DrawFn) -> str:
    return draw(_CHARS) * draw(_SIZES)  # type: ignore[no-any-return]


@st.composite
def value(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["str", "int", "float", "bool", "list"]))
    if kind == "str":
        return draw(text())
    if kind == "list":  # long lists of short strings, or short lists of long ones
        if draw(st.booleans()):
            return [draw(_CHARS) * 5] * (MAX_ITEMS + 1)
        return [draw(text())] * 3
    return draw({"int": st.integers(-(2**63), 2**63 - 1), "float": st.floats(allow_nan=False), "bool": st.booleans()}[kind])


@st.composite
def attributes(draw: st.DrawFn) -> dict[str, Any]:
    many = draw(st.sampled_from([0, 3, MAX_ITEMS + 5]))
    attrs = {f"k{i}": draw(value()) if i < 6 else i for i in range(many)}
    if draw(st.booleans()):
        attrs["n" * draw(_SIZES)] = 1
    return attrs


@st.composite
def record(draw: st.DrawFn) -> dict[str, Any]:
    items = draw(st.sampled_from([0, 2, MAX_ITEMS + 1]))
    return {
        "trace_id": "a" * 32, "span_id": "b" * 16, "parent_span_id": None, "name": draw(text()) or "n", "kind": "internal",
        "state": "ended", "start_ns": 1, "end_ns": 2, "status": {"code": "error", "message": draw(text())},
        "attributes": draw(attributes()),
        "events": [{"name": draw(text()), "time_ns": 1, "attributes": draw(attributes()) if i < 2 else {}} for i in range(items)],
        "links": [{"trace_id": "c" * 32, "span_id": "d" * 16, "attributes": {}} for _ in range(draw(st.sampled_from([0, MAX_ITEMS + 1])))],
    }


@settings(max_examples=40, deadline=None)
@given(record())
def test_a_fitted_record_is_accepted_by_the_dashboard_and_fits_a_frame(raw: dict[str, Any]) -> None:
    # Sizes and flags only in the assertions: pytest would print megabyte-long records on a failure.
    within = measure(raw) >= 0
    fitted = fit(raw)
    encoded = orjson.dumps(fitted)
    SpanRecord.from_json(json.loads(encoded))  # raises RecordError if any limit is passed
    size, measured = len(encoded), measure(fitted)
    assert size < MAX_FRAME_BYTES // 2, size
    assert 0 <= measured and size <= 6 * measured, (size, measured)  # the exporter's frame budget holds
    marked = semconv.TRUNCATED in fitted["attributes"]
    assert not (within and marked), fitted["attributes"].get(semconv.TRUNCATED)  # nothing over a limit, nothing cut


def test_fit_cuts_only_what_is_over_and_names_it() -> None:
    raw = {
        "trace_id": "a" * 32, "span_id": "b" * 16, "name": "work", "state": "ended", "start_ns": 1, "end_ns": 2,
        "status": {"code": "error", "message": "m" * 5000},
        "attributes": {"small": "s", "big": "x" * 1_000_000, "tags": ["t"] * 2000},
        "events": [{"name": "exception", "time_ns": 1, "attributes": {"exception.stacktrace": "y" * 70_000}}],
    }
    fitted = fit(raw)
    assert fitted["attributes"]["small"] == "s" and len(fitted["attributes"]["big"]) == MAX_VALUE
    assert len(fitted["attributes"]["tags"]) == MAX_ITEMS and len(fitted["status"]["message"]) == MAX_MESSAGE
    assert len(fitted["events"][0]["attributes"]["exception.stacktrace"]) == MAX_VALUE
    assert fitted["attributes"][semconv.TRUNCATED] == [
        "status.message", "attributes.big", "attributes.tags", "events[0].attributes.exception.stacktrace",
    ]


def test_depth_is_measured_without_recursion() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert not depth_within(deep) and depth_within({"a": [{"b": 1}]}, 3) and not depth_within({"a": [{"b": {}}]}, 3)
