"""Under trio (anyio's trio backend), with an SDK provider installed, decorated calls run and are
traced: the asyncio-only parts (retries' sleeps, timeouts, limits) fall back to plain tracing."""

from __future__ import annotations

import anyio
import pytest
import trio

import opto
from opto.telemetry import semconv


def test_a_decorated_program_runs_under_trio(spans) -> None:
    @opto.trace
    async def fetch(url: str) -> str:
        await trio.sleep(0)
        return url.upper()

    @opto.trace(retry_attempts=2, timeout=5, max_concurrent=2)
    async def with_policy(x: int) -> int:
        return x * 2

    @opto.trace
    def parse(text: str) -> int:
        return len(text)

    @opto.trace
    async def lines(n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            yield i

    async def main() -> list[object]:
        results: list[object] = []
        async with anyio.create_task_group() as tg:
            async def one(i: int) -> None:
                results.append(await fetch(f"u{i}"))
            for i in range(3):
                tg.start_soon(one, i)
        async with opto.span("block"):
            results.append(await with_policy(21))
            results.append(parse("abc"))
            results.append([i async for i in lines(2)])
        return results

    results = anyio.run(main, backend="trio")
    assert sorted(map(str, results)) == sorted(["U0", "U1", "U2", "42", "3", "[0, 1]"])
    assert len(spans.named(fetch.__qualname__)) == 3
    assert all(s.attributes[semconv.OUTCOME] == "ok" for s in spans.all())
    policy = spans.one(with_policy.__qualname__)
    assert "not under asyncio" in policy.attributes[semconv.POLICY_SKIPPED]
    assert spans.one(with_policy.__qualname__).parent.span_id == spans.one("block").context.span_id
    assert len(spans.named(lines.__qualname__)) == 1


def test_trio_cancellation_reads_cancelled(spans) -> None:
    @opto.trace
    async def slow() -> None:
        await trio.sleep_forever()

    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()  # the call's first checkpoint raises trio.Cancelled
            await slow()

    trio.run(main)
    assert spans.one(slow.__qualname__).attributes[semconv.OUTCOME] == "cancelled"


def test_an_error_under_trio_reaches_the_caller_and_reads_error(spans) -> None:
    @opto.trace
    async def broken() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        trio.run(broken)
    assert spans.one(broken.__qualname__).attributes[semconv.OUTCOME] == "error"


def test_an_async_trace_context_block_runs_under_trio(spans) -> None:
    @opto.trace
    async def step(i: int) -> int:
        return i

    async def main() -> int:
        async with opto.trace.AsyncTraceContext(max_concurrent=1, timeout=5, name="batch"):
            return await step(1) + await step(2)

    assert trio.run(main) == 3
    batch = spans.one("batch")
    for call in spans.named(step.__qualname__):
        assert call.parent.span_id == batch.context.span_id and semconv.POLICY_SKIPPED in call.attributes
