"""@opto.trace.async_stream: one span per run, current only while the generator body runs."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.trace import StatusCode

import opto
from opto.telemetry import semconv
from opto.trace import async_stream
from opto._core.scope import SCOPE, Limiter, Scope

if TYPE_CHECKING:
    from conftest import Spans, SpecPage

pytestmark = pytest.mark.usefixtures("spans")


@pytest.fixture
def detach_errors(caplog: pytest.LogCaptureFixture) -> Any:
    """Collects OpenTelemetry's "Failed to detach context" errors; the test asserts there are none."""
    caplog.set_level(logging.ERROR, logger="opentelemetry.context")

    def found() -> list[str]:
        return [r.getMessage() for r in caplog.records if "Failed to detach context" in r.getMessage()]

    return found


def only(found: list[Any]) -> Any:
    assert len(found) == 1, f"expected one span, got {[s.name for s in found]}"
    return found[0]


def current_span_id() -> int:
    return otel_trace.get_current_span().get_span_context().span_id


@async_stream
async def count(n: int) -> AsyncGenerator[int, None]:
    for i in range(n):
        await asyncio.sleep(0)
        yield i


async def test_result_is_still_an_async_generator_function() -> None:
    """The decorated function is an async generator function; @opto.trace picks async_stream for one."""

    @opto.trace
    async def gen() -> AsyncGenerator[int, None]:
        yield 1

    assert inspect.isasyncgenfunction(count)
    assert inspect.isasyncgenfunction(gen)
    assert [x async for x in gen()] == [1]


async def test_one_span_per_run_with_items_first_item_time_and_outcome(spans: Spans) -> None:
    """Exhausting the stream ends its span: ok, items yielded, time to first item, last item."""
    assert [x async for x in count(3)] == [0, 1, 2]
    span = only(spans.of("count"))
    attrs = span.attributes
    assert attrs[semconv.SPAN_KIND] == "stream"
    assert attrs[semconv.OUTCOME] == semconv.OUTCOME_OK
    assert attrs[semconv.STREAM_ITEMS] == 3
    assert attrs[semconv.STREAM_CLOSED_EARLY] is False
    assert isinstance(attrs[semconv.STREAM_FIRST_ITEM_S], float) and attrs[semconv.STREAM_FIRST_ITEM_S] >= 0
    assert attrs[semconv.RESULT] == "2"
    assert attrs[semconv.ARG_PREFIX + "n"] == "3"


async def test_no_span_until_the_first_item_is_asked_for(spans: Spans) -> None:
    """Creating a stream and closing it unstarted records nothing: the run starts at the first __anext__."""
    gen = count(3)
    await gen.aclose()
    assert spans.of("count") == []


async def test_span_is_current_only_while_the_body_runs(spans: Spans) -> None:
    """Inside the body the stream span is current; in the consumer's loop the consumer's span is."""
    seen_in_body: list[int] = []

    @async_stream
    async def gen() -> AsyncGenerator[int, None]:
        for i in range(3):
            seen_in_body.append(current_span_id())
            await asyncio.sleep(0)
            seen_in_body.append(current_span_id())
            yield i

    @opto.trace.async_trace
    async def consumer() -> None:
        mine = current_span_id()
        async for _ in gen():
            assert current_span_id() == mine
        assert current_span_id() == mine

    await consumer()
    stream, consumer_span = only(spans.of("gen")), only(spans.of("consumer"))
    assert stream.parent is not None and stream.parent.span_id == consumer_span.context.span_id
    assert set(seen_in_body) == {stream.context.span_id}


async def test_calls_inside_the_body_are_children_of_the_stream(spans: Spans) -> None:
    """A traced call made by the generator body is a child of the stream's span."""

    @opto.trace.async_trace
    async def work(i: int) -> int:
        return i * 2

    @async_stream
    async def gen() -> AsyncGenerator[int, None]:
        for i in range(2):
            yield await work(i)

    assert [x async for x in gen()] == [0, 2]
    stream = only(spans.of("gen"))
    assert {s.parent.span_id for s in spans.of("work")} == {stream.context.span_id}  # type: ignore[union-attr]


