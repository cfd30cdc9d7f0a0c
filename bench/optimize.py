"""`async_beam_search` against sequential `beam_search`: the same search, evaluations with simulated latency.

Run: .venv/bin/python bench/optimize.py
Both strategies run the same deterministic search (4 beams x 4 proposals, max_concurrent=16) under a
real TracerProvider (BatchSpanProcessor, in-memory exporter). The ideal speed-up follows from the
evaluations per depth: sequentially each costs one latency, concurrently a depth costs
ceil(evaluations / max_concurrent) latencies.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import statistics
import time
from collections import Counter
from typing import Any

LATENCY_S = 0.05
BEAM_WIDTH = 4
NUM_PROPOSALS = 4
MAX_DEPTH = 4
MAX_CONCURRENT = 16
ROUNDS = 5


def _provider() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    trace.set_tracer_provider(provider)


async def _search(strategy: str) -> tuple[float, list[int]]:
    """Seconds for one search, and the evaluations it ran at each depth."""
    from opto import trace

    x = trace.param(0, name="x")
    fresh = itertools.count(1)

    async def workflow(n: int) -> int:
        await asyncio.sleep(LATENCY_S)  # a model call
        return x.value * n

    def propose(params: dict[str, Any], feedback: Any) -> list[dict[str, Any]]:
        return [{"x": next(fresh)} for _ in range(NUM_PROPOSALS)]  # always new: every proposal is evaluated

    search = trace.optimize(
        strategy=strategy, beam_width=BEAM_WIDTH, num_proposals=NUM_PROPOSALS, max_depth=MAX_DEPTH, max_concurrent=MAX_CONCURRENT
    )(workflow)
    t0 = time.perf_counter()
    result = await search.optimize([1], guide=lambda n, out: -abs(out - 37), proposer=propose)
    elapsed = time.perf_counter() - t0
    per_depth = Counter(c.depth for c in result.candidates)
    return elapsed, [per_depth[d] for d in sorted(per_depth)]


def main() -> None:
    _provider()
    times: dict[str, list[float]] = {"beam_search": [], "async_beam_search": []}
    _, per_depth = asyncio.run(_search("async_beam_search"))  # warm-up: imports, first spans
    for _ in range(ROUNDS):
        for strategy, samples in times.items():
            elapsed, per_depth = asyncio.run(_search(strategy))
            samples.append(elapsed)
    sequential = statistics.median(times["beam_search"])
    concurrent = statistics.median(times["async_beam_search"])
    ideal = sum(per_depth) / sum(math.ceil(n / MAX_CONCURRENT) for n in per_depth)
    speedup = sequential / concurrent
    print(
        f"{BEAM_WIDTH} beams x {NUM_PROPOSALS} proposals, max_depth={MAX_DEPTH}, max_concurrent={MAX_CONCURRENT}, "
        f"{LATENCY_S * 1000:.0f} ms per evaluation, median of {ROUNDS}"
    )
    print(f"evaluations per depth: {per_depth}")
    print(f"beam_search (sequential)  {sequential:7.3f} s")
    print(f"async_beam_search         {concurrent:7.3f} s")
    print(f"speed-up {speedup:.2f}x, ideal {ideal:.2f}x: {speedup / ideal:.1%} of ideal")


if __name__ == "__main__":
    main()
