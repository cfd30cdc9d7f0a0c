"""`make demo`: start the dashboard and feed it the spec page's examples until Ctrl-C.

`python -m opto_dashboard.demo` serves the dashboard on its default database (a subprocess running
`opto-dashboard`), prints the URL, and runs a workload built from the asynchronous-execution page:
agents with simulated LLM latency, retries after transient failures, a producer/consumer queue, a
batch run, a stream, a parallel context and a debug agent. `--connect URL` feeds a dashboard
that is already running instead.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence

import httpx

import opto
from opto.trace import AsyncBatchProcessor, AsyncMetrics, AsyncQueue, AsyncTraceContext

__all__ = ["main", "workload"]

QUERIES = ["What is machine learning?", "Summarise the report", "Translate to French", "Plan a trip", "Explain asyncio"]


class SimulatedLLM:
    """Stands in for a model client: 50 to 400 ms of latency, and now and then a transient failure."""

    def __init__(self, failure_rate: float = 0.15) -> None:
        self.failure_rate = failure_rate

    async def acomplete(self, prompt: str) -> str:
        await asyncio.sleep(random.uniform(0.05, 0.4))
        if random.random() < self.failure_rate:
            raise ConnectionError("upstream reset the connection")
        return f"answer to {prompt!r}"


llm = SimulatedLLM()


@opto.trace.async_trace
async def async_agent(query: str) -> str:
    try:
        return await llm.acomplete(query)
    except ConnectionError:
        return "fallback answer"


@opto.trace.async_trace(retry_attempts=3, retry_delay=0.2, timeout=1.0)
async def robust_async_agent(query: str) -> str:
    try:
        response = await llm.acomplete(query)
        if random.random() < 0.05:
            await asyncio.sleep(2)  # now and then a hang, cut by the timeout
        return response
    except ConnectionError as e:
        raise opto.RetryableError(f"Temporary failure: {e}") from e


@opto.trace.async_trace
async def optimize_task(task: int) -> int:
    async with AsyncMetrics.monitor("agent_performance"):
        await asyncio.sleep(random.uniform(0.02, 0.2))
        return task * 2


@opto.trace.async_trace
async def producer(queue: AsyncQueue[int | None], count: int) -> None:
    for i in range(count):
        await queue.put(i)
    await queue.put(None)
    await queue.put(None)  # one sentinel per consumer


async def consumer(queue: AsyncQueue[int | None]) -> None:
    while (task := await queue.get()) is not None:
        await optimize_task(task)


@opto.trace.async_stream
async def streaming_optimizer(data_stream: AsyncIterator[int]) -> AsyncIterator[int]:
    async for chunk in data_stream:
        await asyncio.sleep(0.03)
        yield chunk * chunk


async def data_stream(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(0.01)
        yield i


async def score_batch(items: list[int]) -> int:
    await asyncio.sleep(random.uniform(0.05, 0.2))
    return sum(items)


@opto.trace.async_trace(debug=True)
async def debug_agent(query: str) -> str:
    await asyncio.sleep(0.1)
    if random.random() < 0.3:
        time.sleep(0.12)  # blocks the event loop: the dashboard's debug view shows the slow step
    return f"Processed: {query}"


async def one_round() -> None:
    """Each example once, concurrently; failures are part of the show, so they are kept."""
    queue: AsyncQueue[int | None] = AsyncQueue(maxsize=10, name="tasks")

    async def parallel_context() -> None:
        async with AsyncTraceContext(max_concurrent=3, timeout=2.0, retry_policy="exponential_backoff", name="parallel") as ctx:
            await ctx.run_parallel([async_agent(q) for q in QUERIES], return_exceptions=True)

    async def batch() -> None:
        processor: AsyncBatchProcessor[int, int] = AsyncBatchProcessor(batch_size=10, max_concurrent=4, handler=score_batch)
        async for _ in processor.process(range(60)):
            pass

    async def stream() -> None:
        async for _ in streaming_optimizer(data_stream(10)):
            pass

    await asyncio.gather(
        *(robust_async_agent(q) for q in QUERIES),
        producer(queue, 30), consumer(queue), consumer(queue),
        parallel_context(), batch(), stream(), debug_agent(random.choice(QUERIES)),
        return_exceptions=True,
    )


async def workload(stop: asyncio.Event | None = None) -> None:
    """Rounds of the examples, back to back, until `stop` is set (or forever)."""
    stop = stop or asyncio.Event()
    while not stop.is_set():
        await one_round()


def _start_dashboard(argv: Sequence[str]) -> tuple[subprocess.Popen[bytes], str]:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    known, _ = parser.parse_known_args(argv)
    url = f"http://{known.host}:{known.port}"
    # Its own session: Ctrl-C reaches the demo only, which flushes its spans before stopping the server.
    server = subprocess.Popen([sys.executable, "-m", "opto_dashboard", *argv], start_new_session=True)
    deadline = time.monotonic() + 30
    while True:  # wait until it answers (it binds the port itself)
        try:
            httpx.get(url + "/api/live", timeout=2).raise_for_status()
            return server, url
        except httpx.HTTPError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.terminate()
                raise SystemExit(f"the dashboard did not start at {url}")
            time.sleep(0.2)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m opto_dashboard.demo",
        description="Start opto-dashboard and feed it a demo workload until Ctrl-C. Other options go to opto-dashboard.",
    )
    parser.add_argument("--connect", metavar="URL", help="feed the dashboard already running at URL instead of starting one")
    args, rest = parser.parse_known_args(argv)
    server = None
    if args.connect:
        url = args.connect
    else:
        server, url = _start_dashboard(rest)
    opto.configure(dashboard=url, service_name="opto-demo")
    logging.getLogger("asyncio").setLevel(logging.ERROR)  # the debug agent's slow steps show in the dashboard instead
    print(f"OpenTrace demo: open {url}/ in a browser. Ctrl-C stops.", flush=True)
    try:
        asyncio.run(workload())
    except KeyboardInterrupt:
        pass
    finally:
        opto.shutdown()
        if server is not None:
            server.terminate()
            server.wait(30)
        print("OpenTrace demo stopped.", flush=True)


if __name__ == "__main__":
    main()
