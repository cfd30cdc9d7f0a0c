"""`@opto.trace` and `@opto.trace.async_trace`: one span per call, with retries, timeouts and debug."""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
import weakref
from asyncio import current_task
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextvars import Token
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeGuard, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from ..telemetry import _current, _facade, semconv
from ..telemetry._attributes import add_attributes, writable
from ..telemetry._facade import DurationRecorder
from . import _debug
from ._capture import DEFAULT_MAX_LENGTH, ArgumentCapture, capture, exception_text, safe_repr
from ._loops import run_on_loop
from ._outcome import failed_outcome, record_error
from ._retry import RetryPolicy, testing
from ._scope import CALL, HANDOFF, HELD, SCOPE, CallInfo, Limiter, acquire_slots

__all__ = ["trace", "async_trace", "Options", "code_attributes", "check_timeout", "is_traced_call"]

P = ParamSpec("P")
R = TypeVar("R")
_NOT_SET: Any = object()


@dataclass(frozen=True, slots=True)
class Options:
    """A traced function's settings, checked once at decoration time."""

    name: str | None = None
    loop: asyncio.AbstractEventLoop | None = None
    retry: RetryPolicy | None = None
    timeout: float | None = None
    debug: bool = False
    capture_args: bool = True
    capture_result: bool = True
    max_repr: int = DEFAULT_MAX_LENGTH


def _options(
    name: str | None,
    loop: asyncio.AbstractEventLoop | None,
    retry_attempts: int | None,
    retry_delay: float,
    retry_max_delay: float,
    retry_on: Any,
    timeout: float | None,
    debug: bool,
    capture_args: bool,
    capture_result: bool,
    max_repr: int,
) -> Options:
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if loop is not None and not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(f"loop must be an asyncio event loop, got {type(loop).__name__}")
    check_timeout(timeout)
    if not isinstance(max_repr, int) or max_repr < 8:
        raise ValueError(f"max_repr must be an int >= 8, got {max_repr!r}")
    retry = None
    if retry_attempts is None:
        given = [n for n, v in (("retry_delay", retry_delay), ("retry_max_delay", retry_max_delay), ("retry_on", retry_on)) if v is not _NOT_SET]
        if given:
            raise TypeError(f"{', '.join(given)} has no effect without retry_attempts=N; add retry_attempts")
    else:
        if isinstance(retry_attempts, bool) or not isinstance(retry_attempts, int):
            raise TypeError(f"retry_attempts must be an int, got {retry_attempts!r}")
        if retry_attempts < 0:
            raise ValueError(f"retry_attempts must be >= 0 (retries after the first try), got {retry_attempts}")
        kwargs: dict[str, Any] = {"attempts": retry_attempts}
        if retry_delay is not _NOT_SET:
            kwargs["delay"] = retry_delay
        if retry_max_delay is not _NOT_SET:
            kwargs["max_delay"] = retry_max_delay
        if retry_on is not _NOT_SET:
            retry_on = (retry_on,) if isinstance(retry_on, type) else tuple(retry_on)
            kwargs["retry_on"] = retry_on
        retry = RetryPolicy(**kwargs)
    return Options(name, loop, retry, timeout, bool(debug), bool(capture_args), bool(capture_result), max_repr)


def check_timeout(timeout: float | None, what: str = "timeout") -> None:
    """Reject a duration that is not a positive number of seconds (None means none)."""
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"{what} must be a number of seconds, got {timeout!r}")
        if not timeout > 0:
            raise ValueError(f"{what} must be > 0 seconds, got {timeout!r}")


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


