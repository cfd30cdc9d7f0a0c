"""Capture never changes the app: hostile arguments, results and exceptions pass through every
decorator exactly as they would untraced, and capture's cost does not grow with the value."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

import opto
from opto.telemetry import semconv
import opto._core.capture as _capture
from opto._core.capture import safe_repr


# Hypothesis keeps caches (constants found in the source) in a folder of its own: a temporary one,
# set before any test of this module is collected and removed after the last.
_HYPOTHESIS_HOME = Path(tempfile.mkdtemp(prefix="opto-hypothesis-"))
set_hypothesis_home_dir(_HYPOTHESIS_HOME)


@pytest.fixture(autouse=True, scope="module")
def _hypothesis_home() -> Iterator[None]:
    yield
    set_hypothesis_home_dir(None)
    shutil.rmtree(_HYPOTHESIS_HOME, ignore_errors=True)


class Boom(Exception):
    """What every hostile method raises."""


def _boom(*_: object, **__: object) -> Any:
    raise Boom("hostile")


class BadRepr:
    __repr__ = _boom


class ReprNotStr:
    def __repr__(self) -> Any:
        return 5


class BadDict(dict[Any, Any]):
    __iter__ = items = keys = values = __len__ = __repr__ = _boom


class BadMapping(Mapping[Any, Any]):
    __getitem__ = __iter__ = __len__ = __repr__ = _boom


class BadList(list[Any]):
    __iter__ = __len__ = __getitem__ = __repr__ = _boom


class BadTuple(tuple[Any, ...]):
    __iter__ = __len__ = __getitem__ = __repr__ = _boom


class BadSet(set[Any]):
    __iter__ = __len__ = __repr__ = _boom


class BadStr(str):
    __getitem__ = __repr__ = __str__ = __len__ = __iter__ = _boom


class BadBytes(bytes):
    __getitem__ = __repr__ = __len__ = _boom


class BadClass:
    """Even `isinstance` raises on it: its `__class__` is hostile."""

    @property
    def __class__(self) -> Any:  # type: ignore[override]
        raise Boom("no class")

    __repr__ = _boom


class FlakyHash:
    """Hashes once (to go into a dict), then raises."""

    def __init__(self) -> None:
        self.hashed = False

    def __hash__(self) -> int:
        if self.hashed:
            raise Boom("hash")
        self.hashed = True
        return 1

    __repr__ = _boom


class ArrayLike:
    """Looks like a numpy array: described by shape and dtype, its repr never called."""

    shape = (1000, 1000)
    dtype = "float64"
    __repr__ = _boom


class BadArray:
    @property
    def shape(self) -> Any:
        raise Boom("shape")

    dtype = "x"
    __repr__ = _boom


def _released() -> memoryview:
    view = memoryview(b"abc")
    view.release()
    return view


def _cyclic() -> list[Any]:
    cycle: list[Any] = []
    cycle.append(cycle)
    return cycle


HOSTILE: list[Callable[[], Any]] = [
    BadRepr, ReprNotStr, lambda: BadDict(a=1), BadMapping, lambda: BadList([1, 2]), lambda: BadTuple((1,)),
    lambda: BadSet({1}), lambda: BadStr("password"), lambda: BadBytes(b"xyz"), BadClass,
    lambda: {FlakyHash(): 1}, ArrayLike, BadArray, _released, _cyclic, lambda: 10**5000,
]


class BadStrError(Exception):
    __str__ = __repr__ = _boom


class BadArgsError(Exception):
    @property
    def args(self) -> Any:  # type: ignore[override]
        raise Boom("args")

    __str__ = _boom


ERRORS: list[Callable[[], BaseException]] = [
    lambda: BadStrError(), lambda: BadArgsError(), lambda: ValueError(BadRepr()),
    lambda: KeyError(BadStr("k")), lambda: RuntimeError(b"x" * 100_000), lambda: Boom(BadList([1])),
]


def recipes() -> st.SearchStrategy[Any]:
    """Plain data saying how to build a value (Hypothesis itself cannot hold the hostile objects)."""
    base = st.one_of(
        st.tuples(st.just("hostile"), st.integers(0, len(HOSTILE) - 1)),
        st.tuples(st.just("plain"), st.one_of(st.integers(), st.text(max_size=20), st.binary(max_size=20), st.none(), st.floats())),
    )
    return st.recursive(
        base,
        lambda inner: st.one_of(
            st.tuples(st.sampled_from(["list", "tuple"]), st.lists(inner, max_size=4)),
            st.tuples(st.just("dict"), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
        ),
        max_leaves=8,
    )


def build(recipe: tuple[str, Any]) -> Any:
    kind, data = recipe
    if kind == "hostile":
        return HOSTILE[data]()
    if kind == "plain":
        return data
    if kind == "dict":
        return {k: build(v) for k, v in data.items()}
    items = [build(r) for r in data]
    return items if kind == "list" else tuple(items)


def _decorated(value: Any, error: BaseException | None) -> dict[str, Callable[..., Any]]:
    """The same body under each decorator: it returns its argument or raises `error`.

    (Not `async_trace(debug=True)`: it turns on asyncio's debug mode, whose own task reprs are not
    hostile-proof; the sync decorator's debug mode stands for the SDK's debug logging.)"""

    def body(arg: Any, *rest: Any, **named: Any) -> Any:
        if error is not None:
            raise error
        return arg

    async def abody(arg: Any, *rest: Any, **named: Any) -> Any:
        return body(arg, *rest, **named)

    async def stream(arg: Any, *rest: Any, **named: Any) -> AsyncIterator[Any]:
        yield body(arg, *rest, **named)

    return {
        "untraced": abody,
        "trace": lambda *a, **k: _as_coroutine(opto.trace(body), *a, **k),
        "trace_debug": lambda *a, **k: _as_coroutine(opto.trace(debug=True)(body), *a, **k),
        "async_trace": opto.trace.async_trace(abody),
        "async_trace_policy": opto.trace.async_trace(timeout=60, retry_attempts=1)(abody),
        "async_stream": lambda *a, **k: _first(opto.trace.async_stream(stream), *a, **k),
        "in_context": lambda *a, **k: _in_context(opto.trace.async_trace(abody), *a, **k),
    }


async def _as_coroutine(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


async def _first(fn: Callable[..., AsyncIterator[Any]], *args: Any, **kwargs: Any) -> Any:
    async for item in fn(*args, **kwargs):
        return item


async def _in_context(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    async with opto.trace.AsyncTraceContext(max_concurrent=2):
        return await fn(*args, **kwargs)


async def _outcomes(value: Any, error: BaseException | None, outcomes: dict[str, tuple[str, Any]]) -> None:
    """Fill `outcomes` (a task's own result would be repr'd by asyncio, which hostile values break)."""
    for name, fn in _decorated(value, error).items():
        try:
            outcomes[name] = ("returned", await fn(value, value, 1, key=value, password=value))
        except BaseException as exc:
            outcomes[name] = ("raised", exc)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(recipe=recipes(), error_index=st.none() | st.integers(0, len(ERRORS) - 1))
def test_the_app_sees_exactly_what_it_would_untraced(recipe: tuple[str, Any], error_index: int | None) -> None:
    """Whatever the argument and exception, each decorator returns the very object (or raises the
    very exception) the untraced function does."""
    value = build(recipe)
    error = None if error_index is None else ERRORS[error_index]()
    outcomes: dict[str, tuple[str, Any]] = {}
    asyncio.run(_outcomes(value, error, outcomes))
    untraced = outcomes.pop("untraced")
    for name, (how, what) in outcomes.items():
        assert how == untraced[0], name
        assert what is untraced[1], name


@pytest.mark.parametrize("make", HOSTILE, ids=lambda make: getattr(make, "__name__", "lambda"))
def test_safe_repr_never_raises_and_keeps_the_limit(make: Callable[[], Any]) -> None:
    errors: list[str] = []
    text = safe_repr(make(), 40, errors)
    assert isinstance(text, str) and len(text) <= 40


async def test_what_capture_could_not_do_is_on_the_span(spans: Any) -> None:
    @opto.trace.async_trace
    async def echo(arg: Any) -> Any:
        return arg

    value = BadRepr()
    assert await echo(value) is value
    attrs = spans.one(echo.__qualname__).attributes
    assert attrs[f"{semconv.ARG_PREFIX}arg"] == "<BadRepr repr failed: Boom>"
    error = attrs[semconv.CAPTURE_ERROR]
    assert f"{semconv.ARG_PREFIX}arg: BadRepr repr failed: Boom" in error
    assert f"{semconv.RESULT}: BadRepr repr failed: Boom" in error


async def test_an_exception_whose_str_raises_reaches_the_caller_as_itself(spans: Any) -> None:
    error = BadStrError()

    @opto.trace.async_trace
    async def fail() -> None:
        raise error

    with pytest.raises(BadStrError) as raised:
        await fail()
    assert raised.value is error
    span = spans.one(fail.__qualname__)
    assert span.attributes[semconv.OUTCOME] == semconv.OUTCOME_ERROR
    assert "BadStrError.__str__ failed: Boom" in span.attributes[semconv.CAPTURE_ERROR]
    event = next(e for e in span.events if e.name == "exception")
    assert event.attributes[semconv.EXCEPTION_MESSAGE] == "<BadStrError.__str__ failed: Boom>"
    assert "BadStrError" in event.attributes[semconv.EXCEPTION_STACKTRACE]


def test_a_huge_exception_message_is_cut() -> None:
    text, failed = _capture.exception_text(ValueError("x" * 1_000_000), 100)
    assert failed is None and len(text) == 100 and text.startswith("xxx")


def test_a_slow_repr_is_skipped_for_its_type_from_then_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over budget once (here a budget of zero), the type's `__repr__` is not called again."""
    calls = []

    class Slow:
        def __repr__(self) -> str:
            calls.append(1)
            return "slow"

    monkeypatch.setattr(_capture, "REPR_BUDGET_S", 0.0)
    monkeypatch.setattr(_capture, "_SLOW_TYPES", set())
    errors: list[str] = []
    assert safe_repr(Slow(), 100, errors) == "slow"
    assert "Slow.__repr__ took over" in errors[0]
    assert safe_repr(Slow()).endswith(".Slow object>") and len(calls) == 1


