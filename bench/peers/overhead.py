"""Decorator overhead side by side: OpenTrace, Logfire `@instrument`, Langfuse `@observe`, offline.

One process, one event loop. Every tool's spans reach a BatchSpanProcessor over the same counting
no-op exporter, so all pay the same export cost; each tool keeps the span pipeline it installs by
default (Logfire's processor wrappers, Langfuse's own batch processor). Prints µs per call and the
ratio to a hand-written `start_as_current_span` wrapper measured in the same run, and fails if any
tool lost a span or anything tried to leave the machine. It measures in 3 fresh processes and
reports medians over them.

    .venv-peers/bin/python bench/peers/overhead.py [--processes 3] [--calls 500] [--rounds 25] [--against OTHER/sdk]

`--against OTHER/sdk` also measures another checkout's SDK (say, the commit before a change), its
processes alternated with this tree's, and compares OpenTrace's ratios to the wrappers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import offline

offline.install()
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # bench/, for the hand-written wrappers

import logfire  # noqa: E402
from langfuse import Langfuse, observe  # noqa: E402
from opentelemetry import trace as otel_trace  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402

import opto  # noqa: E402
from hand_written import ITEMS, stream, traced, traced_stream, traced_stream_detaching  # noqa: E402
from opto.trace import async_stream  # noqa: E402

__all__: list[str] = []

RESOURCE = Resource.create({"service.name": "bench-peers"})


class CountingExporter(SpanExporter):
    """Exports nowhere; counts spans by name so the bench can check nothing was lost."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.counts.update(span.name for span in spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


EXPORTER = CountingExporter()


def _provider() -> TracerProvider:
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(EXPORTER, max_queue_size=65_536))
    return provider


# OpenTrace and the hand-written wrapper use the global provider.
PROVIDER = _provider()
otel_trace.set_tracer_provider(PROVIDER)
HAND_TRACER = otel_trace.get_tracer("bench.hand")

# Logfire: a local instance (it would otherwise replace the global provider and wrap every tool's
# spans in its own processors), nothing sent, no console, no metrics.
LOGFIRE = logfire.configure(
    local=True,
    send_to_logfire=False,
    console=False,
    metrics=False,
    service_name="bench-peers",
    additional_span_processors=[BatchSpanProcessor(EXPORTER, max_queue_size=65_536)],
)

# Langfuse: its own provider and batch processor (as by default), exporting to the counter instead of
# its cloud; the keys are placeholders and the base URL is loopback.
LANGFUSE_PROVIDER = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
LANGFUSE = Langfuse(
    public_key="pk-lf-bench",
    secret_key="sk-lf-bench",
    base_url="http://127.0.0.1:9",
    tracer_provider=LANGFUSE_PROVIDER,
    span_exporter=EXPORTER,
)


def coroutine(name: str) -> Callable[..., Any]:
    """A fresh trivial `async def` named `name`, so each variant's spans can be counted apart."""

    async def fn(query: str, k: int = 3) -> dict[str, Any]:
        return {"query": query, "k": k}

    fn.__name__ = fn.__qualname__ = name
    return fn


@dataclass
class Variant:
    label: str
    fn: Callable[..., Any]
    span_name: str | None  # None: not traced
    times: list[float] = field(default_factory=list)
    calls: int = 0


def coroutine_variants() -> list[Variant]:
    return [
        Variant("bare `async def`", coroutine("bare"), None),
        Variant("hand-written `start_as_current_span`", traced(HAND_TRACER, coroutine("hand")), "hand"),
        Variant("OpenTrace `@async_trace` (default capture)", opto.trace.async_trace(coroutine("opto_default")), "opto_default"),
        Variant(
            "OpenTrace `@async_trace` (capture off)",
            opto.trace.async_trace(capture_args=False, capture_result=False)(coroutine("opto_nocapture")),
            "opto_nocapture",
        ),
        Variant("Logfire `@instrument` (default)", LOGFIRE.instrument()(coroutine("logfire_default")), "logfire_default"),
        Variant(
            "Logfire `@instrument(extract_args=False)`",
            LOGFIRE.instrument(extract_args=False)(coroutine("logfire_noargs")),
            "logfire_noargs",
        ),
        Variant("Langfuse `@observe` (default)", observe()(coroutine("langfuse_default")), "langfuse_default"),
        Variant(
            "Langfuse `@observe(capture_input=False, capture_output=False)`",
            observe(capture_input=False, capture_output=False)(coroutine("langfuse_nocapture")),
            "langfuse_nocapture",
        ),
    ]