class _Calls:
    """Per-function bookkeeping shared by all calls of one traced function."""

    __slots__ = ("name", "opts", "static", "capture", "active", "metric_attrs", "room", "__weakref__")

    def __init__(self, fn: Callable[..., Any], opts: Options, kind: str) -> None:
        self.name = opts.name or fn.__qualname__
        self.opts = opts
        self.static = code_attributes(fn, self.name, kind)
        if opts.timeout is not None:
            self.static[semconv.TIMEOUT_S] = float(opts.timeout)
        self.capture = ArgumentCapture(fn, opts.max_repr) if opts.capture_args else None
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
        attrs[semconv.CONCURRENCY] = self.active
        if task is not None:
            attrs[semconv.TASK_NAME] = task.get_name()
        if self.capture is not None:
            self.capture.add(attrs, args, kwargs)

    def start(
        self, tracer: Tracer, args: tuple[Any, ...], kwargs: dict[str, Any], debug: bool, task: asyncio.Task[Any] | None
    ) -> Span:
        handoff = HANDOFF.get()  # an item this task got from an AsyncQueue: link to its producer
        span = tracer.start_span(self.name, links=handoff.links() if handoff is not None else None)
        self.active += 1
        self.annotate(span, args, kwargs, debug, task)
        return span

    def annotate(self, span: Span, args: tuple[Any, ...], kwargs: dict[str, Any], debug: bool, task: asyncio.Task[Any] | None) -> None:
        """Give a call's new span what it starts with (`describe`, and in debug mode its creation stack)."""
        if span.is_recording():
            attrs: dict[str, Any] = {}
            self.describe(attrs, args, kwargs, task)
            if debug:
                attrs[semconv.DEBUG_CREATION_STACK] = _debug.creation_stack()
            add_attributes(span, attrs)
        if debug:
            _debug.logger.debug("call %s start args=%s kwargs=%s", self.name, safe_repr(args, 200), safe_repr(kwargs, 200))

    def open(
        self, tracer: Tracer, args: tuple[Any, ...], kwargs: dict[str, Any], task: asyncio.Task[Any] | None
    ) -> tuple[Span, dict[str, Any] | None, int, Token[otel_context.Context] | None]:
        """`start` and `_activate` for a call with no policy: the span, its attribute map if written
        in place (`writable`), how many attributes that map then held, and the context token."""
        handoff = HANDOFF.get()
        span = tracer.start_span(self.name, links=handoff.links() if handoff is not None else None)
        self.active += 1
        out = writable(span, self.room + len(kwargs))
        if out is None:
            self.annotate(span, args, kwargs, False, task)
            return span, None, 0, _activate(span)
        self.describe(out, args, kwargs, task)
        return span, out, len(out), _current.attach_span(span)

    def close(
        self, span: Span, out: dict[str, Any] | None, written: int, t0: float, durations: DurationRecorder | None, result: Any
    ) -> None:
        """`finish` for a call opened by `open` that returned `result`."""
        if out is None or len(out) != written or not span.is_recording():
            self.finish(span, t0, semconv.OUTCOME_OK, 1, result)  # others wrote to the span: the careful way
            return
        self.active -= 1
        out[semconv.OUTCOME] = semconv.OUTCOME_OK
        out[semconv.ATTEMPTS] = 1
        if self.opts.capture_result:
            capture(out, semconv.RESULT, result, self.opts.max_repr)
        span.end()
        if durations is not None:
            durations.record(time.perf_counter() - t0, self.metric_attrs[semconv.OUTCOME_OK])

    def finish(
        self,
        span: Span,
        t0: float,
        outcome: str,
        attempts: int,
        result: Any = None,
        exc: BaseException | None = None,
        debug: bool = False,
        more: dict[str, Any] | None = None,
    ) -> None:
        """End the call's span with its outcome (and `more` attributes), and record its duration."""
        self.active -= 1
        if span.is_recording():
            attrs: dict[str, Any] = {semconv.OUTCOME: outcome, semconv.ATTEMPTS: attempts}
            if more:
                attrs.update(more)
            if outcome == semconv.OUTCOME_OK:
                if self.opts.capture_result:
                    capture(attrs, semconv.RESULT, result, self.opts.max_repr)
            elif outcome == semconv.OUTCOME_CANCELLED:
                span.add_event(semconv.EVENT_CANCELLED, {semconv.ATTEMPT: attempts})
            elif outcome == semconv.OUTCOME_TIMEOUT:
                attrs[semconv.ERROR_TYPE] = "timeout"
                span.set_status(Status(StatusCode.ERROR, f"timed out after {attempts} attempt(s)"))
            else:
                assert exc is not None
                record_error(span, exc)
            add_attributes(span, attrs)
        span.end()
        now = _facade.live()
        if now is not None and now[1] is not None:
            now[1].record(time.perf_counter() - t0, self.metric_attrs[outcome])
        if debug:
            _debug.logger.debug("call %s end outcome=%s attempts=%d", self.name, outcome, attempts)


_ALL_CALLS: weakref.WeakSet[_Calls] = weakref.WeakSet()


def _observe_active(options: CallbackOptions) -> Iterator[Observation]:
    """Traced calls in flight now, by function: zero for a function with none, so a metric reader
    always has this to collect once anything is traced (the in-process durations ride on its export)."""
    active: dict[str, int] = {}
    for calls in list(_ALL_CALLS):
        active[calls.name] = active.get(calls.name, 0) + calls.active
    for name, count in active.items():
        yield Observation(count, {semconv.FUNCTION: name})


