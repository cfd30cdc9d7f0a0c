"""The compact span storage: ids stored as blobs and answered as hex, each resource and set of
attribute names stored once and pruned with the last span using it, limits kept at write time,
and a database of the earlier schema refused with the fix named."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import msgspec
import pytest

from dashboard_server import Dashboard, span_record, span_write
from opto.telemetry import semconv
from opto_dashboard.store import Store, StoreError
from opto_dashboard.writer import SCHEMA_VERSION, OldDatabase, Prune, open_database
from test_dashboard_api import Feed, served  # noqa: F401  (the fixture)
from test_dashboard_filters import span_row, store
from test_dashboard_trace_summary import random_writes, write

# The spans table as versions before SCHEMA_VERSION 2 made it (hex text ids, JSON on every span).
OLD_SCHEMA = """
CREATE TABLE spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT, name TEXT NOT NULL,
    kind TEXT NOT NULL, state TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER,
    status_code TEXT NOT NULL, status_message TEXT NOT NULL, outcome TEXT, attempts INTEGER,
    process_id TEXT, service TEXT, attributes TEXT NOT NULL, events TEXT, links TEXT,
    resource TEXT NOT NULL, scope TEXT NOT NULL, PRIMARY KEY (trace_id, span_id)
);
INSERT INTO spans VALUES ('aa', 'bb', NULL, 'old', 'internal', 'ended', 1, 2, 'unset', '', 'ok', NULL, NULL, NULL, '{}', NULL, NULL, '{}', '{}');
"""


def old_database(path: Path) -> None:
    db = sqlite3.connect(path)
    try:
        db.executescript(OLD_SCHEMA)
    finally:
        db.close()


def test_a_database_of_the_earlier_schema_is_refused_naming_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_database(path)
    with pytest.raises(OldDatabase, match=r"schema version 1.*reads version 2 only.*--db NEW\.db"):
        open_database(str(path))
    db = sqlite3.connect(path)
    try:  # left as it was
        assert db.execute("SELECT name FROM spans").fetchall() == [("old",)]
        assert db.execute("PRAGMA user_version").fetchone() == (0,)
    finally:
        db.close()


async def test_the_store_refuses_an_earlier_schema_for_good(tmp_path: Path) -> None:
    """Not transient: the same file will not open later, so the dashboard stops with the message."""
    path = tmp_path / "old.db"
    old_database(path)
    store = Store(path)
    with pytest.raises(StoreError, match="--db NEW.db") as caught:
        await store.open()
    assert not caught.value.transient


def test_a_new_file_gets_the_schema_version_and_opens_again(tmp_path: Path) -> None:
    path = str(tmp_path / "new.db")
    open_database(path).close()
    db = open_database(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    finally:
        db.close()


async def test_ids_are_stored_as_blobs_and_answered_as_hex(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    trace = "00" * 15 + "0a"  # leading zeros, and digits that hex() would answer in capitals
    root = span_record(trace, "00000000000000ff", "root")
    child = span_record(trace, "0f00000000000001", "child", parent="00000000000000ff")
    await feed.send([root, child])
    doc = d.get(f"/api/traces/{trace}")
    assert [(s["trace_id"], s["span_id"], s["parent_span_id"]) for s in doc["spans"]] == [
        (trace, "00000000000000ff", None), (trace, "0f00000000000001", "00000000000000ff")]
    assert [t["trace_id"] for t in d.get("/api/traces")["traces"]] == [trace]
    assert [t["trace_id"] for t in d.get(f"/api/traces?q={trace.upper()}")["traces"]] == [trace]  # the search box takes an id
    page = d.get(f"/api/traces/{trace}?limit=1")
    assert page["next"] == f"{root['start_ns']}:00000000000000ff"
    assert [s["span_id"] for s in d.get(f"/api/traces/{trace}?limit=1&after={page['next']}")["spans"]] == ["0f00000000000001"]
    db = sqlite3.connect(d.app.state.store.path)
    try:
        assert db.execute("SELECT DISTINCT typeof(span_id), length(span_id) FROM spans").fetchall() == [("blob", 8)]
        assert db.execute("SELECT typeof(trace_id), length(trace_id), hex(root_span_id) FROM traces").fetchall() == [
            ("blob", 16, "00000000000000FF")]
    finally:
        db.close()


def test_resources_and_attribute_names_are_stored_once_and_pruned_with_their_last_span(tmp_path: Path) -> None:
    db = open_database(str(tmp_path / "once.db"))
    try:
        rows = [span_row(f"{i + 1:032x}", f"{i + 1:016x}", "work", {"k": i, "path": "/app.py"}) for i in range(50)]
        rows.append(span_row("f" * 32, "f" * 16, "other", {"other": True}))
        rows[-1][12] = (None, "billing", json.dumps({semconv.SERVICE_NAME: "billing"}), "{}")
        store(db, span_write(rows))
        assert db.execute("SELECT count(*) FROM resources").fetchone() == (2,)
        assert db.execute("SELECT keys FROM attribute_keys ORDER BY id").fetchall() == [('["k", "path"]',), ('["other"]',)]
        # As if the "other" span had come before the rest (every span here starts at 1).
        db.execute("UPDATE traces SET start_ns = 0 WHERE trace_id = ?", (bytes.fromhex("f" * 32),))
        db.execute("UPDATE resources SET last_ns = 0 WHERE resource LIKE '%billing%'")
        db.execute("UPDATE attribute_keys SET last_ns = 0 WHERE keys = '[\"other\"]'")
        store(db, Prune(max_spans=50, retention_s=None))  # the oldest trace goes: the one "other" span
        assert db.execute("SELECT keys FROM attribute_keys").fetchall() == [('["k", "path"]',)]
        assert db.execute("SELECT resource FROM resources").fetchall() == [("{}",)]
        store(db, Prune(max_spans=1, retention_s=None))  # every trace but the newest: "work" names still used
        assert db.execute("SELECT count(*) FROM attribute_keys").fetchone() == (1,)
    finally:
        db.close()


async def test_limits_are_kept_as_spans_start_and_end(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    started = span_record("1" * 32, "1" * 16, "pool", ended=False, attributes={semconv.CONCURRENCY_LIMIT: 4})
    await feed.send([started, span_record("2" * 32, "2" * 16, "plain")])
    (row,) = d.get("/api/limits")["limits"]
    assert row == {"name": "pool", "limit": 4, "peak": None, "trace_id": "1" * 32, "span_id": "1" * 16,
                   "start_ns": started["start_ns"], "end_ns": None}
    ended = {**started, "state": "ended", "end_ns": started["start_ns"] + 10,
             "attributes": {semconv.CONCURRENCY_LIMIT: 4, semconv.CONCURRENCY_PEAK: 3, semconv.OUTCOME: "ok"}}
    await feed.send([ended])
    await feed.send([started])  # a late copy of the start does not undo the end
    (row,) = d.get("/api/limits")["limits"]
    assert (row["peak"], row["end_ns"]) == (3, started["start_ns"] + 10)
    assert d.get(f"/api/limits?since_ns={started['start_ns'] + 1}")["limits"] == []


def lists_agree(db: sqlite3.Connection) -> int:
    pairs = set(db.execute("SELECT term_id, trace_ref FROM trace_terms"))
    listed = {(term, ref) for ref, terms in db.execute("SELECT rowid, terms FROM traces") for term in msgspec.msgpack.decode(terms)}
    assert listed == pairs
    return len(pairs)


@pytest.mark.parametrize("seed", range(3))
def test_each_traces_own_term_list_agrees_with_trace_terms(tmp_path: Path, seed: int) -> None:
    """Through writes that add spans (and terms) to traces already stored, resends, and prunes."""
    db = open_database(str(tmp_path / "lists.db"))
    try:
        for batch in random_writes(seed):
            write(db, batch)
            assert lists_agree(db)
        db.execute("UPDATE traces SET in_flight = 0")
        store(db, Prune(max_spans=db.execute("SELECT max(span_count) FROM traces").fetchone()[0], retention_s=None))
        assert db.execute("SELECT count(*) FROM traces").fetchone() == (1,)
        assert lists_agree(db)
        assert db.execute("SELECT count(*) FROM terms WHERE id NOT IN (SELECT term_id FROM trace_terms)").fetchone() == (0,)
    finally:
        db.close()
