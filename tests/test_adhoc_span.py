"""opto.span as `with` and `async with`, with the SDK's outcome rules; opto.set_attributes and
opto.add_event on the current span, values masked as arguments are."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import opto
from opto._core.capture import MASK
from opto.telemetry import semconv


def test_a_span_block_is_current_and_ends_ok(spans) -> None:
    @opto.trace
    def inner() -> int:
        return 1

    with opto.span("load", user=42, ratio=0.5, admin=False, query="select 1") as s:
        assert trace.get_current_span() is s
        inner()
    load = spans.one("load")
    assert dict(load.attributes) == {"user": 42, "ratio": 0.5, "admin": False, "query": "select 1", semconv.OUTCOME: "ok"}
    assert spans.one(inner.__qualname__).parent.span_id == load.context.span_id
    assert trace.get_current_span() is not s


async def test_an_async_span_records_an_error_and_the_exception_goes_on(spans) -> None:
    with pytest.raises(KeyError):
        async with opto.span("fetch"):
            await asyncio.sleep(0)
            raise KeyError("missing")
    fetch = spans.one("fetch")
    assert fetch.attributes[semconv.OUTCOME] == "error" and fetch.attributes[semconv.ERROR_TYPE] == "KeyError"
    assert fetch.status.status_code is StatusCode.ERROR
    assert [e.name for e in fetch.events] == ["exception"]


async def test_a_cancelled_span_is_cancelled_not_an_error(spans) -> None:
    entered = asyncio.Event()

    async def work() -> None:
        async with opto.span("wait"):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(work())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    wait = spans.one("wait")
    assert wait.attributes[semconv.OUTCOME] == "cancelled" and wait.status.status_code is not StatusCode.ERROR
    assert [e.name for e in wait.events] == [semconv.EVENT_CANCELLED]


def test_attributes_and_events_are_masked_like_arguments(spans) -> None:
    with opto.span("call", api_key="sk-abc", header="Bearer abcdefghijklmnop"):
        opto.set_attributes(password="p", user="ann", settings={"token": "t", "region": "eu"}, big=10**100)
        opto.add_event("retrying", session_id="s", attempt=2)
    call = spans.one("call")
    attrs = call.attributes
    assert attrs["api_key"] == attrs["password"] == MASK and attrs["header"] == MASK
    assert attrs["user"] == "ann" and attrs["settings"] == "{'token': [masked], 'region': 'eu'}"
    assert attrs["big"] == repr(10**100)
    (event,) = call.events
    assert event.name == "retrying" and dict(event.attributes) == {"session_id": MASK, "attempt": 2}


async def test_set_attributes_reaches_a_traced_calls_span(spans) -> None:
    @opto.trace
    async def handler(order: int) -> None:
        opto.set_attributes(customer="c-1")

    await handler(7)
    assert spans.one(handler.__qualname__).attributes["customer"] == "c-1"


def test_with_no_span_set_attributes_and_add_event_do_nothing(spans) -> None:
    opto.set_attributes(user="ann")
    opto.add_event("nothing")
    assert spans.all() == []


def test_a_span_is_entered_once() -> None:
    block = opto.span("once")
    with block:
        pass
    with pytest.raises(RuntimeError, match="already entered"):
        with block:
            pass


@pytest.mark.parametrize("name", ["", None, 3])
def test_a_span_needs_a_name(name: object) -> None:
    with pytest.raises(TypeError, match="non-empty str"):
        opto.span(name)  # type: ignore[arg-type]


async def test_a_span_in_a_stream_its_consumer_leaves_early_ends_ok_not_error(spans) -> None:
    """GeneratorExit is how a generator learns its consumer is done: no error, as for the stream itself."""
    from contextlib import aclosing

    @opto.trace.async_stream
    async def chunks():
        with opto.span("chunk"):
            for i in range(10):
                yield i

    async with aclosing(chunks()) as stream:
        async for i in stream:
            if i == 1:
                break
    chunk = spans.one("chunk")
    assert chunk.attributes[semconv.OUTCOME] == semconv.OUTCOME_OK
    assert chunk.status.status_code != StatusCode.ERROR and not chunk.events
    assert spans.one(chunks.__qualname__).attributes[semconv.STREAM_CLOSED_EARLY] is True
