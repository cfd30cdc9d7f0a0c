"""The dashboard at scale (issue 15): build a store of N spans through the real ingest door, then time
every `/api/*` query the pages make, with and without ingest going on.

Run: .venv/bin/python bench/store_scale.py --spans 10000000
1. Ingest: a real dashboard subprocess (`--max-spans` above N, `--retention 30d`) is fed 5-span
   traces (7 attributes per span; 1 trace in 100 failed with "upstream reset by peer", 1 in 50
   retried after a TimeoutError; 3 services; start times spread over the last 6 days) over
   `/ws/ingest` by 2 connections; spans stored per second is printed for each tenth of N, and the
   last tenth's rate against the first's.
2. Queries: each route the Traces, Trace, Live, Retries, Queues, Metrics, Debug and Optimize pages
   call, `--repeat` times in turn, p50 and p95 in ms; then again while a third connection keeps
   ingesting (p50, p95 and the worst; the feeder's rate and the machine's CPU pressure). The floor: the same trace queries (`opto_dashboard.queries`) run straight on a
   sqlite3 connection to the file, without HTTP. With `--ingest-rate N` that third connection
   sends its frames on a schedule, N spans a second (a frame is due once the spans it carries and
   all before it are due, whatever the time the earlier ones took), from just before the requests
   are timed until their timing ends, and the rate its acks came at is printed next to N;
   without it, it sends as fast as the server acks, 5% of the store's spans.
3. Bytes on disk per span: the database file after a checkpoint, over the spans stored; and by
   table and index (SQLite's `dbstat`).

`--shape sdk` gives each span the further attributes the SDK writes on a traced call: its kind,
concurrency, the asyncio task's default name (new for every span), a small int argument and a
result text new for every trace (an LLM's answer is), 12 in all.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from opto_dashboard import compact, queries

SPANS_PER_TRACE = 5
SPANS_PER_FRAME = 1000
WINDOW = 16
SERVICES = ("checkout", "search", "billing")
DAY_NS = 86_400 * 10**9
SHAPE = os.environ.get("STORE_SCALE_SHAPE", "synthetic")  # `--shape`, passed to the feeder processes this way


class Server:
    """A real dashboard subprocess on a socket bound here."""

    def __init__(self, db: Path, max_spans: int) -> None:
        self.db = db
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        fd = self.sock.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opto_dashboard", "--db", str(db), "--fd", str(fd), "--max-spans", str(max_spans),
             "--retention", "30d"], pass_fds=[fd], stdout=subprocess.DEVNULL,
        )
        httpx.get(self.url + "/api/live", timeout=600).raise_for_status()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(600)
        self.sock.close()


def trace_spans(t: int, start: int) -> list[dict[str, object]]:
    """Trace number `t`: a root and 4 steps, 7 attributes each; some failed, some retried."""
    trace_id = f"{t + 1:032x}"
    root = f"{(t + 1) * 8:016x}"
    service = SERVICES[t % len(SERVICES)]
    spans = []
    for i in range(SPANS_PER_TRACE):
        name = "agent.run" if i == 0 else f"agent.step{i}"
        outcome, events = "ok", []
        if i == 2 and t % 100 == 0:
            outcome = "error"
            events = [{"name": "exception", "time_ns": start + i * 1000, "attributes": {
                "exception.type": "ConnectionError", "exception.message": "upstream reset by peer"}}]
        elif i == 3 and t % 50 == 1:
            events = [{"name": "opto.retry", "time_ns": start + i * 1000, "attributes": {
                "opto.attempt": 1, "opto.retry.delay_s": 0.5, "exception.type": "TimeoutError", "exception.message": "no answer in 5 s"}}]
        spans.append({
            "trace_id": trace_id, "span_id": f"{(t + 1) * 8 + i:016x}", "parent_span_id": None if i == 0 else root,
            "name": name, "kind": "internal", "state": "ended", "start_ns": start + i * 1000,
            "end_ns": start + i * 1000 + (5 - i) * 1_000_000 + (t % 7) * 100_000,
            "status": {"code": "error" if outcome == "error" else "unset", "message": ""},
            "attributes": {"opto.outcome": outcome, "opto.attempts": 2 if events and outcome == "ok" else 1,
                           "opto.function": name, "code.function.name": name.rpartition(".")[2],
                           "code.file.path": "/app/agent.py", "code.line.number": 40 + i,
                           "opto.arg.query": f"'question {t % 1000}'",
                           **(_sdk_attributes(t, i) if SHAPE == "sdk" else {})},
            "events": events, "resource": {"service.name": service}, "scope": {"name": "opto", "version": "0.2.0"},
        })
    return spans


def _sdk_attributes(t: int, i: int) -> dict[str, object]:
    """What else the SDK writes on a traced call's span."""
    return {"opto.kind": "call", "opto.concurrency": t % 8, "opto.task.name": f"Task-{t * SPANS_PER_TRACE + i}",
            "opto.arg.k": str(t % 10), "opto.result": f"'answer {t} of step {i}'"}


