"""Per-call cost of @async_trace against a bare coroutine and a hand-written OpenTelemetry wrapper.

Run: .venv/bin/python bench/overhead.py [--instructions] [--metrics] [--against OTHER/sdk]
All traced variants share one TracerProvider (BatchSpanProcessor, counting no-op exporter), so they
pay the same export cost; the no-SDK figure runs in a child process with no provider at all.
Times are CPU time per call (process-wide, so the export thread counts), interleaved across
variants. `--instructions` also counts instructions per call under valgrind, which a busy
machine does not disturb. `--metrics` repeats the timing with a MeterProvider: the application's
own (an SDK provider with a reader), the app's with `configure(call_durations=False)`, and the one
`opto.configure()` installs for OTLP export.
`--against OTHER/sdk` compares this tree's SDK with another checkout's (say, the commit before a
change) in the same run: child processes alternate between the two, each timing @async_trace and
@opto.trace against the hand-written wrappers, and valgrind counts both trees' instructions per call.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

from providers import install_providers, install_tracer_provider

CALLS = 5_000
ROUNDS = 7


async def _measure(fn: Callable[[str], Awaitable[str]]) -> float:
    """Median µs per call over ROUNDS rounds of CALLS sequential awaits."""
    for _ in range(500):
        await fn("warm")
    samples = []
    for _ in range(ROUNDS):
        t0 = time.process_time()
        for _ in range(CALLS):
            await fn("What is machine learning?")
        samples.append((time.process_time() - t0) / CALLS * 1e6)
    return statistics.median(samples)


async def bare(query: str) -> str:
    return query


def _no_sdk() -> None:
    """Child process: @async_trace with no OpenTelemetry SDK configured, next to a bare call."""
    import opto

    traced = opto.trace.async_trace(bare)

    async def run() -> None:
        b = await _measure(bare)
        t = await _measure(traced)
        print(f"{b:.3f} {t:.3f}")

    asyncio.run(run())


def _variants() -> dict[str, Callable[[str], Awaitable[str]]]:
    from opentelemetry import trace

    import opto

    tracer = trace.get_tracer("bench")

    async def hand_written(query: str) -> str:
        with tracer.start_as_current_span("hand_written"):
            return await bare(query)

    def plain(query: str) -> str:
        return query

    def hand_written_plain(query: str) -> str:
        with tracer.start_as_current_span("hand_written_plain"):
            return plain(query)

    traced_plain = opto.trace(plain)
    traced = opto.trace.async_trace(bare)

    # A new str each call (its making paid by both): no argument or result is the object of the
    # call before, which capture would take the remembered text of.
    async def otel_fresh(query: str) -> str:
        return await hand_written(query[:-1] + "?")

    async def opto_fresh(query: str) -> str:
        return await traced(query[:-1] + "?")

    # A plain function's variants are awaited through the same one-line coroutine: both pay it.
    async def otel_plain(query: str) -> str:
        return hand_written_plain(query)

    async def opto_plain(query: str) -> str:
        return traced_plain(query)

    return {
        "bare": bare,
        "otel": hand_written,
        "opto": traced,
        "opto_nocap": opto.trace.async_trace(capture_args=False, capture_result=False)(bare),
        "otel_plain": otel_plain,
        "opto_plain": opto_plain,
        "otel_fresh": otel_fresh,
        "opto_fresh": opto_fresh,
    }


def _count_child(variant: str, calls: int, sdk: bool) -> None:
    """Child process for --instructions: make `calls` calls of one variant, nothing else."""
    if sdk:
        install_tracer_provider()
    fn = _variants()[variant]

    async def run() -> None:
        for _ in range(calls):
            await fn("What is machine learning?")

    asyncio.run(run())


def _instructions(variant: str, sdk: bool, calls: int, sdk_path: str | None = None) -> float:
    """Instructions per call: the difference between a run with `calls` calls and one with none.
    `sdk_path` runs another checkout's `opto` (its sdk/ folder) instead of the installed one."""

    def total(n: int) -> int:
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
               "--count", variant, str(n), "sdk" if sdk else "nosdk"]
        env = {"PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin", **({"PYTHONPATH": sdk_path} if sdk_path else {})}
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stderr
        return int(next(l for l in out.splitlines() if "Collected" in l).split()[-1])

    return (total(calls) - total(0)) / calls


