"""Retention by size (`--max-db-size`), the WAL's bound, and the database's size on `/api/live`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from dashboard_server import Dashboard, span_write
from opto_dashboard import writer
from opto_dashboard.cli import build_parser, parse_size
from opto_dashboard.writer import Prune, open_database, used_bytes
from test_dashboard_api import Feed, call, served  # noqa: F401  (the fixture)


def write_traces(db, first: int, n: int) -> None:  # type: ignore[no-untyped-def]
    rows = []
    for i in range(first, first + n):
        trace = f"{i:032x}"
        rows.append([trace, f"{i:016x}", None, "work", "internal", "ended", i, i + 1, "unset", "", "ok", None, (None, "svc", "{}", "{}"),
                     json.dumps(["payload", "n"]), json.dumps(["x" * 1000, i]), None, None])
    db.execute("BEGIN IMMEDIATE")
    writer._write(db, span_write(rows))
    db.execute("COMMIT")


def test_pruning_by_size_drops_the_oldest_traces_until_under_the_limit(tmp_path: Path) -> None:
    db = open_database(str(tmp_path / "size.db"))
    try:
        write_traces(db, 0, 4000)
        assert used_bytes(db) > 4 << 20
        limit = 2 << 20
        db.execute("BEGIN IMMEDIATE")
        pruned = writer._prune(db, Prune(max_spans=1_000_000, retention_s=None, max_db_bytes=limit))
        db.execute("COMMIT")
        assert pruned > 2000 and used_bytes(db) <= limit
        (oldest, kept), = db.execute("SELECT min(start_ns), count(*) FROM traces")
        assert oldest == pruned and kept == 4000 - pruned  # the oldest went first
        write_traces(db, 4000, 500)  # new writes reuse the freed pages: the file does not grow
        size = (tmp_path / "size.db").stat().st_size
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert (tmp_path / "size.db").stat().st_size <= max(size, 6 << 20)
    finally:
        db.close()


def test_under_the_limit_nothing_is_pruned(tmp_path: Path) -> None:
    db = open_database(str(tmp_path / "small.db"))
    try:
        write_traces(db, 0, 10)
        db.execute("BEGIN IMMEDIATE")
        assert writer._prune(db, Prune(max_spans=1_000_000, retention_s=None, max_db_bytes=1 << 30)) == 0
        db.execute("COMMIT")
    finally:
        db.close()


@pytest.mark.parametrize("text, size", [("1GB", 1 << 30), ("500MB", 500 << 20), ("1.5G", 3 << 29), ("2TiB", 2 << 40), (" 64 mb ", 64 << 20)])
def test_sizes_are_read_in_units_of_1024(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GB", "1XB", "-1GB", "10KB"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_size(text)


def test_the_cli_refuses_a_bad_max_db_size(capsys: pytest.CaptureFixture[str]) -> None:
    from opto_dashboard.cli import main

    with pytest.raises(SystemExit):
        main(["--max-db-size", "lots"])
    assert "--max-db-size: expected a size such as 500MB" in capsys.readouterr().err
    assert build_parser().parse_args(["--max-db-size", "1GB"]).max_db_size == "1GB"


async def test_live_reports_the_database_size_and_retention(tmp_path: Path) -> None:
    with Dashboard(tmp_path / "opto.db", max_db_bytes=64 << 20, max_spans=5000, retention_s=3600) as d:
        storage = httpx.get(f"{d.url}/api/live", timeout=30).json()["storage"]
        assert storage["max_db_bytes"] == 64 << 20 and storage["max_spans"] == 5000 and storage["retention_s"] == 3600
        assert storage["file_bytes"] == (tmp_path / "opto.db").stat().st_size
        assert 0 < storage["used_bytes"] <= storage["file_bytes"] + storage["wal_bytes"]  # pages not yet checkpointed are in the WAL
        assert storage["wal_bytes"] >= 0


def test_a_size_limit_under_a_megabyte_is_refused(tmp_path: Path) -> None:
    from opto_dashboard.store import Store

    with pytest.raises(ValueError, match="max_db_bytes must be >= 1048576"):
        Store(tmp_path / "x.db", max_db_bytes=1000)
