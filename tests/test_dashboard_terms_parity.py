"""The filter terms the dashboard makes from its records are the ones the writer would read back out
of the stored rows: the same index whether a write came with its terms or not."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard_server import span_record
from opto_dashboard import writer
from opto_dashboard.records import SpanRecord
from opto_dashboard.store import Write, _request

# No NUL: SQLite's JSON functions cut text at one (the writer's own terms would be cut there too).
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=250)  # as JSON carries it
values = st.one_of(
    text, st.booleans(), st.integers(-(2**63), 2**63 - 1),
    # Floats a person would filter by: SQLite's own printf rounds some 15-digit values differently
    # in the last digit, so only the back-fill of an old database could differ for those.
    st.integers(-(10**9), 10**9).map(lambda i: i / 8), st.sampled_from([1.0, -0.0, 0.5, 1e20, -3.25, 1e-7, 123456789.123, 2.0**60]),
    st.lists(st.integers(), max_size=3),
)
attributes = st.dictionaries(text.filter(bool).map(lambda k: k[:12]), values, max_size=5)


def indexed(db: sqlite3.Connection) -> set[tuple[str, str]]:
    return set(db.execute(
        "SELECT traces.trace_id, terms.term FROM trace_terms JOIN terms ON terms.id = term_id JOIN traces ON traces.rowid = trace_ref"
    ))


@settings(max_examples=40, deadline=None)
@given(spans=st.lists(st.tuples(attributes, st.lists(st.tuples(text.filter(bool).map(lambda n: n[:10]), attributes), max_size=2), st.booleans()), min_size=1, max_size=6))
def test_terms_made_from_records_match_the_writers_own(tmp_path_factory: object, spans: list[tuple[dict[str, object], list[tuple[str, dict[str, object]]], bool]]) -> None:
    now = time.time_ns()
    records = [
        SpanRecord.from_json(span_record(
            f"{i % 2 + 1:032x}", f"{i + 1:016x}", f"name{i % 3}", ended=ended, attributes=attrs, resource={"service.name": f"svc{i % 2}"},
            events=[{"name": name, "time_ns": now, "attributes": ev} for name, ev in events],
        ))
        for i, (attrs, events, ended) in enumerate(spans)
    ]
    request = _request([Write(records)], now)
    base = Path(tmp_path_factory.mktemp("terms"))  # type: ignore[attr-defined]
    made, read_back = writer.open_database(str(base / "made.db")), writer.open_database(str(base / "read.db"))
    try:
        writer._transaction(made, request)
        request.terms = None
        writer._transaction(read_back, request)
        assert indexed(made) == indexed(read_back)
    finally:
        made.close()
        read_back.close()
