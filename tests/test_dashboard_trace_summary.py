"""A trace's summary row (span count, in flight, errors, retries, root) kept by the SQLite writer:
recounted for small traces, updated from each write for big ones; both must agree."""

from __future__ import annotations

import random
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from opto_dashboard import writer
from dashboard_server import span_write
from opto_dashboard.writer import open_database


def row(trace_id: str, span_id: str, parent: str | None, start: int, state: str, outcome: str | None = None,
        attempts: int | None = None) -> list[Any]:
    """A span's values in WIRE_COLUMNS order, its resource and attribute names as values (`span_write`)."""
    end = start + 10 if state == "ended" else None
    return [trace_id, span_id, parent, f"op-{span_id}", "call", state, start, end, "UNSET", "", outcome, attempts,
            (None, "svc", "{}", "{}"), "[]", "[]", None, None]


def write(db: sqlite3.Connection, rows: list[list[Any]]) -> None:
    db.execute("BEGIN IMMEDIATE")
    writer._write(db, span_write(rows))
    db.execute("COMMIT")


def summaries(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return db.execute("SELECT * FROM traces ORDER BY trace_id").fetchall()  # the rowids too: the same writes, the same rows


def random_writes(seed: int) -> list[list[list[Any]]]:
    """Writes to three traces: spans started then ended later, spans sent ended, resent duplicates,
    roots arriving late, outcomes and retries of every kind; start times unique."""
    rng = random.Random(seed)
    clock = iter(rng.sample(range(10_000, 100_000), 2_000))
    started: dict[str, list[Any]] = {}
    ended: list[list[Any]] = []
    writes = []
    for _ in range(40):
        batch = []
        for _ in range(rng.randint(1, 25)):
            trace_id = rng.choice("abc") * 32
            span_id = f"{rng.getrandbits(64):016x}"
            parent = None if rng.random() < 0.1 else f"{rng.getrandbits(64):016x}"
            pick = rng.random()
            if pick < 0.35:
                r = row(trace_id, span_id, parent, next(clock), "started")
                started[span_id] = r
            elif pick < 0.65 and started:
                old = started.pop(rng.choice(list(started)))
                r = row(old[0], old[1], old[2], old[6], "ended", rng.choice(["ok", "error", "timeout", "cancelled", None]),
                        rng.choice([None, 1, 2, 4]))
                ended.append(r)
            elif pick < 0.75 and ended:
                r = rng.choice(ended)  # resent: the store keeps the first
            else:
                r = row(trace_id, span_id, parent, next(clock), "ended", rng.choice(["ok", "error"]), rng.choice([None, 3]))
                ended.append(r)
            batch.append(r)
        writes.append(batch)
    return writes


@pytest.mark.parametrize("seed", range(8))
def test_updating_a_big_trace_from_each_write_agrees_with_recounting_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    with closing(open_database(str(tmp_path / "recount.db"))) as recounted, closing(open_database(str(tmp_path / "update.db"))) as updated:
        for batch in random_writes(seed):
            monkeypatch.setattr(writer, "_BIG", 10**9)
            write(recounted, batch)
            monkeypatch.setattr(writer, "_BIG", 0)
            write(updated, batch)
            assert summaries(updated) == summaries(recounted)
        assert len(summaries(updated)) == 3
