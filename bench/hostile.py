"""Server RSS and CPU under hostile input (issue 14), before and after, and the cost of the Host check and headers.

Run: .venv/bin/python bench/hostile.py [--before REV]
Each attack runs against a fresh dashboard subprocess (RLIMIT_NOFILE 1024, as many systems default
to) while a prober asks `/api/live` every 0.1 s; reported: the attack's outcome, the API's median
and worst latency meanwhile, the server's peak RSS (its process and the SQLite writer, VmHWM) and
CPU seconds. With `--before REV`, the same attacks run first against the dashboard of commit REV
(extracted with `git archive`, imported ahead of the editable install through PYTHONPATH).
1. 2 MiB of empty gzip members in one OTLP body;
2. four concurrent 15 MiB OTLP/JSON bodies (50,000 spans each);
3. 1,100 connections that send no or half a request's headers, then the API is asked;
4. valid websocket batches for 20 s from a client that never reads its acks;
5. 10,000 processes that said hello and left, then one browser on `/ws/live` for 10 s;
6. one client holding 100,000 started spans under distinct names, then `/api/live`.
Last, the per-request cost of the Host check and security headers: requests/s of `GET /nowhere` (a 404,
the cheapest response, so their share is the largest) through the app's ASGI stack in process, with
and without those two middlewares, alternating 1 s rounds in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
MAX_FILES = 1024
PROBE_S = 0.1


class Server:
    """A dashboard subprocess on a socket bound here; `src` puts another source tree ahead of the installed one."""

    def __init__(self, db: Path, src: Path | None) -> None:
        self.log = db.with_suffix(".log")
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        fd = self.sock.fileno()
        env = {**os.environ, "PYTHONPATH": str(src)} if src else None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opto_dashboard", "--db", str(db), "--fd", str(fd)], pass_fds=[fd], stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"), env=env, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (MAX_FILES, MAX_FILES)),
        )
        httpx.get(self.url + "/api/live", timeout=60).raise_for_status()

    def pids(self) -> list[int]:
        tasks = Path(f"/proc/{self.proc.pid}/task").iterdir()
        return [self.proc.pid, *(int(pid) for task in tasks for pid in (task / "children").read_text().split())]

    def cpu_s(self) -> float:
        total = 0.0
        for pid in self.pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def peak_rss_mb(self) -> float:
        kb = 0
        for pid in self.pids():
            kb += next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM:"))
        return kb / 1024

    def accept_failures(self) -> int:
        """How many times the server logged that accept() found no descriptor left."""
        return self.log.read_text(errors="replace").count("Too many open files")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # the old server could spin on its failing accept()
            self.proc.wait(60)
        self.sock.close()


async def probe(url: str, stop: asyncio.Event) -> list[float | None]:
    """`/api/live` latencies (s) every PROBE_S until `stop`; None for no answer within 30 s."""
    latencies: list[float | None] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                (await client.get("/api/live")).raise_for_status()
                latencies.append(time.perf_counter() - t0)
            except httpx.HTTPError:
                latencies.append(None)
            await asyncio.sleep(PROBE_S)
    return latencies


async def gzip_members(url: str) -> str:
    empty = gzip.compress(b"")
    body = empty * (2 * 1024 * 1024 // len(empty))
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        t0 = time.perf_counter()
        response = await client.post("/v1/traces", content=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        return f"{response.status_code} after {time.perf_counter() - t0:.2f} s"


def otlp_json(first_trace: int, spans: int) -> bytes:
    now = time.time_ns()
    items = [{
        "traceId": f"{first_trace + i // 10:032x}", "spanId": f"{i + 1:016x}", "name": f"step{i % 10}", "kind": 1,
        "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 1000),
        "attributes": [{"key": "opto.outcome", "value": {"stringValue": "ok"}}, {"key": "n", "value": {"intValue": str(i)}}],
    } for i in range(spans)]
    return json.dumps({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bench"}}]},
                                          "scopeSpans": [{"spans": items}]}]}).encode()


async def big_json(url: str) -> str:
    bodies = [otlp_json(k * 10_000_000, 50_000) for k in range(4)]
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        t0 = time.perf_counter()
        responses = await asyncio.gather(*(client.post("/v1/traces", content=b, headers={"Content-Type": "application/json"}) for b in bodies))
        size = len(bodies[0]) / 2**20
        return f"{[r.status_code for r in responses]} ({size:.1f} MiB each) after {time.perf_counter() - t0:.2f} s"


async def half_open(url: str) -> str:
    host, port = url.removeprefix("http://").split(":")

    def open_all() -> list[socket.socket]:
        socks = []
        for i in range(1100):
            sock = socket.create_connection((host, int(port)))
            if i % 2:
                sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n".encode())
            socks.append(sock)
        return socks

    socks = await asyncio.to_thread(open_all)
    try:
        t0 = time.perf_counter()
        try:
            async with httpx.AsyncClient(base_url=url, timeout=20) as client:
                status = (await client.get("/api/live")).status_code
            return f"1,100 open; API {status} in {time.perf_counter() - t0:.2f} s"
        except httpx.HTTPError:
            return "1,100 open; API: no answer in 20 s"
    finally:
        for sock in socks:
            sock.close()


def _ws_frame(text: str) -> bytes:
    """A masked websocket text frame (zero mask), as a client sends."""
    data = text.encode()
    if len(data) < 126:
        return bytes([0x81, 0x80 | len(data)]) + bytes(4) + data
    return bytes([0x81, 0x80 | 126]) + len(data).to_bytes(2, "big") + bytes(4) + data


def _ws_connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(f"GET /ws/ingest HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += sock.recv(1)
    return sock


def _hello(pid: int) -> str:
    return json.dumps({"type": "hello", "process": {"id": f"{pid:032x}", "service": "hostile", "pid": pid, "host": "h", "sdk": "x", "started_ns": time.time_ns()}})


async def unread_acks(url: str) -> str:
    """Valid empty batches for 20 s from a client that never reads its acks."""
    def flood() -> str:
        sock = _ws_connect(url)
        sock.sendall(_ws_frame(_hello(1)))
        sock.setblocking(False)
        sent, pending, deadline = 0, b"", time.monotonic() + 20
        while time.monotonic() < deadline:
            if not pending:
                pending = _ws_frame(json.dumps({"type": "batch", "seq": sent, "spans": []}))
                sent += 1
            try:
                pending = pending[sock.send(pending):]
            except BlockingIOError:
                time.sleep(0.01)
        sock.close()
        return f"{sent:,} frames sent in 20 s"
    return await asyncio.to_thread(flood)


async def past_processes(url: str) -> str:
    """10,000 processes each say hello and leave; then one browser watches /ws/live for 10 s."""
    def churn() -> None:
        for pid in range(10_000):
            sock = _ws_connect(url)
            sock.sendall(_ws_frame(_hello(pid + 1)))
            sock.close()
    await asyncio.to_thread(churn)
    received = 0
    import websockets
    async with websockets.connect(url.replace("http", "ws", 1) + "/ws/live", max_size=None) as ws:
        deadline = time.monotonic() + 10
        while (left := deadline - time.monotonic()) > 0:
            try:
                received += len(await asyncio.wait_for(ws.recv(), left))
            except TimeoutError:
                break
    return f"10,000 gone; one browser got {received / 10 / 1e6:.2f} MB/s"


async def started_spans(url: str) -> str:
    """One client holds 100,000 started spans under distinct names; then /api/live is asked."""
    def send() -> None:
        sock = _ws_connect(url)
        sock.sendall(_ws_frame(_hello(7)))
        now = time.time_ns()
        for f in range(100):
            spans = [{"trace_id": f"{f * 1000 + i + 1:032x}", "span_id": f"{i + 1:016x}", "name": f"name{f * 1000 + i}",
                      "state": "started", "start_ns": now} for i in range(1000)]
            data = json.dumps({"type": "batch", "seq": f, "spans": spans}).encode()
            sock.sendall(bytes([0x81, 0x80 | 127]) + len(data).to_bytes(8, "big") + bytes(4) + data)
        time.sleep(5)  # the connection stays: its spans stay in flight
        sock.close()
    thread = asyncio.create_task(asyncio.to_thread(send))
    await asyncio.sleep(4)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        t0 = time.perf_counter()
        body = (await client.get("/api/live")).content
        took = time.perf_counter() - t0
    await thread
    return f"/api/live {len(body) / 1e6:.2f} MB in {took * 1000:.0f} ms"


ATTACKS: list[tuple[str, Callable[[str], Awaitable[str]]]] = [
    ("2 MiB of empty gzip members", gzip_members), ("4 x 15 MiB OTLP/JSON at once", big_json), ("1,100 half-open connections", half_open),
    ("valid batches, acks never read", unread_acks), ("10,000 past processes, one browser", past_processes),
    ("100,000 started spans, distinct names", started_spans),
]


async def run_attack(server: Server, attack: Callable[[str], Awaitable[str]]) -> dict[str, Any]:
    cpu0 = server.cpu_s()
    stop = asyncio.Event()
    prober = asyncio.create_task(probe(server.url, stop))
    try:
        outcome = await attack(server.url)
    finally:
        stop.set()
        latencies = await prober
    answered = sorted(x for x in latencies if x is not None)
    return {
        "outcome": outcome, "cpu_s": server.cpu_s() - cpu0, "peak_rss_mb": server.peak_rss_mb(),
        "api_p50_ms": statistics.median(answered) * 1000 if answered else None,
        "api_max_ms": answered[-1] * 1000 if answered else None, "api_unanswered": len(latencies) - len(answered),
        "accept_failures": server.accept_failures(),
    }


def extract(rev: str, into: Path) -> Path:
    """The dashboard and SDK of commit `rev`, laid out as importable packages."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "dashboard", "sdk/opto"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "opto_dashboard").symlink_to(into / "dashboard")
    (into / "opto").symlink_to(into / "sdk" / "opto")
    return into


