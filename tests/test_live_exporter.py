"""The SDK's live exporter against a real dashboard: traced programs run in fresh interpreters."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from dashboard_server import Dashboard, DashboardProcess, listening_socket, run_program
from opto.telemetry.live import LiveSpanProcessor, processors

# A traced program driven by the test through stdin: each line names a phase to run.
PROGRAM = """
import asyncio, sys, opto
opto.configure(service_name="prog")  # the dashboard comes from OPTO_DASHBOARD_URL

@opto.trace.async_trace
async def leaf(i):
    await asyncio.sleep(0)
    return i

@opto.trace.async_trace
async def job(n):
    return sum(await asyncio.gather(*(leaf(i) for i in range(n))))

@opto.trace.async_trace
async def waiting():
    await asyncio.to_thread(sys.stdin.readline)

async def main():
    while line := await asyncio.to_thread(sys.stdin.readline):
        command, _, arg = line.strip().partition(" ")
        if command == "jobs":
            for _ in range(int(arg)):
                await job(3)
        elif command == "wait":
            task = asyncio.ensure_future(waiting())
            print("waiting", flush=True)
            await task
        print("done", command, flush=True)

asyncio.run(main())
"""


class Program:
    """PROGRAM in a subprocess; `run(command)` sends a command and waits until it is done."""

    def __init__(self, url: str, **env: str) -> None:
        self.proc = run_program(PROGRAM, {"OPTO_DASHBOARD_URL": url, **env})

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, text: str) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == text, f"expected {text!r}, got {line!r}; stderr: {self.proc.stderr.read() if not line else ''}"

    def run(self, command: str) -> None:
        self.send(command)
        self.expect(f"done {command.split()[0]}")

    def finish(self) -> str:
        """Close stdin (the program ends, flushing at exit); its stderr."""
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return err


def stored(db: Path, name: str) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT count(*) FROM spans WHERE name = ? AND state = 'ended'", (name,)).fetchone()[0]  # type: ignore[no-any-return]


def run_app(code: str, *args: str, timeout: float = 60) -> str:
    """`code` in a fresh interpreter, `args` its sys.argv[1:]; its stdout, once it has exited 0."""
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_spans_of_a_traced_program_reach_the_api_nested(dashboard: Dashboard) -> None:
    program = Program(dashboard.url)
    program.run("jobs 2")
    assert "did not get" not in program.finish()
    listed = dashboard.get("/api/traces?name=job")
    assert listed["total"] == 2
    spans = dashboard.get(f"/api/traces/{listed['traces'][0]['trace_id']}")["spans"]
    root = spans[0]
    assert root["name"] == "job" and root["parent_span_id"] is None and root["service"] == "prog"
    assert sorted(s["attributes"]["opto.arg.i"] for s in spans[1:]) == ["0", "1", "2"]
    assert {s["parent_span_id"] for s in spans[1:]} == {root["span_id"]}
    assert dashboard.get("/api/live")["processes"][0]["service"] == "prog"


async def test_in_flight_span_is_live_while_awaited_and_gone_after(dashboard: Dashboard) -> None:
    program = Program(dashboard.url)
    program.send("wait")
    program.expect("waiting")
    async with asyncio.timeout(30):
        while not (live := dashboard.get("/api/live"))["in_flight"]:
            await asyncio.sleep(0.05)  # polls the API: the span start travels on the exporter's tick
    assert [(g["name"], g["count"]) for g in live["in_flight"]] == [("waiting", 1)]
    program.send("")
    program.expect("done wait")
    program.finish()
    assert dashboard.get("/api/live")["in_flight"] == []
    assert dashboard.get("/api/traces?name=waiting")["traces"][0]["outcome"] == "ok"


def test_dashboard_killed_and_restarted_mid_run_loses_nothing(tmp_path: Path) -> None:
    """Spans made before, during and after a dashboard crash all arrive; the program never notices."""
    db = tmp_path / "opto.db"
    server = DashboardProcess(db)
    try:
        server.start()
        program = Program(server.url, OPTO_DASHBOARD_FLUSH_TIMEOUT="30")
        program.run("jobs 50")
        server.kill()
        program.run("jobs 50")
        server.start()
        program.run("jobs 50")
        err = program.finish()
        assert "did not get" not in err, err
        assert stored(db, "job") == 150
        assert stored(db, "leaf") == 450
    finally:
        server.close()


def test_program_runs_on_without_a_dashboard_and_counts_drops() -> None:
    """No dashboard at all: the program completes, its exit is not held up, and the log counts the loss."""
    sock = listening_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()  # nothing listens there now: connections are refused
    program = Program(url, OPTO_DASHBOARD_BUFFER="100")
    program.run("jobs 100")
    err = program.finish()
    dropped, unsent = map(int, re.search(r"did not get 400 spans: (\d+) dropped \(buffer_full \d+\), (\d+) unsent", err).groups())
    assert dropped + unsent == 400 and unsent <= 100  # the buffer keeps the last 100 records: each span dropped or unsent


def test_drops_reach_the_dashboard_when_it_comes(tmp_path: Path) -> None:
    """Spans made while the dashboard is not serving overflow the buffer; the count arrives later."""
    db = tmp_path / "opto.db"
    server = DashboardProcess(db)
    try:
        program = Program(server.url, OPTO_DASHBOARD_BUFFER="40", OPTO_DASHBOARD_FLUSH_TIMEOUT="30")
        program.run("jobs 20")  # 80 spans ended, and starts recorded too: the buffer keeps the last 40
        server.start()
        program.run("jobs 1")
        err = program.finish()
        drops = server.get("/api/live")["drops"]
        (counted,) = [d["spans"] for d in drops.values()]
        assert counted >= 60 and f"{counted} dropped" in err  # ends of 60 spans pushed out before the dashboard served
        assert stored(db, "job") + stored(db, "leaf") + counted == 84  # 21 jobs of 4 spans: each stored or counted
        assert server.get("/api/live")["ingest"]["behind"] >= 1  # its buffer was full: it asked for ingest to go first
    finally:
        server.close()


def test_opto_shutdown_flushes_on_demand(dashboard: Dashboard) -> None:
    """After `opto.shutdown()` returns, the spans made so far are stored."""
    code = (
        "import httpx, opto, sys\n"
        "opto.configure(dashboard=sys.argv[1])\n"
        "@opto.trace\n"
        "def step(): return 1\n"
        "for _ in range(10): step()\n"
        "opto.shutdown()\n"
        "print(httpx.get(sys.argv[1] + '/api/traces').json()['total'])\n"
    )
    out = run_app(code, dashboard.url)
    assert out.strip() == "10"


def test_queue_figures_and_metric_summaries_reach_the_dashboard(dashboard: Dashboard) -> None:
    """Queue depth (read from live AsyncQueues), item waits (span links) and AsyncMetrics summaries arrive."""
    code = (
        "import asyncio, opto, sys\n"
        "from opto.trace import AsyncMetrics, AsyncQueue\n"
        "opto.configure(dashboard=sys.argv[1])\n"
        "@opto.trace.async_trace\n"
        "async def produce(q):\n"
        "    for i in range(5): await q.put(i)\n"
        "@opto.trace.async_trace\n"
        "async def handle(i):\n"
        "    async with AsyncMetrics.monitor('handling'): return i\n"
        "async def main():\n"
        "    q = AsyncQueue(name='inbox')\n"
        "    await produce(q)\n"
        "    for _ in range(5): await handle(await q.get())\n"
        "    await asyncio.sleep(1.5)  # the program lives past one metrics tick of the exporter\n"
        "asyncio.run(main())\n"
    )
    run_app(code, dashboard.url)
    (inbox,) = dashboard.get("/api/queues")["queues"]
    assert inbox["name"] == "inbox" and inbox["depth"] and inbox["wait_ms"]["count"] == 5
    assert [s["name"] for s in dashboard.get("/api/metrics")["summaries"]] == ["handling"]


def test_retry_events_and_outcomes_arrive_intact(dashboard: Dashboard) -> None:
    code = (
        "import asyncio, opto, sys\n"
        "opto.configure(dashboard=sys.argv[1])\n"
        "opto.trace.set_testing(True)  # no real backoff sleeps\n"
        "tries = 0\n"
        "@opto.trace.async_trace(retry_attempts=2)\n"
        "async def flaky():\n"
        "    global tries\n"
        "    tries += 1\n"
        "    if tries < 3: raise opto.RetryableError('try again')\n"
        "    return 'ok'\n"
        "asyncio.run(flaky())\n"
    )
    run_app(code, dashboard.url)
    retries = dashboard.get("/api/retries")
    assert [r["attempt"] for r in retries["retries"]] == [2, 1]
    assert retries["by_function"][0]["retries"] == 2
    (span,) = dashboard.get(f"/api/traces/{retries['retries'][0]['trace_id']}")["spans"]
    assert span["outcome"] == "ok" and span["attributes"]["opto.attempts"] == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"url": "ftp://127.0.0.1:1"}, "dashboard must be a URL such as http://127.0.0.1:8765"),
    ({"url": "http://127.0.0.1:1", "max_buffer": 0}, "max_buffer must be an int >= 1"),
    ({"url": "http://127.0.0.1:99999"}, "dashboard must be a URL such as"),  # no such port
    ({"url": "http://:8765"}, "dashboard must be a URL such as"),  # no host
    ({"url": "http://127.0.0.1:1", "flush_timeout_s": 0}, "flush_timeout_s must be a finite number of seconds > 0"),
    ({"url": "http://127.0.0.1:1", "flush_timeout_s": float("inf")}, "flush_timeout_s must be a finite number"),
    ({"url": "http://127.0.0.1:1", "flush_timeout_s": float("nan")}, "flush_timeout_s must be a finite number"),
])
def test_bad_settings_raise_value_error_naming_the_fix(kwargs: dict[str, object], message: str) -> None:
    url = kwargs.pop("url")
    with pytest.raises(ValueError, match=message):
        LiveSpanProcessor(url, **kwargs)  # type: ignore[arg-type]


def test_a_dashboard_that_is_not_a_str_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="dashboard must be a URL such as http://127.0.0.1:8765, got int"):
        LiveSpanProcessor(123)  # type: ignore[arg-type]


def test_bad_environment_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTO_DASHBOARD_BUFFER", "lots")
    with pytest.raises(ValueError, match="OPTO_DASHBOARD_BUFFER must be an int, got 'lots'"):
        processors("http://127.0.0.1:1", "svc")


def test_a_forked_child_streams_as_its_own_process(dashboard: Dashboard) -> None:
    code = (
        "import os, opto, sys\n"
        "opto.configure(dashboard=sys.argv[1])\n"
        "@opto.trace\n"
        "def work(who): return who\n"
        "work('parent-before')\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    work('child')\n"
        "    opto.shutdown()\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "work('parent-after')\n"
    )
    run_app(code, dashboard.url)
    spans = [dashboard.get(f"/api/traces/{t['trace_id']}")["spans"][0] for t in dashboard.get("/api/traces")["traces"]]
    by_who = {s["attributes"]["opto.arg.who"]: s["process_id"] for s in spans}
    assert set(by_who) == {"'parent-before'", "'child'", "'parent-after'"}
    assert by_who["'parent-before'"] == by_who["'parent-after'"] != by_who["'child'"]
    assert len({p["pid"] for p in dashboard.get("/api/live")["processes"]}) == 2


def test_metric_summaries_past_a_frame_are_cut_and_counted_and_no_span_is_lost(dashboard: Dashboard) -> None:
    """1,000 monitored names of 150 figures each make 10 MB of summaries, more than a frame: the
    later points go (counted as dropped metrics), and every span still arrives, on one connection."""
    code = (
        "import asyncio, opto, sys\n"
        "from opto.trace import AsyncMetrics\n"
        "from opentelemetry import trace\n"
        "opto.configure(dashboard=sys.argv[1])\n"
        "@opto.trace\n"
        "async def work(i): return i\n"
        "async def main():\n"
        "    for n in range(1000):\n"
        "        async with AsyncMetrics.monitor(f'stage-{n}') as m:\n"
        "            for k in range(150): m.record(f'figure_{k}', k)\n"
        "    for i in range(50): await work(i)\n"
        "asyncio.run(main())\n"
        "opto.shutdown()\n"
    )
    run_app(code, dashboard.url, timeout=120)
    assert dashboard.get("/api/traces")["total"] == 50
    (drops,) = dashboard.get("/api/live")["drops"].values()
    assert drops["spans"] == 0 and drops["metrics"] > 0
    assert dashboard.get("/api/live")["ingest"]["bad_frames"] == 0


def test_children_multiprocessing_forks_flush_before_they_exit(dashboard: Dashboard) -> None:
    """multiprocessing ends a forked child with os._exit, past atexit: its spans still all arrive."""
    code = (
        "import multiprocessing, opto, sys\n"
        "opto.configure(dashboard=sys.argv[1])\n"
        "@opto.trace\n"
        "def work(i): return i\n"
        "def child(n):\n"
        "    for i in range(n): work(i)\n"
        "if __name__ == '__main__':\n"
        "    ctx = multiprocessing.get_context('fork')\n"
        "    children = [ctx.Process(target=child, args=(300,)) for _ in range(2)]\n"
        "    for c in children: c.start()\n"
        "    for c in children: c.join()\n"
        "    print([c.exitcode for c in children])\n"
    )
    out = run_app(code, dashboard.url, timeout=120)
    assert out.strip() == "[0, 0]"
    assert dashboard.get("/api/traces")["total"] == 600


def test_a_long_service_name_or_resource_value_costs_no_span(dashboard: Dashboard) -> None:
    """Cut to the dashboard's limits as a span's own values are: past them, every span of the
    process was refused (a hello refused, a resource value refused with each frame)."""
    code = (
        "import opto, sys\n"
        "opto.configure(dashboard=sys.argv[1], service_name='s' * 2000, resource_attributes={'deploy.note': 'x' * 70_000})\n"
        "@opto.trace\n"
        "def work(i): return i\n"
        "for i in range(20): work(i)\n"
        "opto.shutdown()\n"
    )
    run_app(code, dashboard.url)
    assert dashboard.get("/api/traces")["total"] == 20
    (process,) = dashboard.get("/api/live")["processes"]
    assert process["service"] == "s" * 1024


def test_a_service_name_that_is_not_a_str_is_a_type_error() -> None:
    import opto

    with pytest.raises(TypeError, match="service_name must be a str, got int"):
        opto.configure(service_name=123)  # type: ignore[arg-type]


def test_spans_after_shutdown_take_no_memory() -> None:
    """The processor stays on the provider after `opto.shutdown()`: what ends later is not kept."""
    code = (
        "import opto\n"
        "from opto.telemetry.live import LiveSpanProcessor\n"
        "from opentelemetry import trace\n"
        "opto.configure(dashboard='http://127.0.0.1:9')\n"
        "(live,) = [p for p in trace.get_tracer_provider()._active_span_processor._span_processors if isinstance(p, LiveSpanProcessor)]\n"
        "@opto.trace\n"
        "def work(i): return i\n"
        "for i in range(10): work(i)\n"
        "opto.shutdown()\n"
        "kept = len(live._buffer)\n"
        "for i in range(20_000): work(i)\n"
        "print(kept, len(live._buffer))\n"
    )
    out = run_app(code)
    kept, after = map(int, out.split())
    assert after <= kept <= 20


def test_metric_points_the_dashboard_refuses_are_counted_as_dropped() -> None:
    """The SDK's own points pass the dashboard's checks; should a dashboard still refuse some (an
    older one, another implementation), its ack's refused_metrics are counted, not ignored."""
    import json
    import threading

    from websockets.sync.server import serve

    from opto.trace import AsyncMetrics

    async def monitored() -> None:
        async with AsyncMetrics.monitor("refused-here") as block:
            block.record("tokens", 3)

    asyncio.run(monitored())
    frames: list[dict[str, object]] = []

    def handler(ws: object) -> None:
        for message in ws:  # type: ignore[attr-defined]
            frame = json.loads(message)
            if frame["type"] == "batch":
                frames.append(frame)
                ws.send(json.dumps({"type": "ack", "seq": frame["seq"], "stored": len(frame["spans"]), "refused_metrics": len(frame["metrics"])}))  # type: ignore[attr-defined]

    with serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        live = LiveSpanProcessor(f"http://127.0.0.1:{server.socket.getsockname()[1]}")
        live.shutdown()
        server.shutdown()
    sent = sum(len(frame["metrics"]) for frame in frames)  # type: ignore[arg-type]
    assert sent > 0 and live.dropped_metrics == sent
