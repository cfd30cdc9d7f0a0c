"""Zero loss under faults: every span a traced program emits is stored, or counted as dropped by a reason.

Each test runs a real program (its own interpreter, `opto.configure(dashboard=...)`) against a real
dashboard and its real writer process, injects a fault, and checks stored + dropped == emitted,
with nothing dropped where the fault is transient.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashboard_server import Dashboard, DashboardProcess, run_program
from opto_dashboard import compact

PROGRAM = """
import asyncio, sys, opto
from opentelemetry import trace
opto.configure(service_name="faults")

@opto.trace.async_trace
async def work(kind):
    if kind == "attribute":
        trace.get_current_span().set_attribute("big", "x" * 1_000_000)
    elif kind == "message":
        raise ValueError("m" * 5000)
    elif kind == "infinite":
        trace.get_current_span().set_attribute("ratio", float("inf"))
    elif kind == "events":  # each event within the limits, all of them 8 MB: over a frame
        span = trace.get_current_span()
        for _ in range(128):
            span.add_event("e", {"x": "a" * 65_536})
    elif kind == "odd":  # what JSON or orjson cannot carry as it is
        trace.get_current_span().set_attributes({"path": "bad\\udcff.txt", "huge": 2**70})
    await asyncio.sleep(0)

async def main():
    emitted = 0
    while line := await asyncio.to_thread(sys.stdin.readline):
        command, *args = line.split()
        if command == "emit":  # emit N [KIND EVERY]: N calls, every EVERY-th of them KIND
            n, kind, every = int(args[0]), args[1] if len(args) > 1 else "plain", int(args[2]) if len(args) > 2 else 1
            for i in range(n):
                try:
                    await work(kind if i % every == 0 else "plain")
                except ValueError:
                    pass
            emitted += n
        elif command == "flush":
            trace.get_tracer_provider().force_flush(120_000)
        print("done", emitted, flush=True)

asyncio.run(main())
"""


class App:
    """PROGRAM in a subprocess: `run("emit 100")` returns the spans emitted so far."""

    def __init__(self, url: str, flush_timeout: str = "120") -> None:
        self.proc = run_program(PROGRAM, {"OPTO_DASHBOARD_URL": url, "OPTO_DASHBOARD_FLUSH_TIMEOUT": flush_timeout})

    def run(self, command: str) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line.startswith("done"), f"got {line!r}; stderr: {self.proc.stderr.read() if self.proc.stderr and not line else ''}"
        return int(line.split()[1])

    def finish(self) -> str:
        _, err = self.proc.communicate(timeout=180)
        assert self.proc.returncode == 0, err
        return err


def stored(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT count(*) FROM spans WHERE name = 'work' AND state = 'ended'").fetchone()[0]  # type: ignore[no-any-return]


def dropped(dashboard: Dashboard) -> dict[str, Any]:
    (drops,) = dashboard.get("/api/live")["drops"].values()
    return drops  # type: ignore[no-any-return]


async def wait_for(condition: Any, what: str, timeout: float = 60) -> Any:
    """Poll the dashboard's API until `condition()` is truthy (there is no event to await across processes)."""
    async with asyncio.timeout(timeout):
        while not (value := condition()):
            await asyncio.sleep(0.05)
    return value


