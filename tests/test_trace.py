"""`@opto.trace` and `@opto.trace.async_trace`: spans, outcomes, retries, timeouts, nesting, capture."""

from __future__ import annotations

import asyncio
import inspect
import typing

import pytest
from opentelemetry.trace import StatusCode

import opto
from opto.telemetry import semconv
from opto.telemetry._attributes import fast_path_available
from opto.telemetry._facade import TRACER
from opto.trace import RetryPolicy
from opto._core.capture import MASK, safe_repr



# --- the package surface ------------------------------------------------------------------


def test_trace_is_reachable_every_documented_way() -> None:
    """`opto.trace` works without an extra import, as `from opto import trace`, and as a package."""
    import opto as fresh
    from opto import trace
    from opto.trace import AsyncBatchProcessor, AsyncMetrics, AsyncQueue, AsyncTraceContext  # noqa: F401

    assert fresh.trace is trace
    assert callable(trace) and callable(trace.async_trace) and callable(trace.set_async_debug)


def test_retryable_error_carries_retry_after() -> None:
    """RetryableError keeps its message and an optional Retry-After in seconds."""
    err = opto.RetryableError("slow down", retry_after=2.5)
    assert str(err) == "slow down" and err.retry_after == 2.5
    assert opto.RetryableError("x").retry_after is None
    for bad in (-1, float("inf"), float("nan")):  # inf would sleep forever
        with pytest.raises(ValueError, match="retry_after must be a finite number"):
            opto.RetryableError("x", retry_after=bad)


# --- decorating ---------------------------------------------------------------------------


async def test_async_trace_keeps_the_function_identity() -> None:
    """The wrapper is a real coroutine function with the original name, doc, signature and hints."""

    async def agent(query: str, *, temperature: float = 0.2) -> str:
        """Answer a query."""
        return query

    traced = opto.trace.async_trace(agent)
    assert inspect.iscoroutinefunction(traced)
    assert traced.__name__ == "agent" and traced.__doc__ == "Answer a query."
    assert traced.__wrapped__ is agent  # type: ignore[attr-defined]
    assert inspect.signature(traced) == inspect.signature(agent)
    assert typing.get_type_hints(traced) == typing.get_type_hints(agent)
    assert await asyncio.create_task(traced("q")) == "q"
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(traced("tg"))
    assert task.result() == "tg"


async def test_bare_and_called_forms_are_equivalent(spans) -> None:
    """`@async_trace`, `@async_trace()` and `@async_trace(name=...)` all trace."""

    @opto.trace.async_trace
    async def a() -> int:
        return 1

    @opto.trace.async_trace()
    async def b() -> int:
        return 2

    @opto.trace.async_trace(name="custom")
    async def c() -> int:
        return 3

    assert (await a(), await b(), await c()) == (1, 2, 3)
    assert {s.name for s in spans.all()} == {a.__qualname__, b.__qualname__, "custom"}


async def test_opto_trace_on_async_def_behaves_as_async_trace(spans) -> None:
    """`@opto.trace` on an `async def` gives a traced coroutine function."""

    @opto.trace
    async def agent(q: str) -> str:
        return q.upper()

    assert inspect.iscoroutinefunction(agent)
    assert await agent("x") == "X"
    assert spans.one(agent.__qualname__).attributes[semconv.OUTCOME] == "ok"


def test_sync_trace_records_a_span(spans) -> None:
    """`@opto.trace` on a plain function: one span with code location, arguments and result."""

    @opto.trace
    def double(x: int) -> int:
        return x * 2

    @opto.trace(name="named")
    def fail() -> None:
        raise KeyError("nope")

    assert double(21) == 42
    with pytest.raises(KeyError):
        fail()
    span = spans.one(double.__qualname__)
    assert span.attributes[semconv.OUTCOME] == "ok"
    assert span.attributes[semconv.RESULT] == "42"
    assert span.attributes[f"{semconv.ARG_PREFIX}x"] == "21"
    assert span.attributes[semconv.CODE_FILE_PATH] == __file__
    assert spans.one("named").attributes[semconv.OUTCOME] == "error"


