"""The demo's workload: programs from the asynchronous-execution page that give every dashboard page something to show.

A trip planner fanning out to nested model calls (retried after connection resets, rate limits and
timeouts, a few failing or timing out for good), a producer/consumer pipeline, a batch run, a
stream, a parallel context, a debug agent with a blocking step, a live `@trace.optimize` prompt
search, and at the start a nightly batch of a few thousand spans. `demo.py` runs it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

import opto
from opto.trace import AsyncBatchProcessor, AsyncMetrics, AsyncQueue, AsyncTraceContext

__all__ = ["workload"]

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
