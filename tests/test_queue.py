"""AsyncQueue: the asyncio.Queue API, close() and one sentinel for every consumer, per-item telemetry."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
import opto
from opto.telemetry import semconv
from opto.trace import AsyncQueue, QueueClosed

if TYPE_CHECKING:
    from conftest import MetricPoints, Spans, SpecPage


async def all_blocked() -> None:
    """Let every other task run until it blocks (a few loop turns)."""
    for _ in range(5):
        await asyncio.sleep(0)


# --- the asyncio.Queue API ------------------------------------------------------------------------


async def test_fifo_and_the_size_methods() -> None:
    queue: AsyncQueue[int] = AsyncQueue(maxsize=2)
    assert queue.empty() and not queue.full() and queue.qsize() == 0 and queue.maxsize == 2
    await queue.put(1)
    queue.put_nowait(2)
    assert queue.full() and queue.qsize() == 2
    assert await queue.get() == 1
    assert queue.get_nowait() == 2
    assert queue.empty()


async def test_nowait_forms_raise_asyncio_full_and_empty_naming_the_waiting_form() -> None:
    queue: AsyncQueue[int] = AsyncQueue(maxsize=1)
    with pytest.raises(asyncio.QueueEmpty, match=r"await get\(\)"):
        queue.get_nowait()
    queue.put_nowait(1)
    with pytest.raises(asyncio.QueueFull, match=r"await put\(\)"):
        queue.put_nowait(2)


async def test_put_waits_for_room_and_get_waits_for_an_item() -> None:
    queue: AsyncQueue[str] = AsyncQueue(maxsize=1)
    await queue.put("a")
    putter = asyncio.create_task(queue.put("b"))
    await all_blocked()
    assert not putter.done() and queue.statistics().waiting_putters == 1
    assert await queue.get() == "a"
    async with asyncio.timeout(5):
        await putter
    assert await queue.get() == "b"
    getter = asyncio.create_task(queue.get())
    await all_blocked()
    assert queue.statistics().waiting_getters == 1
    await queue.put("c")
    async with asyncio.timeout(5):
        assert await getter == "c"


async def test_join_waits_for_task_done_of_every_item() -> None:
    queue: AsyncQueue[int] = AsyncQueue()
    for i in range(3):
        queue.put_nowait(i)
    joined = asyncio.create_task(queue.join())
    for _ in range(3):
        await queue.get()
        await all_blocked()
        assert not joined.done()
        queue.task_done()
    async with asyncio.timeout(5):
        await joined


async def test_task_done_too_often_raises_value_error_mentioning_the_sentinel() -> None:
    queue: AsyncQueue[int | None] = AsyncQueue()
    await queue.put(None)
    assert await queue.get() is None
    with pytest.raises(ValueError, match="sentinel is not an item"):
        queue.task_done()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [({"maxsize": -1}, ValueError, "maxsize must be an int >= 0"), ({"maxsize": 1.5}, ValueError, "maxsize"),
     ({"name": ""}, TypeError, "non-empty str")],
    ids=["negative-maxsize", "float-maxsize", "empty-name"],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        AsyncQueue(**kwargs)


def test_queues_get_unique_default_names() -> None:
    first, second = AsyncQueue(), AsyncQueue()
    assert first.name != second.name and first.name.startswith("queue-")
    assert AsyncQueue(name="jobs").name == "jobs"


# --- sentinel and close() -------------------------------------------------------------------------


async def test_one_sentinel_stops_every_consumer_after_the_items() -> None:
    """One None stops any number of consumers, blocked or not, once what was put before it is taken."""
    queue: AsyncQueue[int | None] = AsyncQueue(maxsize=2)
    got: list[int] = []

    async def consumer() -> None:
        while (item := await queue.get()) is not None:
            got.append(item)

    consumers = [asyncio.create_task(consumer()) for _ in range(4)]
    for i in range(10):
        await queue.put(i)
    await queue.put(None)
    async with asyncio.timeout(5):
        await asyncio.gather(*consumers)
    assert sorted(got) == list(range(10))
    assert queue.closed and queue.get_nowait() is None


async def test_put_nowait_of_the_sentinel_closes_too() -> None:
    queue: AsyncQueue[int | None] = AsyncQueue(maxsize=1)
    queue.put_nowait(1)
    queue.put_nowait(None)  # needs no room
    assert queue.closed and queue.qsize() == 1
    assert queue.get_nowait() == 1 and queue.get_nowait() is None


async def test_close_wakes_blocked_consumers_and_refuses_further_puts() -> None:
    queue: AsyncQueue[int] = AsyncQueue(name="jobs")
    getters = [asyncio.create_task(queue.get()) for _ in range(3)]
    await all_blocked()
    queue.close()
    queue.close()  # idempotent
    async with asyncio.timeout(5):
        assert await asyncio.gather(*getters) == [None, None, None]
    with pytest.raises(QueueClosed, match="'jobs' is closed.*after every producer is done"):
        await queue.put(1)
    with pytest.raises(QueueClosed):
        queue.put_nowait(1)
    await queue.put(None)  # a second sentinel (one per consumer, the asyncio habit) is harmless


async def test_a_producer_blocked_on_a_full_queue_gets_queue_closed_on_close() -> None:
    queue: AsyncQueue[int] = AsyncQueue(maxsize=1)
    await queue.put(1)
    blocked = asyncio.create_task(queue.put(2))
    await all_blocked()
    queue.close()
    with pytest.raises(QueueClosed):
        async with asyncio.timeout(5):
            await blocked
    assert await queue.get() == 1 and await queue.get() is None


async def test_a_custom_sentinel() -> None:
    done = object()
    queue: AsyncQueue[Any] = AsyncQueue(sentinel=done)
    await queue.put(None)  # an ordinary item now
    await queue.put(done)
    assert await queue.get() is None
    assert await queue.get() is done and await queue.get() is done


async def test_no_sentinel_makes_every_value_an_item_and_a_drained_closed_queue_raise() -> None:
    queue: AsyncQueue[int | None] = AsyncQueue(sentinel=AsyncQueue.NO_SENTINEL)
    await queue.put(None)
    assert not queue.closed
    getter = asyncio.create_task(queue.get())
    assert await getter is None
    waiting = asyncio.create_task(queue.get())
    await all_blocked()
    queue.close()
    with pytest.raises(QueueClosed, match="closed and drained"):
        async with asyncio.timeout(5):
            await waiting
    with pytest.raises(QueueClosed):
        queue.get_nowait()


# --- cancellation ---------------------------------------------------------------------------------


async def test_a_cancelled_getter_loses_no_item() -> None:
    queue: AsyncQueue[str] = AsyncQueue()
    cancelled = asyncio.create_task(queue.get())
    waiting = asyncio.create_task(queue.get())
    await all_blocked()
    queue.put_nowait("item")  # wakes the first getter...
    cancelled.cancel()  # ...which is cancelled before it runs, and passes the wake-up on
    async with asyncio.timeout(5):
        assert await waiting == "item"
    assert cancelled.cancelled()
    assert queue.statistics().waiting_getters == 0


async def test_a_cancelled_putter_puts_nothing_and_frees_its_turn() -> None:
    queue: AsyncQueue[str] = AsyncQueue(maxsize=1)
    await queue.put("a")
    cancelled = asyncio.create_task(queue.put("never"))
    waiting = asyncio.create_task(queue.put("b"))
    await all_blocked()
    assert await queue.get() == "a"  # wakes the first putter...
    cancelled.cancel()  # ...which is cancelled before it runs, and passes the wake-up on
    async with asyncio.timeout(5):
        await waiting
    assert await queue.get() == "b" and queue.empty()


# --- telemetry ------------------------------------------------------------------------------------


async def test_consumer_work_links_to_the_producer_span_with_the_wait(spans: Spans) -> None:
    """A traced call a consumer starts after get() links to the producer's span; nested calls don't."""
    queue: AsyncQueue[int | None] = AsyncQueue(name="work")

    @opto.trace.async_trace
    async def produce() -> None:
        for i in range(3):
            await queue.put(i)
        await queue.put(None)

    @opto.trace.async_trace
    async def nested(i: int) -> int:
        return i

    @opto.trace.async_trace
    async def handle(i: int) -> int:
        return await nested(i)

    @opto.trace.async_trace
    async def consume() -> None:
        while (item := await queue.get()) is not None:
            await handle(item)
        await handle(-1)  # after the sentinel: no item, no link

    await asyncio.gather(produce(), consume())
    producer = spans.of("produce")[0]
    handled = {s.attributes[semconv.ARG_PREFIX + "i"]: s for s in spans.of("handle")}
    for i in ("0", "1", "2"):
        (link,) = handled[i].links
        assert link.context.span_id == producer.context.span_id
        assert link.attributes[semconv.QUEUE_NAME] == "work"
        assert link.attributes[semconv.QUEUE_WAIT_S] >= 0
    assert handled["-1"].links == ()
    assert all(s.links == () for s in spans.of("nested"))
    assert spans.of("consume")[0].links == ()


async def test_an_untraced_consumer_links_its_top_level_traced_calls(spans: Spans) -> None:
    queue: AsyncQueue[int] = AsyncQueue()

    @opto.trace.async_trace
    async def produce() -> None:
        await queue.put(1)

    @opto.trace.async_trace
    async def handle(i: int) -> int:
        return i

    await produce()
    await handle(await queue.get())
    assert spans.of("handle")[0].links[0].context.span_id == spans.of("produce")[0].context.span_id


async def test_items_put_outside_any_span_carry_no_link(spans: Spans) -> None:
    queue: AsyncQueue[int] = AsyncQueue()

    @opto.trace.async_trace
    async def handle(i: int) -> int:
        return i

    await queue.put(1)
    await handle(await queue.get())
    assert spans.of("handle")[0].links == ()


async def test_backpressure_is_recorded_on_the_producer_span_and_as_a_metric(
    spans: Spans, metric_points: MetricPoints
) -> None:
    queue: AsyncQueue[int] = AsyncQueue(maxsize=1, name="narrow")

    @opto.trace.async_trace
    async def produce() -> None:
        await queue.put(1)
        await queue.put(2)  # blocks until the consumer takes 1

    producer = asyncio.create_task(produce())
    await all_blocked()
    assert await queue.get() == 1
    async with asyncio.timeout(5):
        await producer
    (event,) = [e for e in spans.of("produce")[0].events if e.name == semconv.EVENT_QUEUE_BLOCKED]
    assert event.attributes[semconv.QUEUE_NAME] == "narrow" and event.attributes[semconv.QUEUE_BLOCKED_S] > 0
    (blocked,) = metric_points(semconv.METRIC_QUEUE_PUT_BLOCKED, {semconv.QUEUE_NAME: "narrow"})
    assert blocked.count == 1 and blocked.min > 0  # only the put that waited


async def test_wait_depth_and_roles_go_out_as_metrics(metric_points: MetricPoints) -> None:
    queue: AsyncQueue[int | None] = AsyncQueue(maxsize=5, name="metered")
    for i in range(3):
        await queue.put(i)
    (depth,) = metric_points(semconv.METRIC_QUEUE_DEPTH, {semconv.QUEUE_NAME: "metered"})
    assert depth.value == 3 and depth.attributes[semconv.QUEUE_MAXSIZE] == 5

    async def consumer() -> None:
        while await queue.get() is not None:
            await asyncio.sleep(0)  # let the other consumer take the next item

    consumers = [asyncio.create_task(consumer()) for _ in range(2)]
    await all_blocked()
    (depth,) = metric_points(semconv.METRIC_QUEUE_DEPTH, {semconv.QUEUE_NAME: "metered"})
    assert depth.value == 0
    (wait,) = metric_points(semconv.METRIC_QUEUE_WAIT, {semconv.QUEUE_NAME: "metered"})
    assert wait.count == 3 and 0.001 in wait.explicit_bounds  # second-scale buckets
    (producers,) = metric_points(semconv.METRIC_QUEUE_PRODUCERS, {semconv.QUEUE_NAME: "metered"})
    (live_consumers,) = metric_points(semconv.METRIC_QUEUE_CONSUMERS, {semconv.QUEUE_NAME: "metered"})
    assert producers.value == 1 and live_consumers.value == 2  # the test's task put; two tasks got
    stats = queue.statistics()
    assert (stats.producers, stats.consumers, stats.size) == (1, 2, 0)
    await queue.put(None)
    async with asyncio.timeout(5):
        await asyncio.gather(*consumers)
    (live_consumers,) = metric_points(semconv.METRIC_QUEUE_CONSUMERS, {semconv.QUEUE_NAME: "metered"})
    assert live_consumers.value == 0 and queue.statistics().consumers == 0


# --- the spec page --------------------------------------------------------------------------------


async def test_the_spec_producer_consumer_snippet_runs_as_written(spec_page: SpecPage, spans: Spans) -> None:
    """Two consumers, one sentinel: main() ends, every task is processed, each linked to the producer."""
    processed: list[int] = []

    @opto.trace.async_trace
    async def optimize_task(task: dict[str, int]) -> int:
        await asyncio.sleep(0)
        return task["id"]

    async def process_result(result: int) -> None:
        processed.append(result)

    namespace: dict[str, Any] = {
        "create_optimization_task": lambda i: {"id": i}, "optimize_task": optimize_task, "process_result": process_result,
    }
    await spec_page.run(spec_page.block("from opto.trace import AsyncQueue"), namespace)

    @opto.trace.async_trace
    async def app() -> None:
        await namespace["main"]()

    async with asyncio.timeout(10):
        await app()
    assert sorted(processed) == list(range(100))
    app_span = spans.of("app")[0]
    optimized = spans.of("optimize_task")
    assert len(optimized) == 100
    assert all(s.links[0].context.span_id == app_span.context.span_id for s in optimized)
