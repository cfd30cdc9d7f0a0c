"""The store and pipeline on a real SQLite file: retention, in-flight spans kept, batching, backpressure."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from dashboard_server import span_record
from opto_dashboard import priority, writer
from opto_dashboard.pipeline import Pipeline
from opto_dashboard.priority import BIG_WRITE_SPANS
from opto_dashboard.records import ProcessInfo, SpanRecord
from opto_dashboard.store import Store, StoreError, Write


def record(start_ns: int, ended: bool = True, name: str = "work") -> SpanRecord:
    return SpanRecord.from_json(span_record(secrets.token_hex(16), secrets.token_hex(8), name, ended=ended, start_ns=start_ns,
                                            end_ns=start_ns + 1 if ended else None))


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Store, Pipeline]]:
    store = Store(tmp_path / "opto.db", max_spans=5, retention_s=3600)
    await store.open()
    pipeline = Pipeline(store, max_pending=10)
    pipeline.start()
    try:
        yield store, pipeline
    finally:
        await pipeline.stop()
        await store.close()


def names(store: Store) -> list[str]:
    with closing(sqlite3.connect(store.path)) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM spans ORDER BY start_ns")]


async def test_prune_drops_oldest_finished_traces_past_max_spans_and_keeps_in_flight(running: tuple[Store, Pipeline]) -> None:
    store, pipeline = running
    now = time.time_ns()
    await pipeline.submit([record(now - 10, ended=False, name="open")])
    await pipeline.submit([record(now + i, name=f"t{i}") for i in range(8)])
    assert await store.prune() == 4
    assert names(store) == ["open", "t4", "t5", "t6", "t7"]


async def test_prune_drops_traces_older_than_retention_even_in_flight(running: tuple[Store, Pipeline]) -> None:
    """A span that has not ended within the retention never will: it goes with the finished ones."""
    store, pipeline = running
    hours_ago = time.time_ns() - int(2 * 3600e9)
    await pipeline.submit([record(hours_ago, name="old"), record(hours_ago, ended=False, name="old-open"), record(time.time_ns(), name="new")])
    assert await store.prune() == 2
    assert names(store) == ["new"]


async def test_spans_that_never_end_count_against_max_spans(running: tuple[Store, Pipeline]) -> None:
    """Past max_spans with no finished trace left to drop, the oldest in-flight traces go."""
    store, pipeline = running
    now = time.time_ns()
    await pipeline.submit([record(now + i, ended=False, name=f"open{i}") for i in range(8)])
    assert await store.prune() == 3
    assert names(store) == [f"open{i}" for i in range(3, 8)]


async def test_submit_waits_for_room_and_full_says_so_without_blocking(running: tuple[Store, Pipeline]) -> None:
    """With the queue at its bound, `full` is True at once, and a second submit waits for the first's commit."""
    _, pipeline = running
    now = time.time_ns()
    first = asyncio.ensure_future(pipeline.submit([record(now + i) for i in range(10)]))
    await asyncio.sleep(0)  # let the first submit enqueue
    assert pipeline.full and pipeline.pending == 10
    second = asyncio.ensure_future(pipeline.submit([record(now + 20)]))
    async with asyncio.timeout(30):
        assert await first == 10
        assert await second == 1
    assert not pipeline.full


async def test_stop_commits_what_is_queued(tmp_path: Path) -> None:
    store = Store(tmp_path / "opto.db")
    await store.open()
    pipeline = Pipeline(store)
    pipeline.start()
    pending = asyncio.ensure_future(pipeline.submit([record(time.time_ns())]))
    await asyncio.sleep(0)
    await pipeline.stop()
    assert await pending == 1
    assert names(store) == ["work"]
    with pytest.raises(RuntimeError, match="pipeline.start"):
        await pipeline.submit([])
    await store.close()


async def test_a_small_write_goes_on_during_a_request_and_a_big_one_waits_for_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests first (priority.py) for big writes only: a span start from the live exporter is not
    held back while a page's request is answered."""
    monkeypatch.setattr(priority, "MAX_WAIT_S", 3600.0)  # the request holds big writes for as long as it runs
    store = Store(tmp_path / "opto.db")
    await store.open()
    pipeline = Pipeline(store)
    pipeline.start()
    try:
        now = time.time_ns()
        with pipeline.requests.answering():
            assert await asyncio.wait_for(pipeline.submit([record(now, ended=False)]), 30) == 1
            big = asyncio.ensure_future(pipeline.submit([record(now + i) for i in range(BIG_WRITE_SPANS)]))
            for _ in range(5):
                await asyncio.sleep(0)
            assert not big.done() and names(store) == ["work"]
        assert await asyncio.wait_for(big, 30) == BIG_WRITE_SPANS
    finally:
        await pipeline.stop()
        await store.close()


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_spans must be >= 1"):
        Store(tmp_path / "x.db", max_spans=0)
    with pytest.raises(ValueError, match="retention must be > 0"):
        Store(tmp_path / "x.db", retention_s=0)


