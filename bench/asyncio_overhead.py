"""What the asyncio instrumentation costs (issue 18), against plain asyncio in the same run.

1. `create_task` + await, with the task factory (`opto.instrument_asyncio()`) against without;
   the best of REPEATS rounds each, alternated.
2. The loop-lag monitor and the watchdog thread alone (the loop's part and the thread's), in
   CPU: on an idle loop (asleep for SECONDS) as a share of one core, the same loop without them
   measured just before; on a busy loop (60,000 small CPU chunks with an await between), as the
   CPU time with them against without (best of BUSY_ROUNDS each, alternated).
3. How soon a blocked loop is reported: `time.sleep(BLOCK)` in a coroutine, for several
   thresholds; the delay from the start of the block to the watchdog's report (its span start),
   as a multiple of the threshold (worst of TRIALS).

`--instructions` also counts instructions per create_task+await under valgrind (load-independent,
where wall-clock ratios on a shared machine are not): with the task factory alone, and with the
monitor and watchdog running too. Valgrind runs the program about 50 times slower, so the monitor's
beats, which come at a fixed rate in time, are counted about 50 times too often per task there;
their real cost is part 2's.

    .venv/bin/python bench/asyncio_overhead.py [--tasks 50000] [--seconds 3] [--trials 10] [--instructions]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from typing import Any

import opto
from opto._core import instrument
from opto._core.watchdog import LoopHealth

__all__: list[str] = []

REPEATS = 15
BUSY_ROUNDS = 8  # 3 left the busy line at the machine's noise (-0.1% to +11% in session 7)
BLOCK = 0.5


async def _noop() -> None:
    pass


async def _create_and_await(n: int) -> float:
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    for _ in range(n):
        await loop.create_task(_noop())
    return time.perf_counter() - t0


def _count(mode: str, n: int) -> None:
    """Child process for --instructions: `n` create_task+await, plain, with the task factory alone
    ("factory") or instrumented whole, nothing else."""
    async def run() -> None:
        if mode != "plain":
            opto.instrument_asyncio()
        if mode == "factory":
            health = instrument._loops[id(asyncio.get_running_loop())].health
            assert health is not None
            health.stop()
        await _create_and_await(n)
        if mode != "plain":
            opto.uninstrument_asyncio()

    asyncio.run(run())


def instructions(mode: str, n: int = 10_000) -> float:
    """Instructions per create_task+await: a run of `n` less a run of none, under callgrind."""
    def total(k: int) -> int:
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__, "--count", mode, str(k)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin"}).stderr
        return int(next(line for line in out.splitlines() if "Collected" in line).split()[-1])

    return (total(n) - total(0)) / n


def tasks(n: int) -> tuple[float, float]:
    """Best seconds per create_task+await: plain, instrumented."""
    plain, instrumented = [], []
    for _ in range(REPEATS):
        plain.append(asyncio.run(_create_and_await(n)))

        async def on() -> float:
            opto.instrument_asyncio()
            try:
                return await _create_and_await(n)
            finally:
                opto.uninstrument_asyncio()

        instrumented.append(asyncio.run(on()))
    return min(plain) / n, min(instrumented) / n


async def _idle(seconds: float, watched: bool) -> float:
    """CPU seconds (all threads) while the loop sleeps `seconds`."""
    health = _health() if watched else None
    c0 = time.process_time()
    await asyncio.sleep(seconds)
    used = time.process_time() - c0
    if health is not None:
        health.stop()
    return used


async def _busy(chunks: int, watched: bool) -> tuple[float, float, int]:
    """CPU seconds (all threads) to do `chunks` chunks of CPU work, with an await between chunks;
    with the watchdog, also its thread's own CPU seconds and the monitor's beats (else 0, 0)."""
    health = _health() if watched else None
    c0 = time.process_time()
    for _ in range(chunks):
        sum(range(2000))
        await asyncio.sleep(0)
    used = time.process_time() - c0
    if health is None:
        return used, 0.0, 0
    thread = health._thread.ident
    assert thread is not None
    watchdog = time.clock_gettime(time.pthread_getcpuclockid(thread))
    health.stop()
    return used, watchdog, health._beats


def _health() -> LoopHealth:
    return LoopHealth(asyncio.get_running_loop(), 0.1, lambda task: "", lambda loop: None)


async def _detection(threshold: float) -> float:
    """Seconds from the start of a blocked spell to the watchdog's report, over `threshold`."""
    opto.instrument_asyncio(threshold_s=threshold)
    try:
        await asyncio.sleep(threshold)  # the monitor's beats are running
        started_ns = time.time_ns()
        time.sleep(BLOCK)
        snap: Any = instrument.asyncio_snapshot()
        incident = snap["loops"][0]["incidents"][-1]
        reported_ns = incident["start_ns"] + incident["seen_after_s"] * 1e9
        return (reported_ns - started_ns) / 1e9 / threshold
    finally:
        opto.uninstrument_asyncio()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--count", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count:
        return _count(args.count[0], int(args.count[1]))

    plain, instrumented = tasks(args.tasks)
    print(f"create_task+await: plain {plain * 1e6:.2f} us, with the task factory {instrumented * 1e6:.2f} us: "
          f"{instrumented / plain:.2f}x (best of {REPEATS}, {args.tasks:,} tasks each)")
    if args.instructions:
        bare, factory, whole = instructions("plain"), instructions("factory"), instructions("instrumented")
        print(f"create_task+await, instructions (valgrind): plain {bare:,.0f}, with the task factory {factory:,.0f}: {factory / bare:.2f}x; "
              f"with the monitor and watchdog too {whole:,.0f}: {whole / bare:.2f}x")

    idle_plain = asyncio.run(_idle(args.seconds, False))
    idle_watched = asyncio.run(_idle(args.seconds, True))
    print(f"idle loop, {args.seconds:g} s: CPU {idle_plain * 1e3:.1f} ms plain, {idle_watched * 1e3:.1f} ms with monitor+watchdog: "
          f"{(idle_watched - idle_plain) / args.seconds * 100:.2f}% of a core")

    chunks = 60_000
    plain_runs, watched_runs = [], []
    for _ in range(BUSY_ROUNDS):  # alternated, the best of each: the machine's other load comes and goes
        plain_runs.append(asyncio.run(_busy(chunks, False)))
        watched_runs.append(asyncio.run(_busy(chunks, True)))
    busy_plain, busy_watched = min(r[0] for r in plain_runs), min(r[0] for r in watched_runs)
    _, thread_cpu, beats = min(watched_runs)
    print(f"busy loop, {chunks:,} chunks of CPU work: CPU {busy_plain:.3f} s plain, {busy_watched:.3f} s with monitor+watchdog: "
          f"{(busy_watched / busy_plain - 1) * 100:+.2f}% (the runs' own spread is about 1.5%); the watchdog thread's own CPU "
          f"{thread_cpu * 1e3:.2f} ms ({thread_cpu / busy_watched * 100:.2f}%), the monitor's beats {beats}")

    for threshold in (0.05, 0.1, 0.2):
        ratios = [asyncio.run(_detection(threshold)) for _ in range(args.trials)]
        print(f"blocked {BLOCK:g} s, threshold {threshold * 1000:.0f} ms: reported after {statistics.median(ratios):.2f}x the threshold "
              f"(median), {max(ratios):.2f}x (worst of {args.trials})")


if __name__ == "__main__":
    main()