def _against_child() -> None:
    """Child process for --against: µs per call of the traced variants and their wrappers, one line."""
    install_tracer_provider(max_queue_size=1 << 20)
    variants = _variants()
    r = asyncio.run(_interleaved({k: variants[k] for k in ("otel", "opto", "otel_plain", "opto_plain", "otel_fresh", "opto_fresh")}))
    print(f"{r['otel']:.3f} {r['opto']:.3f} {r['otel_plain']:.3f} {r['opto_plain']:.3f} {r['otel_fresh']:.3f} {r['opto_fresh']:.3f}")


def _against(other: str) -> None:
    """This tree's SDK against `other` (another checkout's sdk/ folder), in the same run."""
    trees = {"this": None, "other": other}
    ratios: dict[str, dict[str, list[float]]] = {t: {"async": [], "plain": [], "fresh": []} for t in trees}
    for _ in range(3):  # alternate, so that drift in the machine's load hits both alike
        for tree, path in trees.items():
            env = {**os.environ, **({"PYTHONPATH": path} if path else {})}
            out = subprocess.run([sys.executable, __file__, "--against-child"], capture_output=True, text=True, check=True, env=env)
            otel, traced, otel_plain, traced_plain, otel_fresh, traced_fresh = map(float, out.stdout.split())
            ratios[tree]["async"].append(traced / otel)
            ratios[tree]["plain"].append(traced_plain / otel_plain)
            ratios[tree]["fresh"].append(traced_fresh / otel_fresh)
    print(f"\n{'this tree against ' + other:<44}{'this':>9}{'other':>9}{'ratio':>8}")
    for kind, label in (
        ("async", "@async_trace / hand-written wrapper"), ("plain", "@opto.trace / hand-written wrapper"),
        ("fresh", "a new str each call: @async_trace / wrapper"),
    ):
        this, that = statistics.median(ratios["this"][kind]), statistics.median(ratios["other"][kind])
        print(f"{label:<44}{this:>9.3f}{that:>9.3f}{this / that:>8.3f}")
    print(f"\n{'instructions per call (valgrind)':<44}{'this':>9}{'other':>9}{'ratio':>8}")
    for variant, label in (("opto", "@async_trace (default capture)"), ("opto_nocap", "@async_trace (capture off)"), ("opto_plain", "plain function: @opto.trace")):
        this_n, that_n = _instructions(variant, True, 5_000), _instructions(variant, True, 5_000, other)
        print(f"{label:<44}{this_n:>9.0f}{that_n:>9.0f}{this_n / that_n:>8.3f}")


async def _interleaved(variants: dict[str, Callable[[str], Awaitable[str]]]) -> dict[str, float]:
    """Median µs per call of each variant, the variants interleaved so drift hits all alike."""
    results: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(3):
        for name, fn in variants.items():
            results[name].append(await _measure(fn))
    return {k: statistics.median(v) for k, v in results.items()}


def _metrics_child(setup: str) -> None:
    """Child process for --metrics: the wrapper and @async_trace timed with one MeterProvider set-up."""
    if setup in ("app", "app-off"):
        install_providers(max_queue_size=1 << 20)
        if setup == "app-off":
            import opto

            opto.configure(call_durations=False)
    else:
        import opto

        install_tracer_provider(max_queue_size=1 << 20)
        # Metrics only, to a port nothing listens on, collected only at exit (after the timing).
        os.environ.update(OTEL_EXPORTER_OTLP_METRICS_ENDPOINT="http://127.0.0.1:9/v1/metrics", OTEL_METRIC_EXPORT_INTERVAL="3600000")
        opto.configure()
    variants = _variants()
    r = asyncio.run(_interleaved({k: variants[k] for k in ("otel", "opto", "opto_nocap")}))
    print(f"{r['otel']:.3f} {r['opto']:.3f} {r['opto_nocap']:.3f}", flush=True)
    os._exit(0)  # skip the exit-time export to nowhere


