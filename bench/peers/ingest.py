"""OTLP/HTTP ingest side by side: `opto-dashboard` and `phoenix serve`, each on a fresh SQLite database.

The same protobuf load goes to both (default 50,000 spans, 10 per trace, 5 attributes each, batches
of 512, 4 requests in flight, no retries). Reports the time from the first send until every accepted
span is stored and queryable, spans/s over that time, the server's CPU time over it (steadier than
wall time on a shared machine), its peak RSS, and the spans lost (refused or never stored). Each
server runs under the offline guard.

    .venv-peers/bin/python bench/peers/ingest.py [--servers opto phoenix] [--runs 3] [--spans 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

import offline

offline.install()

__all__: list[str] = []

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
PROTOBUF = {"content-type": "application/x-protobuf"}
STALL_S = 30.0  # no new span stored for this long: the rest are lost
DEADLINE_S = 1800.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _attr(key: str, value: str | int | float | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def build_load(spans: int, per_trace: int, batch: int) -> list[tuple[bytes, int]]:
    """The request bodies and their span counts: traces of `per_trace` spans (a root and its
    children), 5 attributes per span, cut into batches of `batch` spans."""
    resource = Resource(attributes=[_attr("service.name", "bench-ingest")])
    scope = InstrumentationScope(name="bench.ingest", version="1")
    now = time.time_ns()
    all_spans: list[Span] = []
    for i in range(spans):
        if i % per_trace == 0:
            trace_id = os.urandom(16)
            root_id = os.urandom(8)
        start = now + i * 1_000
        all_spans.append(
            Span(
                trace_id=trace_id,
                span_id=root_id if i % per_trace == 0 else os.urandom(8),
                parent_span_id=b"" if i % per_trace == 0 else root_id,
                name="agent" if i % per_trace == 0 else f"step-{i % per_trace}",
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=start,
                end_time_unix_nano=start + 1_000_000,
                attributes=[
                    _attr("bench.index", i),
                    _attr("bench.query", f"question number {i}"),
                    _attr("bench.ok", i % 7 != 0),
                    _attr("bench.score", i / spans),
                    _attr("opto.outcome", "ok"),
                ],
            )
        )
    load = []
    for at in range(0, spans, batch):
        chunk = all_spans[at : at + batch]
        request = ExportTraceServiceRequest(
            resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(scope=scope, spans=chunk)])]
        )
        load.append((request.SerializeToString(), len(chunk)))
    return load


@dataclass
class Result:
    server: str
    sent: int
    refused: int
    stored: int
    seconds: float
    cpu_s: float
    peak_rss_mb: float
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return self.stored / self.seconds if self.seconds else 0.0

    @property
    def lost(self) -> int:
        return self.sent - self.stored


class Server:
    """A server process under the offline guard, on a fresh working directory."""

    name = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.audit_log = workdir / "audit.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    async def ready(self, client: httpx.AsyncClient) -> bool:
        raise NotImplementedError

    async def stored(self, client: httpx.AsyncClient) -> int:
        """Spans stored, as cheaply as the server can say; polled while the load is stored."""
        raise NotImplementedError

    async def queryable(self, client: httpx.AsyncClient) -> int:
        """Spans the server's query API returns, checked once the cheap count is complete."""
        return await self.stored(client)

    def start(self) -> None:
        args, env = self.command()
        log = open(self.workdir / "server.log", "wb")
        self.proc = subprocess.Popen(
            [PYTHON, str(HERE / "offline_run.py"), *args],
            env={**os.environ, **env, offline.LOG_ENV: str(self.audit_log)},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        log.close()

    async def wait_ready(self, client: httpx.AsyncClient, timeout_s: float = 180.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.workdir / 'server.log'}")
            try:
                if await self.ready(client):
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout_s} s; see {self.workdir / 'server.log'}")

    def pids(self) -> list[int]:
        """The server process and its descendants (opto-dashboard's SQLite writer, for one)."""
        assert self.proc is not None
        pids, i = [self.proc.pid], 0
        while i < len(pids):
            for task in Path(f"/proc/{pids[i]}/task").iterdir():
                pids.extend(int(pid) for pid in (task / "children").read_text().split())
            i += 1
        return pids

    def cpu_s(self) -> float:
        """User plus system CPU seconds the server and its descendants have used so far."""
        total = 0
        for pid in self.pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        """VmHWM (peak resident set) of the server and its descendants, summed, in MB."""
        kb = 0
        for pid in self.pids():
            status = Path(f"/proc/{pid}/status").read_text()
            kb += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        return kb / 1024

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def outbound(self) -> list[str]:
        return offline.read_log(str(self.audit_log))