async def test_a_large_write_is_stored_whole_and_a_span_ended_in_it_is_not_in_flight(tmp_path: Path) -> None:
    """Spans go in multi-row statements of several sizes: 2,001 spans and the start of one of them
    (in the same statement as its end) are all stored, and the end replaces the start."""
    store = Store(tmp_path / "opto.db")
    await store.open()
    try:
        now = time.time_ns()
        spans = [record(now + i) for i in range(2000)]
        started = SpanRecord.from_json(span_record(spans[0].trace_id, "f" * 16, "late", ended=False, start_ns=now))
        ended = SpanRecord.from_json(span_record(spans[0].trace_id, "f" * 16, "late", start_ns=now, end_ns=now + 5))
        await store.write([Write([started, ended, *spans])])
        with closing(sqlite3.connect(store.path)) as conn:
            assert conn.execute("SELECT count(*) FROM spans").fetchone() == (2001,)
            assert conn.execute("SELECT state, end_ns FROM spans WHERE span_id = ?", (bytes.fromhex("f" * 16),)).fetchone() == ("ended", now + 5)
            assert conn.execute("SELECT sum(span_count), sum(in_flight) FROM traces").fetchone() == (2001, 0)
    finally:
        await store.close()


def writer_pids(db: Path) -> list[int]:
    """The SQLite writer processes this test process started for `db`."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"opto_dashboard.writer" in cmdline and str(db).encode() in cmdline:
            pids.append(int(proc.name))
    return pids


async def test_a_killed_writer_process_is_started_again_and_the_write_is_stored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(tmp_path / "opto.db")
    await store.open()
    try:
        (pid,) = writer_pids(store.path)
        os.kill(pid, signal.SIGKILL)
        assert await store.write([Write([record(time.time_ns())])]) == 1
        assert names(store) == ["work"]
        assert [p for p in writer_pids(store.path) if p != pid]
        assert "starting it again" in caplog.text
    finally:
        await store.close()
    assert writer_pids(store.path) == []


async def test_a_database_that_cannot_be_opened_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "opto.db").mkdir()
    store = Store(tmp_path / "opto.db")
    with pytest.raises(StoreError, match=r"cannot open .*opto\.db"):
        await store.open()
    with pytest.raises(RuntimeError, match="not open"):
        await store.prune()


async def test_a_write_the_database_refuses_is_undone_whole_and_the_writer_serves_on(tmp_path: Path) -> None:
    """A span past SQLite's limits fails its transaction: nothing of it stays, and the next write works."""
    store = Store(tmp_path / "opto.db")
    await store.open()
    try:
        good, bad = record(time.time_ns()), record(time.time_ns())
        bad.start_ns = 2**63  # only the validators stop this; here it reaches SQLite
        with pytest.raises(StoreError, match="OverflowError: .*too large"):
            await store.write([Write([good, bad])])
        assert names(store) == []
        assert await store.write([Write([good])]) == 1
    finally:
        await store.close()


async def test_one_clients_write_the_database_refuses_never_fails_its_neighbours(tmp_path: Path) -> None:
    """Writes queued together share a transaction; when one is refused, each is stored alone and only it fails."""
    store = Store(tmp_path / "opto.db")
    await store.open()
    pipeline = Pipeline(store)
    pipeline.start()
    try:
        bad = record(time.time_ns(), name="bad")
        bad.start_ns = 2**63  # only the validators stop this; here it reaches SQLite
        results = await asyncio.gather(
            pipeline.submit([record(time.time_ns(), name="first")]), pipeline.submit([bad]),
            pipeline.submit([record(time.time_ns(), name="third")]), return_exceptions=True,
        )
        assert results[0] == 1 and results[2] == 1
        assert isinstance(results[1], StoreError) and not results[1].transient
        assert sorted(names(store)) == ["first", "third"]
        assert (pipeline.health.failed_writes, pipeline.health.failed_spans, pipeline.health.failing) == (1, 1, False)
    finally:
        await pipeline.stop()
        await store.close()