def test_sync_trace_retries(spans) -> None:
    """A sync function retries RetryableError per the same policy."""
    opto.trace.set_testing(True)
    tries = []

    @opto.trace(retry_attempts=2)
    def flaky() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise opto.RetryableError("again")
        return "done"

    assert flaky() == "done"
    assert spans.one(flaky.__qualname__).attributes[semconv.ATTEMPTS] == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 1.0}, "timeout= needs an async function"),
        ({"loop": "new"}, "loop= needs an async function"),
    ],
    ids=["timeout-on-sync", "loop-on-sync"],
)
def test_async_only_options_on_sync_function_name_the_fix(options, message) -> None:
    """`timeout` and `loop` on a plain function raise TypeError explaining why and what to do."""

    def plain() -> None: ...

    loop = asyncio.new_event_loop()
    try:
        if options.get("loop") == "new":
            options = {"loop": loop}
        with pytest.raises(TypeError, match=message):
            opto.trace(**options)(plain)
    finally:
        loop.close()


def test_async_trace_on_plain_function_names_opto_trace() -> None:
    def plain() -> None: ...

    with pytest.raises(TypeError, match="use @opto.trace for a plain function"):
        opto.trace.async_trace(plain)


def test_a_generator_function_is_refused_naming_the_fix() -> None:
    """Its call only makes the generator: a span around that would end before the body runs."""

    def gen():
        yield 1

    with pytest.raises(TypeError, match="cannot trace generator function .*async_stream"):
        opto.trace(gen)


def test_a_class_is_refused_naming_the_fix() -> None:
    with pytest.raises(TypeError, match="got class .*Model: decorate its methods instead"):

        @opto.trace
        class Model:
            pass


@pytest.mark.parametrize("decorator", [opto.trace, opto.trace(name=None), opto.trace.async_trace])
async def test_above_staticmethod_and_classmethod_the_method_kind_is_kept(decorator, spans) -> None:
    class Model:
        @decorator
        @staticmethod
        async def double(x: int) -> int:
            return 2 * x

        @decorator
        @classmethod
        async def name(cls) -> str:
            return cls.__name__

    assert isinstance(Model.__dict__["double"], staticmethod) and isinstance(Model.__dict__["name"], classmethod)
    assert (await Model.double(2), await Model().double(3), await Model.name()) == (4, 6, "Model")
    assert [s.name for s in spans.all()] == ["test_above_staticmethod_and_classmethod_the_method_kind_is_kept.<locals>.Model.double"] * 2 + [
        "test_above_staticmethod_and_classmethod_the_method_kind_is_kept.<locals>.Model.name"
    ]


async def test_partials_and_callable_objects_are_traced_under_their_functions_names(spans) -> None:
    import functools

    def add(a: int, b: int) -> int:
        return a + b

    class Ask:
        async def __call__(self, q: str) -> str:
            if not q:
                raise ValueError("empty")
            return q.upper()

    assert opto.trace(functools.partial(add, 1))(2) == 3
    ask = opto.trace(Ask())  # an async callable object: its calls are awaited, as async_trace's
    assert await ask("hi") == "HI"
    with pytest.raises(ValueError, match="empty"):
        await ask("")
    names = [(s.name, s.attributes[semconv.OUTCOME]) for s in spans.all()]
    prefix = "test_partials_and_callable_objects_are_traced_under_their_functions_names.<locals>."
    assert names == [(prefix + "add", "ok"), (prefix + "Ask", "ok"), (prefix + "Ask", "error")]


