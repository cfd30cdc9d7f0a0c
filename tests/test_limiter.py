"""One limit for the whole process: `@async_trace(max_concurrent=N)` and an AsyncTraceContext's
limit hold across event loops run one after another and across loops in several threads."""

from __future__ import annotations

import asyncio
import threading

import opto


def test_a_limit_outlives_the_loop_it_was_first_used_on(spans) -> None:
    @opto.trace(max_concurrent=1)
    async def one_at_a_time(i: int) -> int:
        await asyncio.sleep(0.001)
        return i

    async def contend() -> list[int]:
        return list(await asyncio.gather(*(one_at_a_time(i) for i in range(4))))

    assert asyncio.run(contend()) == [0, 1, 2, 3]
    assert asyncio.run(contend()) == [0, 1, 2, 3]  # a new loop: the slots' waiters live on it
    assert len(spans.named(one_at_a_time.__qualname__)) == 8


def test_a_limit_holds_across_loops_in_several_threads(spans) -> None:
    lock = threading.Lock()
    running = peak = 0
    both_waiting = threading.Barrier(2)

    @opto.trace(max_concurrent=2)
    async def shared(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        await asyncio.sleep(0.002)
        with lock:
            running -= 1
        return i

    results: dict[str, list[int]] = {}

    def worker(name: str) -> None:
        async def main() -> list[int]:
            both_waiting.wait(5)  # both loops run their calls at the same time
            return list(await asyncio.gather(*(shared(i) for i in range(10))))

        results[name] = asyncio.run(main())

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {"a": list(range(10)), "b": list(range(10))}
    assert peak == 2, "the two loops' calls shared the function's two slots"
    assert len(spans.named(shared.__qualname__)) == 20


def test_a_waiter_cancelled_as_its_slot_is_handed_over_passes_the_slot_on(spans) -> None:
    tasks: dict[str, asyncio.Task[None]] = {}

    @opto.trace(max_concurrent=1)
    async def slot(name: str) -> None:
        await asyncio.sleep(0)
        if name == "first":
            tasks["second"].cancel()  # cancelled while waiting, just before the slot is handed to it

    async def main() -> None:
        for name in ("first", "second", "third"):
            tasks[name] = asyncio.create_task(slot(name))
        await asyncio.wait_for(asyncio.gather(*tasks.values(), return_exceptions=True), 5)
        assert tasks["second"].cancelled() and tasks["third"].done() and not tasks["third"].cancelled()

    asyncio.run(main())
    assert sorted(s.attributes["opto.outcome"] for s in spans.named(slot.__qualname__)) == ["cancelled", "ok", "ok"]
