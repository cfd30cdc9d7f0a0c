"""`make demo`: its workload reaches the store and shows every page's subject; Ctrl-C stops it cleanly;
a port already taken stops it at once, with nothing sent to whoever holds the port."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

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
            wanted = {"plan_trip", "search", "call_llm", "pipeline", "optimize_task", "streaming_optimizer", "debug_agent"}
            async with asyncio.timeout(45):
                while not wanted <= _names(d):
                    await asyncio.sleep(0.2)  # polls the API while the demo's rounds run
            (big,) = d.get("/api/traces?name=nightly_batch")["traces"]
            assert big["span_count"] > 2000 and big["error_count"] > 0
            plan = d.get("/api/traces?name=plan_trip")["traces"][0]
            assert plan["span_count"] >= 10  # fan-out: four searches, each with its model call, and a visa check
        finally:
            demo.send_signal(signal.SIGINT)
            out, err = demo.communicate(timeout=30)
        assert demo.returncode == 0, err
        assert "OpenTrace demo stopped." in out
        assert d.get("/api/live")["processes"][0]["service"] == "opto-demo"


async def test_demo_refuses_a_port_already_taken(tmp_path: Path) -> None:
    """Another dashboard on the port: exit code 2, a message naming the port and a way out, and no span sent to it."""
    with Dashboard(tmp_path / "theirs.db") as theirs:
        port = int(theirs.url.rsplit(":", 1)[1])
        demo = subprocess.run(
            [sys.executable, "-m", "opto_dashboard.demo", "--port", str(port), "--db", str(tmp_path / "mine.db")],
            capture_output=True, text=True, timeout=30,
        )
        assert demo.returncode == 2, demo.stderr
        assert f"cannot listen on 127.0.0.1:{port}" in demo.stderr and "PORT=" in demo.stderr
        assert "open http" not in demo.stdout
        live = theirs.get("/api/live")
        assert live["processes"] == [] and live["ingest"]["spans_stored"] == 0


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
async def test_demo_serves_its_own_dashboard_on_the_port_given_and_stops_it(tmp_path: Path, stop: signal.Signals) -> None:
    """--port picks the port the demo's own dashboard serves on, and the URL printed is it. Ctrl-C,
    `kill` or a closed terminal stop the demo and its dashboard (once left running on the port)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    demo = subprocess.Popen(
        [sys.executable, "-m", "opto_dashboard.demo", "--port", str(port), "--db", str(tmp_path / "demo.db")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert demo.stdout is not None
        assert f"open http://127.0.0.1:{port}/" in demo.stdout.readline()
    finally:
        demo.send_signal(stop)
        out, err = demo.communicate(timeout=30)
    assert demo.returncode == 0, err
    assert "OpenTrace demo stopped." in out
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def _names(d: Dashboard) -> set[str]:
    """Names of every span of the latest traces (the demo's nested calls are not roots)."""
    return {s["name"] for t in d.get("/api/traces?limit=50")["traces"] for s in d.get(f"/api/traces/{t['trace_id']}?limit=200")["spans"]}
