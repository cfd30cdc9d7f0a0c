"""`opto-dashboard` and `python -m opto_dashboard`: options, defaults and refusals."""

from __future__ import annotations

import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from opto_dashboard import cli


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opto_dashboard", *args], capture_output=True, text=True, timeout=60, env=env)


def test_help_explains_every_option() -> None:
    out = run_cli("--help").stdout
    for option in ("--host", "--port", "--db", "--max-spans", "--retention", "--token", "--fd"):
        assert option in out


def test_non_loopback_host_needs_a_token() -> None:
    result = run_cli("--host", "0.0.0.0")
    assert result.returncode == 2
    assert "--host 0.0.0.0 exposes the dashboard beyond this machine; add --token SECRET" in result.stderr


def test_fd_must_be_an_open_socket() -> None:
    result = run_cli("--fd", "987")
    assert result.returncode == 2 and "--fd 987: not an open socket" in result.stderr


def test_an_inherited_non_loopback_socket_needs_a_token(tmp_path: Path) -> None:
    """The loopback rule reads the address of the socket handed over, not --host."""
    import socket

    sock = socket.socket()
    sock.bind(("0.0.0.0", 0))
    sock.listen(1)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "opto_dashboard", "--db", str(tmp_path / "x.db"), "--fd", str(sock.fileno())],
            capture_output=True, text=True, timeout=60, pass_fds=[sock.fileno()],
        )
    finally:
        sock.close()
    assert result.returncode == 2 and "--host 0.0.0.0 exposes the dashboard beyond this machine" in result.stderr


def test_bad_retention_is_refused() -> None:
    result = run_cli("--retention", "soon")
    assert result.returncode == 2 and "--retention: expected a positive duration such as 90s" in result.stderr


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("1.5h", 5400)])
def test_durations(text: str, seconds: float) -> None:
    assert cli.parse_duration(text) == seconds


def test_default_database_is_in_the_per_user_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert cli.default_db_path() == tmp_path / "opto-dashboard" / "opto.db"


def test_server_config_binds_loopback_by_default(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(["--db", str(tmp_path / "x.db")])
    config = cli.server_config(args)
    assert (config.host, config.port) == ("127.0.0.1", 8765)


async def test_ctrl_c_stops_the_server_after_storing_what_it_acked(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group, the SQLite writer process included: the writer
    waits for the server's shutdown, so every acked span is in the file and no process is left."""
    import json
    import os
    import signal
    import sqlite3

    from websockets.asyncio.client import connect

    from dashboard_server import hello_frame, listening_socket, serve_command, span_record

    sock = listening_socket()
    server = subprocess.Popen(
        serve_command(tmp_path / "opto.db", sock), pass_fds=[sock.fileno()], start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = f"ws://127.0.0.1:{sock.getsockname()[1]}/ws/ingest"
        async with connect(url) as ws:
            await ws.send(hello_frame())
            spans = [span_record(f"{i:032x}", f"{i:016x}") for i in range(1, 501)]
            await ws.send(json.dumps({"type": "batch", "seq": 1, "spans": spans}))
            assert json.loads(await ws.recv()) == {"type": "ack", "seq": 1, "stored": 500}
        os.killpg(server.pid, signal.SIGINT)
        _, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        sock.close()
    assert server.returncode == 0, err
    assert "Traceback" not in err, err
    with closing(sqlite3.connect(tmp_path / "opto.db")) as conn:
        assert conn.execute("SELECT count(*) FROM spans").fetchone() == (500,)
    with pytest.raises(ProcessLookupError):
        os.killpg(server.pid, 0)  # the group is empty: the writer exited too


def test_the_server_freezes_start_ups_objects_and_collects_less_often(tmp_path: Path) -> None:
    """What `main` leaves the garbage collector with as uvicorn starts serving (its `run` replaced to report it)."""
    script = (
        "import gc, sys, uvicorn\n"
        "from opto_dashboard import cli\n"
        "uvicorn.Server.run = lambda self, sockets=None: print(gc.get_freeze_count(), *gc.get_threshold())\n"
        "cli.main(sys.argv[1:])\n"
    )
    result = subprocess.run([sys.executable, "-c", script, "--db", str(tmp_path / "db.sqlite"), "--port", "0"],
                            capture_output=True, text=True, timeout=60)
    frozen, *thresholds = map(int, result.stdout.split()[-4:])
    assert frozen > 10_000  # the modules and the app made at start-up
    assert tuple(thresholds) == cli.GC_THRESHOLDS and cli.GC_THRESHOLDS[0] > 700
