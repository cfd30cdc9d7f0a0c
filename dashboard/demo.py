"""`make demo`: start the dashboard and feed it a workload that shows every page at its best, until Ctrl-C.

`python -m opto_dashboard.demo [--port N]` binds the port itself, refuses at once (exit code 2) if
it is taken, hands the socket to an `opto-dashboard` subprocess on its default database, prints
the URL, and runs rounds of a workload built from the asynchronous-execution page: a trip planner
fanning out to nested model calls (retried after connection resets, rate limits and timeouts, a
few failing or timing out for good), a producer/consumer pipeline, a batch run, a stream, a parallel context,
a debug agent with a blocking step, a live `@trace.optimize` prompt search, and at the start a
nightly batch of a few thousand spans. `--connect URL` feeds a dashboard already running instead.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence

import httpx

import opto
from opto.trace import AsyncBatchProcessor, AsyncMetrics, AsyncQueue, AsyncTraceContext

__all__ = ["main", "workload"]

QUERIES = ["What is machine learning?", "Summarise the report", "Translate to French", "Plan a trip", "Explain asyncio"]
CITIES = ["Lisbon", "Kyoto", "Oslo", "Lima"]


class RateLimited(opto.RetryableError):
    """The model provider's 429: worth a retry after a pause."""


class SimulatedLLM:
    """Stands in for a model client: 50 to 400 ms of latency; now and then a reset, a 429 or a hang."""

    async def acomplete(self, prompt: str) -> str:
        await asyncio.sleep(random.uniform(0.05, 0.4))
        roll = random.random()
        if roll < 0.08:
            raise ConnectionError("upstream reset the connection")
        if roll < 0.14:
            raise RateLimited("429 Too Many Requests: retry after 0.2 s")
        if roll < 0.19:
            await asyncio.sleep(3)  # a hang, cut by the caller's timeout
        return f"answer to {prompt!r}"


llm = SimulatedLLM()


@opto.trace.async_trace(retry_attempts=3, retry_delay=0.1, timeout=1.0)
async def call_llm(prompt: str) -> str:
    """Retried on resets, rate limits and timeouts; gives up after three retries."""
    try:
        return await llm.acomplete(prompt)
    except ConnectionError as e:
        raise opto.RetryableError(f"Temporary failure: {e}") from e


@opto.trace.async_trace
async def check_visa(city: str) -> bool:
    await asyncio.sleep(random.uniform(0.02, 0.08))
    if random.random() < 0.15:
        raise LookupError(f"no visa rules on file for {city}")  # a few errors, not retried
    return True


@opto.trace.async_trace(timeout=0.3)
async def fetch_weather(city: str) -> str:
    """A slow weather service without retries: about one call in six times out for good."""
    await asyncio.sleep(random.uniform(0.05, 0.35))
    return f"sunny in {city}"


@opto.trace.async_trace
async def search(kind: str, city: str) -> str:
    return await call_llm(f"best {kind} in {city}")


@opto.trace.async_trace
async def plan_trip(city: str) -> list[str]:
    """A nested trace with fan-out: four searches at once, each a retried model call, a visa check and the weather."""
    results = await asyncio.gather(*(search(kind, city) for kind in ("flights", "hotels", "cars", "food")),
                                   check_visa(city), fetch_weather(city), return_exceptions=True)
    return [r for r in results if isinstance(r, str)]


@opto.trace.async_trace
async def async_agent(query: str) -> str:
    try:
        return await llm.acomplete(query)
    except (ConnectionError, RateLimited):
        return "fallback answer"


@opto.trace.async_trace(retry_attempts=3, retry_delay=0.2, timeout=1.0)
async def robust_async_agent(query: str) -> str:
    try:
        return await llm.acomplete(query)
    except ConnectionError as e:
        raise opto.RetryableError(f"Temporary failure: {e}") from e


@opto.trace.async_trace
async def optimize_task(task: int) -> int:
    async with AsyncMetrics.monitor("agent_performance"):
        await asyncio.sleep(random.uniform(0.02, 0.2))
        return task * 2


@opto.trace.async_trace
async def producer(queue: AsyncQueue[int | None], count: int, consumers: int) -> None:
    for i in range(count):
        await queue.put(i)
    for _ in range(consumers):
        await queue.put(None)  # one sentinel per consumer


async def consumer(queue: AsyncQueue[int | None]) -> None:
    while (task := await queue.get()) is not None:
        await optimize_task(task)


@opto.trace.async_trace
async def pipeline() -> None:
    """Producer and consumers in one trace; items wait in a small queue, so producers block now and then."""
    queue: AsyncQueue[int | None] = AsyncQueue(maxsize=5, name="tasks")
    await asyncio.gather(producer(queue, 30, 3), *(consumer(queue) for _ in range(3)))


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
    if random.random() < 0.5:
        time.sleep(0.12)  # blocks the event loop: the Debug page shows the slow step
    return f"Processed: {query}"


@opto.trace.async_trace
async def process_record(worker: int, record: int) -> int:
    await asyncio.sleep(random.uniform(0.001, 0.01))
    if (worker * 61 + record) % 97 == 0:
        raise ValueError(f"record {worker}-{record}: malformed row")
    return record


@opto.trace.async_trace
async def batch_worker(worker: int, records: int) -> int:
    results = await asyncio.gather(*(process_record(worker, r) for r in range(records)), return_exceptions=True)
    return sum(1 for r in results if isinstance(r, int))


