"""Dashboard ingest rate and the live exporter's cost to a traced program.

Run: .venv/bin/python bench/ingest.py  (--against DIR: only the websocket door, this tree against
the `opto` and `opto_dashboard` packages in DIR, runs interleaved)
1. Websocket door: a load generator sends pre-built batch frames (1,000 spans each, up to 16 unacked
   per connection) to a real dashboard subprocess; spans stored per second are counted from its
   SQLite file, median of 5 runs with the load average and the CPU time of the server and its
   SQLite writer process. Baseline: the same rows inserted by one plain sqlite3 `executemany` loop.
2. Live exporter: a traced program makes 10,000 spans per second (100 ms ticks of 1,000 sync traced
   calls); its CPU time with the live exporter streaming to a real dashboard, against the same
   program with the SDK and no exporter. Then the highest rate an SDK process pushes through the
   exporter with zero drops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

FRAMES = 60
SPANS_PER_FRAME = 1000
CONNECTIONS = 2
WINDOW = 16


class Server:
    """A real dashboard subprocess on a socket bound here, on a fresh SQLite file."""

    def __init__(self, db: Path, code: str | None = None) -> None:
        """`code`: a directory holding the `opto` and `opto_dashboard` packages to run instead of this tree's."""
        self.db = db
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        fd = self.sock.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opto_dashboard", "--db", str(db), "--fd", str(fd)], pass_fds=[fd], stdout=subprocess.DEVNULL,
            env=None if code is None else {**os.environ, "PYTHONPATH": code},
        )
        httpx.get(self.url + "/api/live", timeout=60).raise_for_status()

    def pids(self) -> list[int]:
        """The server and its child processes (the SQLite writer)."""
        tasks = Path(f"/proc/{self.proc.pid}/task").iterdir()
        return [self.proc.pid, *(int(pid) for task in tasks for pid in (task / "children").read_text().split())]

    def thread_cpu_s(self) -> dict[str, float]:
        """CPU seconds (user + system) of each thread of the server's processes, by thread id."""
        out: dict[str, float] = {}
        for pid in self.pids():
            for task in Path(f"/proc/{pid}/task").iterdir():
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                out[task.name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return out

    def cpu_s(self) -> float:
        return sum(self.thread_cpu_s().values())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self.sock.close()

    def count(self) -> int:
        with closing(sqlite3.connect(self.db)) as conn:
            return conn.execute("SELECT count(*) FROM spans").fetchone()[0]  # type: ignore[no-any-return]


def _span(trace: int, i: int, now: int) -> dict[str, object]:
    return {
        "trace_id": f"{trace:032x}", "span_id": f"{trace * 10 + i + 1:016x}",
        "parent_span_id": None if i == 0 else f"{trace * 10 + 1:016x}", "name": f"agent.step{i}", "kind": "internal",
        "state": "ended", "start_ns": now + i, "end_ns": now + i + 1_500_000, "status": {"code": "unset", "message": ""},
        "attributes": {"opto.outcome": "ok", "opto.attempts": 1, "opto.function": f"agent.step{i}", "code.function.name": "step",
                       "code.file.path": "/app/agent.py", "code.line.number": 42, "opto.arg.query": "'What is machine learning?'"},
        "resource": {"service.name": "bench", "telemetry.sdk.language": "python"}, "scope": {"name": "opto", "version": "0.2.0"},
    }


def frames(connection: int) -> list[str]:
    now = time.time_ns()
    out = []
    for f in range(FRAMES):
        base = (connection * FRAMES + f) * SPANS_PER_FRAME // 5
        spans = [_span(base + t + 1, i, now) for t in range(SPANS_PER_FRAME // 5) for i in range(5)]
        out.append(json.dumps({"type": "batch", "seq": f + 1, "spans": spans, "metrics": [], "drops": {}}))
    return out


async def feed(url: str, batches: list[str]) -> None:
    hello = {"id": uuid.uuid4().hex, "service": "bench", "pid": os.getpid(), "host": "bench", "sdk": "bench", "started_ns": time.time_ns()}
    async with connect(url.replace("http", "ws", 1) + "/ws/ingest", max_size=None, compression=None) as ws:
        await ws.send(json.dumps({"type": "hello", "process": hello}))
        unacked = 0
        for frame in batches:
            if unacked >= WINDOW:
                reply = json.loads(await ws.recv())
                assert reply["type"] == "ack", reply
                unacked -= 1
            await ws.send(frame)
            unacked += 1
        for _ in range(unacked):
            reply = json.loads(await ws.recv())
            assert reply["type"] == "ack", reply


def sqlite_baseline(db: Path, batches: list[list[str]]) -> float:
    """Spans/s for one plain sqlite3 loop inserting the same spans (no JSON parsing or validation)."""
    rows = [
        (s["trace_id"], s["span_id"], s["parent_span_id"], s["name"], s["start_ns"], s["end_ns"], json.dumps(s["attributes"]))
        for frame in (json.loads(f) for per_conn in batches for f in per_conn) for s in frame["spans"]
    ]
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE spans (trace_id, span_id, parent, name, start_ns, end_ns, attributes, PRIMARY KEY (trace_id, span_id))")
    t0 = time.perf_counter()
    for i in range(0, len(rows), SPANS_PER_FRAME):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO spans VALUES (?, ?, ?, ?, ?, ?, ?)", rows[i:i + SPANS_PER_FRAME])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return len(rows) / elapsed


def bench_ingest(tmp: Path, rounds: int = 5) -> None:
    """Median of `rounds` runs, each on a fresh server and database; the load average is printed
    alongside, since other work on the machine takes cores from the server."""
    batches = [frames(c) for c in range(CONNECTIONS)]
    total = CONNECTIONS * FRAMES * SPANS_PER_FRAME
    runs = []
    for r in range(rounds):
        server = Server(tmp / f"ingest{r}.db")
        try:
            threads0 = server.thread_cpu_s()
            t0 = time.perf_counter()
            asyncio.run(_feed_all(server.url, batches))
            elapsed = time.perf_counter() - t0
            used = [c - threads0.get(tid, 0.0) for tid, c in server.thread_cpu_s().items()]
            cpu, busiest = sum(used), max(used)
            stored = server.count()
        finally:
            server.close()
        assert stored == total, f"stored {stored} of {total}"
        runs.append((stored / elapsed, stored / cpu, cpu / elapsed, os.getloadavg()[0], stored / busiest))
    rate, per_cpu, cores, load, per_thread = (sorted(run[i] for run in runs)[rounds // 2] for i in range(5))
    base = sqlite_baseline(tmp / "baseline.db", batches)
    print(f"websocket door, median of {rounds} runs of {total:,} spans: {rate:,.0f} spans/s stored (runs: "
          f"{', '.join(f'{run[0]:,.0f}' for run in runs)}; {rate / base:.2f}x a bare sqlite3 insert loop at {base:,.0f} spans/s); "
          f"the server and its writer process: {per_cpu:,.0f} spans per CPU second, {cores:.2f} cores busy, the busiest "
          f"thread (event loop or SQLite writer) {per_thread:,.0f} spans per CPU second; load average {load:.2f} "
          f"({min(run[3] for run in runs):.2f} to {max(run[3] for run in runs):.2f})")


async def _feed_all(url: str, batches: list[list[str]]) -> None:
    await asyncio.gather(*(feed(url, b) for b in batches))


PROGRAM = """
import json, sys, time
import opto
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

mode, rate, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if mode == "live":
    opto.configure(dashboard=sys.argv[4], service_name="bench")
else:
    trace.set_tracer_provider(TracerProvider())

@opto.trace
def step(i):
    return i * 2

per_tick = 1000
start = time.perf_counter()
cpu0 = time.process_time()
made = 0
while made < count:
    for i in range(per_tick):
        step(i)
    made += per_tick
    if rate:  # paced: sleep to the next tick; a rate of 0 runs flat out
        delay = start + made / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
run_s, run_cpu_s = time.perf_counter() - start, time.process_time() - cpu0
if mode == "live":
    opto.shutdown(120)  # flush: everything is acked by the dashboard before the clock stops
print(json.dumps({"run_s": run_s, "run_cpu_s": run_cpu_s, "cpu_s": time.process_time() - cpu0,
                  "total_s": time.perf_counter() - start, "spans": made}))
"""


def run_program(mode: str, rate: int, count: int, url: str = "") -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", PROGRAM, mode, str(rate), str(count), url], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OPTO_DASHBOARD_BUFFER": str(4 * count)})
    if proc.returncode != 0 or "did not get" in proc.stderr:
        raise SystemExit(f"program failed or dropped spans:\n{proc.stderr}")
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _median(runs: list[dict[str, float]], key: str) -> float:
    return sorted(r[key] for r in runs)[len(runs) // 2]


def bench_exporter(tmp: Path, rounds: int = 3) -> None:
    server = Server(tmp / "live.db")
    try:
        count = 50_000  # 5 s at 10,000 spans/s
        base, live = [], []
        for _ in range(rounds):  # interleaved, so machine load hits both alike
            base.append(run_program("sdk", 10_000, count))
            live.append(run_program("live", 10_000, count, server.url))
        b, lv = _median(base, "cpu_s"), _median(live, "cpu_s")
        rb, rl = _median(base, "run_s"), _median(live, "run_s")
        print(f"live exporter at 10,000 spans/s ({count:,} spans, paced in 100 ms ticks): run time {rl:.2f} s vs {rb:.2f} s "
              f"with the SDK alone = {rl / rb:.3f}x; program CPU (exporter thread and final flush included) {lv:.2f} s vs "
              f"{b:.2f} s = {lv / b:.2f}x; flush at exit {_median(live, 'total_s') - rl:.2f} s")
        count = 100_000
        before = server.count()
        fast = run_program("live", 0, count, server.url)
        stored = server.count() - before
        assert stored == count, f"stored {stored} of {count}"
        flat = run_program("sdk", 0, count)
        print(f"live exporter flat out: {count:,} spans traced and acked with zero drops in {fast['total_s']:.2f} s = "
              f"{count / fast['total_s']:,.0f} spans/s end to end, {count / fast['total_s'] / (count / flat['total_s']):.2f}x "
              f"the same program with the SDK alone ({count / flat['total_s']:,.0f} spans/s)")
    finally:
        server.close()


def bench_otlp(tmp: Path, batches: int = 120, batch_size: int = 512, in_flight: int = 4) -> None:
    """OTLP/HTTP door: spans stored per second from pre-built protobuf requests of 512 spans (issue 6).

    The spans are the websocket bench's (`_span`), sent to a real dashboard subprocess by `in_flight`
    concurrent senders; the baseline is the same rows through the bare sqlite3 insert loop.
    """
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    kinds = {bool: "bool_value", int: "int_value", float: "double_value", str: "string_value"}

    def key_values(attrs: dict[str, object]) -> list[KeyValue]:
        return [KeyValue(key=k, value=AnyValue(**{kinds[type(v)]: v})) for k, v in attrs.items()]

    def request(spans: list[dict[str, object]]) -> bytes:
        return ExportTraceServiceRequest(resource_spans=[ResourceSpans(
            resource=Resource(attributes=key_values(spans[0]["resource"])),  # type: ignore[arg-type]
            scope_spans=[ScopeSpans(scope=InstrumentationScope(name="opto", version="0.2.0"), spans=[
                Span(trace_id=bytes.fromhex(s["trace_id"]), span_id=bytes.fromhex(s["span_id"]),  # type: ignore[arg-type]
                     parent_span_id=bytes.fromhex(s["parent_span_id"] or ""), name=s["name"],  # type: ignore[arg-type]
                     kind=Span.SPAN_KIND_INTERNAL, start_time_unix_nano=s["start_ns"],  # type: ignore[arg-type]
                     end_time_unix_nano=s["end_ns"], attributes=key_values(s["attributes"]))  # type: ignore[arg-type]
                for s in spans
            ])],
        )]).SerializeToString()

    async def post_all(url: str, bodies: list[bytes]) -> None:
        pending = iter(bodies)
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            async def sender() -> None:
                for body in pending:
                    response = await client.post("/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"})
                    assert response.status_code == 200 and not response.content, (response.status_code, response.content[:200])

            await asyncio.gather(*(sender() for _ in range(in_flight)))

    now = time.time_ns()
    spans = [[_span(b * batch_size + t + 1, i, now) for t in range(0, batch_size, 4) for i in range(4)] for b in range(batches)]
    bodies = [request(batch) for batch in spans]
    server = Server(tmp / "otlp.db")
    try:
        cpu0 = server.cpu_s()
        t0 = time.perf_counter()
        asyncio.run(post_all(server.url, bodies))
        elapsed = time.perf_counter() - t0
        cpu = server.cpu_s() - cpu0
        stored = server.count()
    finally:
        server.close()
    total = batches * batch_size
    assert stored == total, f"stored {stored} of {total}"
    rate = stored / elapsed
    base = sqlite_baseline(tmp / "otlp-baseline.db", [[json.dumps({"spans": batch}) for batch in spans]])
    print(f"OTLP/HTTP protobuf door (batches of {batch_size}, {in_flight} requests in flight): {stored:,} spans stored in "
          f"{elapsed:.2f} s = {rate:,.0f} spans/s ({rate / base:.2f}x a bare sqlite3 insert loop at {base:,.0f} spans/s); "
          f"the server used {cpu:.2f} CPU s = {stored / cpu:,.0f} spans per CPU second, {cpu / elapsed:.2f} cores busy")


def door_run(tmp: Path, batches: list[list[str]], code: str | None) -> tuple[float, float, float]:
    """One run of the websocket door on a fresh server: spans/s stored, spans per CPU second of the
    busiest thread, CPU seconds of the server and its writer."""
    server = Server(tmp / f"door{time.time_ns()}.db", code)
    try:
        threads0 = server.thread_cpu_s()
        t0 = time.perf_counter()
        asyncio.run(_feed_all(server.url, batches))
        elapsed = time.perf_counter() - t0
        used = [c - threads0.get(tid, 0.0) for tid, c in server.thread_cpu_s().items()]
        stored = server.count()
    finally:
        server.close()
    assert stored == CONNECTIONS * FRAMES * SPANS_PER_FRAME, stored
    return stored / elapsed, stored / max(used), sum(used)


def bench_against(tmp: Path, code: str, rounds: int) -> None:
    """The websocket door, this tree against the code in `code` (a directory holding `opto` and
    `opto_dashboard`, e.g. links into a `git worktree` of the baseline commit), runs interleaved."""
    batches = [frames(c) for c in range(CONNECTIONS)]
    runs: dict[str, list[tuple[float, float, float]]] = {"this tree": [], code: []}
    loads = []
    for r in range(rounds):
        for label in ("this tree", code)[:: 1 if r % 2 else -1]:
            runs[label].append(door_run(tmp, batches, None if label == "this tree" else code))
            loads.append(os.getloadavg()[0])
    for label, got in runs.items():
        rate, per_thread, cpu = (sorted(run[i] for run in got)[rounds // 2] for i in range(3))
        print(f"{label}: median of {rounds} runs {rate:,.0f} spans/s stored (runs {', '.join(f'{run[0]:,.0f}' for run in got)}); "
              f"busiest thread {per_thread:,.0f} spans per CPU second; server and writer {cpu:.2f} CPU s")
    print(f"load average {min(loads):.2f} to {max(loads):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="DIR", help="only the websocket door, against the code in DIR, interleaved")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.against:
            return bench_against(Path(tmp), args.against, args.rounds)
        bench_ingest(Path(tmp), args.rounds)
        bench_otlp(Path(tmp))
        bench_exporter(Path(tmp))


if __name__ == "__main__":
    main()