def frames(first_trace: int, traces: int, t0: int, gap_ns: int, seq: Iterator[int]) -> Iterator[tuple[int, str]]:
    """Each frame's span count and its text."""
    per_frame = SPANS_PER_FRAME // SPANS_PER_TRACE
    for f in range(first_trace, first_trace + traces, per_frame):
        spans = [s for t in range(f, min(f + per_frame, first_trace + traces)) for s in trace_spans(t, t0 + t * gap_ns)]
        yield len(spans), json.dumps({"type": "batch", "seq": next(seq), "spans": spans, "metrics": [], "drops": {}})


class Schedule:
    """When each frame is due at `rate` spans a second from `start` (any clock's seconds): once the
    spans it carries and all those before it are due. Frames that fell behind (a slow server) are
    due at once, so the rate over the run is kept, not a fixed sleep after each frame."""

    def __init__(self, rate: float, start: float) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be above 0 spans/s, not {rate}")
        self.rate = rate
        self.start = start
        self.spans = 0  # spans in the frames handed out so far

    def due(self, spans: int) -> float:
        """The time the next frame, of `spans` spans, is due; it is counted as sent."""
        self.spans += spans
        return self.start + self.spans / self.rate


class Fed:
    """Spans acked so far."""

    def __init__(self) -> None:
        self.acked = 0


async def feed(url: str, batches: Iterator[tuple[int, str]], schedule: Schedule | None = None, fed: Fed | None = None) -> None:
    """Send every frame with up to WINDOW unacked, until each is acked; with a schedule, none
    before it is due."""
    hello = {"id": uuid.uuid4().hex, "service": "bench", "pid": os.getpid(), "host": "bench", "sdk": "bench", "started_ns": time.time_ns()}
    in_flight: collections.deque[int] = collections.deque()  # the unacked frames' span counts, oldest first
    window = asyncio.Semaphore(WINDOW)
    fed = fed or Fed()
    loop = asyncio.get_running_loop()

    async with connect(url.replace("http", "ws", 1) + "/ws/ingest", max_size=None, compression=None) as ws:

        async def acks() -> None:  # read as they come, so the spans acked are counted as they are stored
            while True:
                reply = json.loads(await ws.recv())
                assert reply["type"] == "ack", reply
                fed.acked += in_flight.popleft()
                window.release()

        async def slot() -> None:  # a place in the window, or the reader's error
            acquiring = asyncio.ensure_future(window.acquire())
            await asyncio.wait([acquiring, reading], return_when=asyncio.FIRST_COMPLETED)
            if not acquiring.done():
                acquiring.cancel()
                reading.result()
                raise ConnectionError("the server stopped acking")

        await ws.send(json.dumps({"type": "hello", "process": hello}))
        reading = asyncio.ensure_future(acks())
        try:
            for spans, frame in batches:
                await slot()
                if schedule is not None:
                    await asyncio.sleep(max(0.0, schedule.due(spans) - loop.time()))
                in_flight.append(spans)
                await ws.send(frame)
            for _ in range(WINDOW):  # every frame acked
                await slot()
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading


async def ingest(url: str, first_trace: int, traces: int, t0: int, gap_ns: int, rate: float | None = None,
                 fed: Fed | None = None) -> None:
    """Store `traces` traces over 2 connections, as fast as the server acks, or with `rate` spans a
    second between them, on one schedule."""
    half = traces // 2
    schedule = None if rate is None else Schedule(rate, asyncio.get_running_loop().time())
    await asyncio.gather(
        feed(url, frames(first_trace, half, t0, gap_ns, iter(range(1, 10**9))), schedule, fed),
        feed(url, frames(first_trace + half, traces - half, t0, gap_ns, iter(range(1, 10**9))), schedule, fed),
    )


