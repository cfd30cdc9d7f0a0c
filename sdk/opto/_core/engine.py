"""The traced-call engine: one span per call, started by `Calls`, ended by one `Call.end`.

A call takes the fast path (no policy: `Calls.open` writes the span's attributes in place) or the
policy path (retries, a timeout, an ambient scope, debug: `Calls.begin` and the attempt loop);
a plain function's call takes the same two roads, without awaiting. Every road ends in
`Call.end(outcome, result | exc)`, with the outcome from `outcome_of`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
import weakref
from time import perf_counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextvars import Token
from typing import Any, ParamSpec, TypeGuard, TypeVar

from opentelemetry import context as otel_context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from .. import telemetry
from ..telemetry import DurationRecorder, add_attributes, attach, recording, semconv, with_span, writable
from ..telemetry import current as current_context
from ..telemetry.semconv import ATTEMPTS, CONCURRENCY, OUTCOME, OUTCOME_OK, RESULT, TASK_NAME
from . import debug as _debug
from .capture import ArgumentCapture, Remembered, exception_text, safe_repr
from .loops import deadline, run_on_loop, running_loop, running_task, sleep, task_of
from .options import Options, span_name
from .outcome import outcome_of, qualified_type, record_error
from .retry import RetryPolicy, testing
from .scope import CALL, HANDOFF, HELD, SCOPE, CallInfo, Held, Limiter, acquire_slots

__all__ = ["Calls", "Call", "code_attributes", "wrap_coroutine_function", "wrap_function", "is_traced_call"]

P = ParamSpec("P")
R = TypeVar("R")


def code_attributes(fn: Callable[..., Any], name: str, kind: str) -> dict[str, Any]:
    """The attributes every span of `fn` starts with: where the code is, and what it is.

    `fn` may also be a coroutine object, whose code is `cr_code`.
    """
    unwrapped = inspect.unwrap(fn)
    code = getattr(unwrapped, "__code__", None) or getattr(unwrapped, "cr_code", None)
    attrs: dict[str, Any] = {
        semconv.CODE_FUNCTION_NAME: getattr(fn, "__qualname__", name),
        semconv.FUNCTION: name,
        semconv.SPAN_KIND: kind,
    }
    if code is not None:
        attrs[semconv.CODE_FILE_PATH] = code.co_filename
        attrs[semconv.CODE_LINE_NUMBER] = code.co_firstlineno
    return attrs


class Calls:
    """Per-function bookkeeping shared by all calls of one traced function."""

    __slots__ = ("name", "opts", "static", "capture", "result", "active", "metric_attrs", "room", "limiters", "__weakref__")

    def __init__(self, fn: Callable[..., Any], opts: Options, kind: str) -> None:
        self.name = opts.name or span_name(fn)
        self.opts = opts
        self.static = code_attributes(fn, self.name, kind)
        if opts.timeout is not None:
            self.static[semconv.TIMEOUT_S] = float(opts.timeout)
        self.capture = ArgumentCapture(fn, opts.max_repr) if opts.capture_args else None
        self.result = Remembered(RESULT) if opts.capture_result else None  # the last result captured, and its text
        # The function's own limit (`max_concurrent`), one for every call in the process.
        self.limiters: tuple[Limiter, ...] = (Limiter(opts.max_concurrent),) if opts.max_concurrent is not None else ()
        self.active = 0
        self.metric_attrs = {
            o: {semconv.FUNCTION: self.name, semconv.OUTCOME: o} for o in semconv.OUTCOMES
        }
        # Most attributes a call writes, but for one per keyword argument: static ones, concurrency,
        # task, outcome, attempts, result, *args, capture error and the positional parameters.
        self.room = len(self.static) + 7 + (len(self.capture.positional) if self.capture is not None else 0)
        _ALL_CALLS.add(self)

    def describe(self, attrs: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any], task: asyncio.Task[Any] | None) -> None:
        """Write what a call starts with into `attrs`: its code, concurrency, task and arguments."""
        attrs.update(self.static)
        attrs[CONCURRENCY] = self.active
        if task is not None:
            attrs[TASK_NAME] = task.get_name()
        capture = self.capture
        if capture is not None:
            capture.add(attrs, args, kwargs)

    def begin(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], task: asyncio.Task[Any] | None, *, current: bool = True
    ) -> Call:
        """Start a call the careful way (the policy path, streams): its span, made current unless
        `current` is false, and in debug mode its creation stack."""
        t0 = perf_counter()
        now = recording()
        tracer = now[0] if now is not None else telemetry.tracer()
        debug = self.opts.debug or _debug.switch.on
        handoff = HANDOFF.get()  # an item this task got from an AsyncQueue: link to its producer
        span = tracer.start_span(self.name, links=handoff.links() if handoff is not None else None)
        self.active += 1
        if span.is_recording():
            attrs: dict[str, Any] = {}
            self.describe(attrs, args, kwargs, task)
            if debug:
                attrs[semconv.DEBUG_CREATION_STACK] = _debug.creation_stack()
            add_attributes(span, attrs)
        if debug:
            _debug.logger.debug("call %s start args=%s kwargs=%s", self.name, safe_repr(args, 200), safe_repr(kwargs, 200))
        token = _activate(span) if current else None
        call = Call(self, t0, span, None, 0, token, now[1] if now is not None else None, debug)
        call.policy = self.opts.retry
        call.own_timeout = False
        return call

    def open(
        self, now: tuple[Tracer, DurationRecorder | None], parent: otel_context.Context, args: tuple[Any, ...],
        kwargs: dict[str, Any], task: asyncio.Task[Any] | None, *, current: bool = True,
    ) -> Call:
        """`begin` for a call with no policy, in as few Python-level calls as can be: the span starts
        under `parent` (the current context, which the caller read), and its attribute map is
        written in place when `writable`."""
        t0 = perf_counter()
        handoff = HANDOFF.get()
        span = now[0].start_span(self.name, context=parent, links=None if handoff is None else handoff.links())
        self.active += 1
        out = writable(span, self.room + len(kwargs))
        if out is None:
            if span.is_recording():
                attrs: dict[str, Any] = {}
                self.describe(attrs, args, kwargs, task)
                add_attributes(span, attrs)
            return Call(self, t0, span, None, 0, _activate(span) if current else None, now[1], False)
        self.describe(out, args, kwargs, task)
        # Call's fields set here rather than through its __init__: a Python __init__'s call costs
        # as much again as the stores, on every traced call.
        call = _new_call(Call)
        call.calls = self
        call.t0 = t0
        call.span = span
        call.out = out
        call.written = len(out)
        call.token = attach(with_span(parent, span)) if current else None
        call.durations = now[1]
        call.debug = False
        call.count = 1
        return call


class Call:
    """One traced call: its span (current until the call ends), its attempts, and its one ending."""

    __slots__ = ("calls", "span", "t0", "out", "written", "token", "durations", "debug", "count", "policy", "own_timeout")

    def __init__(
        self, calls: Calls, t0: float, span: Span, out: dict[str, Any] | None, written: int,
        token: Token[otel_context.Context] | None, durations: DurationRecorder | None, debug: bool,
    ) -> None:
        self.calls = calls
        self.span = span
        self.out = out  # the span's attribute map, written in place on the fast path; else None
        self.written = written  # how many attributes that map held when the call began
        self.token = token
        self.durations = durations
        self.debug = debug
        self.count = 1  # attempts made
        self.t0 = t0
        # `policy` (the retry policy in force) and `own_timeout` (the current attempt ran out of its
        # own time) are set by `Calls.begin` only: the fast road has neither retries nor timeouts.
        self.policy: RetryPolicy | None
        self.own_timeout: bool

    def end(self, outcome: str, value: Any = None, more: dict[str, Any] | None = None) -> None:
        """End the call with `outcome`: `value` is its result (ok) or its exception; `more` adds
        attributes. Ends the span, records the duration, and restores the context before the call."""
        calls = self.calls
        span = self.span
        try:
            calls.active -= 1
            out = self.out
            if out is not None and outcome == OUTCOME_OK and len(out) == self.written and span.is_recording():
                if more:  # nothing else wrote to the span: the in-place way
                    out.update(more)
                out[OUTCOME] = outcome
                out[ATTEMPTS] = self.count
                result = calls.result
                if result is not None:
                    seen = result.seen
                    if seen[0] is value:
                        out[RESULT] = seen[1]
                    else:
                        result.capture(out, value, calls.opts.max_repr)
            elif span.is_recording():
                self._describe_end(outcome, value, more)
            span.end()
            durations = self.durations
            if durations is not None:
                durations.record(perf_counter() - self.t0, calls.metric_attrs[outcome])
            if self.debug:
                _debug.logger.debug("call %s end outcome=%s attempts=%d", calls.name, outcome, self.count)
        finally:
            if self.token is not None:
                telemetry.detach(self.token)

    def _describe_end(self, outcome: str, value: Any, more: dict[str, Any] | None) -> None:
        span = self.span
        opts = self.calls.opts
        attrs: dict[str, Any] = {semconv.OUTCOME: outcome, semconv.ATTEMPTS: self.count}
        if more:
            attrs.update(more)
        result = self.calls.result
        if outcome == semconv.OUTCOME_OK:
            if result is not None:
                result.capture(attrs, value, opts.max_repr)
        elif outcome == semconv.OUTCOME_CANCELLED:
            span.add_event(semconv.EVENT_CANCELLED, {semconv.ATTEMPT: self.count})
        elif outcome == semconv.OUTCOME_TIMEOUT:
            attrs[semconv.ERROR_TYPE] = "timeout"
            span.set_status(Status(StatusCode.ERROR, f"timed out after {self.count} attempt(s)"))
        else:
            record_error(span, value)
        add_attributes(span, attrs)

    def timed_out(self, timeout: float) -> None:
        self.own_timeout = True
        self.span.add_event(semconv.EVENT_TIMEOUT, {semconv.ATTEMPT: self.count, semconv.TIMEOUT_S: timeout})
        if self.debug:
            _debug.logger.debug("call %s attempt %d timed out after %.3f s", self.calls.name, self.count, timeout)

    def retry_delay(self, exc: BaseException) -> float | None:
        """Seconds to sleep before the next attempt, or None when `exc` must propagate."""
        policy = self.policy
        if policy is None or not policy.should_retry(exc, self.own_timeout):
            return None
        if self.count > policy.attempts:
            if policy.attempts:
                self.span.set_attribute(semconv.RETRY_EXHAUSTED, True)
            return None
        delay = policy.delay_for(self.count, exc)
        self.span.add_event(
            semconv.EVENT_RETRY,
            {
                semconv.ATTEMPT: self.count,
                semconv.RETRY_DELAY_S: delay,
                semconv.EXCEPTION_TYPE: "TimeoutError" if self.own_timeout else qualified_type(exc),
                semconv.EXCEPTION_MESSAGE: exception_text(exc)[0],
            },
        )
        telemetry.retries.add(1, {semconv.FUNCTION: self.calls.name})
        if self.debug:
            _debug.logger.debug("call %s attempt %d failed (%s); retrying in %.3f s", self.calls.name, self.count, safe_repr(exc, 200), delay)
        self.count += 1
        self.own_timeout = False
        return 0.0 if testing() else delay


_new_call = Call.__new__
_ALL_CALLS: weakref.WeakSet[Calls] = weakref.WeakSet()


def _observe_active(options: CallbackOptions) -> Iterator[Observation]:
    """Traced calls in flight now, by function: zero for a function with none, so a metric reader
    always has this to collect once anything is traced (the in-process durations ride on its export)."""
    active: dict[str, int] = {}
    for calls in list(_ALL_CALLS):
        active[calls.name] = active.get(calls.name, 0) + calls.active
    for name, count in active.items():
        yield Observation(count, {semconv.FUNCTION: name})


telemetry.METER.create_observable_up_down_counter(
    semconv.METRIC_CALLS_ACTIVE, [_observe_active], unit="{call}", description="Traced calls in flight, by function"
)


def _activate(span: Span) -> Token[otel_context.Context] | None:
    """Make `span` current; a span with no valid context (no SDK configured) changes nothing."""
    if span.is_recording() or span.get_span_context().is_valid:
        return telemetry.attach_span(span)
    return None


async def _attempt_loop(fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any], call: Call, timeout: float | None) -> R:
    """Run `fn` until it succeeds or the policy gives up; each attempt has its own timeout."""
    while True:
        coro = fn(*args, **kwargs)
        if call.debug:
            coro = _debug.watch_steps(coro, call.span)  # type: ignore[arg-type]
        try:
            if timeout is None:
                return await coro
            limit = deadline(timeout)
            try:
                async with limit:
                    return await coro
            except TimeoutError:
                if limit.expired():
                    call.timed_out(timeout)
                raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = call.retry_delay(exc)
            if delay is None:
                raise
        await sleep(delay)


async def _traced_call(calls: Calls, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
    """A call with a policy to apply (retries, timeout, an AsyncTraceContext's scope) or in debug mode.

    Under trio the policy applies too: its sleeps and deadlines are anyio's there (`loops`).
    """
    loop = running_loop()
    call = calls.begin(args, kwargs, task_of(loop) if loop is not None else None)
    if call.debug and loop is not None:
        _debug.enable_loop_debug(loop)
    try:
        result = await _call_in_scope(calls, fn, args, kwargs, call)
    except BaseException as exc:
        call.end(outcome_of(exc, call.own_timeout), exc)
        raise
    call.end(semconv.OUTCOME_OK, result)
    return result


async def _call_in_scope(calls: Calls, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any], call: Call) -> R:
    """The attempts, under the function's own limit and the ambient scope's limits, timeout and
    retries where the decorator sets none."""
    scope = SCOPE.get()
    timeout = calls.opts.timeout
    limiters = calls.limiters
    if scope is not None:
        if timeout is None and scope.timeout is not None:
            timeout = scope.timeout
            call.span.set_attribute(semconv.TIMEOUT_S, timeout)
        if call.policy is None:
            call.policy = scope.retry
        limiters = scope.limiters + limiters
    if not limiters:
        return await _attempt_loop(fn, args, kwargs, call, timeout)
    taken, waited = await _acquire_slots(calls, limiters)
    if not taken:
        return await _attempt_loop(fn, args, kwargs, call, timeout)
    call.span.set_attribute(semconv.QUEUE_WAIT_S, waited)
    telemetry.queue_wait.record(waited, {semconv.FUNCTION: calls.name})
    held = Held(taken, HELD.get())
    held_token = HELD.set(held)
    call_token = CALL.set(CallInfo(calls.name, waited))
    outcome = semconv.OUTCOME_OK
    try:
        return await _attempt_loop(fn, args, kwargs, call, timeout)
    except BaseException as exc:
        outcome = outcome_of(exc, call.own_timeout)
        raise
    finally:
        CALL.reset(call_token)
        HELD.reset(held_token)
        held.live = False
        for limiter in taken:
            limiter.release()
            limiter.record(outcome, call.count - 1)


async def _acquire_slots(calls: Calls, limiters: tuple[Limiter, ...]) -> tuple[tuple[Limiter, ...], float]:
    """`acquire_slots`, inside an `opto.slot.wait` child span when some slot is not free now."""
    held = HELD.get()
    if not any(not held.holds(limiter) and limiter.would_block() for limiter in limiters):
        return await acquire_slots(limiters)
    span = telemetry.TRACER.start_span(semconv.SPAN_SLOT_WAIT)
    if span.is_recording():
        add_attributes(span, {semconv.SPAN_KIND: semconv.KIND_SLOT_WAIT, semconv.FUNCTION: calls.name})
    try:
        taken, waited = await acquire_slots(limiters)
    except BaseException as exc:
        if span.is_recording():
            add_attributes(span, {semconv.OUTCOME: outcome_of(exc)})
        span.end()
        raise
    if span.is_recording():
        add_attributes(span, {semconv.OUTCOME: semconv.OUTCOME_OK, semconv.QUEUE_WAIT_S: waited})
    span.end()
    return taken, waited


def wrap_coroutine_function(
    fn: Callable[P, Coroutine[Any, Any, R]], opts: Options, calls: Calls | None = None
) -> Callable[P, Coroutine[Any, Any, R]]:
    """The traced wrapper of `fn`; `calls` names and describes its spans when they are not `fn`'s own."""
    if calls is None:
        calls = Calls(fn, opts, "call")
    loop = opts.loop
    simple = opts.retry is None and opts.timeout is None and not opts.debug and opts.max_concurrent is None
    debug = _debug.switch

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if loop is not None and running_loop() is not loop:
            return await run_on_loop(loop, wrapper(*args, **kwargs))
        if not simple or debug.on or SCOPE.get() is not None:
            return await _traced_call(calls, fn, args, kwargs)
        # The common case: every traced call without a policy runs these lines.
        now = recording()
        if now is None:
            return await fn(*args, **kwargs)  # nothing to record
        call = calls.open(now, current_context(), args, kwargs, running_task())  # no task under trio
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            call.end(outcome_of(exc), exc)
            raise
        call.end(OUTCOME_OK, result)
        return result

    return wrapper


_WRAPPER_CODE = next(
    c for c in wrap_coroutine_function.__code__.co_consts if inspect.iscode(c) and c.co_name == "wrapper"
)


def is_traced_call(obj: object) -> TypeGuard[Coroutine[Any, Any, Any]]:
    """True for the coroutine of an `@async_trace` call, which applies timeouts and retries itself."""
    return getattr(obj, "cr_code", None) is _WRAPPER_CODE


def wrap_function(fn: Callable[P, R], opts: Options) -> Callable[P, R]:
    """The traced wrapper of a plain function: the same two roads, without awaiting."""
    calls = Calls(fn, opts, "call")
    simple = opts.retry is None and not opts.debug
    debug = _debug.switch

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not simple or debug.on:
            return _traced_sync_call(calls, fn, args, kwargs)
        now = recording()
        if now is None:
            return fn(*args, **kwargs)  # nothing to record
        call = calls.open(now, current_context(), args, kwargs, None)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            call.end(outcome_of(exc), exc)
            raise
        call.end(OUTCOME_OK, result)
        return result

    return wrapper


def _traced_sync_call(calls: Calls, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
    """A plain function's call with retries, or in debug mode."""
    call = calls.begin(args, kwargs, None)
    try:
        while True:
            try:
                result = fn(*args, **kwargs)
                break
            except Exception as exc:
                delay = call.retry_delay(exc)
                if delay is None:
                    raise
            time.sleep(delay)
    except BaseException as exc:
        call.end(outcome_of(exc), exc)
        raise
    call.end(semconv.OUTCOME_OK, result)
    return result
