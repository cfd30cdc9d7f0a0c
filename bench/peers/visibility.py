"""Live visibility: how long after a span starts it shows in each tool's UI data, offline.

OpenTrace: a coroutine traced with `@async_trace`, exported by `opto.configure(dashboard=...)`,
counted visible when the dashboard's browser feed `/ws/live` lists it in flight (it is still
running). Phoenix shows only ended spans: a span ended at once and exported with
`phoenix.otel.register()`'s defaults, counted visible when Phoenix's GraphQL API counts it; the
delay runs from its end. Each server runs on a fresh database under the offline guard.

    .venv-peers/bin/python bench/peers/visibility.py [--servers opto phoenix] [--trials 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

import offline

offline.install()

import websockets  # noqa: E402
from ingest import SERVERS, Server  # noqa: E402

__all__: list[str] = []

TIMEOUT_S = 30.0
QUIET_S = 0.6  # over two hub ticks with nothing new


def summary(name: str, delays: list[float]) -> str:
    ms = sorted(d * 1000 for d in delays)
    return (
        f"| {name} | {statistics.median(ms):.0f} | {ms[max(int(len(ms) * 0.95) - 1, 0)]:.0f} | {ms[-1]:.0f} | {len(ms)} |"
    )


def _in_flight(message: str, name: str) -> bool:
    live = json.loads(message).get("live") or {}
    return any(group.get("name") == name and group.get("count", 0) > 0 for group in live.get("in_flight", []))


async def opto_delays(server: Server, trials: int) -> tuple[list[float], list[float]]:
    """Start a traced coroutine that waits; time until /ws/live shows it in flight. Trials alternate:
    one starts as soon as the last was seen (in step with the hub's tick), the next after QUIET_S
    and a random part of a tick with nothing new (work starting after a quiet spell, at any phase)."""
    phases = random.Random(trials)
    import opto

    opto.configure(service_name="bench-visibility", dashboard=server.base)
    delays: tuple[list[float], list[float]] = ([], [])
    ws_url = server.base.replace("http://", "ws://") + "/ws/live"
    async with websockets.connect(ws_url, max_size=None) as ws:
        for i in range(2 * trials):
            if i % 2:
                await asyncio.sleep(QUIET_S + phases.uniform(0.0, 0.25))  # a bench's pause, not a synchronisation wait
            name = f"visible-{i}"
            release = asyncio.Event()

            @opto.trace.async_trace(name=name)
            async def waiting() -> None:
                await release.wait()

            t0 = time.perf_counter()
            task = asyncio.create_task(waiting())
            async with asyncio.timeout(TIMEOUT_S):
                while not _in_flight(await ws.recv(), name):
                    pass
            delays[i % 2].append(time.perf_counter() - t0)
            release.set()
            await task
    opto.shutdown()
    return delays


async def phoenix_delays(server: Server, client: httpx.AsyncClient, trials: int) -> list[float]:
    """End a span at once; time from its end until Phoenix's GraphQL API counts it."""
    from phoenix.otel import register

    provider = register(endpoint=f"{server.base}/v1/traces", set_global_tracer_provider=False, verbose=False)
    tracer = provider.get_tracer("bench.visibility")
    delays = []
    for i in range(trials):
        before = await server.stored(client)
        with tracer.start_as_current_span(f"visible-{i}"):
            pass
        t0 = time.perf_counter()  # SimpleSpanProcessor: exported when the span ended, just now
        async with asyncio.timeout(TIMEOUT_S):
            while await server.stored(client) <= before:
                await asyncio.sleep(0.01)
        delays.append(time.perf_counter() - t0)
    provider.shutdown()
    return delays


async def measure(kind: str, trials: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix=f"bench-visibility-{kind}-") as tmp:
        server = SERVERS[kind](Path(tmp))
        server.start()
        try:
            async with httpx.AsyncClient(timeout=30.0) as client:
                await server.wait_ready(client)
                if kind == "opto":
                    back_to_back, after_quiet = await opto_delays(server, trials)
                    delays = {
                        "opto-dashboard (span start to /ws/live in flight, trials back to back)": back_to_back,
                        f"opto-dashboard (the same, after {QUIET_S} to {QUIET_S + 0.25} s with nothing new)": after_quiet,
                    }
                else:
                    delays = {"phoenix serve (span end to GraphQL count)": await phoenix_delays(server, client, trials)}
        finally:
            server.stop()
        outbound = server.outbound()
        if outbound:
            raise RuntimeError(f"{server.name} tried to leave the machine: {outbound}")
        return delays


async def main(kinds: list[str], trials: int) -> int:
    print(f"{trials} trials each")
    print("| tool (what is timed) | median ms | p95 ms | max ms | trials |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for kind in kinds:
        for label, delays in (await measure(kind, trials)).items():
            print(summary(label, delays), flush=True)
    refused = offline.refused()
    print(f"outbound network attempts refused in this process: {len(refused)}")
    return 1 if refused else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", nargs="+", choices=sorted(SERVERS), default=["opto", "phoenix"])
    parser.add_argument("--trials", type=int, default=20)
    ns = parser.parse_args()
    sys.exit(asyncio.run(main(ns.servers, ns.trials)))
