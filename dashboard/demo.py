"""`make demo`: start the dashboard and feed it a workload that shows every page at its best, until Ctrl-C.

`python -m opto_dashboard.demo [--port N]` binds the port itself, refuses at once (exit code 2) if
it is taken, hands the socket to an `opto-dashboard` subprocess on its default database, prints
the URL, and runs `demo_workload` (kept in its own module, so its exceptions read
`opto_dashboard.demo_workload.RateLimited`, not `__main__.RateLimited`). `--connect URL` feeds a
dashboard already running instead.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence

import httpx

import opto

from .demo_workload import workload

__all__ = ["main", "workload"]


def _bind(host: str, port: int) -> socket.socket:
    """The demo's own listening socket, so a port already taken (say, by another dashboard) stops it here."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if sys.platform != "win32":  # a port in TIME_WAIT after the last run is free; one with a listener is still refused
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(
            f"cannot listen on {host}:{port}: {exc.strerror}. Is another opto-dashboard running there? "
            f"Pick a free port: make demo PORT={port + 1}, or python -m opto_dashboard.demo --port {port + 1}"
        ) from None
    sock.listen(128)
    return sock


def _start_dashboard(host: str, port: int, argv: Sequence[str]) -> tuple[subprocess.Popen[bytes], str]:
    sock = _bind(host, port)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{sock.getsockname()[1]}"
    # Its own session: Ctrl-C reaches the demo only, which flushes its spans before stopping the server.
    fd = sock.fileno()
    server = subprocess.Popen([sys.executable, "-m", "opto_dashboard", "--fd", str(fd), *argv], pass_fds=[fd],
                              stdout=subprocess.DEVNULL, start_new_session=True)
    sock.close()  # the server holds its own copy; requests wait in the backlog until it serves them
    try:
        httpx.get(url + "/api/live", timeout=30).raise_for_status()
    except BaseException as exc:  # Ctrl-C while it starts too: the server is in its own session
        server.terminate()
        server.wait(30)
        if isinstance(exc, httpx.HTTPError):
            raise RuntimeError(f"the dashboard did not start at {url} (exit code {server.returncode}): {exc}") from None
        raise
    return server, url


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m opto_dashboard.demo",
        description="Start opto-dashboard and feed it a demo workload until Ctrl-C. Other options go to opto-dashboard.",
    )
    parser.add_argument("--connect", metavar="URL", help="feed the dashboard already running at URL instead of starting one")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve the dashboard on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to serve the dashboard on (default 8765); the demo stops if it is taken")
    args, rest = parser.parse_known_args(argv)
    # `kill` or a closed terminal stops the demo as Ctrl-C does: spans flushed and, above all, its
    # dashboard stopped (that runs in its own session, and would be left holding the port).
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _interrupt)
    server = None
    if args.connect:
        url = args.connect
    else:
        try:
            server, url = _start_dashboard(args.host, args.port, rest)
        except RuntimeError as exc:  # nothing was fed anywhere
            parser.exit(2, f"opto demo: {exc}\n")
        except KeyboardInterrupt:
            parser.exit(0, "OpenTrace demo stopped.\n")
    try:  # from here on, Ctrl-C at any moment flushes the spans and stops the server
        opto.configure(dashboard=url, service_name="opto-demo", asyncio=True)  # the Tasks page, loop lag, "Where is it now?"
        logging.getLogger("asyncio").setLevel(logging.ERROR)  # the debug agent's slow steps show in the dashboard instead
        print(f"OpenTrace demo: open {url}/ in a browser. Ctrl-C stops.", flush=True)
        asyncio.run(workload())
    except KeyboardInterrupt:
        pass
    finally:
        opto.shutdown()
        if server is not None:
            server.terminate()
            server.wait(30)
        print("OpenTrace demo stopped.", flush=True)


if __name__ == "__main__":
    main()
