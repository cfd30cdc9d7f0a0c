"""Where a traced stream's time goes: `@async_stream` against the detaching wrapper, and a "floor"
between them that writes the same span attributes straight into the span with no engine at all,
to which the engine's parts are added back one at a time.

Run: .venv/bin/python bench/stream_parts.py [--rounds 20]

The shape is the peers' bench's (`bench/peers/overhead.py`): `fn(query, k=i)`, 10 items. Each
round times every variant once, in rotated order, with the exports flushed before each; the
figures are medians over the rounds, as µs per run and as a ratio to the detaching wrapper.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from hand_written import ITEMS, stream, traced_stream_detaching
from providers import install_tracer_provider

import opto
from opto import telemetry
from opto._core import check_options
from opto._core.capture import ArgumentCapture
from opto._core.engine import Calls, code_attributes
from opto._core.loops import running_task
from opto.telemetry import semconv

CALLS = 75  # runs per variant per round


def floor(fn: Callable[..., AsyncIterator[int]], *, capture: bool = False, engine_open: bool = False,
          engine_end: bool = False) -> Callable[..., AsyncIterator[int]]:
    """The attributes `@async_stream` writes, written by hand (no provider check, no secret check, no
    remembered text, no handoff link); `capture`, `engine_open`, `engine_end` put the engine's
    argument capture, `Calls.open` and `Call.end` back in."""
    opts = check_options(dict(name=None, debug=False, capture_args=True, capture_result=True, max_repr=1000), "async_stream")
    calls = Calls(fn, opts, "stream")
    arguments = ArgumentCapture(fn, 1000)
    static = code_attributes(fn, fn.__qualname__, "stream")
    tracer = telemetry.tracer()
    current, with_span, attach, undo = telemetry.current, telemetry.with_span, telemetry.attach, telemetry.undo

    async def wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[int]:
        inner = fn(*args, **kwargs)
        if engine_open:
            call = calls.open(telemetry.recording(), telemetry.current(), args, kwargs, running_task(), current=False)  # type: ignore[arg-type]
            span, out, t0 = call.span, call.out, call.t0
            assert out is not None
        else:
            t0 = time.perf_counter()
            span = tracer.start_span(fn.__qualname__)
            out = span._attributes._dict  # type: ignore[attr-defined]
            out.update(static)
            out[semconv.CONCURRENCY] = 0
            out[semconv.TASK_NAME] = running_task().get_name()  # type: ignore[union-attr]
            if capture:
                arguments.add(out, args, kwargs)
            else:
                out[semconv.ARG_PREFIX + "query"] = repr(args[0])
                out[semconv.ARG_PREFIX + "k"] = repr(kwargs["k"])
        ctx = with_span(current(), span)
        items, first, last = 0, 0.0, None
        try:
            while True:
                token = attach(ctx)
                try:
                    item = await inner.__anext__()
                finally:
                    undo(token)
                if not items:
                    first = time.perf_counter() - t0
                items += 1
                last = item
                yield item
        except StopAsyncIteration:
            facts = {semconv.STREAM_ITEMS: items, semconv.STREAM_FIRST_ITEM_S: first, semconv.STREAM_CLOSED_EARLY: False}
            if engine_end and engine_open:
                call.end(semconv.OUTCOME_OK, last, facts)
            else:
                out.update(facts)
                out[semconv.OUTCOME] = semconv.OUTCOME_OK
                out[semconv.ATTEMPTS] = 1
                out[semconv.RESULT] = repr(last)
                span.end()

    return wrapper


def variants() -> dict[str, Callable[..., AsyncIterator[int]]]:
    from opentelemetry import trace

    tracer = trace.get_tracer("bench.hand")
    return {
        "hand-written, detaching at each `yield`": traced_stream_detaching(tracer, stream("hand")),
        "floor: the same attributes by hand": floor(stream("floor")),
        "floor + argument capture": floor(stream("floor_capture"), capture=True),
        "floor + `Calls.open` (capture in it)": floor(stream("floor_open"), engine_open=True),
        "floor + `Calls.open` + `Call.end`": floor(stream("floor_engine"), engine_open=True, engine_end=True),
        "`@async_stream` (default capture)": opto.trace.async_stream(stream("opto")),
        "`@async_stream` (capture off)": opto.trace.async_stream(capture_args=False, capture_result=False)(stream("opto_off")),
    }


async def time_runs(fn: Callable[..., AsyncIterator[int]], runs: int) -> float:
    t0 = time.perf_counter()
    for i in range(runs):
        async for _ in fn("what is tracing?", k=i):
            pass
    return (time.perf_counter() - t0) / runs


async def main(rounds: int) -> None:
    provider, exporter = install_tracer_provider()
    named = variants()
    times: dict[str, list[float]] = {label: [] for label in named}
    for fn in named.values():
        await time_runs(fn, 50)
    labels = list(named)
    for r in range(rounds):
        for label in labels[r % len(labels):] + labels[: r % len(labels)]:
            provider.force_flush()
            gc.collect()
            times[label].append(await time_runs(named[label], CALLS))
    provider.force_flush()
    base = statistics.median(times[labels[0]])
    print(f"| variant ({ITEMS} items) | µs per run | / detaching wrapper |\n| --- | ---: | ---: |")
    for label in labels:
        median = statistics.median(times[label])
        print(f"| {label} | {median * 1e6:.1f} | {median / base:.3f} |")
    runs = (rounds * CALLS + 50) * len(labels)
    print(f"\nspans exported: {exporter.count} of {runs}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    asyncio.run(main(parser.parse_args().rounds))