async def test_break_leaves_the_consumer_span_current_and_ends_the_stream_span(spans: Spans, detach_errors: Any) -> None:
    """After a consumer breaks, its own span is current again; the stream span ends as closed early."""
    closed = asyncio.Event()

    @async_stream
    async def gen() -> AsyncGenerator[int, None]:
        try:
            for i in range(10):
                yield i
        finally:
            closed.set()

    @opto.trace.async_trace
    async def consumer() -> None:
        mine = current_span_id()
        async for i in gen():
            if i == 1:
                break
        assert current_span_id() == mine
        async with asyncio.timeout(5):
            await closed.wait()  # the loop's async generator finalizer closes the dropped generator
        assert current_span_id() == mine

    await consumer()
    span = only(spans.of("gen"))
    assert span.attributes[semconv.OUTCOME] == semconv.OUTCOME_OK
    assert span.attributes[semconv.STREAM_CLOSED_EARLY] is True
    assert span.attributes[semconv.STREAM_ITEMS] == 2
    assert detach_errors() == []


async def test_abandoned_generator_collected_later_ends_its_span_without_detach_errors(
    spans: Spans, detach_errors: Any
) -> None:
    """A generator started in one task and garbage-collected later, from another, still ends its span cleanly."""
    closed = asyncio.Event()

    @async_stream
    async def gen() -> AsyncGenerator[int, None]:
        try:
            while True:
                yield 1
        finally:
            closed.set()

    @opto.trace.async_trace
    async def start_elsewhere() -> AsyncGenerator[int, None]:
        stream = gen()
        assert await anext(stream) == 1
        return stream

    holder = [await asyncio.create_task(start_elsewhere())]

    @opto.trace.async_trace
    async def drop_it() -> None:
        holder.clear()
        gc.collect()
        async with asyncio.timeout(5):
            await closed.wait()

    await drop_it()
    span = only(spans.of("gen"))
    assert span.attributes[semconv.STREAM_CLOSED_EARLY] is True
    assert span.parent is not None and span.parent.span_id == only(spans.of("start_elsewhere")).context.span_id
    assert detach_errors() == []


async def test_aclose_is_forwarded_and_cleanup_runs_under_the_stream_span(spans: Spans, detach_errors: Any) -> None:
    """aclose() closes the body; traced calls in its finally block are children of the stream span."""

    @opto.trace.async_trace
    async def cleanup() -> None:
        await asyncio.sleep(0)

    @async_stream
    async def gen() -> AsyncGenerator[int, None]:
        try:
            yield 1
            yield 2
        finally:
            await cleanup()

    async with aclosing(gen()) as stream:
        assert await anext(stream) == 1
    stream_span = only(spans.of("gen"))
    assert stream_span.attributes[semconv.STREAM_CLOSED_EARLY] is True
    assert only(spans.of("cleanup")).parent.span_id == stream_span.context.span_id  # type: ignore[union-attr]
    assert detach_errors() == []


async def test_asend_values_reach_the_body() -> None:
    """Values sent via asend() reach the wrapped generator unchanged."""
    received: list[Any] = []

    @async_stream
    async def echo() -> AsyncGenerator[int, str]:
        for i in range(3):
            received.append((yield i))

    gen = echo()
    assert await gen.asend(None) == 0
    assert await gen.asend("a") == 1
    assert await gen.asend("b") == 2
    with pytest.raises(StopAsyncIteration):
        await gen.asend("c")
    assert received == ["a", "b", "c"]


async def test_athrow_is_forwarded_into_the_body(spans: Spans) -> None:
    """An exception thrown in with athrow() reaches the body, which can handle it and go on."""

    @async_stream
    async def gen() -> AsyncGenerator[str, None]:
        try:
            yield "first"
        except ValueError as exc:
            yield f"handled {exc}"

    stream = gen()
    assert await anext(stream) == "first"
    assert await stream.athrow(ValueError("boom")) == "handled boom"
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert only(spans.of("gen")).attributes[semconv.OUTCOME] == semconv.OUTCOME_OK


async def test_unhandled_athrow_ends_the_span_with_error(spans: Spans) -> None:
    """An athrow() the body does not handle propagates and ends the span as an error."""
    stream = count(5)
    await anext(stream)
    with pytest.raises(KeyError):
        await stream.athrow(KeyError("x"))
    assert only(spans.of("count")).attributes[semconv.OUTCOME] == semconv.OUTCOME_ERROR


