"""Encode OpenTelemetry SDK spans as the dashboard's span records (docs/api.md)."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["encode_span", "MAX_NAME"]

MAX_NAME = 1024  # the dashboard refuses longer names; longer ones are cut here


def _attrs(attributes: Any) -> dict[str, Any]:
    """A plain copy; a live span's attributes may change under us, so a failed copy is retried once."""
    if not attributes:
        return {}
    try:
        return dict(attributes)
    except (KeyError, RuntimeError):
        return dict(attributes)


def encode_span(span: ReadableSpan, ended: bool, resource: dict[str, Any]) -> dict[str, Any]:
    """The record of a started span (`ended=False`: no end, status or outcome yet) or an ended one."""
    ctx = span.context
    parent = span.parent
    status = span.status
    record: dict[str, Any] = {
        "trace_id": format(ctx.trace_id, "032x"),  # type: ignore[union-attr]
        "span_id": format(ctx.span_id, "016x"),  # type: ignore[union-attr]
        "parent_span_id": format(parent.span_id, "016x") if parent is not None else None,
        "name": span.name[:MAX_NAME],
        "kind": span.kind.name.lower(),
        "state": "ended" if ended else "started",
        "start_ns": span.start_time or 0,
        "end_ns": span.end_time if ended else None,
        "status": {"code": status.status_code.name.lower(), "message": status.description or ""} if ended else {"code": "unset", "message": ""},
        "attributes": _attrs(span.attributes),
        "resource": resource,
    }
    if span.events:
        record["events"] = [
            {"name": e.name[:MAX_NAME], "time_ns": e.timestamp, "attributes": _attrs(e.attributes)} for e in span.events
        ]
    if span.links:
        record["links"] = [
            {"trace_id": format(link.context.trace_id, "032x"), "span_id": format(link.context.span_id, "016x"), "attributes": _attrs(link.attributes)}
            for link in span.links
        ]
    scope = span.instrumentation_scope
    if scope is not None:
        record["scope"] = {"name": scope.name, "version": scope.version or ""}
    return record
