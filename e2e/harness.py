"""The browser suite's parts, shared by its fixtures and `make screenshots`: Debian's Chromium,
a real dashboard server, a real traced program, and records fed straight to the ingest door.

The dashboard runs as a subprocess on a socket this process bound and keeps listening, so a
restart comes back on the same port, and a browser connecting meanwhile waits instead of failing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Playwright
from websockets.sync.client import connect

__all__ = ["Dashboard", "Feeder", "Workload", "span", "launch_chromium", "CHROMIUM_ARGS"]

HERE = Path(__file__).parent
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


class Dashboard:
    """A real `opto-dashboard` process on a real SQLite file; `restart()` keeps port and data."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        fd = self.sock.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opto_dashboard", "--db", str(self.db_path), "--fd", str(fd)], pass_fds=[fd], stdout=subprocess.DEVNULL
        )
        # The socket already listens, so this request waits in the backlog until the app serves it.
        try:
            httpx.get(f"{self.url}/api/live", timeout=30).raise_for_status()
        except httpx.HTTPError as exc:
            code = self.proc.poll()
            self.stop()
            raise RuntimeError(f"the dashboard did not start (exit code {code}): {exc}") from exc

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        self.stop()
        self.sock.close()


class Feeder:
    """An SDK stand-in on `/ws/ingest`: sends span records and waits until each batch is stored."""

    def __init__(self, dashboard: Dashboard, service: str = "e2e") -> None:
        self.connection = connect(dashboard.url.replace("http", "ws", 1) + "/ws/ingest", max_size=None)
        self.ws = self.connection.__enter__()
        self.process_id = uuid.uuid4().hex
        self.seq = 0
        hello = {"id": self.process_id, "service": service, "pid": os.getpid(), "host": "e2e", "sdk": "e2e", "started_ns": time.time_ns()}
        self.ws.send(json.dumps({"type": "hello", "process": hello}))

    def send(self, spans: list[dict[str, Any]], metrics: list[dict[str, Any]] | None = None) -> None:
        for i in range(0, max(len(spans), 1), 1000):
            self.seq += 1
            self.ws.send(json.dumps({"type": "batch", "seq": self.seq, "spans": spans[i:i + 1000], "metrics": metrics or [], "drops": {}}))
            reply = json.loads(self.ws.recv(timeout=30))
            assert reply["type"] == "ack" and reply["seq"] == self.seq, reply

    def close(self) -> None:
        self.connection.__exit__(None, None, None)


class Workload:
    """`workload.py SCENARIO` streaming to the dashboard; `ready()` waits for its calls to run."""

    def __init__(self, dashboard: Dashboard, scenario: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "workload.py"), dashboard.url, scenario],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def ready(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line == "ready\n", f"workload did not get ready (exit code {self.proc.poll()}): {line!r}"

    def release(self) -> None:
        """Let held calls finish."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self) -> None:
        """Wait until the program has flushed its telemetry and exited."""
        assert self.proc.wait(timeout=60) == 0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def span(
    trace_id: str, span_id: str, name: str, start_ns: int, end_ns: int | None, *, parent: str | None = None,
    attributes: dict[str, Any] | None = None, events: list[dict[str, Any]] | None = None, outcome: str = "ok",
) -> dict[str, Any]:
    """One span record of docs/api.md; `end_ns=None` makes it a started (in-flight) span."""
    attrs = dict(attributes or {})
    if end_ns is not None:
        attrs.setdefault("opto.outcome", outcome)
    return {
        "trace_id": trace_id, "span_id": span_id, "parent_span_id": parent, "name": name, "kind": "internal",
        "state": "started" if end_ns is None else "ended", "start_ns": start_ns, "end_ns": end_ns,
        "status": {"code": "error" if outcome in ("error", "timeout") else "unset", "message": ""},
        "attributes": attrs, "events": events or [], "links": [], "resource": {"service.name": "e2e"},
        "scope": {"name": "opto", "version": "e2e"},
    }


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium (Playwright cannot download browsers here); `CHROMIUM_EXECUTABLE` overrides the path."""
    return playwright.chromium.launch(
        executable_path=os.environ.get("CHROMIUM_EXECUTABLE", "/usr/bin/chromium"), headless=True, args=CHROMIUM_ARGS
    )