class OptoDashboard(Server):
    name = "opto-dashboard"

    def command(self) -> tuple[list[str], dict[str, str]]:
        db = self.workdir / "opto.sqlite3"
        return ["opto_dashboard.cli:main", "--host", "127.0.0.1", "--port", str(self.port), "--db", str(db)], {}

    async def ready(self, client: httpx.AsyncClient) -> bool:
        return (await client.get(f"{self.base}/api/live")).status_code == 200

    async def stored(self, client: httpx.AsyncClient) -> int:
        r = await client.get(f"{self.base}/api/live")
        r.raise_for_status()
        return int(r.json()["ingest"]["spans_stored"])

    async def queryable(self, client: httpx.AsyncClient) -> int:
        """The sum of span_count over every trace `/api/traces` lists."""
        total, offset, page = 0, 0, 500
        while True:
            r = await client.get(f"{self.base}/api/traces", params={"limit": page, "offset": offset})
            r.raise_for_status()
            traces = r.json()["traces"]
            total += sum(t["span_count"] for t in traces)
            if len(traces) < page:
                return total
            offset += len(traces)


class Phoenix(Server):
    name = "phoenix serve"
    COUNT = '{"query": "{projects{edges{node{name recordCount}}}}"}'

    def command(self) -> tuple[list[str], dict[str, str]]:
        env = {
            "PHOENIX_WORKING_DIR": str(self.workdir),
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.port),
            "PHOENIX_GRPC_PORT": str(free_port()),
            "PHOENIX_TELEMETRY_ENABLED": "false",
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
        }
        return ["phoenix.server.main:main", "serve"], env

    async def ready(self, client: httpx.AsyncClient) -> bool:
        return (await client.get(f"{self.base}/healthz")).status_code == 200

    async def stored(self, client: httpx.AsyncClient) -> int:
        r = await client.post(f"{self.base}/graphql", content=self.COUNT, headers={"content-type": "application/json"})
        r.raise_for_status()
        edges = r.json()["data"]["projects"]["edges"]
        return sum(e["node"]["recordCount"] for e in edges)


SERVERS: dict[str, Callable[[Path], Server]] = {"opto": OptoDashboard, "phoenix": Phoenix}


async def send(client: httpx.AsyncClient, url: str, load: list[tuple[bytes, int]], in_flight: int) -> tuple[int, dict[int, int]]:
    """POST every batch once, `in_flight` at a time; returns spans refused and the status counts."""
    refused = 0
    statuses: dict[int, int] = {}
    sem = asyncio.Semaphore(in_flight)

    async def one(body: bytes, n: int) -> None:
        nonlocal refused
        async with sem:
            try:
                r = await client.post(url, content=body, headers=PROTOBUF)
            except httpx.HTTPError:
                statuses[0] = statuses.get(0, 0) + 1
                refused += n
                return
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        if r.status_code // 100 != 2:
            refused += n
        elif r.content and r.headers.get("content-type", "").startswith("application/x-protobuf"):
            response = ExportTraceServiceResponse.FromString(r.content)
            refused += response.partial_success.rejected_spans

    await asyncio.gather(*(one(body, n) for body, n in load))
    return refused, statuses