async def test_metrics_older_than_retention_go_even_with_no_trace_to_prune(tmp_path: Path) -> None:
    store = Store(tmp_path / "opto.db", retention_s=3600)
    await store.open()
    try:
        process = ProcessInfo(secrets.token_hex(16), "test", 1, "host", "sdk", time.time_ns())
        old, new = time.time_ns() - int(2 * 3600e9), time.time_ns()
        points = [{"name": "opto.calls", "time_ns": t, "value": 1.0} for t in (old, new)]
        await store.write([Write([], process, points)])
        assert await store.prune() == 0
        with closing(sqlite3.connect(store.path)) as conn:
            assert conn.execute("SELECT time_ns FROM metrics").fetchall() == [(new,)]
    finally:
        await store.close()


async def test_processes_not_heard_from_within_the_retention_go(tmp_path: Path) -> None:
    """Each OTLP resource is a process row: without this, rows would grow for as long as the store lives."""
    store = Store(tmp_path / "opto.db", retention_s=3600)
    await store.open()
    try:
        gone, here = (ProcessInfo(secrets.token_hex(16), name, 1, "host", "sdk", time.time_ns()) for name in ("gone", "here"))
        await store.write([Write([], gone, [{"name": "opto.calls", "time_ns": time.time_ns(), "value": 1.0}])])
        await store.write([Write([], here, [{"name": "opto.calls", "time_ns": time.time_ns(), "value": 1.0}])])
        with closing(sqlite3.connect(store.path)) as conn, conn:
            conn.execute("UPDATE processes SET last_seen_ns = ? WHERE id = ?", (time.time_ns() - int(2 * 3600e9), gone.id))
        await store.prune()
        with closing(sqlite3.connect(store.path)) as conn:
            assert conn.execute("SELECT service FROM processes").fetchall() == [("here",)]
    finally:
        await store.close()


async def test_writes_queued_back_to_back_are_stored_in_order(running: tuple[Store, Pipeline]) -> None:
    """The next batch goes to the writer while one is being stored: a span's start and its end,
    submitted one after the other, still end up as the ended span."""
    store, pipeline = running
    now = time.time_ns()
    trace_id = secrets.token_hex(16)
    submits = []
    for i in range(4):  # each submit its own commit, the start before its end every time
        started = SpanRecord.from_json(span_record(trace_id, f"{i:016x}", f"s{i}", ended=False, start_ns=now + i))
        ended = SpanRecord.from_json(span_record(trace_id, f"{i:016x}", f"s{i}", start_ns=now + i, end_ns=now + i + 1))
        submits += [asyncio.ensure_future(pipeline.submit([started])), asyncio.ensure_future(pipeline.submit([ended]))]
        await asyncio.sleep(0)
    assert await asyncio.gather(*submits) == [1] * 8
    with closing(sqlite3.connect(store.path)) as conn:
        assert conn.execute(
            "SELECT count(*), sum(state = 'ended') FROM spans WHERE trace_ref = (SELECT rowid FROM traces WHERE trace_id = ?)",
            (bytes.fromhex(trace_id),)).fetchone() == (4, 4)
        assert conn.execute("SELECT in_flight FROM traces WHERE trace_id = ?", (bytes.fromhex(trace_id),)).fetchone() == (0,)


async def test_listeners_hear_one_write_a_turn_in_commit_order(tmp_path: Path) -> None:
    """Writes committed in one transaction are told to listeners one at a time, with a turn of the
    event loop between (a request waits behind one write's folding, not a transaction's), and
    still in the order they were submitted."""
    store = Store(tmp_path / "opto.db")
    await store.open()
    pipeline = Pipeline(store)
    heard: list[object] = []
    pipeline.listeners.append(lambda writes: heard.append([r.name for w in writes for r in w.spans]))
    pipeline.start()
    done = asyncio.Event()

    async def other_work() -> None:
        while not done.is_set():
            heard.append("turn")
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    try:
        now = time.time_ns()
        submits = [asyncio.ensure_future(pipeline.submit([record(now + i, name=f"w{i}") for _ in range(3)])) for i in range(6)]
        assert await asyncio.gather(*submits) == [3] * 6
        await pipeline.stop()  # the last listeners have been told
    finally:
        done.set()
        await other
        await pipeline.stop()
        await store.close()
    told = [i for i, h in enumerate(heard) if h != "turn"]
    assert [heard[i] for i in told] == [[f"w{i}"] * 3 for i in range(6)]
    assert all(b - a > 1 for a, b in zip(told, told[1:])), "another task ran between two writes' listeners"


async def test_the_writer_process_runs_at_a_lower_os_priority(tmp_path: Path) -> None:
    """The writer yields a contended core to the server (whose requests wait on it) by `writer.NICE`."""
    store = Store(tmp_path / "opto.db")
    await store.open()
    try:
        (pid,) = writer_pids(store.path)
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(os.getpriority(os.PRIO_PROCESS, 0) + writer.NICE, 19)
    finally:
        await store.close()
