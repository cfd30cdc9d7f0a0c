"""OTLP trace requests (protobuf or JSON) to the dashboard's span records: pure functions.

Follows the OTLP/HTTP specification: JSON ids are hex, not base64; a span that cannot become a
valid record is rejected alone and counted for the partial-success reply, while a body that does
not decode at all raises `DecodeError` (the 400 reason).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from .records import RecordError, SpanRecord

__all__ = ["Encoding", "DecodeError", "Decoded", "decode_traces", "parse_traces", "to_records", "attributes"]

Encoding = Literal["protobuf", "json"]

_KINDS = {
    Span.SPAN_KIND_UNSPECIFIED: "internal",
    Span.SPAN_KIND_INTERNAL: "internal",
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_PRODUCER: "producer",
    Span.SPAN_KIND_CONSUMER: "consumer",
}
_STATUS = {Status.STATUS_CODE_UNSET: "unset", Status.STATUS_CODE_OK: "ok", Status.STATUS_CODE_ERROR: "error"}
_ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


class DecodeError(ValueError):
    """A request body that is not an OTLP export request in the declared encoding."""


@dataclass(slots=True)
class Decoded:
    """The valid spans of a request as records, and how many spans were rejected and why."""

    records: list[SpanRecord] = field(default_factory=list)
    rejected: int = 0
    error: str = ""


def decode_traces(body: bytes, encoding: Encoding) -> Decoded:
    """Span records from an OTLP/HTTP traces request body (already decompressed)."""
    return to_records(parse_traces(body, encoding))


def parse_traces(body: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    """The request message from its protobuf or OTLP/JSON body; DecodeError says what is wrong."""
    if encoding == "protobuf":
        try:
            return ExportTraceServiceRequest.FromString(body)
        except ProtobufDecodeError as exc:
            raise DecodeError(f"body is not a protobuf ExportTraceServiceRequest: {exc}") from None
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(f"body is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise DecodeError(f"body must be a JSON object with resourceSpans, got {type(obj).__name__}")
    _hex_ids_to_base64(obj)
    try:
        return json_format.ParseDict(obj, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise DecodeError(f"body is not an OTLP/JSON ExportTraceServiceRequest: {exc}") from None


def _hex_ids_to_base64(request: dict[str, Any]) -> None:
    """OTLP/JSON writes trace and span ids as hex where proto3 JSON expects base64: convert in place."""
    for rs_i, resource_spans in enumerate(_items(request, "resourceSpans", "resource_spans")):
        for ss_i, scope_spans in enumerate(_items(resource_spans, "scopeSpans", "scope_spans")):
            for span_i, span in enumerate(_items(scope_spans, "spans")):
                where = f"resourceSpans[{rs_i}].scopeSpans[{ss_i}].spans[{span_i}]"
                _convert_ids(span, where)
                for link_i, link in enumerate(_items(span, "links")):
                    _convert_ids(link, f"{where}.links[{link_i}]")


def _items(obj: dict[str, Any], *keys: str) -> list[dict[str, Any]]:
    """The dict members of the list under the first present key; other shapes are left to the parser."""
    for key in keys:
        if key in obj:
            value = obj[key]
            return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
    return []


def _convert_ids(obj: dict[str, Any], where: str) -> None:
    for key in _ID_FIELDS:
        value = obj.get(key)
        if isinstance(value, str):
            try:
                obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise DecodeError(f"{where}.{key}: expected hex, got {value[:40]!r}") from None


def to_records(request: ExportTraceServiceRequest) -> Decoded:
    """Every span of the request as an ended record; invalid spans are counted, not raised."""
    decoded = Decoded()
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = {"name": scope_spans.scope.name, "version": scope_spans.scope.version}
            for span in scope_spans.spans:
                try:
                    record = SpanRecord.from_json(_span_json(span, resource, scope))
                except RecordError as exc:
                    decoded.rejected += 1
                    decoded.error = decoded.error or f"span {span.name[:80]!r} rejected: {exc}"
                else:
                    decoded.records.append(record)
    return decoded


def _span_json(span: Span, resource: dict[str, Any], scope: dict[str, str]) -> dict[str, Any]:
    """The record's JSON form, for `SpanRecord.from_json` to validate as the websocket door does."""
    if span.end_time_unix_nano == 0:
        raise RecordError("span.end_ns", "an OTLP span needs end_time_unix_nano")
    return {
        "trace_id": _id(span.trace_id, 16, "span.trace_id"),
        "span_id": _id(span.span_id, 8, "span.span_id"),
        "parent_span_id": _id(span.parent_span_id, 8, "span.parent_span_id") if span.parent_span_id else None,
        "name": span.name,
        "kind": _KINDS.get(span.kind, "internal"),
        "state": "ended",
        "start_ns": span.start_time_unix_nano,
        "end_ns": span.end_time_unix_nano,
        "status": {"code": _STATUS.get(span.status.code, "unset"), "message": span.status.message},
        "attributes": attributes(span.attributes),
        "events": [
            {"name": e.name, "time_ns": e.time_unix_nano, "attributes": attributes(e.attributes)} for e in span.events
        ],
        "links": [
            {
                "trace_id": _id(link.trace_id, 16, f"span.links[{i}].trace_id"),
                "span_id": _id(link.span_id, 8, f"span.links[{i}].span_id"),
                "attributes": attributes(link.attributes),
            }
            for i, link in enumerate(span.links)
        ],
        "resource": resource,
        "scope": scope,
    }


def _id(raw: bytes, size: int, path: str) -> str:
    """Lowercase hex of an id of `size` bytes; OTLP forbids all-zero ids."""
    if len(raw) != size or not any(raw):
        raise RecordError(path, f"expected a non-zero {size}-byte id, got {raw.hex()!r}")
    return raw.hex()


def attributes(pairs: Any) -> dict[str, Any]:
    """OTLP key-values as a record's attributes: scalars and lists of scalars as they are, the rest as JSON."""
    out: dict[str, Any] = {}
    for pair in pairs:
        value = _value(pair.value)
        if value is not None:
            out[pair.key] = value
    return out


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        items = [_plain(v) for v in value.array_value.values]
        if all(isinstance(v, (str, int, float, bool)) for v in items):
            return items
        return json.dumps(items, separators=(",", ":"))
    if kind == "kvlist_value":
        return json.dumps(_kvlist(value.kvlist_value.values), separators=(",", ":"))
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def _kvlist(pairs: Any) -> dict[str, Any]:
    """A nested key-value list as plain JSON data, for an attribute that holds a map."""
    return {pair.key: _plain(pair.value) for pair in pairs}


def _plain(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_plain(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _kvlist(value.kvlist_value.values)
    return _value(value)

