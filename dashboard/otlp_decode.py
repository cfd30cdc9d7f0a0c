"""OTLP export requests (protobuf or JSON) to the dashboard's span records and metric points.

Pure functions, per the OTLP/HTTP specification: JSON ids are hex, not base64; an item that cannot
become a valid record is rejected alone and counted for the partial-success reply, while a body
that does not decode at all raises `DecodeError` (the 400 reason). Records are built directly from
the decoded message under the limits of `records` (the protobuf schema already fixes every type),
because validating each span a second time through `SpanRecord.from_json` would halve throughput.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from opto.telemetry import semconv
from opto.telemetry.limits import cut_value

from .records import MAX_ITEMS, MAX_NAME, MAX_VALUE, ProcessInfo, RecordError, SpanRecord

__all__ = [
    "Encoding", "DecodeError", "Batch", "Decoded", "parse", "decode_traces", "decode_metrics", "to_records",
    "to_points", "attributes", "process_of", "MAX_RESOURCES",
]

Encoding = Literal["protobuf", "json"]
M = TypeVar("M", bound=Message)
MAX_STATUS_MESSAGE = 4096  # as `SpanRecord.from_json` allows
MAX_DEPTH = 100  # message nesting, for JSON as protobuf's own decoder allows
MAX_TIME_NS = 2**63 - 1  # OTLP times are unsigned 64-bit; SQLite integers are signed

_KINDS = {
    Span.SPAN_KIND_UNSPECIFIED: "internal",
    Span.SPAN_KIND_INTERNAL: "internal",
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_PRODUCER: "producer",
    Span.SPAN_KIND_CONSUMER: "consumer",
}
_STATUS = {Status.STATUS_CODE_UNSET: "unset", Status.STATUS_CODE_OK: "ok", Status.STATUS_CODE_ERROR: "error"}
_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value"})
# Resources one request may carry: each is a process of its own (one write, one live entry); an
# exporter sends one, a collector a few. Past it, a request could keep the server busy for seconds.
MAX_RESOURCES = 1_000
_PAST_RESOURCES = f"past the {MAX_RESOURCES} resources one request may carry"
_ZERO_IDS = {8: bytes(8), 16: bytes(16)}
_ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")
_SHOWN_METRICS = frozenset({"gauge", "sum", "histogram"})


class DecodeError(ValueError):
    """A request body that is not an OTLP export request in the declared encoding."""


@dataclass(slots=True)
class Batch:
    """What one resource (one process, for an SDK) sent: span records or metric points."""

    resource: dict[str, Any]
    items: list[Any] = field(default_factory=list)


@dataclass(slots=True)
class Decoded:
    """The valid items of a request by resource, how many were rejected, and the first reason.

    `warning` notes accepted data the dashboard does not store (the reply's partial success
    carries it with zero rejected, as the specification allows).
    """

    batches: list[Batch] = field(default_factory=list)
    rejected: int = 0
    error: str = ""
    warning: str = ""

    @property
    def items(self) -> list[Any]:
        return [item for batch in self.batches for item in batch.items]

    def reject(self, count: int, reason: str) -> None:
        self.rejected += count
        self.error = self.error or reason


def decode_traces(body: bytes, encoding: Encoding) -> Decoded:
    """Span records from an OTLP/HTTP traces request body (already decompressed)."""
    return to_records(parse(body, encoding, ExportTraceServiceRequest()))


def decode_metrics(body: bytes, encoding: Encoding) -> Decoded:
    """Metric points from an OTLP/HTTP metrics request body (already decompressed)."""
    return to_points(parse(body, encoding, ExportMetricsServiceRequest()))


def parse(body: bytes, encoding: Encoding, message: M) -> M:
    """`message` filled from a protobuf or OTLP/JSON body; DecodeError says what is wrong."""
    kind = type(message).__name__
    if encoding == "protobuf":
        try:
            message.ParseFromString(body)
        except ProtobufDecodeError as exc:
            raise DecodeError(f"body is not a protobuf {kind}: {exc}") from None
        return message
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(f"body is not JSON: {exc}") from None
    except RecursionError:
        raise DecodeError(f"body is nested too deeply: an OTLP/JSON {kind} is at most {MAX_DEPTH} levels deep") from None
    if not isinstance(obj, dict):
        raise DecodeError(f"body must be a JSON object (an OTLP/JSON {kind}), got {type(obj).__name__}")
    _hex_ids_to_base64(obj)
    try:
        json_format.ParseDict(obj, message, ignore_unknown_fields=True, max_recursion_depth=MAX_DEPTH)
        return message
    except json_format.ParseError as exc:
        raise DecodeError(f"body is not an OTLP/JSON {kind}: {exc}") from None


def _hex_ids_to_base64(request: dict[str, Any]) -> None:
    """OTLP/JSON writes span ids as hex where proto3 JSON expects base64: convert them in place."""
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
    for i, resource_spans in enumerate(request.resource_spans):
        spans = [span for scope_spans in resource_spans.scope_spans for span in scope_spans.spans]
        try:
            if i >= MAX_RESOURCES:
                raise RecordError("resource", _PAST_RESOURCES)
            batch = Batch(attributes(resource_spans.resource.attributes, "resource"))
        except RecordError as exc:
            decoded.reject(len(spans), f"{len(spans)} span(s) rejected: {exc}")
            continue
        for scope_spans in resource_spans.scope_spans:
            scope = {"name": scope_spans.scope.name[:MAX_NAME], "version": scope_spans.scope.version[:MAX_NAME]}
            for span in scope_spans.spans:
                try:
                    batch.items.append(_record(span, batch.resource, scope))
                except RecordError as exc:
                    decoded.reject(1, f"span {span.name[:80]!r} rejected: {exc}")
        decoded.batches.append(batch)
    return decoded


def _record(span: Span, resource: dict[str, Any], scope: dict[str, str]) -> SpanRecord:
    end_ns = span.end_time_unix_nano
    if end_ns == 0:
        raise RecordError("span.end_ns", "an OTLP span needs end_time_unix_nano")
    status = span.status
    parent = span.parent_span_id
    events = span.events
    links = span.links
    return SpanRecord(
        trace_id=_id(span.trace_id, 16, "span.trace_id"),
        span_id=_id(span.span_id, 8, "span.span_id"),
        parent_span_id=_id(parent, 8, "span.parent_span_id") if parent else None,
        name=_text(span.name, "span.name"),
        kind=_KINDS.get(span.kind, "internal"),
        state="ended",
        start_ns=_time(span.start_time_unix_nano, "span.start_ns"),
        end_ns=_time(end_ns, "span.end_ns"),
        status_code=_STATUS.get(status.code, "unset"),
        status_message=_text(status.message, "span.status.message", MAX_STATUS_MESSAGE),
        attributes=attributes(span.attributes, "span.attributes"),
        events=[] if not events else [
            {
                "name": _text(e.name, f"span.events[{i}].name"),
                "time_ns": _time(e.time_unix_nano, f"span.events[{i}].time_ns"),
                "attributes": attributes(e.attributes, f"span.events[{i}].attributes"),
            }
            for i, e in enumerate(_limited(events, "span.events"))
        ],
        links=[] if not links else [
            {
                "trace_id": _id(link.trace_id, 16, f"span.links[{i}].trace_id"),
                "span_id": _id(link.span_id, 8, f"span.links[{i}].span_id"),
                "attributes": attributes(link.attributes, f"span.links[{i}].attributes"),
            }
            for i, link in enumerate(_limited(links, "span.links"))
        ],
        resource=resource,
        scope=scope,
    )


def _id(raw: bytes, size: int, path: str) -> str:
    """Lowercase hex of an id of `size` bytes; OTLP forbids all-zero ids."""
    if len(raw) != size or raw == _ZERO_IDS[size]:
        raise RecordError(path, f"expected a non-zero {size}-byte id, got {raw.hex()!r}")
    return raw.hex()


def _text(value: str, path: str, limit: int = MAX_NAME) -> str:
    if len(value) > limit:
        raise RecordError(path, f"longer than {limit} chars")
    return value


def _time(ns: int, path: str) -> int:
    if ns > MAX_TIME_NS:
        raise RecordError(path, f"{ns} is past the largest time the dashboard stores ({MAX_TIME_NS})")
    return ns


def _limited(items: Any, path: str) -> Any:
    if len(items) > MAX_ITEMS:
        raise RecordError(path, f"more than {MAX_ITEMS} items")
    return items


def to_points(request: ExportMetricsServiceRequest) -> Decoded:
    """Gauge, sum and histogram points in the websocket door's shape (docs/api.md, `metrics`).

    A point is `{"name", "time_ns", "attributes"}` plus a `value`, or a `histogram` with
    `count`, `sum`, `min`, `max`, `bounds` and `counts`. Exponential histograms and summaries
    are accepted but not stored, and the reply's warning says so.
    """
    decoded = Decoded()
    not_shown = 0
    for i, resource_metrics in enumerate(request.resource_metrics):
        metrics = [m for scope_metrics in resource_metrics.scope_metrics for m in scope_metrics.metrics]
        try:
            if i >= MAX_RESOURCES:
                raise RecordError("resource", _PAST_RESOURCES)
            batch = Batch(attributes(resource_metrics.resource.attributes, "resource"))
        except RecordError as exc:
            count = sum(len(_data_points(m)) for m in metrics)
            decoded.reject(count, f"{count} data point(s) rejected: {exc}")
            continue
        for metric in metrics:
            kind = metric.WhichOneof("data")
            points = _data_points(metric)
            if kind not in _SHOWN_METRICS:
                not_shown += len(points)
                continue
            for point in points:
                try:
                    item = {
                        "name": _text(metric.name, "metric.name"),
                        "time_ns": _time(point.time_unix_nano, "metric.time_ns"),
                        "attributes": attributes(point.attributes, "metric.attributes"),
                    }
                except RecordError as exc:
                    decoded.reject(1, f"data point of {metric.name[:80]!r} rejected: {exc}")
                    continue
                if kind == "histogram":
                    item["histogram"] = {
                        "count": point.count,
                        "sum": point.sum if point.HasField("sum") else None,
                        "min": point.min if point.HasField("min") else None,
                        "max": point.max if point.HasField("max") else None,
                        "bounds": list(point.explicit_bounds),
                        "counts": list(point.bucket_counts),
                    }
                else:
                    item["value"] = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
                batch.items.append(item)
        decoded.batches.append(batch)
    if not_shown:
        decoded.warning = (
            f"{not_shown} exponential histogram or summary point(s) accepted but not stored: "
            "the dashboard keeps gauges, sums and explicit-bucket histograms"
        )
    return decoded


def _data_points(metric: Metric) -> Any:
    kind = metric.WhichOneof("data")
    return getattr(metric, kind).data_points if kind else ()


def attributes(pairs: Iterable[KeyValue], path: str) -> dict[str, Any]:
    """OTLP key-values as record attributes: scalars and scalar lists as they are, maps and nested lists as JSON.

    A string longer than `MAX_VALUE` or a list longer than `MAX_ITEMS` is cut, as OpenTelemetry's
    attribute limits cut; RecordError past `MAX_ITEMS` attributes or for a name over `MAX_NAME`
    chars; empty values are dropped.
    """
    out: dict[str, Any] = {}
    for pair in _limited(pairs, path):
        value = pair.value
        kind = value.WhichOneof("value")
        if kind == "string_value":
            out[pair.key] = value.string_value[:MAX_VALUE]  # cut as OpenTelemetry's attribute limits cut
        elif kind in _SCALARS:
            out[pair.key] = getattr(value, kind)
        elif kind is not None:
            out[pair.key] = cut_value(_complex(value, kind), MAX_VALUE)[0]
    if out and max(map(len, out)) > MAX_NAME:
        raise RecordError(path, f"attribute name longer than {MAX_NAME} chars")
    return out


def _complex(value: AnyValue, kind: str) -> Any:
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    plain = _plain(value)
    if isinstance(plain, list) and all(isinstance(v, (str, int, float, bool)) for v in plain):
        return plain
    return json.dumps(plain, separators=(",", ":"))


def _plain(value: AnyValue) -> Any:
    """An AnyValue as plain JSON data."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_plain(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {pair.key: _plain(pair.value) for pair in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind == "double_value" and not math.isfinite(value.double_value):
        return None  # as JSON carries a NaN or an infinity: the text stored must stay JSON
    return getattr(value, kind) if kind else None


def process_of(resource: dict[str, Any], seen_ns: int) -> ProcessInfo:
    """The process an OTLP resource describes, with an id stable across its requests."""
    digest = hashlib.sha256(json.dumps(resource, sort_keys=True, default=str).encode()).hexdigest()
    sdk = "/".join(str(resource[k]) for k in (semconv.TELEMETRY_SDK_NAME, semconv.TELEMETRY_SDK_VERSION) if k in resource)
    return ProcessInfo(
        id=digest[:32],
        service=_str(resource.get(semconv.SERVICE_NAME)) or "unknown_service",
        pid=pid if isinstance(pid := resource.get(semconv.PROCESS_PID), int) and not isinstance(pid, bool) and pid >= 0 else 0,
        host=_str(resource.get(semconv.HOST_NAME)),
        sdk=f"{sdk} (otlp)" if sdk else "otlp",
        started_ns=seen_ns,
    )


def _str(value: Any) -> str:
    return value[:MAX_NAME] if isinstance(value, str) else ""