def stream_variants() -> list[Variant]:
    return [
        Variant("bare async generator", stream("s_bare"), None),
        Variant("hand-written `start_as_current_span`", traced_stream(HAND_TRACER, stream("s_hand")), "s_hand"),
        Variant(
            "hand-written, detaching at each `yield`", traced_stream_detaching(HAND_TRACER, stream("s_hand_detaching")), "s_hand_detaching"
        ),
        Variant("OpenTrace `@async_stream` (default capture)", async_stream(stream("s_opto_default")), "s_opto_default"),
        Variant(
            "OpenTrace `@async_stream` (capture off)",
            async_stream(capture_args=False, capture_result=False)(stream("s_opto_nocapture")),
            "s_opto_nocapture",
        ),
        Variant(
            "Logfire `@instrument(allow_generator=True)`",
            LOGFIRE.instrument(allow_generator=True)(stream("s_logfire_default")),
            "s_logfire_default",
        ),
        Variant(
            "Logfire `@instrument(allow_generator=True, extract_args=False)`",
            LOGFIRE.instrument(allow_generator=True, extract_args=False)(stream("s_logfire_noargs")),
            "s_logfire_noargs",
        ),
        Variant("Langfuse `@observe` (default)", observe()(stream("s_langfuse_default")), "s_langfuse_default"),
        Variant(
            "Langfuse `@observe(capture_input=False, capture_output=False)`",
            observe(capture_input=False, capture_output=False)(stream("s_langfuse_nocapture")),
            "s_langfuse_nocapture",
        ),
    ]


async def time_coroutine(fn: Callable[..., Any], calls: int) -> float:
    t0 = time.perf_counter()
    for i in range(calls):
        await fn("what is tracing?", k=i)
    return (time.perf_counter() - t0) / calls


async def time_stream(fn: Callable[..., AsyncIterator[int]], calls: int) -> float:
    t0 = time.perf_counter()
    for i in range(calls):
        async for _ in fn("what is tracing?", k=i):
            pass
    return (time.perf_counter() - t0) / calls


def flush() -> None:
    PROVIDER.force_flush()
    LOGFIRE.force_flush()
    LANGFUSE.flush()


async def measure(variants: list[Variant], timer: Callable[..., Any], calls: int, rounds: int) -> None:
    """Each round runs every variant once, in rotated order, with exports flushed between blocks."""
    for variant in variants:  # warm-up: first-call caches, lazy imports
        await timer(variant.fn, 50)
        variant.calls += 50
    for r in range(rounds):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        for variant in order:
            flush()
            gc.collect()
            variant.times.append(await timer(variant.fn, calls))
            variant.calls += calls
    flush()


def lost_spans(variants: list[Variant]) -> list[str]:
    """Variants whose exported span count differs from their call count."""
    problems = []
    for v in variants:
        if v.span_name is None:
            continue
        got = sum(n for name, n in EXPORTER.counts.items() if name == v.span_name or name.endswith("." + v.span_name))
        if got != v.calls:
            problems.append(f"{v.label}: {got} spans exported for {v.calls} calls")
    return problems


def report(title: str, runs: list[dict[str, float]]) -> None:
    """Per variant: µs per call and ratio to the wrapper (and, for streams, to the wrapper that
    detaches at each `yield`), each the median over the processes."""
    hand = next(label for label in runs[0] if label.startswith("hand-written"))
    detaching = next((label for label in runs[0] if "detaching" in label), None)
    print(f"\n{title}")
    extra = " ratio to the detaching wrapper |" if detaching else ""
    print(f"| | µs per call | ratio to hand-written OTel wrapper |{extra} ratio in each process |")
    print("| --- | ---: | ---: |" + (" ---: |" if detaching else "") + " --- |")
    for label in runs[0]:
        ratios = [run[label] / run[hand] for run in runs]
        each = ", ".join(f"{r:.2f}" for r in ratios)
        second = f" {statistics.median(run[label] / run[detaching] for run in runs):.2f}x |" if detaching else ""
        print(f"| {label} | {statistics.median(run[label] for run in runs) * 1e6:.1f} | {statistics.median(ratios):.2f}x |{second} {each} |")