_facade.METER.create_observable_up_down_counter(
    semconv.METRIC_CALLS_ACTIVE, [_observe_active], unit="{call}", description="Traced calls in flight, by function"
)


def _activate(span: Span) -> Token[otel_context.Context] | None:
    """Make `span` current; a span with no valid context (no SDK configured) changes nothing."""
    if span.is_recording() or span.get_span_context().is_valid:
        return _current.attach_span(span)
    return None


class _Attempts:
    """One call on the policy path: its span, started and made current when the call begins; and,
    after a failed attempt, whether to retry and how long to wait, with why recorded on the span."""

    __slots__ = ("calls", "t0", "span", "token", "policy", "debug", "count", "own_timeout")

    def __init__(self, calls: _Calls, args: tuple[Any, ...], kwargs: dict[str, Any], task: asyncio.Task[Any] | None) -> None:
        self.calls = calls
        self.debug = calls.opts.debug or _debug._enabled
        self.t0 = time.perf_counter()
        self.span = calls.start(_facade.tracer(), args, kwargs, self.debug, task)
        self.token = _activate(self.span)
        self.policy = calls.opts.retry
        self.count = 1
        self.own_timeout = False

    def end(self, outcome: str, result: Any = None, exc: BaseException | None = None) -> None:
        """End the call: `finish` its span, and restore the context current before it."""
        try:
            self.calls.finish(self.span, self.t0, outcome, self.count, result, exc, self.debug)
        finally:
            if self.token is not None:
                _current.detach(self.token)

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
                semconv.EXCEPTION_TYPE: "TimeoutError" if self.own_timeout else type(exc).__qualname__,
                semconv.EXCEPTION_MESSAGE: exception_text(exc)[0],
            },
        )
        _facade.retries.add(1, {semconv.FUNCTION: self.calls.name})
        if self.debug:
            _debug.logger.debug("call %s attempt %d failed (%s); retrying in %.3f s", self.calls.name, self.count, safe_repr(exc, 200), delay)
        self.count += 1
        self.own_timeout = False
        return 0.0 if testing() else delay


async def _attempt_loop(
    fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any], attempts: _Attempts, timeout: float | None
) -> R:
    """Run `fn` until it succeeds or the policy gives up; each attempt has its own timeout."""
    while True:
        coro = fn(*args, **kwargs)
        if attempts.debug:
            coro = _debug.watch_steps(coro, attempts.span)  # type: ignore[arg-type]
        try:
            if timeout is None:
                return await coro
            deadline = asyncio.timeout(timeout)
            try:
                async with deadline:
                    return await coro
            except TimeoutError:
                if deadline.expired():
                    attempts.timed_out(timeout)
                raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = attempts.retry_delay(exc)
            if delay is None:
                raise
        await asyncio.sleep(delay)


async def _traced_call(calls: _Calls, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
    """A call with a policy to apply (retries, timeout, an AsyncTraceContext's scope) or in debug mode."""
    attempts = _Attempts(calls, args, kwargs, current_task())
    if attempts.debug:
        _debug.enable_loop_debug(asyncio.get_running_loop())
    try:
        result = await _call_in_scope(calls, fn, args, kwargs, attempts)
    except asyncio.CancelledError:
        attempts.end(semconv.OUTCOME_CANCELLED)
        raise
    except BaseException as exc:
        attempts.end(semconv.OUTCOME_TIMEOUT if attempts.own_timeout else semconv.OUTCOME_ERROR, exc=exc)
        raise
    attempts.end(semconv.OUTCOME_OK, result)
    return result


async def _call_in_scope(
    calls: _Calls, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any], attempts: _Attempts
) -> R:
    """The attempts, under the ambient scope's limits, timeout and retries where the decorator sets none."""
    scope = SCOPE.get()
    opts = calls.opts
    timeout = opts.timeout
    if scope is None:
        return await _attempt_loop(fn, args, kwargs, attempts, timeout)
    if timeout is None and scope.timeout is not None:
        timeout = scope.timeout
        attempts.span.set_attribute(semconv.TIMEOUT_S, timeout)
    if attempts.policy is None:
        attempts.policy = scope.retry
    taken, waited = await _acquire_slots(calls, scope.limiters)
    if not taken:
        return await _attempt_loop(fn, args, kwargs, attempts, timeout)
    attempts.span.set_attribute(semconv.QUEUE_WAIT_S, waited)
    _facade.queue_wait.record(waited, {semconv.FUNCTION: calls.name})
    held_token = HELD.set(HELD.get().union(taken))
    call_token = CALL.set(CallInfo(calls.name, waited))
    try:
        result = await _attempt_loop(fn, args, kwargs, attempts, timeout)
    except asyncio.CancelledError:
        outcome = semconv.OUTCOME_CANCELLED
        raise
    except BaseException:
        outcome = semconv.OUTCOME_TIMEOUT if attempts.own_timeout else semconv.OUTCOME_ERROR
        raise
    else:
        outcome = semconv.OUTCOME_OK
        return result
    finally:
        CALL.reset(call_token)
        HELD.reset(held_token)
        for limiter in taken:
            limiter.release()
            limiter.record(outcome, attempts.count - 1)