@opto.trace.async_trace
async def nightly_batch(workers: int = 40, records: int = 60) -> int:
    """One big trace: a root, `workers` workers of `records` records each (about 2,400 spans), a few malformed."""
    async with AsyncTraceContext(max_concurrent=8, name="nightly"):
        done = await asyncio.gather(*(batch_worker(w, records) for w in range(workers)))
    return sum(done)


# ---- a live @trace.optimize search: which prompt settings label reviews right ----

REVIEWS = [("The battery lasts forever", "positive"), ("Broke after two days", "negative"),
           ("Not bad at all", "positive"), ("Worst purchase this year", "negative")]
instructions = opto.trace.param("Classify the review.", name="instructions", description="the system prompt",
                                choices=["Classify the review.", "Classify the review. Answer with one word: positive or negative."])
few_shot = opto.trace.param(0, name="few_shot", description="labelled examples shown", choices=[0, 2, 4])


@opto.trace.optimize(strategy="async_beam_search", beam_width=2, num_proposals=3, max_depth=3, max_concurrent=4)
async def classify(example: tuple[str, str]) -> str:
    review, _ = example
    await asyncio.sleep(random.uniform(0.2, 0.6))  # slow enough to watch the beams fill in
    label = "negative" if any(w in review.lower() for w in ("broke", "worst", "not")) else "positive"
    if few_shot.value >= 2 and "not bad" in review.lower():
        label = "positive"
    return label if "one word" in instructions.value else f"I think it is {label}."


def grade(example: tuple[str, str], output: str) -> float:
    return 1.0 if output == example[1] else 0.5 if example[1] in output else 0.0


async def optimization_runs(stop: asyncio.Event) -> None:
    """A prompt search, then a pause, again and again: the Optimization page always has one running or recent."""
    while not stop.is_set():
        await classify.optimize(REVIEWS, guide=grade)
        try:
            await asyncio.wait_for(stop.wait(), 10)
        except TimeoutError:
            pass


async def one_round() -> None:
    """Each example once, concurrently; failures are part of the show, so they are kept."""

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
        *(plan_trip(city) for city in random.sample(CITIES, 2)),
        *(robust_async_agent(q) for q in random.sample(QUERIES, 2)),
        pipeline(), parallel_context(), batch(), stream(), debug_agent(random.choice(QUERIES)),
        return_exceptions=True,
    )


async def workload(stop: asyncio.Event | None = None) -> None:
    """A big trace first, then rounds of the examples back to back beside a live prompt search, until `stop` is set (or forever)."""
    stop = stop or asyncio.Event()
    searches = asyncio.create_task(optimization_runs(stop))
    try:
        await nightly_batch()
        while not stop.is_set():
            await one_round()
    finally:
        searches.cancel()
        await asyncio.gather(searches, return_exceptions=True)


def _bind(host: str, port: int) -> socket.socket:
    """The demo's own listening socket, so a port already taken (say, by another dashboard) stops it here."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if sys.platform != "win32":  # a port in TIME_WAIT after the last run is free; one with a listener is still refused
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(
            f"cannot listen on {host}:{port}: {exc.strerror}. Is another opto-dashboard running there? "
            f"Pick a free port: make demo PORT={port + 1}, or python -m opto_dashboard.demo --port {port + 1}"
        ) from None
    sock.listen(128)
    return sock


def _start_dashboard(host: str, port: int, argv: Sequence[str]) -> tuple[subprocess.Popen[bytes], str]:
    sock = _bind(host, port)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{sock.getsockname()[1]}"
    # Its own session: Ctrl-C reaches the demo only, which flushes its spans before stopping the server.
    fd = sock.fileno()
    server = subprocess.Popen([sys.executable, "-m", "opto_dashboard", "--fd", str(fd), *argv], pass_fds=[fd],
                              stdout=subprocess.DEVNULL, start_new_session=True)
    sock.close()  # the server holds its own copy; requests wait in the backlog until it serves them
    try:
        httpx.get(url + "/api/live", timeout=30).raise_for_status()
    except BaseException as exc:  # Ctrl-C while it starts too: the server is in its own session
        server.terminate()
        server.wait(30)
        if isinstance(exc, httpx.HTTPError):
            raise RuntimeError(f"the dashboard did not start at {url} (exit code {server.returncode}): {exc}") from None
        raise
    return server, url


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m opto_dashboard.demo",
        description="Start opto-dashboard and feed it a demo workload until Ctrl-C. Other options go to opto-dashboard.",
    )
    parser.add_argument("--connect", metavar="URL", help="feed the dashboard already running at URL instead of starting one")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve the dashboard on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to serve the dashboard on (default 8765); the demo stops if it is taken")
    args, rest = parser.parse_known_args(argv)
    server = None
    if args.connect:
        url = args.connect
    else:
        try:
            server, url = _start_dashboard(args.host, args.port, rest)
        except RuntimeError as exc:  # nothing was fed anywhere
            parser.exit(2, f"opto demo: {exc}\n")
        except KeyboardInterrupt:
            parser.exit(0, "OpenTrace demo stopped.\n")
    try:  # from here on, Ctrl-C at any moment flushes the spans and stops the server
        opto.configure(dashboard=url, service_name="opto-demo")
        logging.getLogger("asyncio").setLevel(logging.ERROR)  # the debug agent's slow steps show in the dashboard instead
        print(f"OpenTrace demo: open {url}/ in a browser. Ctrl-C stops.", flush=True)
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
