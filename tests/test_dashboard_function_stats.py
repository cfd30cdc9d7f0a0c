"""The Retries page's per-function counts (`function_stats`), kept by the writer as spans end and
are pruned, agree with counting the spans."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from opto.telemetry import semconv
from opto_dashboard import writer
from opto_dashboard.writer import Prune, open_database
from test_dashboard_trace_summary import random_writes, row, write


def kept(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return db.execute("SELECT * FROM function_stats ORDER BY name").fetchall()


def recounted(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return sorted(db.execute(writer._FUNCTION_COUNTS.format("true")).fetchall())


@pytest.mark.parametrize("seed", range(4))
def test_counts_kept_per_write_agree_with_a_recount(tmp_path: Path, seed: int) -> None:
    """Spans started then ended, sent ended, resent, and sent twice in one write; then pruned."""
    db = open_database(str(tmp_path / "stats.db"))
    try:
        for batch in random_writes(seed):
            write(db, batch + batch[:2])  # a span twice in one write counts once
            assert kept(db) == recounted(db)
        db.execute("UPDATE traces SET in_flight = 0")
        db.execute("BEGIN IMMEDIATE")
        writer._prune(db, Prune(max_spans=10, retention_s=None))
        db.execute("COMMIT")
        assert kept(db) == recounted(db)
    finally:
        db.close()


def test_exhausted_retries_are_counted(tmp_path: Path) -> None:
    assert writer.RETRY_EXHAUSTED == semconv.RETRY_EXHAUSTED
    db = open_database(str(tmp_path / "exhausted.db"))
    try:
        r = row("f" * 32, "1" * 16, None, 5, "ended", "error", 3)
        r[3], r[13], r[14] = "flaky", json.dumps([semconv.RETRY_EXHAUSTED]), json.dumps([True])
        write(db, [r])
        assert kept(db) == [("flaky", 1, 2, 1)]
    finally:
        db.close()
