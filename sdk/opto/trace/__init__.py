"""`opto.trace`: decorators and async primitives that report through OpenTelemetry.

This module is callable: `@opto.trace` decorates a function, while `opto.trace.async_trace`,
`opto.trace.AsyncQueue` and the other names below are its attributes.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from ._batch import AsyncBatchProcessor, BatchResult
from ._context import AsyncTraceContext, ContextStats
from ._debug import set_async_debug
from ._decorator import async_trace
from ._decorator import trace as _trace
from ._optimize import Candidate, Evaluation, OptimizeResult, Workflow, optimize
from ._param import Param, param
from ._metrics import AsyncMetrics, BlockMetrics, MetricsSummary
from ._queue import AsyncQueue, QueueClosed, QueueStats
from ._retry import RetryPolicy, set_testing
from ._stream import async_stream

__all__ = ["async_trace", "set_async_debug", "set_testing", "RetryPolicy",
           "optimize", "param", "Param", "Workflow", "OptimizeResult", "Candidate", "Evaluation",
           "async_stream", "AsyncQueue", "QueueClosed", "QueueStats", "AsyncMetrics", "BlockMetrics", "MetricsSummary",
           "AsyncTraceContext", "ContextStats", "AsyncBatchProcessor", "BatchResult"]


class _TraceModule(types.ModuleType):
    """The module object of `opto.trace`, callable as the `@opto.trace` decorator."""

    def __call__(self, fn: Any = None, /, **options: Any) -> Any:
        return _trace(fn, **options)


sys.modules[__name__].__class__ = _TraceModule