async def test_error_in_the_body_ends_the_span_and_reaches_the_consumer(spans: Spans, detach_errors: Any) -> None:
    """A body that raises ends the span with error status and the exception; the consumer sees it."""

    @async_stream
    async def gen() -> AsyncGenerator[int, None]:
        yield 1
        raise RuntimeError("broken feed")

    @opto.trace.async_trace
    async def consumer() -> None:
        mine = current_span_id()
        with pytest.raises(RuntimeError, match="broken feed"):
            async for _ in gen():
                pass
        assert current_span_id() == mine

    await consumer()
    span = only(spans.of("gen"))
    assert span.attributes[semconv.OUTCOME] == semconv.OUTCOME_ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "RuntimeError"
    assert span.attributes[semconv.STREAM_ITEMS] == 1
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]
    assert detach_errors() == []


async def test_cancelling_the_consumer_ends_the_span_as_cancelled(spans: Spans, detach_errors: Any) -> None:
    """A consumer cancelled while the body awaits: the body sees CancelledError, the span ends cancelled."""
    waiting = asyncio.Event()

    @async_stream
    async def gen() -> AsyncGenerator[int, None]:
        yield 1
        waiting.set()
        await asyncio.Event().wait()  # never set: only cancellation gets out
        yield 2

    async def consumer() -> None:
        async for _ in gen():
            pass

    task = asyncio.create_task(consumer())
    async with asyncio.timeout(5):
        await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    span = only(spans.of("gen"))
    assert span.attributes[semconv.OUTCOME] == semconv.OUTCOME_CANCELLED
    assert [e.name for e in span.events] == [semconv.EVENT_CANCELLED]
    assert detach_errors() == []


async def test_concurrent_runs_report_concurrency(spans: Spans) -> None:
    """Two runs of one stream open at once: the second span records concurrency 2."""
    first, second = count(2), count(2)
    await anext(first)
    await anext(second)
    await first.aclose()
    await second.aclose()
    assert sorted(s.attributes[semconv.CONCURRENCY] for s in spans.of("count")) == [1, 2]


async def test_capture_and_name_options(spans: Spans) -> None:
    """name, capture_args, capture_result and max_repr mean what they mean for async_trace."""

    @async_stream(name="quiet", capture_args=False, capture_result=False)
    async def quiet(secret: str) -> AsyncGenerator[str, None]:
        yield secret

    @opto.trace(max_repr=10)
    async def loud(text: str) -> AsyncGenerator[str, None]:
        yield text

    assert [x async for x in quiet("abc")] == ["abc"]
    assert [x async for x in loud("x" * 50)] == ["x" * 50]
    attrs = only(spans.of("quiet")).attributes
    assert semconv.RESULT not in attrs and semconv.ARG_PREFIX + "secret" not in attrs
    assert len(only(spans.of("loud")).attributes[semconv.RESULT]) <= 10


async def test_debug_records_the_creation_stack(spans: Spans) -> None:
    """debug=True records where the stream was iterated from, as async_trace does."""

    @async_stream(debug=True)
    async def gen() -> AsyncGenerator[int, None]:
        yield 1

    assert [x async for x in gen()] == [1]
    assert "test_stream.py" in only(spans.of("gen")).attributes[semconv.DEBUG_CREATION_STACK]


def test_async_stream_on_a_coroutine_function_names_async_trace() -> None:
    async def not_a_stream() -> int:
        return 1

    with pytest.raises(TypeError, match="async_trace"):
        async_stream(not_a_stream)


def test_async_stream_on_a_plain_function_names_opto_trace() -> None:
    with pytest.raises(TypeError, match=r"@opto\.trace"):
        async_stream(len)


@pytest.mark.parametrize(
    ("option", "value", "why"),
    [
        ("timeout", 1.0, "asyncio.timeout"),
        ("loop", None, "loop of whoever iterates it"),
        ("retry_attempts", 3, "cannot be taken back"),
        ("retry_on", ValueError, "cannot be taken back"),
    ],
    ids=["timeout", "loop", "retry_attempts", "retry_on"],
)
def test_options_without_meaning_for_a_stream_are_refused(option: str, value: Any, why: str) -> None:
    """@opto.trace(timeout=..., loop=..., retry_...) on an async generator raises TypeError saying why."""

    async def gen() -> AsyncGenerator[int, None]:
        yield 1

    with pytest.raises(TypeError, match=f"{option}= does not apply to @async_stream: .*{why}"):
        opto.trace(gen, **{option: value})


