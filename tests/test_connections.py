"""Connections that never finish a request are closed: by the header deadline, or to make room under the idle cap."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from dashboard_server import Dashboard, DashboardProcess
from opto_dashboard.connections import HEADER_TIMEOUT_S, MAX_IDLE


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed `sock` (whatever it sent before is read and dropped)."""
    sock.settimeout(0)
    try:
        while chunk := sock.recv(65536):
            del chunk
        return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.timeout(HEADER_TIMEOUT_S + 50)
def test_connections_that_never_finish_their_headers_are_closed(dashboard: Dashboard) -> None:
    """Silent, half-sent headers, and a keep-alive connection that starts a next request and stalls: all closed, all counted."""
    host, port = address(dashboard.url)
    silent, partial, kept = (socket.create_connection((host, port)) for _ in range(3))
    try:
        partial.sendall(f"GET /api/live HTTP/1.1\r\nHost: {host}:{port}\r\n".encode())
        kept.sendall(f"GET /api/live HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        assert kept.recv(65536).startswith(b"HTTP/1.1 200")
        kept.sendall(b"GET /api/li")
        for sock in (silent, partial, kept):
            sock.settimeout(HEADER_TIMEOUT_S + 30)
            while sock.recv(65536):
                pass  # until the server closes it
        assert dashboard.app.state.refused.connections == 3
    finally:
        for sock in (silent, partial, kept):
            sock.close()
    assert httpx.get(dashboard.url + "/api/live").status_code == 200


async def test_past_the_idle_cap_the_oldest_idle_connections_are_closed(dashboard: Dashboard) -> None:
    host, port = address(dashboard.url)
    extra = 20
    socks = [socket.create_connection((host, port)) for _ in range(MAX_IDLE + extra)]
    try:
        refused = dashboard.app.state.refused
        async with asyncio.timeout(30):
            while refused.connections < extra:
                await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=dashboard.url) as client:
            assert (await client.get("/api/live")).status_code == 200  # a new client still gets in
        assert refused.connections == extra + 1  # it made room by closing one more
        assert sum(closed_by_server(s) for s in socks[:extra + 1]) == extra + 1
        assert not any(closed_by_server(s) for s in socks[extra + 1:])
    finally:
        for sock in socks:
            sock.close()


def test_1100_half_open_connections_do_not_stop_the_api_under_a_1024_file_limit(tmp_path: Path) -> None:
    """Before the guard, these exhausted the server's descriptors and the API stopped answering until they left."""
    server = DashboardProcess(tmp_path / "opto.db", max_files=1024)
    socks: list[socket.socket] = []
    try:
        server.start()
        host, port = address(server.url)
        for i in range(1100):
            socks.append(socket.create_connection((host, port)))
            if i % 2:
                socks[-1].sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n".encode())
        assert httpx.get(server.url + "/api/live", timeout=30).status_code == 200
        assert sum(closed_by_server(s) for s in socks) >= 1100 - MAX_IDLE
    finally:
        for sock in socks:
            sock.close()
        server.close()
