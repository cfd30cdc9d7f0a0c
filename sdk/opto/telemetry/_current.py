"""Read, make current and restore an OpenTelemetry context at the cost of a ContextVar call.

`opentelemetry.context.attach`/`detach`/`get_current` reach the runtime context's ContextVar
through two Python calls each; a traced call pays them once and a traced stream once per item.
With the default runtime context (contextvars) we use its variable directly; any other runtime
(set through OTEL_PYTHON_CONTEXT) keeps the API's functions. A traced call reads the current
context once (`current`), starts its span under it and makes `with_span(that, span)` current.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar, Token

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import Span, set_span_in_context
from opentelemetry.trace.propagation import _SPAN_KEY

__all__ = ["attach", "attach_span", "current", "detach", "fast_path_available", "undo", "with_span"]

logger = logging.getLogger("opentelemetry.context")

_runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
_var = getattr(_runtime, "_current_context", None) if type(_runtime) is ContextVarsRuntimeContext else None

attach: Callable[[Context], Token[Context]]
detach: Callable[[Token[Context]], None]
current: Callable[[], Context]
# `detach` for a token attached in the same step of the same task, which cannot fail: the
# ContextVar's own reset, without `detach`'s guard (a traced stream undoes one per item).
undo: Callable[[Token[Context]], None]

if isinstance(_var, ContextVar):
    attach = _var.set
    _reset = _var.reset
    undo = _reset

    def detach(token: Token[Context]) -> None:
        """Restore the context current before `attach` returned `token`; log, as the API does, if that fails."""
        try:
            _reset(token)
        except Exception:  # a token from another context: the API logs it and carries on
            logger.exception("Failed to detach context")

    current = _var.get

    def with_span(context: Context, span: Span) -> Context:
        """`set_span_in_context(span, context)`, without the API's calls."""
        values = context.copy()  # a Context is a dict that refuses item assignment; its copy is a dict
        values[_SPAN_KEY] = span
        return Context(values)

else:
    attach = otel_context.attach
    detach = otel_context.detach
    undo = detach
    current = otel_context.get_current

    def with_span(context: Context, span: Span) -> Context:
        """`set_span_in_context(span, context)`."""
        return set_span_in_context(span, context)


def attach_span(span: Span) -> Token[Context]:
    """Make the current context, plus `span`, current: `attach(set_span_in_context(span))`."""
    return attach(with_span(current(), span))


def fast_path_available() -> bool:
    """Whether `attach` and `detach` use the ContextVar directly (tests check our API range keeps it)."""
    return isinstance(_var, ContextVar)
