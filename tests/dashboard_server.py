"""Real dashboards for tests: uvicorn on a socket the test bound first, on a real SQLite file.

`Dashboard` serves in a thread of the test process (its `app.state` can be inspected);
`DashboardProcess` serves from a subprocess that can be killed and restarted on the same port,
because the test keeps the listening socket (clients connecting meanwhile wait in its backlog).
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from opto_dashboard.app import create_app
from opto_dashboard.connections import server_options
from opto_dashboard.ingest import MAX_FRAME_BYTES
from opto_dashboard.writer import SpanWrite

__all__ = ["Dashboard", "DashboardProcess", "listening_socket", "serve_command", "run_program", "span_record", "hello_frame", "ROOT"]

ROOT = Path(__file__).resolve().parent.parent


def serve_command(db_path: Path | str, sock: socket.socket, *options: str) -> list[str]:
    """`opto-dashboard` serving `db_path` on the listening socket `sock` (pass its fd to the child)."""
    return [sys.executable, "-m", "opto_dashboard", "--db", str(db_path), "--fd", str(sock.fileno()), *options]


def listening_socket() -> socket.socket:
    """A TCP socket on 127.0.0.1 with an OS-picked port, already listening."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


class Dashboard:
    """`create_app(db_path, **options)` served by uvicorn in a thread; use as a context manager."""

    def __init__(self, db_path: Path, **options: Any) -> None:
        self.app = create_app(db_path, **options)
        self.sock = listening_socket()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.ws_url = self.url.replace("http", "ws", 1)
        config = uvicorn.Config(
            self.app, log_level="warning", ws_max_size=2 * MAX_FRAME_BYTES, ws_ping_interval=None, lifespan="on",
            **server_options(self.app.state.refused),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, name="test-dashboard", daemon=True)

    def __enter__(self) -> Dashboard:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()
        assert not self.thread.is_alive(), "the dashboard did not stop within 30 s"

    def get(self, path: str, **kwargs: Any) -> Any:
        response = httpx.get(f"{self.url}{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()


class DashboardProcess:
    """The dashboard in a subprocess on a socket this process keeps; `kill()` then `start()` again."""

    def __init__(self, db_path: Path, *, max_files: int | None = None) -> None:
        """`max_files`: the child's RLIMIT_NOFILE, to show what exhausting it does."""
        self.db_path = db_path
        self.max_files = max_files
        self.sock = listening_socket()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        limit = self.max_files
        self.proc = subprocess.Popen(
            serve_command(self.db_path, self.sock), pass_fds=[self.sock.fileno()], stdout=subprocess.DEVNULL,
            preexec_fn=None if limit is None else lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)),
        )
        # The socket already listens: this request waits in the backlog until the app serves it.
        httpx.get(f"{self.url}/api/live", timeout=30).raise_for_status()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, as a crash would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
            self.proc = None

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        self.kill()
        self.sock.close()


def run_program(code: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[str]:
    """Start `code` in a fresh interpreter (no test OpenTelemetry setup), pipes on stdin/stdout/stderr."""
    return subprocess.Popen(
        [sys.executable, "-c", code], env={**os.environ, **(env or {})}, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs,
    )


def hello_frame(process_id: str | None = None, service: str = "test") -> str:
    return json.dumps({"type": "hello", "process": {
        "id": process_id or uuid.uuid4().hex, "service": service, "pid": os.getpid(), "host": "test",
        "sdk": "test", "started_ns": time.time_ns(),
    }})


def span_record(trace_id: str, span_id: str, name: str = "work", /, *, parent: str | None = None, ended: bool = True, **fields: Any) -> dict[str, Any]:
    """A valid wire record; `fields` override any key."""
    start = time.time_ns()
    record = {
        "trace_id": trace_id, "span_id": span_id, "parent_span_id": parent, "name": name, "kind": "internal",
        "state": "ended" if ended else "started", "start_ns": start, "end_ns": start + 1_000_000 if ended else None,
        "status": {"code": "unset", "message": ""}, "attributes": {"opto.outcome": "ok"} if ended else {},
        "events": [], "links": [], "resource": {"service.name": "test"}, "scope": {"name": "opto", "version": "0.2.0"},
    }
    record.update(fields)
    return record


def span_write(rows: list[list[Any]]) -> SpanWrite:
    """A writer request for span rows in WIRE_COLUMNS order whose resource and attribute names are
    given as values, a (process id, service, resource JSON, scope JSON) tuple and a JSON list,
    instead of positions in the request's lists."""
    resources: dict[tuple[Any, ...], int] = {}
    keys: dict[str, int] = {}
    flat: list[Any] = []
    for r in rows:
        flat += [*r[:12], resources.setdefault(tuple(r[12]), len(resources)), keys.setdefault(r[13], len(keys)), *r[14:]]
    return SpanWrite(flat, json.dumps(sorted({r[0] for r in rows})), [], [], [], [], resources=list(resources), keys=list(keys))
