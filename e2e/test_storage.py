"""The Live page says when storage fails: a full disk shows as a banner naming it, gone once writes work again."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from websockets.sync.client import connect

from harness import Dashboard, span

__all__: list[str] = []


@pytest.fixture
def full_disk_dashboard(tmp_path: Path) -> Iterator[tuple[Dashboard, Path]]:
    """A dashboard whose database is on a 16 MiB tmpfs (root, as this project's machines are)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {result.stderr.strip()}")
    server = Dashboard(mount / "dashboard.db")
    try:
        server.start()
        yield server, mount
    finally:
        server.close()
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_shows_as_a_banner_until_space_is_freed(page: Page, full_disk_dashboard: tuple[Dashboard, Path]) -> None:
    dashboard, mount = full_disk_dashboard
    ballast = mount / "ballast"
    stat = os.statvfs(mount)
    ballast.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 64 * 1024))
    page.goto(f"{dashboard.url}/live")
    expect(page.get_by_test_id("storage-banner")).to_be_hidden()
    now = time.time_ns()
    frame = json.dumps({"type": "batch", "seq": 1, "spans": [
        span(uuid.uuid4().hex, uuid.uuid4().hex[:16], "work", now, now + 1, attributes={"payload": "x" * 60_000}) for _ in range(40)
    ]})
    with connect(dashboard.url.replace("http", "ws", 1) + "/ws/ingest", max_size=None) as ws:
        ws.send(json.dumps({"type": "hello", "process": {
            "id": uuid.uuid4().hex, "service": "e2e", "pid": os.getpid(), "host": "e2e", "sdk": "e2e", "started_ns": now,
        }}))
        ws.send(frame)
        reply = json.loads(ws.recv(timeout=30))
        assert reply["type"] == "error" and reply["retry"] is True, reply
        banner = page.get_by_test_id("storage-banner")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("database or disk is full")
        expect(banner).to_contain_text(str(mount / "dashboard.db"))
        expect(banner).to_contain_text("40 spans not stored yet")
        ballast.unlink()
        ws.send(frame)  # as the SDK resends
        assert json.loads(ws.recv(timeout=30)) == {"type": "ack", "seq": 1, "stored": 40}
    expect(banner).to_be_hidden()
    expect(page.locator("#ingest-failed")).to_have_text("1 (40 spans)")
