"""`opto-dashboard`: serve the dashboard with uvicorn on a local SQLite file."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import os
import re
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from .app import create_app
from .connections import server_options
from .hosts import HostRule
from .ingest import MAX_FRAME_BYTES
from .security import check_token

__all__ = ["main", "build_parser", "parse_duration", "parse_size", "default_db_path", "server_config", "GC_THRESHOLDS"]

# The server's garbage collector: with the default (700, 10, 10), ingest's allocations set off a
# full collection every few 1,000-span frames, 35 to 50 ms of the event loop each (start-up's
# 60,000 objects scanned every time). Those are frozen once the app is made, and collections are
# counted in 50,000 allocations: during ingest, full collections went from 4 to 1 a 100,000 spans.
GC_THRESHOLDS = (50_000, 20, 100)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as `90s`, `30m`, `12h`, `7d` or `2w`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match is None or float(match[1]) <= 0:
        raise ValueError(f"expected a positive duration such as 90s, 30m, 12h, 7d or 2w, got {text!r}")
    return float(match[1]) * _UNITS[match[2]]


_SIZES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes in a size such as `500MB`, `1GB`, `1.5G` or `2TiB` (units of 1,024), at least 1 MiB."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if match is None:
        raise ValueError(f"expected a size such as 500MB, 1GB or 2TB, got {text!r}")
    size = int(float(match[1]) * _SIZES[match[2].upper()])
    if size < 1 << 20:
        raise ValueError(f"expected at least 1MB, got {text!r}")
    return size


def default_db_path() -> Path:
    """The per-user data directory's database: XDG on Linux, the platform's own elsewhere."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "opto-dashboard" / "opto.db"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opto-dashboard",
        description="The OpenTrace live dashboard: receives telemetry from opto.configure(dashboard=...) "
        "and OTLP/HTTP, stores it in SQLite and serves the web pages and JSON API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other address needs --token)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    parser.add_argument("--db", type=Path, default=None, help=f"SQLite database file, created if missing (default {default_db_path()})")
    parser.add_argument("--max-spans", type=int, default=1_000_000, metavar="N", help="keep at most about N spans; the oldest finished traces go first (default 1000000)")
    parser.add_argument("--retention", default="7d", metavar="DURATION", help="drop finished traces older than this, e.g. 90s, 30m, 12h, 7d (default 7d)")
    parser.add_argument("--max-db-size", default=None, metavar="SIZE", help="keep the database's pages in use under SIZE, e.g. 500MB, 1GB: the oldest finished traces go first (default: no limit)")
    parser.add_argument("--fd", type=int, default=None, metavar="N", help="serve on the listening socket inherited as file descriptor N, as a supervisor or a test harness passes one; --host and --port are then read from it")
    parser.add_argument("--token", default=os.environ.get("OPTO_DASHBOARD_TOKEN"), help="secret asked of every client (Bearer header or ?token=); default $OPTO_DASHBOARD_TOKEN")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME", help="also accept requests addressed to NAME (a name a proxy forwards); repeatable; loopback names are always accepted")
    return parser


def server_config(args: argparse.Namespace) -> uvicorn.Config:
    """The uvicorn configuration for parsed arguments."""
    app = create_app(
        args.db or default_db_path(), max_spans=args.max_spans, retention_s=parse_duration(args.retention), token=args.token or None,
        allowed_hosts=args.allowed_host, max_db_bytes=None if args.max_db_size is None else parse_size(args.max_db_size),
    )
    return uvicorn.Config(
        app, host=args.host, port=args.port, log_level="warning",
        ws_max_size=2 * MAX_FRAME_BYTES, ws_ping_interval=None, lifespan="on", **server_options(app.state.refused),
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    sockets = None
    if args.fd is not None:
        # Served as a socket object of the right family, not through uvicorn's `fd` (which takes any
        # descriptor for a Unix socket, so asyncio never sets TCP_NODELAY: 40 ms a keep-alive request).
        try:
            sockets = [socket.socket(fileno=args.fd)]
        except OSError as exc:
            parser.error(f"--fd {args.fd}: not an open socket ({exc.strerror})")
        args.host, args.port = sockets[0].getsockname()[:2]
    if not _is_loopback(args.host) and not args.token:
        parser.error(f"--host {args.host} exposes the dashboard beyond this machine; add --token SECRET")
    if args.token and (problem := check_token(args.token)) is not None:
        parser.error(f"--token: {problem}")
    try:
        HostRule(args.allowed_host)
    except ValueError as exc:
        parser.error(f"--allowed-host: {exc}")
    if args.max_spans < 1:
        parser.error("--max-spans must be >= 1")
    try:
        parse_duration(args.retention)
    except ValueError as exc:
        parser.error(f"--retention: {exc}")
    try:
        if args.max_db_size is not None:
            parse_size(args.max_db_size)
    except ValueError as exc:
        parser.error(f"--max-db-size: {exc}")
    config = server_config(args)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"opto-dashboard: http://{host}:{args.port}/  (database {args.db or default_db_path()})", flush=True)
    try:
        uvicorn.Server(config).run(sockets=sockets)
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C once it has shut down cleanly
        print("opto-dashboard: stopped", flush=True)


if __name__ == "__main__":
    main()
