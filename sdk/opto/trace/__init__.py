"""`opto.trace`: decorators and async primitives that report through OpenTelemetry.

This module is callable: `@opto.trace` decorates a function, while `opto.trace.async_trace`,
`opto.trace.AsyncQueue` and the other names below are its attributes. `TraceModule` is the module's
class: type checkers read `@opto.trace` and `@opto.trace(...)` from its `__call__`.
"""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from .._core import DEFAULT_MAX_LENGTH, RetryPolicy, set_async_debug, set_testing
from ._batch import AsyncBatchProcessor, BatchResult
from ._context import AsyncTraceContext, ContextStats
from ._decorator import async_trace
from ._decorator import trace as _trace
from ._metrics import AsyncMetrics, BlockMetrics, MetricsSummary
from ._optimize import Candidate, Evaluation, OptimizeResult, Workflow, optimize
from ._param import Param, param
from ._queue import AsyncQueue, QueueClosed, QueueStats
from ._stream import async_stream

__all__ = ["async_trace", "set_async_debug", "set_testing", "RetryPolicy",
           "optimize", "param", "Param", "Workflow", "OptimizeResult", "Candidate", "Evaluation",
           "async_stream", "AsyncQueue", "QueueClosed", "QueueStats", "AsyncMetrics", "BlockMetrics", "MetricsSummary",
           "AsyncTraceContext", "ContextStats", "AsyncBatchProcessor", "BatchResult"]

P = ParamSpec("P")
R = TypeVar("R")


class TraceModule(types.ModuleType):
    """The module object of `opto.trace`, callable as the `@opto.trace` decorator.

    Its attributes repeat the module's names for type checkers, which see `opto.trace` through
    this class; at run time the module's own attributes (the same objects) are found first.
    """

    if TYPE_CHECKING:  # functions as instance attributes, so that their overloads are kept as they are

        def __init__(self) -> None:
            self.async_trace = async_trace
            self.async_stream = async_stream
            self.optimize = optimize
            self.param = param
            self.set_async_debug = set_async_debug
            self.set_testing = set_testing

    RetryPolicy = RetryPolicy
    Param = Param
    Workflow = Workflow
    OptimizeResult = OptimizeResult
    Candidate = Candidate
    Evaluation = Evaluation
    AsyncQueue = AsyncQueue
    QueueClosed = QueueClosed
    QueueStats = QueueStats
    AsyncMetrics = AsyncMetrics
    BlockMetrics = BlockMetrics
    MetricsSummary = MetricsSummary
    AsyncTraceContext = AsyncTraceContext
    ContextStats = ContextStats
    AsyncBatchProcessor = AsyncBatchProcessor
    BatchResult = BatchResult

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Callable[P, R]: ...
    @overload
    def __call__(
        self,
        /,
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
        max_concurrent: int | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
    def __call__(self, fn: Any = None, /, **options: Any) -> Any:
        """`@opto.trace`: see `opto.trace._decorator.trace`."""
        return _trace(fn, **options)


sys.modules[__name__].__class__ = TraceModule
