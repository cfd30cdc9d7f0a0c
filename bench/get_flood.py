"""A flood of page requests during ingest (issue 15): does the dashboard still take every span?

Run: .venv/bin/python bench/get_flood.py [--seconds 8] [--clients 8]
A traced program streams spans through the live exporter as fast as it can for `--seconds`, while
`--clients` threads ask a real dashboard subprocess for `/api/traces` back to back, so a request
is nearly always in flight. Prints the spans emitted, stored (counted in the SQLite file), and lost
as the SDK reports them at exit (and those it sent but saw no ack for, which may be stored); every
span must be stored or reported ("accounted").
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

import httpx

from store_scale import Server

__all__ = ["run", "accounted"]

PROGRAM = """
import asyncio, sys, time, opto
opto.configure(service_name="flood")

@opto.trace.async_trace
async def leaf(i):
    return i

async def main(seconds):
    emitted, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.gather(*(leaf(i) for i in range(200)))
        emitted += 200
        await asyncio.sleep(0.005)
    print(emitted, flush=True)

asyncio.run(main(float(sys.argv[1])))
"""
# The live exporter's report at exit, when the dashboard did not confirm some spans.
_LOST = re.compile(r"did not get (\d+) spans")
_UNACKED = re.compile(r"(\d+) sent but not acknowledged")


def run(seconds: float, clients: int) -> dict[str, int]:
    """One run: spans emitted, stored and reported lost, and the requests answered meanwhile."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "flood.db"
        server = Server(db, max_spans=10_000_000)
        stop = threading.Event()
        answered = [0] * clients

        def ask(i: int) -> None:
            with httpx.Client(timeout=60) as client:
                while not stop.is_set():
                    client.get(server.url + "/api/traces?limit=50").raise_for_status()
                    answered[i] += 1

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(clients)]
        try:
            for t in threads:
                t.start()
            program = subprocess.run(
                [sys.executable, "-c", PROGRAM, str(seconds)], env={**os.environ, "OPTO_DASHBOARD_URL": server.url},
                capture_output=True, text=True, timeout=600, check=True,
            )
        finally:
            stop.set()
            for t in threads:
                t.join()
        server.close()  # the writer commits what it was given before the server ends
        with closing(sqlite3.connect(db)) as conn:
            stored = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
    lost, unacked = (int(m[1]) if (m := pattern.search(program.stderr)) else 0 for pattern in (_LOST, _UNACKED))
    return {"emitted": int(program.stdout.split()[-1]), "stored": stored, "lost": lost, "unacked": unacked, "answered": sum(answered)}


def accounted(r: dict[str, int]) -> bool:
    """Every span stored or reported: an unacked one may be either."""
    return r["emitted"] - r["lost"] - r["unacked"] <= r["stored"] <= r["emitted"] - r["lost"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    t0 = time.monotonic()
    r = run(args.seconds, args.clients)
    print(f"{args.clients} clients asking back to back, {args.seconds:g} s of spans: emitted {r['emitted']:,}, stored {r['stored']:,}, "
          f"lost (the SDK's report) {r['lost']:,}, unacked {r['unacked']:,}; {r['answered']:,} requests answered; "
          f"{time.monotonic() - t0:.1f} s; accounted: {accounted(r)}")


if __name__ == "__main__":
    main()