async def wait_stored(server: Server, client: httpx.AsyncClient, expected: int) -> tuple[int, float]:
    """Poll until `expected` spans are stored or none arrive for STALL_S, then count what the query
    API returns; returns (queryable count, when it was confirmed)."""
    count, when, progress = -1, time.perf_counter(), time.monotonic()
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        now = await server.stored(client)
        if now != count:
            count, when, progress = now, time.perf_counter(), time.monotonic()
        if count >= expected:
            queryable = await server.queryable(client)
            if queryable >= expected:
                return queryable, time.perf_counter()
        elif time.monotonic() - progress > STALL_S:
            break
        await asyncio.sleep(0.25)
    return await server.queryable(client), when


async def run_one(kind: str, load: list[tuple[bytes, int]], in_flight: int) -> tuple[Result, list[str]]:
    with tempfile.TemporaryDirectory(prefix=f"bench-ingest-{kind}-") as tmp:
        server = SERVERS[kind](Path(tmp))
        server.start()
        try:
            async with httpx.AsyncClient(timeout=120.0) as client:
                await server.wait_ready(client)
                cpu0 = server.cpu_s()
                t0 = time.perf_counter()
                sending = asyncio.create_task(send(client, f"{server.base}/v1/traces", load, in_flight))
                sent = sum(n for _, n in load)
                refused, statuses = await sending
                stored, done = await wait_stored(server, client, sent - refused)
            result = Result(server.name, sent, refused, stored, done - t0, server.cpu_s() - cpu0, server.peak_rss_mb(), statuses)
        finally:
            server.stop()
        return result, server.outbound()


def versions() -> str:
    return ", ".join(f"{n} {metadata.version(n)}" for n in ("opentrace", "arize-phoenix"))


async def main(kinds: list[str], runs: int, spans: int, per_trace: int, batch: int, in_flight: int) -> int:
    load = build_load(spans, per_trace, batch)
    results: dict[str, list[Result]] = {k: [] for k in kinds}
    outbound: list[str] = []
    for run in range(runs):
        for kind in kinds:
            result, attempts = await run_one(kind, load, in_flight)
            outbound += attempts
            results[kind].append(result)
            print(
                f"run {run + 1} {result.server}: {result.stored}/{result.sent} stored in {result.seconds:.2f} s "
                f"= {result.rate:,.0f} spans/s, server CPU {result.cpu_s:.1f} s, refused {result.refused}, peak RSS {result.peak_rss_mb:.0f} MB, "
                f"HTTP statuses {json.dumps(result.statuses)}",
                flush=True,
            )
    print(f"\n{versions()}; {spans} spans, {per_trace} per trace, batches of {batch}, {in_flight} in flight; median of {runs}")
    print("| server | s to stored and queryable | spans/s | server CPU s | peak RSS (MB) | spans lost |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    medians = {}
    for kind, rs in results.items():
        seconds = statistics.median(r.seconds for r in rs)
        rate = statistics.median(r.rate for r in rs)
        medians[kind] = rate
        print(
            f"| {rs[0].server} | {seconds:.2f} | {rate:,.0f} | {statistics.median(r.cpu_s for r in rs):.1f} "
            f"| {statistics.median(r.peak_rss_mb for r in rs):.0f} "
            f"| {statistics.median(r.lost for r in rs):.0f} (runs: {', '.join(str(r.lost) for r in rs)}) |"
        )
    if "opto" in medians and "phoenix" in medians and medians["phoenix"]:
        print(f"\nopto-dashboard / phoenix spans/s: {medians['opto'] / medians['phoenix']:.0f}x")
    print(f"outbound network attempts refused in the servers: {len(outbound)}")
    for attempt in outbound:
        print(f"OUTBOUND: {attempt}", file=sys.stderr)
    return 1 if outbound else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", nargs="+", choices=sorted(SERVERS), default=["opto", "phoenix"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--spans", type=int, default=50_000)
    parser.add_argument("--per-trace", type=int, default=10)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--in-flight", type=int, default=4)
    ns = parser.parse_args()
    sys.exit(asyncio.run(main(ns.servers, ns.runs, ns.spans, ns.per_trace, ns.batch, ns.in_flight)))
