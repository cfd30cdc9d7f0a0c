"""Capture of arguments and results: the builtin-repr shortcut agrees with the careful walk, masks and limits hold."""

from __future__ import annotations

import asyncio

import pytest

import opto
from opto.telemetry import _current, semconv
from opto._core.capture import MASK, _walk, safe_repr


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "it's \"quoted\"\n",
        42,
        -1.5,
        True,
        None,
        {"query": "what is tracing?", "k": 3},
        {"a": 1, "b": None, "c": 2.5},
        [1, "two", 3.0],
        ("one",),
        (1, 2),
        {},
        [],
    ],
    ids=repr,
)
def test_the_shortcut_reads_as_the_careful_walk(value: object) -> None:
    """Small containers of scalars and short strings get the builtin repr, which is what the walk writes.

    The first call may take the walk (a dict's keys not judged yet); the second takes the shortcut.
    """
    first = safe_repr(value)
    assert safe_repr(value) == first == _walk(value, 1000, 3, None)


def test_a_secret_key_is_masked_the_first_time_and_every_time_after() -> None:
    """A dict whose keys were never seen takes the careful walk, which masks; so does every later one."""
    for _ in range(3):
        text = safe_repr({"user": "ann", "api_key": "sk-123", "n": 1})
        assert "sk-123" not in text and MASK in text and "'ann'" in text


def test_a_secret_nested_in_a_small_dict_is_masked() -> None:
    """Only scalars take the shortcut: a nested mapping is walked, so its secrets are masked."""
    safe_repr({"outer": 1})
    text = safe_repr({"outer": {"password": "hunter2"}})
    assert "hunter2" not in text and MASK in text


def test_an_int_with_more_digits_than_fit_is_described_not_formatted() -> None:
    """An int longer than the limit (or than str() allows) is named by its size: no digits formatted."""
    huge = 10**5000
    assert safe_repr(huge) == f"<int of {huge.bit_length()} bits>"
    assert "bits>" in safe_repr({"n": huge}) and "bits>" in safe_repr([huge])


async def test_a_huge_int_argument_and_result_keep_the_call_working(spans) -> None:
    @opto.trace.async_trace
    async def square(n: int) -> int:
        return n * n

    assert await square(10**5000) == 10**10000
    attrs = spans.one(square.__qualname__).attributes
    assert attrs[f"{semconv.ARG_PREFIX}n"].endswith("bits>") and attrs[semconv.RESULT].endswith("bits>")


@pytest.mark.parametrize("limit", [8, 20, 1000])
def test_every_shape_respects_the_limit(limit: int) -> None:
    """Whatever the path, the text is at most `limit` characters."""
    for value in ("x" * 5000, "\x00" * 900, 10**200, 1e-300, {"k": "v" * 300}, list(range(500)), (("a",) * 40)):
        assert len(safe_repr(value, limit)) <= limit


def test_context_switches_take_the_contextvar_fast_path() -> None:
    """Our pinned API range keeps the runtime context that the fast attach/detach relies on."""
    assert _current.fast_path_available()


async def test_fast_attach_and_detach_keep_spans_nested(spans) -> None:
    """A traced call inside a traced call is its child; the outer context is back afterwards."""
    from opentelemetry import trace as otel_trace

    @opto.trace.async_trace
    async def inner() -> None:
        pass

    @opto.trace.async_trace
    async def outer() -> None:
        await inner()
        await asyncio.sleep(0)

    before = otel_trace.get_current_span()
    await outer()
    assert otel_trace.get_current_span() is before
    parent = spans.one(outer.__qualname__)
    assert spans.one(inner.__qualname__).parent.span_id == parent.context.span_id


async def test_a_remembered_argument_and_result_read_as_the_first_capture(spans) -> None:
    """The same str or int object again takes its remembered text; a secret-looking one never is
    remembered (masked every time), nor a str subclass or a long str, whose text is made anew."""

    class Text(str):
        def __repr__(self) -> str:
            return "Text(...)"

    @opto.trace.async_trace
    async def echo(query: object, *, k: object = 0) -> object:
        return query

    token = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    long = "x" * 300
    values: list[object] = ["what is tracing?", 7, 10**9, token, Text("sub"), long]
    for value in values + values:
        await echo(value, k=value)
    got = [(s.attributes["opto.arg.query"], s.attributes["opto.arg.k"], s.attributes[semconv.RESULT]) for s in spans.all()]
    first = [safe_repr(v) for v in values]
    assert [g[0] for g in got] == [g[1] for g in got] == [g[2] for g in got] == first + first
    assert MASK in first[3] and "eyJ" not in first[3] and first[4] == "'sub'"
