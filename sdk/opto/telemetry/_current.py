"""Make an OpenTelemetry context current, and restore the previous one, at the cost of a ContextVar call.

`opentelemetry.context.attach`/`detach` reach the runtime context's ContextVar through two Python
calls each; a traced call pays them once and a traced stream once per item. With the default
runtime context (contextvars) we use its variable directly; any other runtime (set through
OTEL_PYTHON_CONTEXT) keeps the API's functions.
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

__all__ = ["attach", "attach_span", "context_with", "detach", "fast_path_available", "undo"]

logger = logging.getLogger("opentelemetry.context")

_runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
_var = getattr(_runtime, "_current_context", None) if type(_runtime) is ContextVarsRuntimeContext else None

attach: Callable[[Context], Token[Context]]
detach: Callable[[Token[Context]], None]
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

    _get = _var.get

    def attach_span(span: Span) -> Token[Context]:
        """`attach(set_span_in_context(span))` in one step: the current context, plus `span`."""
        values = _get().copy()  # a Context is a dict that refuses item assignment; its copy is a dict
        values[_SPAN_KEY] = span
        return attach(Context(values))

    def context_with(span: Span) -> Context:
        """`set_span_in_context(span)`: the current context, plus `span`, without the API's calls."""
        values = _get().copy()
        values[_SPAN_KEY] = span
        return Context(values)

else:
    attach = otel_context.attach
    detach = otel_context.detach
    undo = detach

    def attach_span(span: Span) -> Token[Context]:
        """`attach(set_span_in_context(span))`."""
        return attach(set_span_in_context(span))

    def context_with(span: Span) -> Context:
        """`set_span_in_context(span)`."""
        return set_span_in_context(span)


def fast_path_available() -> bool:
    """Whether `attach` and `detach` use the ContextVar directly (tests check our API range keeps it)."""
    return isinstance(_var, ContextVar)