def test_oversized_spans_are_stored_cut_to_the_limits_and_marked(dashboard: Dashboard) -> None:
    """A 5,000-char exception message and 1 MB attributes (frames that would pass 8 MiB) are cut, not
    lost; an infinite float attribute does not cost its span."""
    app = App(dashboard.url)
    app.run("emit 2000 message 100")
    app.run("emit 2000 attribute 100")
    app.run("emit 200 attribute 1")  # 200 spans of 1 MB at once: 13 MB cut, split across frames
    app.run("emit 10 infinite 1")  # JSON has no infinity: the value is left out, the span kept
    app.run("emit 3 events 1")  # events that pass every limit but the span's size: cut to it
    emitted = app.run("emit 10 odd 1")
    app.run("flush")
    assert "did not get" not in app.finish()
    assert stored(dashboard.app.state.store.path) == emitted == 4223
    attributes = "SELECT a FROM (SELECT opto_attributes(s.attributes, k.keys) AS a FROM spans s JOIN attribute_keys k ON k.id = s.keys_ref)"
    with closing(sqlite3.connect(dashboard.app.state.store.path)) as db:
        compact.register(db)
        odd = db.execute(attributes + " WHERE a LIKE '%huge%'").fetchall()
    assert len(odd) == 10 and all(json.loads(a)["path"] == "bad\ufffd.txt" for (a,) in odd)
    assert dropped(dashboard)["spans"] == 0
    with closing(sqlite3.connect(dashboard.app.state.store.path)) as db:
        compact.register(db)
        rows = db.execute(attributes + " WHERE a LIKE '%opto.truncated%'").fetchall()
        messages = [m for (m,) in db.execute("SELECT status_message FROM spans WHERE status_code = 'error'")]
    big = [a for (a,) in rows if '"attributes.big"' in a]
    assert len(big) == 220 and all(len(a) > 65_536 for a in big)
    assert len(rows) == 223  # and the three spans of 128 big events, cut to MAX_SPAN_BYTES
    assert len(messages) == 20 and all(m.startswith("ValueError: mmm") and len(m) <= 4096 for m in messages)


def test_a_stopped_dashboard_holds_up_nothing_and_loses_nothing(tmp_path: Path) -> None:
    """SIGSTOP: the connection hangs without an error; the program runs on, and everything arrives after SIGCONT."""
    server = DashboardProcess(tmp_path / "opto.db")
    try:
        server.start()
        app = App(server.url)
        app.run("emit 500")
        assert server.proc is not None
        server.proc.send_signal(signal.SIGSTOP)
        try:
            emitted = app.run("emit 5000")  # returns while the dashboard cannot answer
        finally:
            server.proc.send_signal(signal.SIGCONT)
        app.run("flush")
        assert "did not get" not in app.finish()
        (drops,) = server.get("/api/live")["drops"].values()
        assert stored(server.db_path) == emitted == 5500 and drops["spans"] == 0
    finally:
        server.close()


