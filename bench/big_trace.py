"""One trace growing by many writes: the SQLite writer's time per write as the trace grows.

A run of `AsyncBatchProcessor` under one root span sends thousands of spans into one trace. Each
write updates that trace's summary row; this times the writer's transactions (the work of the
dashboard's writer process) for WRITES writes of SPANS spans into one trace, with the summary
updated from each write (the shipped rule for big traces) and, as the baseline in the same run,
recounted from all the trace's spans on every write.

    .venv/bin/python bench/big_trace.py [--writes 100] [--spans 1000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from opto_dashboard import writer
from opto_dashboard.writer import SpanWrite, open_database

__all__: list[str] = []

TRACE = "ab" * 16


def rows(first: int, count: int) -> list[object]:
    """`count` ended child spans of TRACE (span ids from `first`), flat in WIRE_COLUMNS order."""
    flat: list[object] = []
    for n in range(first, first + count):
        flat += [TRACE, f"{n:016x}", "f" * 16, "handle", "task", "ended", 1_000 + n, 2_000 + n, "UNSET", "", "ok", 1,
                 0, 0, '["42"]', None, None]
    return flat


def run(path: Path, writes: int, spans: int, big: int) -> list[float]:
    """Seconds per write transaction, in order, with `writer._BIG` set to `big`."""
    writer._BIG = big
    db = open_database(str(path))
    resources, keys = [(None, "bench", "{}", "{}")], ['["opto.arg.item"]']
    root = SpanWrite([TRACE, "f" * 16, None, "batch", "batch", "started", 0, None, "UNSET", "", None, None, 0, 0, '["-"]', None, None],
                     f'["{TRACE}"]', [], [], [], [], resources=resources, keys=keys)
    writer._transaction(db, root)
    times = []
    for w in range(writes):
        request = SpanWrite(rows(w * spans + 1, spans), f'["{TRACE}"]', [], [], [], [], resources=resources, keys=keys)
        t0 = time.perf_counter()
        reply = writer._transaction(db, request)
        times.append(time.perf_counter() - t0)
        assert reply.error is None and reply.value == spans, reply
    (count,) = db.execute("SELECT span_count FROM traces").fetchone()
    assert count == writes * spans + 1, count
    db.close()
    return times


def main(writes: int, spans: int) -> None:
    shipped = writer._BIG
    with tempfile.TemporaryDirectory() as tmp:
        updated = run(Path(tmp) / "updated.db", writes, spans, shipped)
        recounted = run(Path(tmp) / "recounted.db", writes, spans, 10**12)
    tenth = max(writes // 10, 1)
    print(f"{writes} writes of {spans} spans into one trace (summary updated from each write past {shipped} spans)")
    print("| summary | ms per write, first tenth | ms per write, last tenth | whole run, s |")
    print("| --- | ---: | ---: | ---: |")
    for label, times in (("recounted every write (baseline)", recounted), ("updated from the write (shipped)", updated)):
        first, last = statistics.median(times[:tenth]) * 1e3, statistics.median(times[-tenth:]) * 1e3
        print(f"| {label} | {first:.1f} | {last:.1f} | {sum(times):.2f} |")
    print(f"last-tenth write time, shipped against baseline: {statistics.median(updated[-tenth:]) / statistics.median(recounted[-tenth:]):.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=100)
    parser.add_argument("--spans", type=int, default=1000)
    ns = parser.parse_args()
    main(ns.writes, ns.spans)
