"""The peer benches' offline guard: what leaves the machine is refused and counted, loopback is not."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PEERS = Path(__file__).resolve().parents[1] / "bench" / "peers"

# Audit hooks cannot be removed, so each check runs in its own interpreter. Off-machine attempts are
# raised with sys.audit, exactly as the socket module raises them, so nothing is ever sent even if
# the guard were broken; loopback is exercised for real.
SCRIPT = textwrap.dedent(
    """
    import socket, sys
    sys.path.insert(0, sys.argv[1])
    import offline
    offline.install()
    listener = socket.create_server(("127.0.0.1", 0))
    socket.create_connection(listener.getsockname(), timeout=5).close()
    sys.audit("socket.connect", listener, ("::1", 80, 0, 0))
    sys.audit("socket.getaddrinfo", "localhost", 80, 0, 0, 0)
    for event, args in [
        ("socket.connect", (listener, ("203.0.113.7", 80))),
        ("socket.getaddrinfo", ("example.invalid", 443, 0, 0, 0)),
        ("socket.sendto", (listener, ("198.51.100.1", 53))),
    ]:
        try:
            sys.audit(event, *args)
        except offline.OfflineError:
            pass
        else:
            raise SystemExit(f"not refused: {event} {args}")
    print(len(offline.refused()))
    """
)


def test_non_loopback_attempts_are_refused_counted_and_logged(tmp_path: Path) -> None:
    """Connects, name lookups and datagrams aimed off the machine fail and are logged; loopback works."""
    log = tmp_path / "audit.log"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(PEERS)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"OFFLINE_AUDIT_LOG": str(log), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3"
    lines = log.read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "socket.connect '203.0.113.7'",
        "socket.getaddrinfo 'example.invalid'",
        "socket.sendto '198.51.100.1'",
    ]


def test_run_wrapper_guards_the_program_it_starts(tmp_path: Path) -> None:
    """`offline_run.py MODULE:FUNCTION` runs the function with the guard already installed."""
    program = tmp_path / "reach_out.py"
    program.write_text(
        "import sys\n"
        "def main():\n"
        "    try:\n"
        "        sys.audit('socket.connect', None, ('192.0.2.1', 80))\n"
        "    except ConnectionRefusedError as exc:\n"
        "        print('refused:', exc)\n"
        "        return 0\n"
        "    return 1\n"
    )
    done = subprocess.run(
        [sys.executable, str(PEERS / "offline_run.py"), "reach_out:main"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert "offline bench: refused socket.connect '192.0.2.1'" in done.stdout


def test_the_guard_reaches_the_python_processes_a_guarded_program_starts(tmp_path: Path) -> None:
    """A server's helper processes (opto-dashboard's SQLite writer) are guarded and logged too."""
    log = tmp_path / "audit.log"
    child = "import sys\ntry:\n    sys.audit('socket.connect', None, ('192.0.2.9', 80))\nexcept ConnectionRefusedError:\n    print('refused')\n"
    (tmp_path / "parent.py").write_text(
        "import subprocess, sys\n"
        f"def main():\n    return subprocess.run([sys.executable, '-c', {child!r}]).returncode\n"
    )
    done = subprocess.run(
        [sys.executable, str(PEERS / "offline_run.py"), "parent:main"],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "OFFLINE_AUDIT_LOG": str(log)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused"
    assert [line.split(" ", 1)[1] for line in log.read_text().splitlines()] == ["socket.connect '192.0.2.9'"]