def test_unknown_options_are_refused_with_the_known_ones() -> None:
    with pytest.raises(TypeError, match="unknown option.*colour.*known: name, debug"):
        async_stream(colour="red")  # type: ignore[call-overload]


async def test_the_spec_streaming_snippet_runs_as_written(spec_page: SpecPage, spans: Spans) -> None:
    """The spec page's "Streaming Results" and "Memory Efficiency" snippets, with stand-in helpers."""
    handled: list[Any] = []

    async def chunks() -> AsyncGenerator[str, None]:
        for chunk in ("a", "b", "c"):
            yield chunk

    async def optimize_chunk(chunk: str) -> str:
        return chunk.upper()

    async def handle_result(result: Any) -> None:
        handled.append(result)

    @async_stream
    async def async_optimize_stream(dataset: list[int]) -> AsyncGenerator[int, None]:
        for item in dataset:
            yield item * 2

    namespace: dict[str, Any] = {
        "opto": opto, "data_stream": chunks(), "optimize_chunk": optimize_chunk, "handle_result": handle_result,
        "large_dataset": [1, 2, 3], "optimize": lambda item: item * 2, "process_result": handle_result,
        "async_optimize_stream": async_optimize_stream,
    }
    await spec_page.run(spec_page.block("@opto.trace.async_stream"), namespace)
    assert handled == ["A", "B", "C"]
    assert only(spans.of("streaming_optimizer")).attributes[semconv.STREAM_ITEMS] == 3

    await spec_page.run(spec_page.block("async_optimize_stream(large_dataset)"), namespace)
    await namespace["process_efficiently"]()
    assert namespace["results"] == [2, 4, 6] and handled[3:] == [2, 4, 6]


async def test_a_stream_takes_no_concurrency_slot() -> None:
    """Under a limit of one slot, the consumer's traced calls run between items, and so do the body's."""

    @opto.trace.async_trace
    async def step(i: int) -> int:
        return i

    @async_stream
    async def gen() -> AsyncGenerator[int, None]:
        for i in range(3):
            yield await step(i)

    token = SCOPE.set(Scope(limiters=(Limiter(1),)))
    try:
        async with asyncio.timeout(5):
            assert [await step(x) async for x in gen()] == [0, 1, 2]
    finally:
        SCOPE.reset(token)


async def test_a_span_the_body_holds_open_across_its_yields_stays_its_own(spans) -> None:
    """The body's `with start_as_current_span(...)` around two yields parents what the body does after
    the first yield too, and the consumer never sees that span between items."""
    tracer = otel_trace.get_tracer("user")

    @opto.trace.async_trace
    async def leaf(i: int) -> int:
        return i

    @opto.trace.async_stream
    async def body() -> AsyncGenerator[int, None]:
        with tracer.start_as_current_span("held"):
            yield await leaf(0)
            yield await leaf(1)

    seen = []
    with tracer.start_as_current_span("consumer") as consumer:
        async for _ in body():
            seen.append(otel_trace.get_current_span() is consumer)
    assert seen == [True, True]
    held = spans.one("held")
    parents = [s.parent.span_id for s in spans.named(leaf.__qualname__)]
    assert parents == [held.context.span_id] * 2


def test_streams_still_open_when_asyncio_run_ends_are_closed_once_and_end_ok(spans, caplog: pytest.LogCaptureFixture) -> None:
    """asyncio.run closes the generators it knows at its end: only the traced one, which closes the
    body, so the two are never closed at once ("aclose(): asynchronous generator is already running")."""
    kept: list[Any] = []
    cleaned: list[int] = []

    @opto.trace.async_stream
    async def ticks(n: int) -> AsyncGenerator[int, None]:
        try:
            for i in range(100):
                yield i
        finally:
            await asyncio.sleep(0)  # an async cleanup, as closing a connection is
            cleaned.append(n)

    async def main() -> None:
        for n in range(5):
            stream = ticks(n)
            kept.append(stream)  # still referenced when asyncio.run ends
            async for i in stream:
                if i == 1:
                    break

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    assert sorted(cleaned) == [0, 1, 2, 3, 4]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    runs = spans.named(ticks.__qualname__)
    assert [(s.attributes[semconv.OUTCOME], s.attributes[semconv.STREAM_CLOSED_EARLY]) for s in runs] == [("ok", True)] * 5