async def _acquire_slots(calls: _Calls, limiters: tuple[Limiter, ...]) -> tuple[tuple[Limiter, ...], float]:
    """`acquire_slots`, inside an `opto.slot.wait` child span when some slot is not free now."""
    held = HELD.get()
    if not any(limiter not in held and limiter.would_block() for limiter in limiters):
        return await acquire_slots(limiters)
    span = _facade.TRACER.start_span(semconv.SPAN_SLOT_WAIT)
    if span.is_recording():
        add_attributes(span, {semconv.SPAN_KIND: semconv.KIND_SLOT_WAIT, semconv.FUNCTION: calls.name})
    try:
        taken, waited = await acquire_slots(limiters)
    except BaseException as exc:
        if span.is_recording():
            add_attributes(span, {semconv.OUTCOME: failed_outcome(exc)})
        span.end()
        raise
    if span.is_recording():
        add_attributes(span, {semconv.OUTCOME: semconv.OUTCOME_OK, semconv.QUEUE_WAIT_S: waited})
    span.end()
    return taken, waited


def _wrap_coroutine_function(
    fn: Callable[P, Coroutine[Any, Any, R]], opts: Options, calls: _Calls | None = None
) -> Callable[P, Coroutine[Any, Any, R]]:
    """The traced wrapper of `fn`; `calls` names and describes its spans when they are not `fn`'s own."""
    if calls is None:
        calls = _Calls(fn, opts, "call")
    loop = opts.loop
    simple = opts.retry is None and opts.timeout is None and not opts.debug

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if loop is not None and asyncio.get_running_loop() is not loop:
            return await run_on_loop(loop, wrapper(*args, **kwargs))
        if not simple or _debug._enabled or SCOPE.get() is not None:
            return await _traced_call(calls, fn, args, kwargs)
        # The common case: every traced call without a policy runs these lines, so `open` and
        # `close` do `start`, `_activate` and `finish` in as few Python-level calls as they can.
        now = _facade.live()
        if now is None:
            return await fn(*args, **kwargs)  # nothing to record
        t0 = time.perf_counter()
        span, out, written, token = calls.open(now[0], args, kwargs, current_task())
        try:
            result = await fn(*args, **kwargs)
        except asyncio.CancelledError:
            calls.finish(span, t0, semconv.OUTCOME_CANCELLED, 1)
            raise
        except BaseException as exc:
            calls.finish(span, t0, semconv.OUTCOME_ERROR, 1, exc=exc)
            raise
        finally:
            if token is not None:
                _current.detach(token)
        calls.close(span, out, written, t0, now[1], result)
        return result

    return wrapper


_WRAPPER_CODE = next(
    c for c in _wrap_coroutine_function.__code__.co_consts if inspect.iscode(c) and c.co_name == "wrapper"
)


def is_traced_call(obj: object) -> TypeGuard[Coroutine[Any, Any, Any]]:
    """True for the coroutine of an `@async_trace` call, which applies timeouts and retries itself."""
    return getattr(obj, "cr_code", None) is _WRAPPER_CODE


def _wrap_function(fn: Callable[P, R], opts: Options) -> Callable[P, R]:
    calls = _Calls(fn, opts, "call")
    simple = opts.retry is None and not opts.debug

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not simple or _debug._enabled:
            return _traced_sync_call(calls, fn, args, kwargs)
        now = _facade.live()
        if now is None:
            return fn(*args, **kwargs)  # nothing to record
        t0 = time.perf_counter()
        span, out, written, token = calls.open(now[0], args, kwargs, None)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            calls.finish(span, t0, semconv.OUTCOME_ERROR, 1, exc=exc)
            raise
        finally:
            if token is not None:
                _current.detach(token)
        calls.close(span, out, written, t0, now[1], result)
        return result

    return wrapper


