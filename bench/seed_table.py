"""The spec page's "Benchmark Comparisons" table, reproduced with a simulated LLM, tracing on.

Run: .venv/bin/python bench/seed_table.py
Each row runs the same work synchronously (`@opto.trace` functions, `time.sleep`, once) and with
opto (`AsyncTraceContext.run_parallel` / `AsyncBatchProcessor`, `asyncio.sleep`, best of a few
rounds after a warm-up: other processes on a shared machine only ever add time) under a real TracerProvider (BatchSpanProcessor, counting exporter) and
MeterProvider, next to plain untraced asyncio (Semaphore + gather) on the same schedule. Latencies
are fixed with +/-10% jitter from a seeded generator, so every variant sleeps exactly the same
amounts. The ideal elapsed time is the FIFO schedule of those latencies on `max_concurrent` workers
with zero overhead; the ideal speed-up is the sum of the latencies over that. A last row, async
only, runs 10,000 calls at 1,000 concurrent with the page's own latency (2.5 s per call).
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from providers import install_providers

LATENCY_S = 0.1  # the page's 2.5 s per call, scaled by 1/25
SCALE_LATENCY_S = 2.5  # the page's latency, unscaled
JITTER = 0.10
SEED = 7
ROUNDS = 7
SCALE_ROUNDS = 3


def latencies(n: int, mean: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [mean * (1 + rng.uniform(-JITTER, JITTER)) for _ in range(n)]


def ideal_makespan(durations: Sequence[float], workers: int) -> float:
    """Elapsed time of running `durations` in order on `workers` slots with no overhead (FIFO)."""
    free = [0.0] * min(workers, len(durations))
    for d in durations:
        heapq.heapreplace(free, free[0] + d)
    return max(free)


@dataclass
class Row:
    operation: str
    concurrency: int
    sync_s: float | None  # None: not run, the sum of latencies stands in
    async_s: float  # opto, best of rounds
    plain_s: float  # untraced asyncio on the same schedule, best of rounds
    work_s: float  # sum of all latencies (the ideal synchronous time)
    ideal_s: float  # ideal concurrent time

    def line(self) -> str:
        sync = f"{self.sync_s:.2f} s" if self.sync_s is not None else f"({self.work_s:,.0f} s: not run)"
        speedup = (self.sync_s if self.sync_s is not None else self.work_s) / self.async_s
        ideal_speedup = self.work_s / self.ideal_s
        return (
            f"| {self.operation} | {self.concurrency} | {sync} | {self.async_s:.3f} s | **{speedup:.2f}x** | "
            f"{ideal_speedup:.2f}x | {self.async_s / self.ideal_s - 1:+.1%} | {self.plain_s / self.ideal_s - 1:+.1%} |"
        )


def best_of(rounds: int, run: Callable[[], Awaitable[float]]) -> float:
    """The shortest elapsed seconds of `rounds` runs, each in a fresh event loop."""
    return min(asyncio.run(run()) for _ in range(rounds))


def plain_asyncio(units: list[list[float]], concurrency: int, rounds: int) -> float:
    """The same schedule in untraced asyncio: each unit's steps in sequence, `concurrency` units at once."""

    async def run() -> float:
        slots = asyncio.Semaphore(concurrency)

        async def unit(steps: list[float]) -> None:
            async with slots:
                for latency in steps:
                    await asyncio.sleep(latency)

        t0 = time.perf_counter()
        await asyncio.gather(*(unit(u) for u in units))
        return time.perf_counter() - t0

    return best_of(rounds, run)


def llm_calls(n: int, concurrency: int, mean: float, run_sync: bool, rounds: int = ROUNDS) -> Row:
    """Row 1 (and the scale row): n independent LLM calls."""
    import opto
    from opto.trace import AsyncTraceContext

    lat = latencies(n, mean, SEED)

    @opto.trace
    def complete(i: int) -> int:
        time.sleep(lat[i])
        return i

    @opto.trace.async_trace
    async def acomplete(i: int) -> int:
        await asyncio.sleep(lat[i])
        return i

    sync_s = None
    if run_sync:
        t0 = time.perf_counter()
        for i in range(n):
            complete(i)
        sync_s = time.perf_counter() - t0

    async def run() -> float:
        async with AsyncTraceContext(max_concurrent=concurrency) as ctx:
            t0 = time.perf_counter()
            results = await ctx.run_parallel([acomplete(i) for i in range(n)])
            elapsed = time.perf_counter() - t0
        assert results == list(range(n))
        return elapsed

    async_s = best_of(rounds, run)
    plain_s = plain_asyncio([[x] for x in lat], concurrency, rounds)
    return Row(f"{n:,} LLM calls", concurrency, sync_s, async_s, plain_s, sum(lat), ideal_makespan(lat, concurrency))