async def not_found_rate(app: Any, seconds: float) -> float:
    """GET /nowhere (404) through the ASGI app in process, requests per second."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/nowhere", "raw_path": b"/nowhere", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1:8765"), (b"accept", b"*/*")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8765)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 404, message

    count = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            await app(dict(scope), receive, send)
        count += 100
    return count / seconds


def middleware_cost(tmp: Path) -> tuple[float, float]:
    """(requests/s with the Host check and headers, without them): alternating 1 s rounds, medians of 5."""
    from opto_dashboard.app import create_app
    from opto_dashboard.headers import SecurityHeadersMiddleware
    from opto_dashboard.security import AccessMiddleware

    full = create_app(tmp / "cost.db")
    bare = create_app(tmp / "cost.db")
    bare.user_middleware = [m for m in bare.user_middleware if m.cls not in (SecurityHeadersMiddleware, AccessMiddleware)]

    async def rounds() -> tuple[float, float]:
        with_, without = [], []
        for _ in range(5):
            with_.append(await not_found_rate(full, 1.0))
            without.append(await not_found_rate(bare, 1.0))
        return statistics.median(with_), statistics.median(without)

    return asyncio.run(rounds())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", metavar="REV", help="also run the attacks against the dashboard of this commit")
    parser.add_argument("--attacks", nargs="+", type=int, metavar="N", help="run only these attacks (1-based, as listed above)")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp_dir:
        tmp = Path(tmp_dir)
        trees: list[tuple[str, Path | None]] = [("after", None)]
        if args.before:
            trees.insert(0, (f"before ({args.before})", extract(args.before, tmp / "before")))
        print("| attack | code | outcome | API p50 / max during | unanswered probes | accept() failures | server peak RSS | server CPU |")
        print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: |")
        for name, attack in [a for i, a in enumerate(ATTACKS, 1) if not args.attacks or i in args.attacks]:
            for label, src in trees:
                server = Server(tmp / f"{label[:6]}-{attack.__name__}.db", src)
                try:
                    r = asyncio.run(run_attack(server, attack))
                finally:
                    server.close()
                latency = "-" if r["api_p50_ms"] is None else f"{r['api_p50_ms']:.0f} / {r['api_max_ms']:.0f} ms"
                print(f"| {name} | {label} | {r['outcome']} | {latency} | {r['api_unanswered']} | {r['accept_failures']:,} | {r['peak_rss_mb']:.0f} MB | {r['cpu_s']:.1f} s |", flush=True)
        with_, without = middleware_cost(tmp)
        print(f"GET /nowhere in process: {with_:,.0f} req/s with the Host check and headers, {without:,.0f} without "
              f"({with_ / without:.3f}x; {(1 / with_ - 1 / without) * 1e6:.1f} us per request)")


if __name__ == "__main__":
    main()