def test_an_array_is_described_by_shape_but_a_scalar_by_its_value() -> None:
    """numpy-like arrays are not printed; a 0-d one (as numpy scalars are) reads as its repr."""

    class Scalar(float):
        shape = ()
        dtype = "float64"

    assert safe_repr(ArrayLike()) == "<ArrayLike shape=(1000, 1000) dtype=float64>"
    assert safe_repr(Scalar(0.5)) == "0.5"


def _big_values() -> Iterator[tuple[str, Any]]:
    yield "bytes", b"\x00" * 50_000_000
    yield "bytearray", bytearray(20_000_000)
    yield "memoryview", memoryview(b"\x01" * 20_000_000)
    yield "str", "y" * 50_000_000
    yield "set", set(range(1_000_000))
    yield "frozenset", frozenset(range(1_000_000))
    yield "list", list(range(1_000_000))
    yield "dict", dict.fromkeys(range(1_000_000))
    yield "nested", [[list(range(1_000_000))]]
    yield "int", 7**2_000_000
    yield "array", ArrayLike()


@pytest.mark.parametrize(("kind", "value"), list(_big_values()), ids=[kind for kind, _ in _big_values()])
def test_capture_memory_does_not_grow_with_the_value(kind: str, value: Any) -> None:
    """Whatever the size, capture allocates about `limit` characters' worth, not the value's size."""
    tracemalloc.start()
    try:
        text = safe_repr(value, 1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(text) <= 1000
    assert peak < 200_000, f"{kind}: {peak} bytes"


class _LyingClassError(Exception):
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise RuntimeError("hostile __class__")


class _HostileMeta(type):
    def __getattribute__(cls, name: str) -> Any:
        if name in ("__qualname__", "__module__"):
            raise RuntimeError(f"hostile {name}")
        return type.__getattribute__(cls, name)


class _HostileMetaError(Exception, metaclass=_HostileMeta):
    pass


@pytest.mark.parametrize("make", [_LyingClassError, _HostileMetaError], ids=["__class__ raises", "metaclass raises"])
async def test_an_exception_whose_type_is_hostile_reaches_the_caller_as_itself(make: type[Exception], spans: Any) -> None:
    """Its outcome, retry check and exception event read the type past `__class__` and the metaclass."""

    @opto.trace
    def sync(e: BaseException) -> None:
        raise e

    @opto.trace.async_trace(retry_attempts=1, retry_delay=0.0)
    async def retried(e: BaseException) -> None:
        raise e

    for call in (sync, retried):
        error = make()
        with pytest.raises(Exception) as raised:
            result = call(error)
            if asyncio.iscoroutine(result):
                await result
        assert raised.value is error
    for span in spans.all():
        assert span.attributes[semconv.ERROR_TYPE] == type.__dict__["__qualname__"].__get__(make)
        assert span.attributes[semconv.OUTCOME] == semconv.OUTCOME_ERROR
