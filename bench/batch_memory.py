"""Peak memory of streaming 100,000 and 1,000,000 items through AsyncBatchProcessor, tracing on.

Run: .venv/bin/python bench/batch_memory.py
Each measurement runs in a fresh child process: imports and a real TracerProvider
(BatchSpanProcessor, counting exporter) and MeterProvider are set up first, then RSS is noted and
the items are processed; the figure is peak RSS (ru_maxrss) minus that starting RSS. The items come
from a generator of small records (a dict each). The baseline is the naive way: build every batch
up front and `asyncio.gather` a handler call per batch (same batch size, same concurrency limit),
keeping all results. Goals: streaming growth under 20 MB, and the 1,000,000-item run's peak RSS
within 1.2x of the 100,000-item run's. Growth of a megabyte or two is the telemetry's own bounded
buffers (the span processor's queue), so its ratio between runs is noise; the difference is printed.
"""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import time
from collections.abc import Iterator

BATCH_SIZE = 100
MAX_CONCURRENT = 10
SIZES = (100_000, 1_000_000)
WARM_UP = 20_000


def records(n: int) -> Iterator[dict[str, object]]:
    for i in range(n):
        yield {"id": i, "text": f"record {i}"}


async def handler(batch: list[dict[str, object]]) -> int:
    await asyncio.sleep(0)  # a model call would wait here
    return len(batch)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def streamed(n: int) -> int:
    from opto.trace import AsyncBatchProcessor

    processor = AsyncBatchProcessor(batch_size=BATCH_SIZE, max_concurrent=MAX_CONCURRENT, handler=handler)
    done = 0
    async for result in processor.process(records(n)):
        done += result.result
    return done


async def gathered(n: int) -> int:
    data = list(records(n))
    batches = [data[i : i + BATCH_SIZE] for i in range(0, n, BATCH_SIZE)]
    slots = asyncio.Semaphore(MAX_CONCURRENT)

    async def limited(batch: list[dict[str, object]]) -> int:
        async with slots:
            return await handler(batch)

    results = await asyncio.gather(*(limited(b) for b in batches))
    return sum(results)


def child(mode: str, n: int) -> None:
    """In a fresh process: set up telemetry, then print starting RSS, peak RSS (MB) and seconds for one run."""
    from providers import install_providers

    import opto  # noqa: F401  (imported before the starting RSS is taken)

    install_providers(max_queue_size=2048)  # the SDK's default queue: its size is part of the memory
    asyncio.run(streamed(WARM_UP))  # warm-up: first spans, metric streams, span queue at its working size
    start = rss_mb()
    t0 = time.perf_counter()
    total = asyncio.run((streamed if mode == "streamed" else gathered)(n))
    elapsed = time.perf_counter() - t0
    assert total == n
    print(f"{start:.1f} {peak_rss_mb():.1f} {elapsed:.2f}")


def measure(mode: str, n: int) -> tuple[float, float, float]:
    """(peak RSS MB, growth over the starting RSS MB, seconds) of one run in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "child", mode, str(n)], check=True, capture_output=True, text=True
    ).stdout.split()
    start, peak, seconds = map(float, out)
    return peak, peak - start, seconds


def main() -> None:
    print(f"batch_size={BATCH_SIZE}, max_concurrent={MAX_CONCURRENT}, tracing on")
    print("| items | AsyncBatchProcessor: peak RSS | growth | time | naive gather: peak RSS | growth | time |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    streamed_runs = {}
    for n in SIZES:
        s_peak, s_growth, s_t = measure("streamed", n)
        g_peak, g_growth, g_t = measure("gathered", n)
        streamed_runs[n] = (s_peak, s_growth)
        print(f"| {n:,} | {s_peak:.1f} MB | {s_growth:.1f} MB | {s_t:.1f} s | {g_peak:.1f} MB | {g_growth:.1f} MB | {g_t:.1f} s |")
    (small_peak, small_growth), (large_peak, large_growth) = streamed_runs[SIZES[0]], streamed_runs[SIZES[1]]
    print(
        f"AsyncBatchProcessor, {SIZES[1]:,} vs {SIZES[0]:,} items: peak RSS {large_peak / small_peak:.2f}x "
        f"(goal <= 1.2x), growth {large_growth - small_growth:+.1f} MB (goal: each < 20 MB)"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