def test_async_trace_on_async_generator_names_async_stream() -> None:
    async def gen():
        yield 1

    with pytest.raises(TypeError, match="async_stream"):
        opto.trace.async_trace(gen)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"retry_attempts": -1}, ValueError, "retry_attempts must be >= 0"),
        ({"retry_attempts": 1.5}, TypeError, "retry_attempts must be an int"),
        ({"timeout": 0}, ValueError, "timeout must be > 0"),
        ({"timeout": -3.0}, ValueError, "timeout must be > 0"),
        ({"timeout": "10"}, TypeError, "timeout must be a number"),
        ({"retry_delay": 1.0}, TypeError, "add retry_attempts"),
        ({"loop": "main"}, TypeError, "loop must be an asyncio event loop"),
        ({"retry_attempts": 1, "retry_on": (int,)}, TypeError, "retry_on must be a tuple of exception types"),
    ],
    ids=["negative-retries", "float-retries", "zero-timeout", "negative-timeout", "str-timeout", "delay-alone", "bad-loop", "bad-retry-on"],
)
def test_bad_options_fail_at_decoration_time(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        opto.trace.async_trace(**kwargs)


# --- spans --------------------------------------------------------------------------------


async def test_span_attributes_of_a_successful_call(spans) -> None:
    """Code location, outcome, attempts, task name and captured arguments and result."""

    @opto.trace.async_trace(timeout=5)
    async def agent(query: str, api_key: str, options: dict) -> dict:
        return {"answer": query, "token": "t0ps3cret"}

    await asyncio.create_task(agent("hi", "sk-123", {"password": "hunter2", "n": 1}), name="worker-7")
    span = spans.one(agent.__qualname__)
    a = span.attributes
    assert a[semconv.CODE_FUNCTION_NAME] == agent.__qualname__
    assert a[semconv.CODE_FILE_PATH] == __file__
    assert a[semconv.CODE_LINE_NUMBER] == agent.__wrapped__.__code__.co_firstlineno
    assert a[semconv.OUTCOME] == "ok" and a[semconv.ATTEMPTS] == 1 and a[semconv.TIMEOUT_S] == 5.0
    assert a[semconv.TASK_NAME] == "worker-7"
    assert a[f"{semconv.ARG_PREFIX}query"] == "'hi'"
    assert a[f"{semconv.ARG_PREFIX}api_key"] == MASK
    assert "hunter2" not in a[f"{semconv.ARG_PREFIX}options"] and MASK in a[f"{semconv.ARG_PREFIX}options"]
    assert "t0ps3cret" not in a[semconv.RESULT]
    assert span.status.status_code is StatusCode.UNSET
    assert span.instrumentation_scope.name == "opto" and span.instrumentation_scope.version == opto.__version__


async def test_capture_can_be_turned_off_and_is_truncated(spans) -> None:
    @opto.trace.async_trace(capture_args=False, capture_result=False)
    async def quiet(secret_sauce: str) -> str:
        return secret_sauce

    @opto.trace.async_trace(max_repr=20)
    async def loud(text: str) -> str:
        return text

    await quiet("x" * 10)
    await loud("y" * 500)
    assert not [k for k in spans.one(quiet.__qualname__).attributes if k.startswith(semconv.ARG_PREFIX)]
    assert semconv.RESULT not in spans.one(quiet.__qualname__).attributes
    assert len(spans.one(loud.__qualname__).attributes[f"{semconv.ARG_PREFIX}text"]) <= 20


def test_safe_repr_survives_a_broken_repr() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("boom")

    assert "repr failed" in safe_repr(Broken())


async def test_error_outcome_records_the_exception(spans) -> None:
    @opto.trace.async_trace
    async def broken() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        await broken()
    span = spans.one(broken.__qualname__)
    assert span.attributes[semconv.OUTCOME] == "error"
    assert span.attributes[semconv.ERROR_TYPE] == "ValueError"
    assert span.status.status_code is StatusCode.ERROR and "bad input" in span.status.description
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes[semconv.EXCEPTION_TYPE] == "ValueError"


async def test_cancelled_call_is_cancelled_not_error(spans) -> None:
    """Cancelling a traced call ends its span with outcome `cancelled` and no error status."""
    started = asyncio.Event()

    @opto.trace.async_trace
    async def waits() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(waits())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    span = spans.one(waits.__qualname__)
    assert span.attributes[semconv.OUTCOME] == "cancelled"
    assert span.status.status_code is not StatusCode.ERROR
    assert [e.name for e in span.events] == [semconv.EVENT_CANCELLED]
    assert span.end_time is not None


async def test_concurrency_counts_calls_in_flight(spans) -> None:
    """`opto.concurrency` is the number of calls of the function in flight when one started."""
    release = asyncio.Event()

    @opto.trace.async_trace
    async def worker(i: int) -> int:
        await release.wait()
        return i

    tasks = [asyncio.create_task(worker(i)) for i in range(5)]
    await asyncio.sleep(0)  # let all five start: they then block on `release`
    release.set()
    await asyncio.gather(*tasks)
    seen = sorted(s.attributes[semconv.CONCURRENCY] for s in spans.named(worker.__qualname__))
    assert seen == [1, 2, 3, 4, 5]
    await worker(9)
    assert spans.named(worker.__qualname__)[-1].attributes[semconv.CONCURRENCY] == 1


# --- retries and timeouts -----------------------------------------------------------------


async def test_retries_until_success_with_events(spans) -> None:
    """retry_attempts=3 allows four tries; each retry is an event with attempt, delay and cause."""
    opto.trace.set_testing(True)
    calls = []

    @opto.trace.async_trace(retry_attempts=3, retry_delay=0.5)
    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise opto.RetryableError(f"try {len(calls)} failed")
        return "ok"

    assert await flaky() == "ok"
    span = spans.one(flaky.__qualname__)
    assert span.attributes[semconv.ATTEMPTS] == 4 and span.attributes[semconv.OUTCOME] == "ok"
    retries = [e for e in span.events if e.name == semconv.EVENT_RETRY]
    assert [e.attributes[semconv.ATTEMPT] for e in retries] == [1, 2, 3]
    assert retries[0].attributes[semconv.EXCEPTION_TYPE] == "opto.errors.RetryableError"  # qualified, as in exception events
    assert retries[1].attributes[semconv.EXCEPTION_MESSAGE] == "try 2 failed"
    delays = [e.attributes[semconv.RETRY_DELAY_S] for e in retries]
    assert 0.45 <= delays[0] <= 0.55 and 0.9 <= delays[1] <= 1.1 and 1.8 <= delays[2] <= 2.2  # x2, +/-10 %


async def test_exhausted_retries_raise_the_last_error(spans) -> None:
    opto.trace.set_testing(True)

    @opto.trace.async_trace(retry_attempts=2)
    async def always() -> None:
        raise opto.RetryableError("down")

    with pytest.raises(opto.RetryableError, match="down"):
        await always()
    span = spans.one(always.__qualname__)
    assert span.attributes[semconv.ATTEMPTS] == 3
    assert span.attributes[semconv.RETRY_EXHAUSTED] is True
    assert span.attributes[semconv.OUTCOME] == "error"


async def test_only_retryable_errors_are_retried_by_default(spans) -> None:
    opto.trace.set_testing(True)

    @opto.trace.async_trace(retry_attempts=3)
    async def wrong() -> None:
        raise ValueError("not transient")

    @opto.trace.async_trace(retry_attempts=1, retry_on=ConnectionError)
    async def conn() -> None:
        raise ConnectionResetError("reset")

    with pytest.raises(ValueError):
        await wrong()
    with pytest.raises(ConnectionResetError):
        await conn()
    assert spans.one(wrong.__qualname__).attributes[semconv.ATTEMPTS] == 1
    assert spans.one(conn.__qualname__).attributes[semconv.ATTEMPTS] == 2


async def test_retry_after_replaces_the_backoff(spans) -> None:
    opto.trace.set_testing(True)
    calls = []

    @opto.trace.async_trace(retry_attempts=1, retry_delay=30)
    async def limited() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise opto.RetryableError("429", retry_after=0.25)
        return "ok"

    await limited()
    (retry,) = [e for e in spans.one(limited.__qualname__).events if e.name == semconv.EVENT_RETRY]
    assert retry.attributes[semconv.RETRY_DELAY_S] == 0.25


async def test_retry_really_sleeps_between_attempts() -> None:
    """Outside testing mode the delay is slept on the loop's clock before the next attempt."""
    loop = asyncio.get_running_loop()
    times: list[float] = []

    @opto.trace.async_trace(retry_attempts=1, retry_delay=0.05)
    async def flaky() -> None:
        times.append(loop.time())
        if len(times) == 1:
            raise opto.RetryableError("once")

    await flaky()
    assert times[1] - times[0] >= 0.04  # jitter is at most 10 %


def test_backoff_is_exponential_and_capped() -> None:
    policy = RetryPolicy(attempts=10, delay=1.0, multiplier=2.0, max_delay=5.0, jitter=0.0)
    assert [policy.delay_for(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    jittered = RetryPolicy(delay=1.0, jitter=0.1)
    assert all(0.9 <= jittered.delay_for(1) <= 1.1 for _ in range(100))
    assert RetryPolicy.named("none").attempts == 0
    with pytest.raises(ValueError, match="expected 'none', 'fixed', 'exponential_backoff'"):
        RetryPolicy.named("sometimes")  # type: ignore[arg-type]


async def test_timeout_outcome_and_retry(spans) -> None:
    """The decorator's own timeout is per attempt, retried by default, and ends as `timeout`."""
    opto.trace.set_testing(True)

    @opto.trace.async_trace(timeout=0.01, retry_attempts=1)
    async def hangs() -> None:
        await asyncio.Event().wait()

    with pytest.raises(TimeoutError):
        await hangs()
    span = spans.one(hangs.__qualname__)
    assert span.attributes[semconv.OUTCOME] == "timeout"
    assert span.attributes[semconv.ATTEMPTS] == 2
    assert span.status.status_code is StatusCode.ERROR
    names = [e.name for e in span.events]
    assert names == [semconv.EVENT_TIMEOUT, semconv.EVENT_RETRY, semconv.EVENT_TIMEOUT]


async def test_a_timeout_raised_inside_the_body_is_an_error_not_ours(spans) -> None:
    """A TimeoutError from the user's own code is `error`: outcomes are never conflated."""

    @opto.trace.async_trace(timeout=10)
    async def inner_timeout() -> None:
        raise TimeoutError("the LLM client gave up")

    with pytest.raises(TimeoutError):
        await inner_timeout()
    span = spans.one(inner_timeout.__qualname__)
    assert span.attributes[semconv.OUTCOME] == "error"
    assert not [e for e in span.events if e.name == semconv.EVENT_TIMEOUT]


async def test_body_that_catches_its_own_timeouts_still_times_out(spans) -> None:
    """The spec's pattern `except asyncio.TimeoutError` inside the body doesn't swallow our timeout."""

    @opto.trace.async_trace(timeout=0.01)
    async def robust() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.TimeoutError:
            return "Request timed out"
        return "never"

    with pytest.raises(TimeoutError):
        await robust()
    assert spans.one(robust.__qualname__).attributes[semconv.OUTCOME] == "timeout"


# --- nesting ------------------------------------------------------------------------------


async def test_children_have_the_right_parent_across_await_gather_tasks_and_taskgroups(spans) -> None:
    @opto.trace.async_trace
    async def leaf(i: int) -> int:
        await asyncio.sleep(0)
        return i

    @opto.trace.async_trace
    async def root() -> list[int]:
        a = await leaf(0)
        b, c = await asyncio.gather(leaf(1), leaf(2))
        d = await asyncio.create_task(leaf(3))
        async with asyncio.TaskGroup() as tg:
            e = tg.create_task(leaf(4))
        return [a, b, c, d, e.result()]

    assert await root() == [0, 1, 2, 3, 4]
    root_span = spans.one(root.__qualname__)
    leaves = spans.named(leaf.__qualname__)
    assert len(leaves) == 5
    for s in leaves:
        assert s.parent is not None and s.parent.span_id == root_span.context.span_id
        assert s.context.trace_id == root_span.context.trace_id


async def test_outer_span_is_current_again_after_a_traced_call() -> None:
    """No context is left attached: the caller's current span is unchanged after the call."""
    from opentelemetry import trace

    @opto.trace.async_trace
    async def inner() -> None:
        return None

    with TRACER.start_as_current_span("caller") as caller:
        await inner()
        with pytest.raises(ZeroDivisionError):
            await opto.trace.async_trace(_divide)()
        assert trace.get_current_span() is caller


async def _divide() -> float:
    return 1 / 0


def test_sdk_spans_take_the_attribute_fast_path() -> None:
    """Our pinned SDK range keeps the span internals the fast attribute path relies on."""
    span = TRACER.start_span("probe")
    try:
        assert fast_path_available(span)
    finally:
        span.end()