def _metrics_table() -> None:
    print(f"\n{'with a MeterProvider (CPU µs per call)':<44}{'wrapper':>10}{'default':>9}{'ratio':>7}{'no capture':>12}{'ratio':>7}")
    setups = (
        ("app", "the application's SDK MeterProvider"),
        ("app-off", "the app's, configure(call_durations=False)"),
        ("configure", "opto.configure()'s MeterProvider"),
    )
    for setup, label in setups:
        child = subprocess.run([sys.executable, __file__, "--metrics-child", setup], capture_output=True, text=True, check=True)
        otel, traced, nocap = map(float, child.stdout.split())
        print(f"{label:<44}{otel:>10.2f}{traced:>9.2f}{traced / otel:>7.2f}{nocap:>12.2f}{nocap / otel:>7.2f}")


def main() -> None:
    provider, exporter = install_tracer_provider(max_queue_size=1 << 20)
    r = asyncio.run(_interleaved(_variants()))
    provider.force_flush()
    expected = 7 * 3 * (ROUNDS * CALLS + 500)
    child = subprocess.run([sys.executable, __file__, "--no-sdk"], capture_output=True, text=True, check=True)
    nosdk_bare, nosdk_opto = map(float, child.stdout.split())

    print(f"{'variant':<44}{'µs/call':>10}{'ratio':>9}")
    print(f"{'bare coroutine':<44}{r['bare']:>10.2f}")
    print(f"{'hand-written start_as_current_span wrapper':<44}{r['otel']:>10.2f}{1.0:>9.2f}")
    print(f"{'@async_trace (default capture)':<44}{r['opto']:>10.2f}{r['opto'] / r['otel']:>9.2f}")
    print(f"{'@async_trace (capture off)':<44}{r['opto_nocap']:>10.2f}{r['opto_nocap'] / r['otel']:>9.2f}")
    print(f"{'plain function: hand-written wrapper':<44}{r['otel_plain']:>10.2f}{1.0:>9.2f}")
    print(f"{'plain function: @opto.trace':<44}{r['opto_plain']:>10.2f}{r['opto_plain'] / r['otel_plain']:>9.2f}")
    print(f"{'a new str each call: hand-written wrapper':<44}{r['otel_fresh']:>10.2f}{1.0:>9.2f}")
    print(f"{'a new str each call: @async_trace':<44}{r['opto_fresh']:>10.2f}{r['opto_fresh'] / r['otel_fresh']:>9.2f}")
    print(f"{'no SDK: bare coroutine':<44}{nosdk_bare:>10.2f}")
    print(f"{'no SDK: @async_trace':<44}{nosdk_opto:>10.2f}   (+{nosdk_opto - nosdk_bare:.2f} µs)")
    print(f"spans exported: {exporter.count} of {expected}")
    ok = r["opto"] / r["otel"] <= 1.25 and nosdk_opto - nosdk_bare <= 2.0 and exporter.count == expected
    print("goals (<= 1.25x the OpenTelemetry wrapper; <= 2 µs over bare without an SDK):", "met" if ok else "MISSED")
    if "--instructions" in sys.argv:
        print(f"\n{'instructions per call (valgrind)':<44}{'count':>10}{'ratio':>9}")
        counts = {v: _instructions(v, True, 10_000) for v in ("bare", "otel", "opto", "opto_nocap")}
        for v, label in (("bare", "bare coroutine"), ("otel", "hand-written wrapper"), ("opto", "@async_trace (default capture)"), ("opto_nocap", "@async_trace (capture off)")):
            print(f"{label:<44}{counts[v]:>10.0f}{counts[v] / counts['otel']:>9.2f}")
        nosdk = _instructions("opto", False, 100_000) - _instructions("bare", False, 100_000)
        print(f"{'no SDK: @async_trace over bare':<44}{nosdk:>10.0f}")
    if "--metrics" in sys.argv:
        _metrics_table()
    if "--against" in sys.argv:
        _against(sys.argv[sys.argv.index("--against") + 1])


if __name__ == "__main__":
    if "--no-sdk" in sys.argv:
        _no_sdk()
    elif "--against-child" in sys.argv:
        _against_child()
    elif "--metrics-child" in sys.argv:
        _metrics_child(sys.argv[-1])
    elif "--count" in sys.argv:
        _, _, variant, n, sdk = sys.argv
        _count_child(variant, int(n), sdk == "sdk")
    else:
        main()