def writer_pids(db: Path) -> list[int]:
    """The SQLite writer processes serving `db` (found in /proc by their command line)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"opto_dashboard.writer" in argv and str(db).encode() in argv:
            pids.append(int(entry.name))
    return pids


def test_a_writer_killed_every_30_ms_loses_nothing(dashboard: Dashboard) -> None:
    """Writes that meet a dead writer are answered `retry`; the SDK resends them until they are stored."""
    db = dashboard.app.state.store.path
    stop = threading.Event()
    kills = 0

    def storm() -> None:
        nonlocal kills
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not stop.is_set():
            for pid in writer_pids(db):
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass
            stop.wait(0.03)

    app = App(dashboard.url)
    app.run("emit 10")  # the dashboard serves, its first writer started
    killer = threading.Thread(target=storm)
    killer.start()
    try:
        while killer.is_alive():  # about 2,500 spans/s, the pace of a busy service
            emitted = app.run("emit 100")
            stop.wait(0.04)
    finally:
        stop.set()
        killer.join()
    app.run("flush")
    err = app.finish()
    assert kills >= 10
    assert stored(db) + dropped(dashboard)["spans"] == emitted
    assert "did not get" not in err and dropped(dashboard)["spans"] == 0


@contextlib.contextmanager
def write_lock_held(db: Path) -> Iterator[None]:
    """Another process holds the database's write lock until the block ends."""
    holder = subprocess.Popen(
        ["python3", "-c", "import sqlite3, sys; db = sqlite3.connect(sys.argv[1], isolation_level=None); "
         "db.execute('BEGIN IMMEDIATE'); print('locked', flush=True); sys.stdin.readline()", str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        yield
    finally:
        holder.communicate("\n", timeout=30)


async def test_a_database_locked_past_the_busy_timeout_fails_visibly_then_loses_nothing(dashboard: Dashboard) -> None:
    """Another process holds the write lock for longer than the writer waits: the failure is shown, and resent."""
    db = dashboard.app.state.store.path
    app = App(dashboard.url)
    app.run("emit 100")
    with write_lock_held(db):
        emitted = await asyncio.to_thread(app.run, "emit 500")
        writes = await wait_for(lambda: (w := dashboard.get("/api/live")["writes"])["failing"] and w, "a failing write", timeout=60)
        assert "locked" in writes["error"] and writes["spans_not_stored"] > 0
    await asyncio.to_thread(app.run, "flush")
    assert "did not get" not in app.finish()
    assert stored(db) == emitted and dropped(dashboard)["spans"] == 0
    assert not dashboard.get("/api/live")["writes"]["failing"]


async def test_an_app_that_exits_while_the_database_is_locked_reports_every_span_not_stored(dashboard: Dashboard) -> None:
    """The app's exit waits the flush timeout (the default, as long as shutdown's own), then names each
    span the dashboard never confirmed: dropped, unsent, or sent but unacknowledged (perhaps stored)."""
    db = dashboard.app.state.store.path
    app = App(dashboard.url, flush_timeout=str(5.0))
    app.run("emit 100")
    with write_lock_held(db):
        emitted = await asyncio.to_thread(app.run, "emit 500")
        err = await asyncio.to_thread(app.finish)
    report = re.search(r"did not get (\d+) spans: (\d+) dropped \([^)]*\), (\d+) unsent at shutdown(?:; (\d+) sent but not acknowledged)?", err)
    assert report is not None, err
    lost, dropped_, unsent, unacked = (int(n or 0) for n in report.groups())
    assert lost == dropped_ + unsent and lost + unacked > 0
    assert emitted - lost - unacked <= stored(db) <= emitted - lost


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs file system (needs root, as this project's machines and CI are)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


async def test_a_full_disk_is_named_and_every_span_arrives_once_space_is_freed(small_disk: Path) -> None:
    """Writes on a full disk fail as "disk full" (not a masked rollback error), show on /api/live, and are resent."""
    db = small_disk / "opto.db"
    with Dashboard(db) as dashboard:
        dashboard.get("/api/live")  # serving, its database made, before the disk fills
        ballast = small_disk / "ballast"
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        ballast.write_bytes(b"\0" * (free - 256 * 1024))  # leaves room for a few hundred spans
        app = App(dashboard.url)
        emitted = await asyncio.to_thread(app.run, "emit 3000")
        writes = await wait_for(lambda: (w := dashboard.get("/api/live")["writes"])["failing"] and w, "a failing write")
        assert "SQLITE_FULL: database or disk is full" in writes["error"]
        ballast.unlink()
        await asyncio.to_thread(app.run, "flush")
        assert "did not get" not in app.finish()
        assert stored(db) == emitted == 3000 and dropped(dashboard)["spans"] == 0
        assert not dashboard.get("/api/live")["writes"]["failing"]


async def test_otlp_on_a_full_disk_answers_503_with_retry_after_and_stores_the_retry(small_disk: Path) -> None:
    """The OTLP door's transient failure is a 503 with Retry-After, never a 200 or a 400, so collectors retry."""
    db = small_disk / "opto.db"
    with Dashboard(db) as dashboard:
        dashboard.get("/api/live")  # serving, its database made, before the disk fills
        ballast = small_disk / "ballast"
        stat = os.statvfs(small_disk)
        ballast.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 64 * 1024))
        spans = [
            {"traceId": f"{i + 1:032x}", "spanId": f"{i + 1:016x}", "name": "otlp", "startTimeUnixNano": 1, "endTimeUnixNano": 2,
             "attributes": [{"key": "payload", "value": {"stringValue": "x" * 60_000}}]}
            for i in range(40)
        ]
        body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})
        async with httpx.AsyncClient(base_url=dashboard.url, timeout=30) as client:
            refused = await client.post("/v1/traces", content=body, headers={"Content-Type": "application/json"})
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
            assert "database or disk is full" in refused.json()["message"]
            ballast.unlink()
            assert (await client.post("/v1/traces", content=body, headers={"Content-Type": "application/json"})).status_code == 200
        with closing(sqlite3.connect(db)) as conn:
            assert conn.execute("SELECT count(*) FROM spans WHERE name = 'otlp'").fetchone()[0] == 40