def versions() -> str:
    names = ["opentrace", "opentelemetry-sdk", "logfire", "langfuse"]
    return ", ".join(f"{n} {metadata.version(n)}" for n in names)


async def child(calls: int, rounds: int) -> None:
    """One process's measurement, printed as JSON: median seconds per call by variant, and checks."""
    coros = coroutine_variants()
    streams = stream_variants()
    await measure(coros, time_coroutine, calls, rounds)
    await measure(streams, time_stream, max(calls // 4, 1), rounds)
    print(json.dumps({
        "coros": {v.label: statistics.median(v.times) for v in coros},
        "streams": {v.label: statistics.median(v.times) for v in streams},
        "spans": sum(EXPORTER.counts.values()),
        "lost": lost_spans(coros + streams),
        "refused": [str(attempt) for attempt in offline.refused()],
    }))


def _run_child(calls: int, rounds: int, sdk: str | None = None) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": sdk} if sdk else None
    out = subprocess.run([sys.executable, __file__, "--child", "--calls", str(calls), "--rounds", str(rounds)],
                         capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.splitlines()[-1])  # type: ignore[no-any-return]


def against(runs: list[dict[str, Any]], others: list[dict[str, Any]], other: str) -> None:
    """OpenTrace's ratios to the wrappers, this tree's against `other`'s, medians over the processes."""
    print(f"\nThis tree against {other}: OpenTrace's ratio to the wrapper, medians over the processes")
    print("| variant | this tree | other | this / other |\n| --- | ---: | ---: | ---: |")
    for group, base in (("coros", "hand-written `start_as_current_span`"), ("streams", "hand-written, detaching at each `yield`")):
        for label in runs[0][group]:
            if label.startswith("OpenTrace"):
                this = statistics.median(run[group][label] / run[group][base] for run in runs)
                that = statistics.median(run[group][label] / run[group][base] for run in others)
                print(f"| {label} / {'wrapper' if group == 'coros' else 'detaching wrapper'} | {this:.3f} | {that:.3f} | {this / that:.3f} |")


def main(processes: int, calls: int, rounds: int, other: str | None = None) -> int:
    """Measure in `processes` fresh processes: a process's memory layout and garbage-collector
    rhythm can slow one variant for its whole life, so one process alone can mislead."""
    runs, others = [], []
    for _ in range(processes):
        runs.append(_run_child(calls, rounds))
        if other:
            others.append(_run_child(calls, rounds, other))
    print(f"Python {platform.python_version()}, {versions()}; {processes} processes x {calls} calls x {rounds} rounds")
    report("Trivial `async def`", [run["coros"] for run in runs])
    report(f"Async generator of {ITEMS} items (one span per iteration)", [run["streams"] for run in runs])
    if other:
        against(runs, others, other)
    problems = [problem for run in runs + others for problem in run["lost"]]
    refused = [attempt for run in runs + others for attempt in run["refused"]] + [str(a) for a in offline.refused()]
    for problem in problems:
        print(f"LOST: {problem}", file=sys.stderr)
    for attempt in refused:
        print(f"OUTBOUND: {attempt}", file=sys.stderr)
    print(f"\nspans exported: {sum(run['spans'] for run in runs + others)}, all accounted for: {not problems}; "
          f"outbound network attempts refused: {len(refused)}")
    return 1 if problems or refused else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=3, help="fresh processes; medians over them are reported")
    parser.add_argument("--calls", type=int, default=500, help="calls per variant per round")
    parser.add_argument("--rounds", type=int, default=25, help="rounds; each process takes the median round")
    parser.add_argument("--against", metavar="OTHER/sdk", help="also measure another checkout's SDK, alternated with this tree's")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.child:
        asyncio.run(child(ns.calls, ns.rounds))
        code = 0
    else:
        code = main(ns.processes, ns.calls, ns.rounds, ns.against)
    LANGFUSE.shutdown()
    sys.exit(code)
