"""A real traced program for the browser suite: `python workload.py DASHBOARD_URL SCENARIO`.

It streams to the dashboard through `opto.configure(dashboard=...)`, prints `ready` when the
scenario's calls are running, and, for scenarios that hold calls open, finishes them when a line
arrives on stdin. It exits after `opto.shutdown()` has flushed everything to the dashboard.
"""

from __future__ import annotations

import asyncio
import sys

import opto
from opto.trace import AsyncMetrics, AsyncQueue, async_trace

__all__: list[str] = []

XSS_NAME = "<img src=x onerror=alert(1)>"
XSS_TEXT = "</script><script>alert(2)</script>"


def ready() -> None:
    print("ready", flush=True)


async def until_told() -> None:
    """Wait for a line on stdin without blocking the event loop."""
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def inflight(count: int = 12) -> None:
    release = asyncio.Event()

    @async_trace(name="held_call")
    async def held_call(i: int) -> int:
        started.append(i)
        if len(started) == count:
            ready()
        await release.wait()
        return i

    started: list[int] = []
    calls = asyncio.gather(*(held_call(i) for i in range(count)))
    await until_told()
    release.set()
    await calls


async def concurrency(limit: int = 4, count: int = 12) -> None:
    """`count` held calls under max_concurrent=`limit`: `limit` run, the rest wait for a slot."""
    from opto.trace import AsyncTraceContext

    release = asyncio.Event()

    @async_trace(name="limited_work")
    async def limited_work(i: int) -> int:
        await release.wait()
        return i

    async with AsyncTraceContext(max_concurrent=limit) as ctx:
        calls = asyncio.gather(*(limited_work(i) for i in range(count)))
        while ctx.statistics().waiting < count - limit:
            await asyncio.sleep(0)  # let every call start: `limit` take slots, the rest queue
        ready()
        await until_told()
        release.set()
        await calls


async def trace_shapes() -> None:
    opto.trace.set_testing(True)  # retries without sleeping through backoff
    failures = iter([True])

    @async_trace(name="tokenize")
    async def tokenize(text: str) -> list[str]:
        await asyncio.sleep(0.005)
        return text.split()

    @async_trace(name="flaky_llm", retry_attempts=2, retry_delay=0.05)
    async def flaky_llm(prompt: str) -> str:
        await tokenize(prompt)
        if next(failures, False):
            raise opto.RetryableError("rate limited, try again")
        return prompt.upper()

    @async_trace(name="slow_tool", timeout=0.05)
    async def slow_tool(query: str) -> str:
        await asyncio.sleep(5)
        return query

    @async_trace(name="agent")
    async def agent(query: str) -> str:
        answer = await flaky_llm(query)
        try:
            await slow_tool(query)
        except TimeoutError:
            pass
        return answer

    await agent("what is tracing")
    ready()


async def queue(items: int = 60) -> None:
    q: AsyncQueue[int | None] = AsyncQueue(maxsize=4, name="jobs")

    @async_trace(name="handle")
    async def handle(item: int) -> int:
        await asyncio.sleep(0.004 * (item % 5))
        return item

    @async_trace(name="produce")
    async def producer() -> None:
        for i in range(items):
            await q.put(i)
        await q.put(None)

    async def consumer() -> None:
        while (item := await q.get()) is not None:
            await handle(item)

    await asyncio.gather(producer(), consumer(), consumer())
    ready()


async def xss() -> None:
    """Untrusted text in every place the pages show: span, argument, error, queue and metric names."""
    opto.trace.set_testing(True)
    failures = iter([True])
    release = asyncio.Event()

    @async_trace(name=XSS_NAME, retry_attempts=1)
    async def hostile(text: str) -> str:
        async with AsyncMetrics.monitor(XSS_NAME):
            if next(failures, False):
                raise opto.RetryableError(XSS_TEXT)
            q: AsyncQueue[str] = AsyncQueue(name=XSS_NAME)
            await q.put(text)
            await q.get()
            ready()
            await release.wait()
            return text

    call = asyncio.create_task(hostile(XSS_TEXT))
    await until_told()
    release.set()
    await call


async def optimize() -> None:
    """A small deterministic beam search, held while its first proposal runs; one choice holds markup, one candidate fails.

    From (plain, 1) scoring 0.2 it keeps two of each depth's candidates and ends at (bullet, 3)
    scoring 0.8 after three depths; (markup, 2), depth 3's only candidate, raises.
    """
    release = asyncio.Event()
    style = opto.trace.param("plain", name="style", choices=["plain", "bullet", XSS_NAME])
    level = opto.trace.param(1, name="level", choices=[1, 2, 3])
    points = {"plain": 0.1, "bullet": 0.5, XSS_NAME: 0.3}

    @opto.trace.optimize(strategy="async_beam_search", beam_width=2, num_proposals=3, max_depth=3, max_concurrent=8)
    async def answer(question: int) -> tuple[str, int]:
        if style.value == XSS_NAME and level.value == 2:
            raise RuntimeError(f"model overloaded by {XSS_TEXT}")
        if style.value == "bullet" and not release.is_set():
            held.append(question)
            if len(held) == 2:
                ready()
            await release.wait()
        return style.value, level.value

    held: list[int] = []
    search = asyncio.create_task(answer.optimize([1, 2], guide=lambda question, out: points[out[0]] + out[1] / 10))
    await until_told()
    release.set()
    await search

async def tasks() -> None:
    """Instrumented asyncio (issue 18): untraced tasks and a traced call stuck on an Event, and a
    loop blocked once for 0.3 s by time.sleep."""
    import time

    opto.instrument_asyncio()
    release = asyncio.Event()

    async def parked() -> None:
        await release.wait()  # parked here

    @async_trace(name="stuck_call")
    async def stuck_call() -> None:
        await release.wait()  # stuck here

    loop = asyncio.get_running_loop()
    held = [loop.create_task(parked(), name=f"parked-{i}") for i in range(3)]
    held.append(loop.create_task(stuck_call(), name="stuck"))
    await asyncio.sleep(0)
    time.sleep(0.3)  # blocks the loop
    ready()
    await until_told()
    release.set()
    await asyncio.gather(*held)


SCENARIOS = {"tasks": tasks, "inflight": inflight, "concurrency": concurrency, "trace": trace_shapes, "queue": queue, "xss": xss, "optimize": optimize}

if __name__ == "__main__":
    url, scenario = sys.argv[1], sys.argv[2]
    opto.configure(dashboard=url, service_name="e2e-workload")
    asyncio.run(SCENARIOS[scenario]())
    opto.shutdown()
