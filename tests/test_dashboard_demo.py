"""`make demo`'s workload: it runs, its spans reach the store, and Ctrl-C stops it cleanly."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from dashboard_server import Dashboard


async def test_demo_feeds_the_dashboard_until_interrupted(tmp_path: Path) -> None:
    with Dashboard(tmp_path / "opto.db") as d:
        demo = subprocess.Popen(
            [sys.executable, "-m", "opto_dashboard.demo", "--connect", d.url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            assert demo.stdout is not None
            assert f"open {d.url}/" in demo.stdout.readline()
            wanted = {"robust_async_agent", "optimize_task", "async_agent", "streaming_optimizer", "debug_agent"}
            async with asyncio.timeout(45):
                while not wanted <= _names(d):
                    await asyncio.sleep(0.2)  # polls the API while the demo's rounds run
        finally:
            demo.send_signal(signal.SIGINT)
            out, err = demo.communicate(timeout=30)
        assert demo.returncode == 0, err
        assert "OpenTrace demo stopped." in out
        assert d.get("/api/live")["processes"][0]["service"] == "opto-demo"


def _names(d: Dashboard) -> set[str]:
    """Names of every span of the latest traces (the demo's nested calls are not roots)."""
    return {s["name"] for t in d.get("/api/traces?limit=50")["traces"] for s in d.get(f"/api/traces/{t['trace_id']}")["spans"]}