def batch_optimization(items: int, batch_size: int, concurrency: int) -> Row:
    """Row 2: a dataset optimised in batches, one model call per batch."""
    import opto
    from opto.trace import AsyncBatchProcessor

    batches = -(-items // batch_size)
    lat = latencies(batches, LATENCY_S, SEED + 1)

    @opto.trace
    def optimize_batch(index: int, batch: list[int]) -> int:
        time.sleep(lat[index])
        return sum(batch)

    t0 = time.perf_counter()
    data = list(range(items))
    for index in range(batches):
        optimize_batch(index, data[index * batch_size : (index + 1) * batch_size])
    sync_s = time.perf_counter() - t0

    async def handler(batch: list[int]) -> int:
        await asyncio.sleep(lat[batch[0] // batch_size])
        return sum(batch)

    async def run() -> float:
        processor = AsyncBatchProcessor(batch_size=batch_size, max_concurrent=concurrency, handler=handler)
        t0 = time.perf_counter()
        total = sum([r.result async for r in processor.process(range(items))])
        elapsed = time.perf_counter() - t0
        assert total == sum(range(items))
        return elapsed

    async_s = best_of(ROUNDS, run)
    plain_s = plain_asyncio([[x] for x in lat], concurrency, ROUNDS)
    return Row(f"Batch optimization ({items} items)", concurrency, sync_s, async_s, plain_s, sum(lat), ideal_makespan(lat, concurrency))


def concurrent_workflows(workflows: int, steps: int, concurrency: int) -> Row:
    """Row 3: multi-step workflows (each a chain of model calls) run side by side."""
    import opto
    from opto.trace import AsyncTraceContext

    lat = latencies(workflows * steps, LATENCY_S, SEED + 2)

    @opto.trace
    def step(i: int) -> int:
        time.sleep(lat[i])
        return i

    @opto.trace
    def workflow(w: int) -> int:
        return sum(step(w * steps + s) for s in range(steps))

    @opto.trace.async_trace
    async def astep(i: int) -> int:
        await asyncio.sleep(lat[i])
        return i

    @opto.trace.async_trace
    async def aworkflow(w: int) -> int:
        total = 0
        for s in range(steps):  # each step needs the previous one's answer
            total += await astep(w * steps + s)
        return total

    t0 = time.perf_counter()
    expected = [workflow(w) for w in range(workflows)]
    sync_s = time.perf_counter() - t0

    async def run() -> float:
        async with AsyncTraceContext(max_concurrent=concurrency) as ctx:
            t0 = time.perf_counter()
            results = await ctx.run_parallel([aworkflow(w) for w in range(workflows)])
            elapsed = time.perf_counter() - t0
        assert results == expected
        return elapsed

    units = [lat[w * steps : (w + 1) * steps] for w in range(workflows)]
    async_s = best_of(ROUNDS, run)
    plain_s = plain_asyncio(units, concurrency, ROUNDS)
    return Row(
        f"Concurrent workflows ({workflows} x {steps} calls)", concurrency, sync_s, async_s, plain_s, sum(lat),
        ideal_makespan([sum(u) for u in units], concurrency),
    )


def main() -> None:
    provider = install_providers()
    llm_calls(200, 100, 0.001, run_sync=True, rounds=1)  # warm-up: first spans, metric streams, imports
    rows = [
        llm_calls(100, 10, LATENCY_S, run_sync=True),  # page: 250 s -> 25 s, 10x
        batch_optimization(600, 10, 6),  # page: 120 s -> 20 s, 6x (60 batches, 6 at a time)
        concurrent_workflows(20, 3, 7),  # page: 300 s -> 45 s, 6.7x (20 workflows of 3 calls, 7 at a time)
        llm_calls(10_000, 1_000, SCALE_LATENCY_S, run_sync=False, rounds=SCALE_ROUNDS),  # 10,000 at 1,000 concurrent
    ]
    print(f"latency {LATENCY_S * 1000:.0f} ms +/-{JITTER:.0%} (last row {SCALE_LATENCY_S} s), tracing on")
    print("| operation | concurrent | synchronous | opto | speed-up | ideal speed-up | opto vs ideal time | plain asyncio vs ideal time |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(row.line())
    provider.shutdown()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