async def ingest_until_stopped(url: str, first_trace: int, traces: int, t0: int, gap_ns: int, rate: float) -> None:
    """`ingest` at `rate` until this process's stdin closes (or every trace is sent), then print the
    spans acked and the seconds from the first frame's ack to then."""
    fed = Fed()
    feeding = asyncio.ensure_future(ingest(url, first_trace, traces, t0, gap_ns, rate, fed))
    while not fed.acked and not feeding.done():
        await asyncio.sleep(0.005)
    print("fed", flush=True)  # the first frame is stored: the timing may begin
    began, acked_then = time.perf_counter(), fed.acked
    stopped = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(None, sys.stdin.read))
    await asyncio.wait([feeding, stopped], return_when=asyncio.FIRST_COMPLETED)
    elapsed = time.perf_counter() - began
    acked = fed.acked - acked_then
    if feeding.done():
        feeding.result()  # an error in the feeder is raised, not hidden
    else:
        feeding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeding
    print(json.dumps({"acked": acked, "seconds": elapsed, "all_sent": feeding.done() and not feeding.cancelled()}), flush=True)


def routes(t0: int, newest: int, trace_id: str) -> dict[str, str]:
    """The requests the pages make, by what they show."""
    hour = 3600 * 10**9
    return {
        "traces: newest": "/api/traces?sort=start&order=desc&limit=50&offset=0",
        "traces: page 20": "/api/traces?sort=start&order=desc&limit=50&offset=950",
        "traces: name prefix agent.step3": "/api/traces?name=agent.step3&limit=50",
        "traces: name prefix agent": "/api/traces?name=agent&limit=50",
        "traces: service billing": "/api/traces?service=billing&limit=50",
        "traces: attribute": "/api/traces?attr=opto.arg.query='question 7'&limit=50",
        "traces: outcome error": "/api/traces?outcome=error&limit=50",
        "traces: by duration >= 5 ms": "/api/traces?min_duration_ms=5&sort=duration&limit=50",
        "traces: last hour": f"/api/traces?since_ns={newest - hour}&until_ns={newest}&limit=50",
        "traces: search upstream reset": "/api/traces?q=upstream reset&limit=50",
        "traces: search TimeoutError": "/api/traces?q=TimeoutError&limit=50",
        "traces: everything": f"/api/traces?name=agent&service=search&outcome=ok&since_ns={t0}&q=question&limit=50",
        "suggest: names agent.": "/api/suggest?field=name&prefix=agent.",
        "trace: one": f"/api/traces/{trace_id}",
        "live": "/api/live",
        "retries": "/api/retries?limit=100",
        "queues": "/api/queues",
        "metrics": "/api/metrics",
        "debug": "/api/debug",
        "limits": f"/api/limits?since_ns={newest - hour}",
        "optimize": "/api/optimize?limit=50",
        "http floor: a static file": "/static/favicon.svg",
    }


def floor_filters(t0: int, newest: int) -> dict[str, queries.TraceFilter]:
    hour = 3600 * 10**9
    F = queries.TraceFilter
    return {
        "traces: newest": F(), "traces: page 20": F(offset=950), "traces: name prefix agent.step3": F(name="agent.step3"),
        "traces: name prefix agent": F(name="agent"), "traces: service billing": F(service="billing"),
        "traces: attribute": F(attributes=(("opto.arg.query", "'question 7'"),)), "traces: outcome error": F(outcome="error"),
        "traces: by duration >= 5 ms": F(min_duration_ns=5_000_000, sort="duration"),
        "traces: last hour": F(since_ns=newest - hour, until_ns=newest),
        "traces: search upstream reset": F(text="upstream reset"), "traces: search TimeoutError": F(text="TimeoutError"),
        "traces: everything": F(name="agent", service="search", outcome="ok", since_ns=t0, text="question"),
    }


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    """p50, p95 and the worst."""
    samples = sorted(samples)
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))], samples[-1]


def cpu_pressure() -> str:
    """How short of CPU the machine was over the last 10 s: the share of time some runnable task waited (Linux PSI)."""
    try:
        some = Path("/proc/pressure/cpu").read_text().split()[1]
    except (OSError, IndexError):
        return "CPU pressure unknown"
    return f"tasks waiting for a CPU {some.partition('=')[2]}% of the last 10 s"


def time_routes(url: str, paths: dict[str, str], repeat: int) -> dict[str, tuple[float, float, float]]:
    """p50, p95 and worst ms of each path; an answer other than 200 (a query stopped at its time limit) is printed."""
    out: dict[str, list[float]] = {name: [] for name in paths}
    with httpx.Client(base_url=url, timeout=600, headers={"Accept-Encoding": "gzip"}) as client:
        for _ in range(repeat):
            for name, path in paths.items():
                t = time.perf_counter()
                response = client.get(path)
                out[name].append((time.perf_counter() - t) * 1000)
                if response.status_code != 200:
                    print(f"  {name}: {response.status_code} {response.text[:120]}", flush=True)
    return {name: percentiles(samples) for name, samples in out.items()}