def _traced_sync_call(calls: _Calls, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
    """A plain function's call with retries, or in debug mode."""
    attempts = _Attempts(calls, args, kwargs, None)
    try:
        while True:
            try:
                result = fn(*args, **kwargs)
                break
            except Exception as exc:
                delay = attempts.retry_delay(exc)
                if delay is None:
                    raise
            time.sleep(delay)
    except BaseException as exc:
        attempts.end(semconv.OUTCOME_ERROR, exc=exc)
        raise
    attempts.end(semconv.OUTCOME_OK, result)
    return result


@overload
def async_trace(fn: Callable[P, Coroutine[Any, Any, R]], /) -> Callable[P, Coroutine[Any, Any, R]]: ...
@overload
def async_trace(
    *,
    name: str | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    retry_attempts: int | None = None,
    retry_delay: float = ...,
    retry_max_delay: float = ...,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = ...,
    timeout: float | None = None,
    debug: bool = False,
    capture_args: bool = True,
    capture_result: bool = True,
    max_repr: int = DEFAULT_MAX_LENGTH,
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]: ...
def async_trace(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    retry_attempts: int | None = None,
    retry_delay: float = _NOT_SET,
    retry_max_delay: float = _NOT_SET,
    retry_on: Any = _NOT_SET,
    timeout: float | None = None,
    debug: bool = False,
    capture_args: bool = True,
    capture_result: bool = True,
    max_repr: int = DEFAULT_MAX_LENGTH,
) -> Any:
    """Trace an `async def` function: one span per call, with optional retries, timeout and loop.

    `retry_attempts` counts retries after the first try; `retry_delay` is the base of an
    exponential backoff (x2 per retry, with jitter, capped by `retry_max_delay`); `retry_on`
    lists exception types to retry (default `RetryableError`; this decorator's own timeouts are
    always retried while attempts remain). `timeout` is per attempt. `loop` runs the body on
    that event loop. `debug` logs every step and records slow steps and creation stacks.
    `capture_args`/`capture_result` record a truncated, secret-masked `repr` (`max_repr` chars).
    """
    opts = _options(name, loop, retry_attempts, retry_delay, retry_max_delay, retry_on, timeout, debug, capture_args, capture_result, max_repr)

    def decorate(func: Any) -> Any:
        if inspect.isasyncgenfunction(func):
            raise TypeError(
                f"async_trace cannot wrap async generator function {_label(func)}: "
                "use @opto.trace.async_stream for async generators"
            )
        if not inspect.iscoroutinefunction(func):
            raise TypeError(
                f"async_trace needs an 'async def' function, got {_label(func)}: "
                "use @opto.trace for a plain function"
            )
        return _wrap_coroutine_function(func, opts)

    return decorate if fn is None else decorate(fn)


@overload
def trace(fn: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def trace(
    *,
    name: str | None = None,
    retry_attempts: int | None = None,
    retry_delay: float = ...,
    retry_max_delay: float = ...,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = ...,
    debug: bool = False,
    capture_args: bool = True,
    capture_result: bool = True,
    max_repr: int = DEFAULT_MAX_LENGTH,
    timeout: float | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
def trace(fn: Any = None, /, **options: Any) -> Any:
    """Trace a function: one span per call. `async def` functions get `async_trace`,
    async generator functions `async_stream`; `timeout` and `loop` apply to those only."""

    def decorate(func: Any) -> Any:
        if inspect.iscoroutinefunction(func):
            return async_trace(func, **options)
        if inspect.isasyncgenfunction(func):
            from ._stream import async_stream

            return async_stream(func, **options)
        if not callable(func):
            raise TypeError(f"@opto.trace decorates a function, got {type(func).__name__} {safe_repr(func, 200)}")
        for option in ("timeout", "loop"):
            if options.get(option) is not None:
                raise TypeError(
                    f"{option}= needs an async function: a running sync call cannot be interrupted "
                    f"or moved to another loop; make {_label(func)} 'async def' and use @opto.trace.async_trace"
                )
        return _wrap_function(func, _options_from(options))

    return decorate if fn is None else decorate(fn)


_DEFAULTS: dict[str, Any] = dict(
    name=None, loop=None, retry_attempts=None, retry_delay=_NOT_SET, retry_max_delay=_NOT_SET,
    retry_on=_NOT_SET, timeout=None, debug=False, capture_args=True, capture_result=True,
    max_repr=DEFAULT_MAX_LENGTH,
)


def _options_from(options: dict[str, Any]) -> Options:
    """Validate keyword options exactly as async_trace would (one set of rules for both)."""
    unknown = set(options) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"@opto.trace got unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(_DEFAULTS)}")
    return _options(**{**_DEFAULTS, **options})


def _label(func: Any) -> str:
    name = getattr(func, "__qualname__", None)
    return name if isinstance(name, str) and name else safe_repr(func, 200)
