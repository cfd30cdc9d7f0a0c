"""Encode OpenTelemetry SDK spans as the dashboard's span records (docs/api.md).

This runs on the live exporter's thread for every span, so it reads each property once and maps
enums through prepared tables.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

__all__ = ["encode_span"]

_KINDS = {kind: kind.name.lower() for kind in SpanKind}
_CODES = {code: code.name.lower() for code in StatusCode}
_UNSET = {"code": "unset", "message": ""}


def _attrs(attributes: Any) -> dict[str, Any]:
    """A plain copy; a live span's attributes may change under us, so a failed copy is retried once."""
    if not attributes:
        return {}
    try:
        return dict(attributes)
    except (KeyError, RuntimeError):
        return dict(attributes)


def _span_attrs(span: ReadableSpan, ended: bool) -> dict[str, Any]:
    """The span's attributes. The SDK keeps them in a plain dict inside `BoundedAttributes`: read it
    directly (the mapping interface costs a Python call per key); an ended span's is immutable, and
    copying a live span's dict is atomic under the GIL. Any other layout takes the mapping route."""
    raw = getattr(getattr(span, "_attributes", None), "_dict", None)
    if type(raw) is dict:
        return raw if ended else raw.copy()
    return _attrs(span.attributes)


def _span_list(span: ReadableSpan, private: str, public: str) -> Sequence[Any]:
    """A span's events or links: straight from the SDK's deque when it has one (cheap when empty)."""
    dq = getattr(getattr(span, private, None), "_dq", None)
    if type(dq) is deque:
        return tuple(dq) if dq else ()
    return getattr(span, public)  # type: ignore[no-any-return]


def encode_span(span: ReadableSpan, ended: bool) -> dict[str, Any]:
    """The record of a started span (`ended=False`: no end, status or outcome yet) or an ended one.

    The resource is left out: the exporter sends it once per batch frame. Sizes are not checked
    here: the exporter cuts a record to the shared limits (`limits.fit`) when it is over one.
    """
    ctx = span.context
    parent = span.parent
    record: dict[str, Any] = {
        "trace_id": "%032x" % ctx.trace_id,
        "span_id": "%016x" % ctx.span_id,
        "parent_span_id": None if parent is None else "%016x" % parent.span_id,
        "name": span.name,
        "kind": _KINDS[span.kind],
        "state": "ended" if ended else "started",
        "start_ns": span.start_time or 0,
        "end_ns": span.end_time if ended else None,
        "attributes": _span_attrs(span, ended),
    }
    if ended:
        status = span.status
        record["status"] = {"code": _CODES[status.status_code], "message": status.description or ""} if status.description or status.status_code is not StatusCode.UNSET else _UNSET
    events = _span_list(span, "_events", "events")
    if events:
        record["events"] = [{"name": e.name, "time_ns": e.timestamp, "attributes": _attrs(e.attributes)} for e in events]
    links = _span_list(span, "_links", "links")
    if links:
        record["links"] = [
            {"trace_id": "%032x" % link.context.trace_id, "span_id": "%016x" % link.context.span_id, "attributes": _attrs(link.attributes)}
            for link in links
        ]
    scope = span.instrumentation_scope
    if scope is not None:
        record["scope"] = {"name": scope.name, "version": scope.version or ""}
    return record
