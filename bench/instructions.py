"""Instructions per traced call and per traced stream, counted by valgrind: a measure a busy machine
does not disturb, against hand-written OpenTelemetry wrappers counted the same way.

Run: .venv/bin/python bench/instructions.py [--against OTHER/sdk]

The shapes are the peers' bench's (`bench/peers/overhead.py`): `fn(query: str, k: int)` returning
`{"query": query, "k": k}`, and an async generator of 10 items with the same arguments. The stream
baselines are the naive wrapper (one `start_as_current_span` around the iteration, which leaves
its context attached across each `yield`) and the correct one (the span attached around each step
and detached before each `yield`). Spans go to a BatchSpanProcessor whose batch is as large as its
queue, so nothing is exported during the run and the count is the calls' own. Each figure is
(instructions with N calls - with none) / N; counts still vary by a few percent from run to run.
`--against` counts the opto variants of another checkout's `sdk/` too (say, the session's start).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

CALLS = {"call": 5_000, "stream": 2_000}
OPTO_VARIANTS = ("default", "nocap", "stream", "stream_nocap")
HAND_VARIANTS = ("hand", "stream_hand", "stream_detaching")


def _child(variant: str, n: int) -> None:
    """Make `n` calls of one variant, nothing else, and leave without the exit-time export."""
    from opentelemetry import trace as otel_trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Nowhere(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    # A batch as large as the queue: nothing is exported during the run, so no export thread runs.
    provider.add_span_processor(
        BatchSpanProcessor(Nowhere(), max_queue_size=1 << 20, max_export_batch_size=1 << 20, schedule_delay_millis=3_600_000)
    )
    otel_trace.set_tracer_provider(provider)
    import opto
    from hand_written import stream, traced, traced_stream, traced_stream_detaching

    hand = otel_trace.get_tracer("hand")

    async def fn(query: str, k: int = 3) -> dict[str, Any]:
        return {"query": query, "k": k}

    gen = stream("gen")
    nocap = opto.trace.async_trace(capture_args=False, capture_result=False)
    made: dict[str, Any] = {
        "default": opto.trace.async_trace(fn), "nocap": nocap(fn), "hand": traced(hand, fn, "hand"),
        "stream": opto.trace.async_stream(gen), "stream_nocap": opto.trace.async_stream(capture_args=False, capture_result=False)(gen),
        "stream_hand": traced_stream(hand, gen, "naive"), "stream_detaching": traced_stream_detaching(hand, gen, "detaching"),
    }
    f = made[variant]

    async def run() -> None:
        if variant.startswith("stream"):
            for i in range(n):
                async for _ in f("what is tracing?", k=i):
                    pass
        else:
            for i in range(n):
                await f("what is tracing?", k=i)

    asyncio.run(run())
    os._exit(0)


def _total(variant: str, n: int, sdk_path: str | None) -> int:
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__, "--child", variant, str(n)]
    # No .pyc written: a run that compiled (after an edit) and one that did not would not cancel out.
    env = {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin", **({"PYTHONPATH": sdk_path} if sdk_path else {})}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stderr
    return int(next(line for line in out.splitlines() if "Collected" in line).split()[-1])


def per_call(variant: str, sdk_path: str | None = None) -> float:
    n = CALLS["stream" if variant.startswith("stream") else "call"]
    return (_total(variant, n, sdk_path) - _total(variant, 0, sdk_path)) / n


def main() -> None:
    other = sys.argv[sys.argv.index("--against") + 1] if "--against" in sys.argv else None
    counts = {v: per_call(v) for v in HAND_VARIANTS + OPTO_VARIANTS}
    before = {v: per_call(v, other) for v in OPTO_VARIANTS} if other else {}
    base = {"default": "hand", "nocap": "hand", "stream": "stream_detaching", "stream_nocap": "stream_detaching"}
    print(f"{'variant':<34}{'instructions':>13}{'/ baseline':>11}{'/ naive':>9}" + (f"{'before':>10}{'/ before':>10}" if other else ""))
    for v in HAND_VARIANTS:
        print(f"{v:<34}{counts[v]:>13.0f}")
    for v in OPTO_VARIANTS:
        line = f"{v:<34}{counts[v]:>13.0f}{counts[v] / counts[base[v]]:>11.3f}"
        line += f"{counts[v] / counts['stream_hand']:>9.3f}" if v.startswith("stream") else f"{'':>9}"
        if other:
            line += f"{before[v]:>10.0f}{counts[v] / before[v]:>10.3f}"
        print(line)


if __name__ == "__main__":
    if "--child" in sys.argv:
        _child(sys.argv[-2], int(sys.argv[-1]))
    else:
        main()
