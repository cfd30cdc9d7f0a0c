"""Zero loss under faults: an app at 2,500 spans/s against a real `opto-dashboard` while faults come in turn.

The faults: the dashboard killed (-9) and restarted, the dashboard stopped (SIGSTOP) for 10 s, its
writer process killed every 30 ms for 3 s, the disk full for 10 s then freed, another process holding
the database's write lock for 15 s, and spans over the size limits (1 MB attributes, 5,000-char
messages). Prints, per phase, the spans emitted, stored and dropped (by reason), and the app's p99
call time against the fault-free baseline phase of the same run.

    .venv/bin/python bench/faults.py            # needs root for the small tmpfs of the disk-full fault
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

import httpx

APP = r"""
import asyncio, json, sys, threading, time
from collections import defaultdict
import opto
from opentelemetry import trace
opto.configure(service_name="faults-bench")
phase = ["baseline"]
stopped = threading.Event()

def read_phases():
    for line in sys.stdin:
        if line.strip() == "stop":
            break
        phase[0] = line.strip()
    stopped.set()

@opto.trace.async_trace
async def work(kind, i):
    span = trace.get_current_span()
    span.set_attribute("phase", phase[0])
    if kind == "oversized" and i % 50 == 0:
        span.set_attribute("big", "x" * 1_000_000)
    if kind == "oversized" and i % 50 == 25:
        raise ValueError("m" * 5000)

async def main():
    threading.Thread(target=read_phases, daemon=True).start()
    times, emitted = defaultdict(list), defaultdict(int)
    next_t, i = time.perf_counter(), 0
    while not stopped.is_set():
        for _ in range(25):  # 25 calls every 10 ms: 2,500 spans/s
            name = phase[0]
            t0 = time.perf_counter_ns()
            try:
                await work(name, i)
            except ValueError:
                pass
            times[name].append(time.perf_counter_ns() - t0)
            emitted[name] += 1
            i += 1
        next_t += 0.01
        await asyncio.sleep(max(0.0, next_t - time.perf_counter()))
    provider = trace.get_tracer_provider()
    provider.force_flush(180_000)
    live = [p for p in provider._active_span_processor._span_processors if hasattr(p, "drops")][0]
    p99 = {k: sorted(v)[int(len(v) * 0.99)] / 1000 for k, v in times.items()}
    print(json.dumps({"emitted": emitted, "p99_us": p99, "drops": live.drops, "unsent": live._unsent_spans() + live._unacked_spans()}), flush=True)

asyncio.run(main())
"""


class Server:
    """`opto-dashboard` on a socket this process keeps, so a restart comes back on the same port."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        fd = self.sock.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opto_dashboard", "--db", str(self.db), "--fd", str(fd)], pass_fds=[fd], stdout=subprocess.DEVNULL,
        )
        httpx.get(f"{self.url}/api/live", timeout=60).raise_for_status()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def writer_pids(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except (OSError, ValueError):
                continue
            if b"opto_dashboard.writer" in argv and str(self.db).encode() in argv:
                pids.append(int(entry.name))
        return pids

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.sock.close()


def fill(disk: Path) -> Path:
    stat = os.statvfs(disk)
    ballast = disk / "ballast"
    with ballast.open("wb") as f:
        f.truncate(0)
        remaining = stat.f_bavail * stat.f_frsize
        chunk = b"\0" * (1 << 20)
        while remaining > 0:
            try:
                f.write(chunk[:remaining])
                f.flush()
            except OSError:
                break
            remaining -= len(chunk)
    return ballast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=float, default=8.0, help="seconds of the fault-free phase")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opto-faults-"))
    disk = work / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1g", "tmpfs", str(disk)], capture_output=True).returncode == 0
    server = Server((disk if mounted else work) / "opto.db")
    server.start()
    app = subprocess.Popen([sys.executable, "-c", APP], env={**os.environ, "OPTO_DASHBOARD_URL": server.url, "OPTO_DASHBOARD_FLUSH_TIMEOUT": "180"},
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert app.stdin is not None and app.stdout is not None

    def phase(name: str, seconds: float, inject=None) -> None:  # type: ignore[no-untyped-def]
        print(f"  {name} ...", file=sys.stderr, flush=True)
        app.stdin.write(name + "\n")  # type: ignore[union-attr]
        app.stdin.flush()  # type: ignore[union-attr]
        if inject is not None:
            inject()
        else:
            time.sleep(seconds)

    def kill_restart() -> None:
        server.kill()
        time.sleep(3)
        server.start()
        time.sleep(2)

    def sigstop() -> None:
        server.signal(signal.SIGSTOP)
        time.sleep(10)
        server.signal(signal.SIGCONT)
        time.sleep(2)

    def writer_storm() -> None:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            for pid in server.writer_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.03)
        time.sleep(2)

    def disk_full() -> None:
        ballast = fill(disk)
        time.sleep(10)
        ballast.unlink()
        time.sleep(2)

    def lock() -> None:
        db = sqlite3.connect(server.db, isolation_level=None, timeout=30)
        db.execute("BEGIN IMMEDIATE")
        time.sleep(15)
        db.execute("COMMIT")
        db.close()
        time.sleep(2)

    try:
        phase("baseline", args.baseline)
        phase("dashboard kill -9, restart after 3 s", 0, kill_restart)
        phase("SIGSTOP 10 s", 0, sigstop)
        phase("writer killed every 30 ms for 3 s", 0, writer_storm)
        if mounted:
            phase("disk full 10 s, then freed", 0, disk_full)
        phase("write lock held 15 s", 0, lock)
        phase("oversized", 6)
        phase("after", 3)
        app.stdin.write("stop\n")
        app.stdin.flush()
        result = json.loads(app.stdout.readline())
        app.wait(200)
        with closing(sqlite3.connect(server.db)) as db:
            compact.register(db)
            work = "SELECT opto_attributes(s.attributes, k.keys) AS a FROM spans s JOIN attribute_keys k ON k.id = s.keys_ref WHERE s.name = 'work'"
            stored = dict(db.execute(
                f"SELECT a ->> '$.phase', count(*) FROM ({work} AND s.state = 'ended') GROUP BY 1"
            ).fetchall())
            truncated = db.execute(f"SELECT count(*) FROM ({work}) WHERE a LIKE '%opto.truncated%'").fetchone()[0]
        live = httpx.get(f"{server.url}/api/live", timeout=30).json()
    finally:
        if app.poll() is None:
            app.kill()
        server.close()
        if mounted:
            subprocess.run(["umount", "-l", str(disk)])
    base = result["p99_us"]["baseline"]
    print(f"{'phase':40} {'emitted':>8} {'stored':>8} {'lost':>6} {'p99 call':>10} {'vs baseline':>12}")
    for name, emitted in result["emitted"].items():
        p99 = result["p99_us"][name]
        print(f"{name:40} {emitted:>8} {stored.get(name, 0):>8} {emitted - stored.get(name, 0):>6} {p99:>8.0f}us {p99 / base:>11.2f}x")
    total = sum(result["emitted"].values())
    print(f"\ntotal emitted {total}, stored {sum(stored.values())}, dropped by reason {result['drops']}, unsent at exit {result['unsent']}")
    print(f"oversized spans stored cut and marked: {truncated}; dashboard counted: {live['ingest']}, writes {live['writes']}")
    if not mounted:
        print("(the disk-full fault needs root for its tmpfs: skipped)")


if __name__ == "__main__":
    main()