def time_floor(db: Path, filters: dict[str, queries.TraceFilter], repeat: int) -> dict[str, tuple[float, float, float]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    compact.register(conn)  # as the dashboard's readers are
    out: dict[str, list[float]] = {name: [] for name in filters}
    try:
        for _ in range(repeat):
            for name, f in filters.items():
                t = time.perf_counter()
                breadth = queries.breadth_sql(f)
                plan = queries.Plan() if breadth is None else queries.choose_plan(f, conn.execute(*breadth).fetchone())
                with compact.term_sets(plan.ids) as sets:
                    for sql, params in queries.traces_sql(f, plan, sets):
                        conn.execute(sql, params).fetchall()
                out[name].append((time.perf_counter() - t) * 1000)
    finally:
        conn.close()
    return {name: percentiles(samples) for name, samples in out.items()}


def time_while_paced(url: str, paths: dict[str, str], repeat: int, first_trace: int, t0: int, gap: int,
                     rate: float) -> tuple[dict[str, tuple[float, float, float]], float, int, float, bool]:
    """`time_routes` while a feeder process sends `rate` spans a second, from its first frame's ack
    until the timing ends: the timings, the seconds they took, the feeder's spans acked and seconds
    meanwhile, and whether it ran out of traces."""
    feeder = subprocess.Popen([sys.executable, "-c", PACED_FEEDER, url, str(first_trace), str(first_trace), str(t0), str(gap),
                               repr(rate)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert feeder.stdout is not None
        feeder.stdout.readline()  # its first frame is stored, so the timing is all during ingest
        started = time.perf_counter()
        busy = time_routes(url, paths, repeat)
        timed = time.perf_counter() - started
    finally:
        out, _ = feeder.communicate(timeout=3600)  # closing its stdin stops it
    if feeder.returncode:
        raise SystemExit(f"the paced feeder failed ({feeder.returncode})")
    done = json.loads(out.strip().splitlines()[-1])
    return busy, timed, int(done["acked"]), float(done["seconds"]), bool(done["all_sent"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=10_000_000, help="spans to store (default 10,000,000)")
    parser.add_argument("--repeat", type=int, default=20, help="times each query is timed (default 20)")
    parser.add_argument("--db", type=Path, default=None, help="keep the database here (default: a temporary directory)")
    parser.add_argument("--reuse", action="store_true", help="time the queries on the store an earlier run kept at --db, without building it")
    parser.add_argument("--ingest-rate", type=float, default=None, metavar="N",
                        help="while the requests are timed during ingest, feed N spans a second on a schedule, "
                             "until their timing ends (default: as fast as the server acks, 5%% of the store)")
    parser.add_argument("--shape", choices=("synthetic", "sdk"), default="synthetic",
                        help="the spans' attributes: 7 (default), or the 12 the SDK writes on a traced call")
    args = parser.parse_args()
    global SHAPE
    SHAPE = os.environ["STORE_SCALE_SHAPE"] = args.shape
    if args.ingest_rate is not None and not args.ingest_rate > 0:
        parser.error("--ingest-rate must be above 0 spans a second")
    if args.reuse and (args.db is None or not args.db.exists()):
        parser.error("--reuse needs --db naming a store an earlier run kept")
    traces = args.spans // SPANS_PER_TRACE
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "scale.db"
        server = Server(db, max_spans=args.spans * 2)
        try:
            now = time.time_ns()
            t0, gap = now - 6 * DAY_NS, 6 * DAY_NS // (traces + traces // 10 + 1)
            if args.reuse:  # the earlier run's times: its first trace's start and its spacing
                conn = sqlite3.connect(db)
                try:
                    t0, second = (row[0] for row in conn.execute("SELECT start_ns FROM traces ORDER BY rowid LIMIT 2"))
                    traces = conn.execute("SELECT count(*) FROM traces").fetchone()[0]
                finally:
                    conn.close()
                gap = second - t0
            rates = []
            step = max(1, traces // 10)
            for first in range(0, 0 if args.reuse else traces, step):
                n = min(step, traces - first)
                started = time.perf_counter()
                asyncio.run(ingest(server.url, first, n, t0, gap))
                rates.append(n * SPANS_PER_TRACE / (time.perf_counter() - started))
                print(f"  stored {(first + n) * SPANS_PER_TRACE:>12,} spans: {rates[-1]:>9,.0f} spans/s for this tenth", flush=True)
            if rates:
                print(f"ingest: last tenth {rates[-1]:,.0f} spans/s, first tenth {rates[0]:,.0f}: {rates[-1] / rates[0]:.2f}x "
                      f"(goal >= 0.8x); load average {os.getloadavg()[0]:.2f}")
            load = os.getloadavg()[0]
            newest = t0 + (traces - 1) * gap
            paths = routes(t0, newest, f"{traces // 2 + 1:032x}")
            quiet = time_routes(server.url, paths, args.repeat)
            if args.ingest_rate is None:
                extra = max(1, traces // 20)
                fed = time.perf_counter()
                busy_feed = subprocess.Popen([sys.executable, "-c", FEEDER, server.url, str(traces), str(extra), str(t0), str(gap)])
                try:
                    busy = time_routes(server.url, paths, args.repeat)
                    timed = time.perf_counter() - fed
                finally:
                    busy_feed.wait(3600)
                fed = time.perf_counter() - fed
                print(f"during ingest: {extra * SPANS_PER_TRACE:,} spans fed in {fed:.1f} s ({extra * SPANS_PER_TRACE / fed:,.0f} spans/s), "
                      f"the requests timed in the first {timed:.1f} s; {cpu_pressure()}", flush=True)
            else:
                busy, timed, acked, seconds, all_sent = time_while_paced(server.url, paths, args.repeat, traces, t0, gap,
                                                                         args.ingest_rate)
                achieved = acked / max(seconds, 1e-9)
                print(f"during ingest at {args.ingest_rate:,.0f} spans/s asked: {acked:,} spans acked in {seconds:.1f} s, "
                      f"{achieved:,.0f} spans/s achieved ({achieved / args.ingest_rate:.0%} of the rate asked); the requests "
                      f"timed in {timed:.1f} s{'; the feeder ran out of traces before they ended' if all_sent else ''}; "
                      f"{cpu_pressure()}", flush=True)
            floor = time_floor(db, floor_filters(t0, newest), args.repeat)
        finally:
            server.close()
        conn = sqlite3.connect(db)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            (stored,) = conn.execute("SELECT count(*) FROM spans").fetchone()
            tables = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
        finally:
            conn.close()
        size = db.stat().st_size
    print(f"\n{'query':34} {'p50 ms':>8} {'p95 ms':>8} {'p50 busy':>9} {'p95 busy':>9} {'max busy':>9} {'floor p50':>10} {'floor p95':>10}")
    for name in paths:
        f50, f95, _ = floor.get(name, (float("nan"),) * 3)
        print(f"{name:34} {quiet[name][0]:8.1f} {quiet[name][1]:8.1f} {busy[name][0]:9.1f} {busy[name][1]:9.1f} {busy[name][2]:9.1f} "
              f"{f50:10.1f} {f95:10.1f}")
    late = sum(busy[n][1] >= 100 for n in paths)
    print(f"\nduring ingest: {late} of {len(paths)} routes at or past 100 ms at p95")
    worst = max(max(quiet[n][1], busy[n][1]) for n in paths)
    print(f"\nload average {load:.2f} as the quiet timing began, {os.getloadavg()[0]:.2f} at the end")
    print(f"\nworst p95: {worst:.1f} ms (goal < 100 ms); {size:,} bytes on disk for {stored:,} spans: "
          f"{size / stored:.0f} bytes per span (goal <= 300)")
    print("bytes per span by table and index (dbstat): " + ", ".join(f"{name} {b / stored:.1f}" for name, b in tables if b / stored >= 0.5))


# The third connection, in a process of its own so it competes with the queries as a real SDK would.
FEEDER = """
import asyncio, sys
sys.path.insert(0, %r)
from store_scale import ingest
url, first, n, t0, gap = sys.argv[1], *map(int, sys.argv[2:])
asyncio.run(ingest(url, first, n, t0, gap))
""" % str(Path(__file__).resolve().parent)

# The same at --ingest-rate: frames on a schedule until stdin closes; it prints what it fed.
PACED_FEEDER = """
import asyncio, sys
sys.path.insert(0, %r)
from store_scale import ingest_until_stopped
url, first, n, t0, gap, rate = sys.argv[1], *map(int, sys.argv[2:6]), float(sys.argv[6])
asyncio.run(ingest_until_stopped(url, first, n, t0, gap, rate))
""" % str(Path(__file__).resolve().parent)


if __name__ == "__main__":
    main()
